// Package kafkasink produces records to Kafka with confluent-kafka-go (librdkafka):
// idempotent and acks=all, so every record is written once and, per partition, in order.
// One event loop settles delivery reports (waking the waiting Produce, or calling the
// ProduceCallback) and tracks the producer's fatal state.
package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iov-platform/iov/kit/kafkalog"
)

// Record is one Kafka record to produce.
type Record struct {
	Topic   string
	Key     []byte
	Value   []byte
	Headers []kafka.Header
}

// ErrFatal wraps a fatal producer error (e.g. an idempotence violation): the producer must
// be recreated, so the service stops.
var ErrFatal = errors.New("kafka producer is in a fatal state")

// Delivery results, the `result` label of Metrics.Deliveries.
const (
	Delivered = "delivered"
	Failed    = "failed"
)

// Metrics are the sink's counters.
type Metrics struct {
	// Deliveries counts delivery reports by topic and result (delivered|failed); nil: not
	// counted.
	Deliveries *prometheus.CounterVec
	// Errors counts client errors outside delivery reports by code (lower case); required.
	Errors *prometheus.CounterVec
}

// Options are what the sink needs besides the librdkafka settings.
type Options struct {
	Log     *slog.Logger
	Metrics Metrics
	// Logs says how librdkafka's own log lines are forwarded.
	Logs kafkalog.Options
}

// Sink wraps one librdkafka producer.
type Sink struct {
	p    *kafka.Producer
	log  *slog.Logger
	m    Metrics
	done chan struct{} // closed when the event loop ends
	logs chan struct{} // closed when the log forwarding ends
	once sync.Once

	fatalMu sync.Mutex
	fatal   error

	errs *kafkalog.ErrorLog // client errors, rate limited
}

// New creates the producer from the librdkafka settings cm (not modified) and starts its
// event loop. What the sink relies on is always set, whatever cm says:
// enable.idempotence=true, acks=all, go.delivery.reports=true, go.logs.channel.enable=true.
func New(cm kafka.ConfigMap, o Options) (*Sink, error) {
	conf := maps.Clone(cm)
	if conf == nil {
		conf = kafka.ConfigMap{}
	}
	conf["enable.idempotence"] = true
	conf["acks"] = "all"
	conf["go.delivery.reports"] = true
	conf["go.logs.channel.enable"] = true
	p, err := kafka.NewProducer(&conf)
	if err != nil {
		return nil, fmt.Errorf("create kafka producer: %w", err)
	}
	s := &Sink{p: p, log: o.Log, m: o.Metrics, done: make(chan struct{}), logs: make(chan struct{}), errs: kafkalog.NewErrorLog(o.Log, o.Logs.Client, 0)}
	go s.events()
	go func() {
		defer close(s.logs)
		kafkalog.Forward(s.log, p.Logs(), o.Logs)
	}()
	return s, nil
}

// Ping asks the cluster for metadata, to tell whether brokers are reachable.
func (s *Sink) Ping(timeout time.Duration) error {
	if _, err := s.p.GetMetadata(nil, false, int(timeout/time.Millisecond)); err != nil {
		return fmt.Errorf("kafka metadata: %w", err)
	}
	return nil
}

// Fatal returns the fatal error, if the producer hit one.
func (s *Sink) Fatal() error {
	s.fatalMu.Lock()
	defer s.fatalMu.Unlock()
	return s.fatal
}

// Produce queues rec. With wait it returns only after Kafka acknowledged the record
// (acks=all) or failed it, or when ctx ends; without wait it returns once the record is
// queued in the producer. A full local queue is back-pressure: Produce retries until ctx
// ends.
func (s *Sink) Produce(ctx context.Context, rec Record, wait bool) error {
	if !wait {
		return s.produce(ctx, rec, nil)
	}
	ack := make(chan error, 1)
	if err := s.produce(ctx, rec, ack); err != nil {
		return err
	}
	select {
	case err := <-ack:
		if err != nil {
			return fmt.Errorf("produce %s: %w", rec.Topic, err)
		}
		return nil
	case <-ctx.Done():
		// The record stays queued and may still be delivered: a sync failure means "not
		// confirmed", never "not written".
		return fmt.Errorf("produce %s: no acknowledgement: %w", rec.Topic, context.Cause(ctx))
	}
}

// ProduceCallback queues rec and calls done, from the event loop, with the delivery result.
// done must not block.
func (s *Sink) ProduceCallback(ctx context.Context, rec Record, done func(error)) error {
	return s.produce(ctx, rec, done)
}

func (s *Sink) produce(ctx context.Context, rec Record, opaque any) error {
	if err := s.Fatal(); err != nil {
		return err
	}
	msg := &kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &rec.Topic, Partition: kafka.PartitionAny},
		Key:            rec.Key,
		Value:          rec.Value,
		Headers:        rec.Headers,
		Opaque:         opaque,
	}
	backoff := time.Millisecond
	for {
		err := s.p.Produce(msg, nil)
		if err == nil {
			return nil
		}
		var kerr kafka.Error
		if !errors.As(err, &kerr) || kerr.Code() != kafka.ErrQueueFull {
			return fmt.Errorf("produce %s: %w", rec.Topic, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("produce %s: local queue full: %w", rec.Topic, context.Cause(ctx))
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

func (s *Sink) events() {
	defer close(s.done)
	for ev := range s.p.Events() {
		switch e := ev.(type) {
		case *kafka.Message:
			topic := ""
			if e.TopicPartition.Topic != nil {
				topic = *e.TopicPartition.Topic
			}
			err := e.TopicPartition.Error
			if err != nil {
				s.delivery(topic, Failed)
				if e.Opaque == nil {
					// Async: nobody waits for this record, so this is where a lost one shows.
					s.log.Error("kafka delivery failed", "topic", topic, "key", string(e.Key), "err", err)
				}
			} else {
				s.delivery(topic, Delivered)
			}
			switch done := e.Opaque.(type) {
			case chan error:
				done <- err
			case func(error):
				done(err)
			}
		case kafka.Error:
			s.m.Errors.WithLabelValues(strings.ToLower(e.Code().String())).Inc()
			if e.IsFatal() {
				s.fatalMu.Lock()
				s.fatal = fmt.Errorf("%w: %w", ErrFatal, e)
				s.fatalMu.Unlock()
				s.log.Error("kafka producer fatal error", "err", e)
				continue
			}
			s.errs.Log(e)
		}
	}
}

func (s *Sink) delivery(topic, result string) {
	if s.m.Deliveries != nil {
		s.m.Deliveries.WithLabelValues(topic, result).Inc()
	}
}

// Queued is the number of records not yet acknowledged or failed.
func (s *Sink) Queued() int { return s.p.Len() }

// Flush waits up to timeout for every queued record to be delivered and returns how many
// are still outstanding.
func (s *Sink) Flush(timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		left := s.p.Flush(100)
		if left == 0 || time.Now().After(deadline) {
			return left
		}
	}
}

// Close closes the producer; call Flush first. Records still queued are failed. Safe to
// call more than once.
func (s *Sink) Close() {
	s.once.Do(func() {
		s.p.Close()
		<-s.done
		<-s.logs
	})
}

// Headers builds record headers from pairs, in key order, skipping empty values.
func Headers(kv map[string]string) []kafka.Header {
	hs := make([]kafka.Header, 0, len(kv))
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		if v := kv[k]; v != "" {
			hs = append(hs, kafka.Header{Key: k, Value: []byte(v)})
		}
	}
	return hs
}
