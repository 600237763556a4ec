// Package engine runs the Kafka side of the consumer with confluent-kafka-go (librdkafka): a
// consumer group with cooperative-sticky assignment, records handed to the application
// handler one at a time, retries with backoff, dead-lettering, and commits that only ever
// cover handled records.
//
// The at-least-once contract (kafkagroup's): librdkafka auto-commits only offsets the engine
// stored, and the engine stores a record's offset only after the handler returned nil or the
// record was copied to the dead-letter topic and Kafka acknowledged that copy. Stored offsets
// are also committed synchronously when partitions are revoked and at shutdown.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/iov-platform/iov/kit/kafkagroup"
	"github.com/iov-platform/iov/kit/kafkalog"
	"github.com/iov-platform/iov/services/sample-consumer/internal/config"
	"github.com/iov-platform/iov/services/sample-consumer/internal/consume"
	"github.com/iov-platform/iov/services/sample-consumer/internal/metrics"
)

// Stages at which a record can be rejected (kafkagroup.HeaderStage of its dead letter).
const (
	StageDecode  = "decode"
	StageHandler = "handler"
)

// Options is what the engine needs from the service.
type Options struct {
	Kafka   config.Kafka
	Retry   config.Handler
	Decoder *consume.Decoder
	Handler consume.Handler
	Log     *slog.Logger
	Metrics *metrics.Metrics
}

// Engine is one consumer-group member.
type Engine struct {
	opts Options
	log  *slog.Logger
	m    *metrics.Metrics
	g    *kafkagroup.Member
	dlq  *kafka.Producer               // nil without a dead-letter topic
	errs map[string]*kafkalog.ErrorLog // by client: rate-limited client error lines

	pumps     sync.WaitGroup // the dead-letter producer's log and event forwarding goroutines
	closeOnce sync.Once
	closeErr  error
}

// errShutdown ends a retry loop when the engine is asked to stop: the record stays
// unstored, so it is delivered again after the restart.
var errShutdown = errors.New("shutting down")

// New creates the consumer (and the dead-letter producer, if configured). Nothing is
// consumed until Run.
func New(opts Options) (*Engine, error) {
	e := &Engine{opts: opts, log: opts.Log, m: opts.Metrics, errs: map[string]*kafkalog.ErrorLog{
		"consumer":            kafkalog.NewErrorLog(opts.Log, "consumer", 0),
		"deadletter-producer": kafkalog.NewErrorLog(opts.Log, "deadletter-producer", 0),
	}}
	g, err := kafkagroup.New(kafkagroup.Config{
		ClientID:         "sample-consumer",
		BootstrapServers: opts.Kafka.BootstrapServers,
		GroupID:          opts.Kafka.GroupID,
		Properties:       opts.Kafka.Properties,
	}, kafkagroup.Options{
		Log:         opts.Log,
		Metrics:     kafkagroup.Metrics{Rebalances: opts.Metrics.Rebalances, Partitions: opts.Metrics.Partitions},
		ClientError: func(err kafka.Error) { e.clientError("consumer", err) },
	})
	if err != nil {
		return nil, err
	}
	e.g = g

	if opts.Kafka.DeadLetterTopic != "" {
		pm := kafka.ConfigMap{
			"client.id":          "sample-consumer-deadletter",
			"linger.ms":          0,
			"message.timeout.ms": 30000,
			"partitioner":        "murmur2_random", // same partition for a key as the platform's producers
		}
		// The consumer's properties carry the security settings the producer needs too;
		// librdkafka ignores (and warns about) the consumer-only ones.
		for k, v := range opts.Kafka.Properties {
			pm[k] = v
		}
		for _, k := range []string{"enable.auto.commit", "enable.auto.offset.store", "auto.offset.reset", "partition.assignment.strategy"} {
			delete(pm, k)
		}
		pm["bootstrap.servers"] = opts.Kafka.BootstrapServers
		pm["enable.idempotence"] = true
		pm["acks"] = "all"
		pm["go.logs.channel.enable"] = true
		p, err := kafka.NewProducer(&pm)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("create dead-letter producer: %w", err)
		}
		e.dlq = p
		e.pump(p)
	}
	return e, nil
}

