// Package sink produces the downlink's records (CommandStatus events and dead letters) with
// confluent-kafka-go: idempotent, acks=all, murmur2_random partitioning on the vehicle key —
// the partitioner of the exhook producer and of Java clients — so that every status event
// of a vehicle lands on the same partition as the broker's DELIVERED/ACKED events.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/iov-platform/iov/services/downlink/internal/config"
	"github.com/iov-platform/iov/services/downlink/internal/metrics"
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

// consumerOnly are librdkafka consumer settings that kafka.properties may carry for the
// consumer; the producer is not given them.
var consumerOnly = []string{
	"enable.auto.commit", "enable.auto.offset.store", "auto.offset.reset", "auto.commit.interval.ms",
	"partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms",
	"group.instance.id", "group.protocol", "isolation.level", "fetch.wait.max.ms", "fetch.min.bytes",
	"fetch.max.bytes", "max.partition.fetch.bytes", "queued.min.messages", "queued.max.messages.kbytes",
	"enable.partition.eof", "check.crcs",
}

// Sink wraps one librdkafka producer.
type Sink struct {
	p    *kafka.Producer
	log  *slog.Logger
	m    *metrics.Metrics
	done chan struct{}
	logs chan struct{}
	once sync.Once

	fatalMu sync.Mutex
	fatal   error
}

// New creates the producer and starts its event loop.
func New(k config.Kafka, log *slog.Logger, m *metrics.Metrics) (*Sink, error) {
	cm := kafka.ConfigMap{
		"client.id":          "iov-downlink",
		"linger.ms":          1,
		"compression.type":   "lz4",
		"message.timeout.ms": 30000,
	}
	for key, v := range k.Properties {
		cm[key] = v
	}
	for _, key := range consumerOnly {
		delete(cm, key)
	}
	for key, v := range config.ProducerProtected {
		cm[key] = v
	}
	cm["bootstrap.servers"] = k.BootstrapServers
	cm["go.delivery.reports"] = true
	cm["go.logs.channel.enable"] = true
	p, err := kafka.NewProducer(&cm)
	if err != nil {
		return nil, fmt.Errorf("create kafka producer: %w", err)
	}
	s := &Sink{p: p, log: log, m: m, done: make(chan struct{}), logs: make(chan struct{})}
	go s.events()
	go s.pumpLogs()
	return s, nil
}

// Fatal returns the fatal error, if the producer hit one.
func (s *Sink) Fatal() error {
	s.fatalMu.Lock()
	defer s.fatalMu.Unlock()
	return s.fatal
}

// Produce writes rec and returns once Kafka acknowledged it (acks=all) or failed it, or ctx
// ended. A full local queue is back-pressure: Produce waits for room until ctx ends.
func (s *Sink) Produce(ctx context.Context, rec Record) error {
	if err := s.Fatal(); err != nil {
		return err
	}
	ack := make(chan error, 1)
	msg := &kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &rec.Topic, Partition: kafka.PartitionAny},
		Key:            rec.Key,
		Value:          rec.Value,
		Headers:        rec.Headers,
		Opaque:         ack,
	}
	backoff := time.Millisecond
	for {
		err := s.p.Produce(msg, nil)
		if err == nil {
			break
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
	select {
	case err := <-ack:
		if err != nil {
			return fmt.Errorf("produce %s: %w", rec.Topic, err)
		}
		return nil
	case <-ctx.Done():
		// Still queued and may yet be written: "not confirmed", never "not written".
		return fmt.Errorf("produce %s: no acknowledgement: %w", rec.Topic, context.Cause(ctx))
	}
}

func (s *Sink) events() {
	defer close(s.done)
	for ev := range s.p.Events() {
		switch e := ev.(type) {
		case *kafka.Message:
			if ack, ok := e.Opaque.(chan error); ok {
				ack <- e.TopicPartition.Error
			}
		case kafka.Error:
			s.m.ClientErrors.WithLabelValues("producer", strings.ToLower(e.Code().String())).Inc()
			if e.IsFatal() {
				s.fatalMu.Lock()
				s.fatal = fmt.Errorf("%w: %w", ErrFatal, e)
				s.fatalMu.Unlock()
				s.log.Error("kafka producer fatal error", "err", e)
				continue
			}
			s.log.Warn("kafka producer error", "code", e.Code().String(), "err", e)
		}
	}
}

func (s *Sink) pumpLogs() {
	defer close(s.logs)
	for l := range s.p.Logs() {
		level := slog.LevelDebug
		switch {
		case l.Tag == "CONFWARN":
		case l.Level <= 3:
			level = slog.LevelError
		case l.Level == 4:
			level = slog.LevelWarn
		case l.Level <= 5:
			level = slog.LevelInfo
		}
		s.log.Log(context.Background(), level, l.Message, "component", "librdkafka", "client", "producer", "tag", l.Tag)
	}
}

// Flush waits up to timeout for every queued record and returns how many are outstanding.
func (s *Sink) Flush(timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		left := s.p.Flush(100)
		if left == 0 || time.Now().After(deadline) {
			return left
		}
	}
}

// Close closes the producer; call Flush first. Safe to call more than once.
func (s *Sink) Close() {
	s.once.Do(func() {
		s.p.Close()
		<-s.done
		<-s.logs
	})
}