// pump forwards the dead-letter producer's librdkafka logs and client error events to slog
// until the producer closes the channels.
func (e *Engine) pump(p *kafka.Producer) {
	const client = "deadletter-producer"
	e.pumps.Go(func() {
		// CONFWARN: the consumer-only properties the producer is given.
		kafkalog.Forward(e.log, p.Logs(), kafkalog.Options{Client: client, QuietTags: []string{"CONFWARN"}})
	})
	e.pumps.Go(func() {
		for ev := range p.Events() {
			if kerr, ok := ev.(kafka.Error); ok {
				e.clientError(client, kerr)
			}
		}
	})
}

func (e *Engine) clientError(client string, err kafka.Error) {
	e.m.ClientErrors.WithLabelValues(strings.ToLower(err.Code().String())).Inc()
	e.errs[client].Log(err)
}

// Run subscribes and handles records until ctx ends or a record cannot be finished, then
// commits the stored offsets and closes the clients. A record being handled when ctx ends is
// finished first; one waiting for a retry is abandoned unstored (delivered again later).
// The error says which record stopped the consumer and why.
func (e *Engine) Run(ctx context.Context) (err error) {
	defer func() { err = errors.Join(err, e.Close()) }()
	if err := e.g.Subscribe(e.opts.Kafka.Topics); err != nil {
		return fmt.Errorf("subscribe %v: %w", e.opts.Kafka.Topics, err)
	}
	e.log.Info("consumer subscribed", "group", e.opts.Kafka.GroupID, "topics", e.opts.Kafka.Topics, "dead_letter_topic", e.opts.Kafka.DeadLetterTopic)
	handlerCtx := context.WithoutCancel(ctx)
	for ctx.Err() == nil {
		m, err := e.g.Poll(100 * time.Millisecond)
		if err != nil {
			return err
		}
		if m == nil {
			continue
		}
		if err := e.process(ctx, handlerCtx, m); err != nil {
			if errors.Is(err, errShutdown) {
				e.log.Info("shutdown while retrying a record; it will be delivered again", kafkagroup.LogAttrs(m)...)
				return nil
			}
			e.log.Error("consumer stopping", "err", err)
			return err
		}
	}
	return nil
}

// process takes one record through decode and handler to a stored offset. A non-nil error
// means the record is not finished and the consumer must stop.
func (e *Engine) process(ctx, handlerCtx context.Context, m *kafka.Message) error {
	rec := consume.Record{
		Topic:     *m.TopicPartition.Topic,
		Partition: m.TopicPartition.Partition,
		Offset:    int64(m.TopicPartition.Offset),
		Key:       string(m.Key),
		Timestamp: m.Timestamp,
		Headers:   make([]consume.Header, len(m.Headers)),
	}
	for i, h := range m.Headers {
		rec.Headers[i] = consume.Header{Key: h.Key, Value: h.Value}
	}

	_, err := e.retry(ctx, m, StageDecode, func(int) error {
		var err error
		rec.SchemaID, rec.Value, err = e.opts.Decoder.Decode(m.Value)
		switch {
		case err == nil:
		case errors.Is(err, consume.ErrRegistry):
			e.m.DecodeErrors.WithLabelValues(rec.Topic, metrics.DecodeRegistry).Inc()
		default:
			e.m.DecodeErrors.WithLabelValues(rec.Topic, metrics.DecodePoison).Inc()
			err = consume.Permanent(err)
		}
		return err
	})
	switch {
	case errors.Is(err, errShutdown):
		return err
	case errors.Is(err, consume.ErrRegistry):
		// Not the record's fault: never dead-letter it, stop and let the restart retry.
		e.m.Records.WithLabelValues(rec.Topic, metrics.ResultFailed).Inc()
		return fmt.Errorf("record %s: %w", kafkagroup.Where(m), err)
	case err != nil:
		return e.reject(m, StageDecode, 0, err)
	}

	attempts, err := e.retry(ctx, m, StageHandler, func(attempt int) error {
		rec.Attempt = attempt
		return e.call(handlerCtx, rec)
	})
	switch {
	case errors.Is(err, errShutdown):
		return err
	case err != nil:
		return e.reject(m, StageHandler, attempts, err)
	}
	e.g.Store(m)
	e.m.Records.WithLabelValues(rec.Topic, metrics.ResultHandled).Inc()
	return nil
}

// retry calls fn until it succeeds, returns a Permanent error, has been called maxAttempts
// times, or ctx ends during a backoff (errShutdown). It returns the attempts made.
func (e *Engine) retry(ctx context.Context, m *kafka.Message, stage string, fn func(attempt int) error) (int, error) {
	limit := e.opts.Retry.MaxAttempts
	for attempt := 1; ; attempt++ {
		err := fn(attempt)
		if err == nil {
			return attempt, nil
		}
		if consume.IsPermanent(err) {
			return attempt, err
		}
		if attempt >= limit {
			return attempt, fmt.Errorf("%d attempts failed, last: %w", attempt, err)
		}
		wait := jitter(e.opts.Retry.Backoff(attempt))
		e.log.Warn(stage+" failed, retrying", append(kafkagroup.LogAttrs(m), "attempt", attempt, "max_attempts", limit, "retry_in", wait.Round(time.Millisecond), "err", err)...)
		e.m.Retries.WithLabelValues(*m.TopicPartition.Topic, stage).Inc()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt, errShutdown
		case <-t.C:
		}
	}
}

// jitter spreads d over [d/2, d] so that consumers retrying the same dependency do not
// retry in lockstep.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// call runs the handler once, turning a panic into an error.
func (e *Engine) call(ctx context.Context, rec consume.Record) (err error) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panic: %v", p)
			e.log.Error("handler panicked", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "panic", p, "stack", string(debug.Stack()))
		}
		outcome := "ok"
		if err != nil {
			outcome = "error"
		}
		e.m.HandlerDuration.WithLabelValues(rec.Topic, outcome).Observe(time.Since(start).Seconds())
	}()
	return e.opts.Handler.Handle(ctx, rec)
}

// reject finishes a record that cannot be handled by copying it to the dead-letter topic,
// or reports that the consumer must stop when there is none (or the copy failed).
func (e *Engine) reject(m *kafka.Message, stage string, attempts int, cause error) error {
	topic := *m.TopicPartition.Topic
	if e.dlq == nil {
		e.m.Records.WithLabelValues(topic, metrics.ResultFailed).Inc()
		return fmt.Errorf("record %s: %s: %w (no kafka.deadLetterTopic configured, so the consumer stops here; the record's offset is not committed)", kafkagroup.Where(m), stage, cause)
	}
	if err := e.deadLetter(m, stage, attempts, cause); err != nil {
		e.m.Records.WithLabelValues(topic, metrics.ResultFailed).Inc()
		return fmt.Errorf("record %s: %s: %v; dead-lettering it failed: %w", kafkagroup.Where(m), stage, cause, err)
	}
	e.log.Warn("record dead-lettered", append(kafkagroup.LogAttrs(m), "vehicle", string(m.Key), "stage", stage, "dead_letter_topic", e.opts.Kafka.DeadLetterTopic, "err", cause)...)
	e.g.Store(m)
	e.m.Records.WithLabelValues(topic, metrics.ResultDeadLettered).Inc()
	return nil
}

// deadLetter produces a copy of m (same key, value and headers, plus the error headers) and
// waits for Kafka's acknowledgement (acks=all, bounded by message.timeout.ms).
func (e *Engine) deadLetter(m *kafka.Message, stage string, attempts int, cause error) error {
	headers := kafkagroup.DeadLetterHeaders(m, e.opts.Kafka.GroupID, stage, attempts, cause)
	topic := e.opts.Kafka.DeadLetterTopic
	done := make(chan kafka.Event, 1)
	err := e.dlq.Produce(&kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
		Key:            m.Key,
		Value:          m.Value,
		Headers:        headers,
	}, done)
	if err != nil {
		return fmt.Errorf("produce to %s: %w", topic, err)
	}
	if r, ok := (<-done).(*kafka.Message); ok && r.TopicPartition.Error != nil {
		return fmt.Errorf("produce to %s: %w", topic, r.TopicPartition.Error)
	}
	return nil
}

// Close commits the stored offsets, leaves the group and closes the clients. Run calls it;
// call it yourself only when Run is never called. Safe to call more than once.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		e.closeErr = e.g.Close()
		if e.dlq != nil {
			if left := e.dlq.Flush(5000); left > 0 {
				e.log.Warn("dead-letter producer closed with unacknowledged records", "count", left)
			}
			e.dlq.Close()
		}
		e.pumps.Wait()
	})
	return e.closeErr
}
