// Package engine runs the Kafka side of the consumer with confluent-kafka-go (librdkafka): a
// consumer group with cooperative-sticky assignment, records handed to the application
// handler one at a time, retries with backoff, dead-lettering, and commits that only ever
// cover handled records.
//
// The at-least-once contract: librdkafka auto-commits (enable.auto.commit=true) only offsets
// the engine stored, and the engine stores a record's offset (enable.auto.offset.store=false,
// StoreMessage) only after the handler returned nil or the record was copied to the
// dead-letter topic and Kafka acknowledged that copy. Stored offsets are also committed
// synchronously when partitions are revoked and at shutdown.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/iov-platform/iov/services/sample-consumer/internal/config"
	"github.com/iov-platform/iov/services/sample-consumer/internal/consume"
	"github.com/iov-platform/iov/services/sample-consumer/internal/metrics"
)

// Headers added to a dead-lettered record, after the original record's own headers.
const (
	HeaderError     = "iov.error"            // why the record was rejected
	HeaderStage     = "iov.error.stage"      // decode | handler
	HeaderAttempts  = "iov.error.attempts"   // handler attempts made (handler stage)
	HeaderTopic     = "iov.source.topic"     // where the record was consumed from
	HeaderPartition = "iov.source.partition" // its partition
	HeaderOffset    = "iov.source.offset"    // its offset
	HeaderTimestamp = "iov.source.timestamp" // its timestamp, Unix milliseconds
	HeaderGroup     = "iov.consumer.group"   // the consumer group that rejected it
)

// Stages at which a record can be rejected.
const (
	StageDecode  = "decode"
	StageHandler = "handler"
)

// maxErrorHeader bounds the error text copied into a dead letter.
const maxErrorHeader = 1024

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
	c    *kafka.Consumer
	dlq  *kafka.Producer // nil without a dead-letter topic

	assigned  map[partition]bool // touched only from the polling goroutine (Poll callbacks)
	pumps     sync.WaitGroup     // log and event forwarding goroutines
	closeOnce sync.Once
	closeErr  error
}

type partition struct {
	topic string
	id    int32
}

// errShutdown ends a retry loop when the engine is asked to stop: the record stays
// unstored, so it is delivered again after the restart.
var errShutdown = errors.New("shutting down")

// New creates the consumer (and the dead-letter producer, if configured). Nothing is
// consumed until Run.
func New(opts Options) (*Engine, error) {
	e := &Engine{opts: opts, log: opts.Log, m: opts.Metrics, assigned: map[partition]bool{}}
	cm := kafka.ConfigMap{
		"client.id":                     "sample-consumer",
		"auto.offset.reset":             "earliest",
		"partition.assignment.strategy": "cooperative-sticky",
	}
	for k, v := range opts.Kafka.Properties {
		cm[k] = v
	}
	for k, v := range config.Protected {
		cm[k] = v
	}
	cm["bootstrap.servers"] = opts.Kafka.BootstrapServers
	cm["group.id"] = opts.Kafka.GroupID
	cm["go.logs.channel.enable"] = true
	c, err := kafka.NewConsumer(&cm)
	if err != nil {
		return nil, fmt.Errorf("create kafka consumer: %w", err)
	}
	e.c = c
	e.pump(c.Logs(), "consumer", nil)

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
		e.pump(p.Logs(), "deadletter-producer", p.Events())
	}
	return e, nil
}

// pump forwards librdkafka logs (and, for the producer, client error events) to slog until
// the client closes the channels.
func (e *Engine) pump(logs chan kafka.LogEvent, client string, events chan kafka.Event) {
	e.pumps.Go(func() {
		for l := range logs {
			level := slog.LevelDebug
			switch {
			case l.Tag == "CONFWARN" && events != nil:
				// consumer-only properties passed to the dead-letter producer
			case l.Level <= 3:
				level = slog.LevelError
			case l.Level == 4:
				level = slog.LevelWarn
			case l.Level <= 5:
				level = slog.LevelInfo
			}
			e.log.Log(context.Background(), level, l.Message, "component", "librdkafka", "client", client, "tag", l.Tag)
		}
	})
	if events == nil {
		return
	}
	e.pumps.Go(func() {
		for ev := range events {
			if kerr, ok := ev.(kafka.Error); ok {
				e.clientError(client, kerr)
			}
		}
	})
}

func (e *Engine) clientError(client string, err kafka.Error) {
	e.m.ClientErrors.WithLabelValues(strings.ToLower(err.Code().String())).Inc()
	e.log.Warn("kafka client error", "client", client, "code", err.Code().String(), "err", err)
}

// Run subscribes and handles records until ctx ends or a record cannot be finished, then
// commits the stored offsets and closes the clients. A record being handled when ctx ends is
// finished first; one waiting for a retry is abandoned unstored (delivered again later).
// The error says which record stopped the consumer and why.
func (e *Engine) Run(ctx context.Context) (err error) {
	defer func() { err = errors.Join(err, e.Close()) }()
	if err := e.c.SubscribeTopics(e.opts.Kafka.Topics, e.rebalance); err != nil {
		return fmt.Errorf("subscribe %v: %w", e.opts.Kafka.Topics, err)
	}
	e.log.Info("consumer subscribed", "group", e.opts.Kafka.GroupID, "topics", e.opts.Kafka.Topics, "dead_letter_topic", e.opts.Kafka.DeadLetterTopic)
	handlerCtx := context.WithoutCancel(ctx)
	for ctx.Err() == nil {
		switch ev := e.c.Poll(100).(type) {
		case *kafka.Message:
			if ev.TopicPartition.Error != nil {
				var kerr kafka.Error
				if errors.As(ev.TopicPartition.Error, &kerr) {
					e.clientError("consumer", kerr)
				} else {
					e.log.Warn("kafka consume error", "err", ev.TopicPartition.Error)
				}
				continue
			}
			if err := e.process(ctx, handlerCtx, ev); err != nil {
				if errors.Is(err, errShutdown) {
					e.log.Info("shutdown while retrying a record; it will be delivered again", loc(ev)...)
					return nil
				}
				e.log.Error("consumer stopping", "err", err)
				return err
			}
		case kafka.Error:
			if ev.IsFatal() {
				return fmt.Errorf("kafka consumer fatal error: %w", ev)
			}
			e.clientError("consumer", ev)
		case kafka.OffsetsCommitted:
			if ev.Error != nil {
				e.log.Warn("offset commit failed", "err", ev.Error)
			} else {
				e.log.Debug("offsets committed", "offsets", describe(ev.Offsets, true))
			}
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
		return fmt.Errorf("record %s: %w", where(m), err)
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
	e.store(m)
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
		e.log.Warn(stage+" failed, retrying", append(loc(m), "attempt", attempt, "max_attempts", limit, "retry_in", wait.Round(time.Millisecond), "err", err)...)
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
		return fmt.Errorf("record %s: %s: %w (no kafka.deadLetterTopic configured, so the consumer stops here; the record's offset is not committed)", where(m), stage, cause)
	}
	if err := e.deadLetter(m, stage, attempts, cause); err != nil {
		e.m.Records.WithLabelValues(topic, metrics.ResultFailed).Inc()
		return fmt.Errorf("record %s: %s: %v; dead-lettering it failed: %w", where(m), stage, cause, err)
	}
	e.log.Warn("record dead-lettered", append(loc(m), "vehicle", string(m.Key), "stage", stage, "dead_letter_topic", e.opts.Kafka.DeadLetterTopic, "err", cause)...)
	e.store(m)
	e.m.Records.WithLabelValues(topic, metrics.ResultDeadLettered).Inc()
	return nil
}

// deadLetter produces a copy of m (same key, value and headers, plus the error headers) and
// waits for Kafka's acknowledgement (acks=all, bounded by message.timeout.ms).
func (e *Engine) deadLetter(m *kafka.Message, stage string, attempts int, cause error) error {
	msg := cause.Error()
	if len(msg) > maxErrorHeader {
		msg = msg[:maxErrorHeader]
	}
	add := map[string]string{
		HeaderError:     msg,
		HeaderStage:     stage,
		HeaderTopic:     *m.TopicPartition.Topic,
		HeaderPartition: strconv.Itoa(int(m.TopicPartition.Partition)),
		HeaderOffset:    strconv.FormatInt(int64(m.TopicPartition.Offset), 10),
		HeaderTimestamp: strconv.FormatInt(m.Timestamp.UnixMilli(), 10),
		HeaderGroup:     e.opts.Kafka.GroupID,
	}
	if attempts > 0 {
		add[HeaderAttempts] = strconv.Itoa(attempts)
	}
	headers := slices.Clone(m.Headers)
	for _, k := range slices.Sorted(maps.Keys(add)) {
		headers = append(headers, kafka.Header{Key: k, Value: []byte(add[k])})
	}
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

// store marks m done; librdkafka commits it with the next auto-commit, revoke or shutdown.
func (e *Engine) store(m *kafka.Message) {
	if _, err := e.c.StoreMessage(m); err != nil {
		// E.g. the partition was revoked meanwhile: its new owner gets the record again.
		e.log.Warn("offset not stored; the record will be delivered again", append(loc(m), "err", err)...)
	}
}

// commit synchronously commits the stored offsets of the assigned partitions.
func (e *Engine) commit(reason string) error {
	offsets, err := e.c.Commit()
	if err != nil {
		var kerr kafka.Error
		if errors.As(err, &kerr) && kerr.Code() == kafka.ErrNoOffset {
			return nil // nothing stored since the last commit
		}
		return fmt.Errorf("commit offsets on %s: %w", reason, err)
	}
	e.log.Debug("offsets committed", "reason", reason, "offsets", describe(offsets, true))
	return nil
}

// rebalance runs inside Poll, between records: no record is in flight, so everything stored
// is everything handled.
func (e *Engine) rebalance(c *kafka.Consumer, ev kafka.Event) error {
	cooperative := c.GetRebalanceProtocol() == "COOPERATIVE"
	switch ev := ev.(type) {
	case kafka.AssignedPartitions:
		var err error
		if cooperative {
			err = c.IncrementalAssign(ev.Partitions)
		} else {
			err = c.Assign(ev.Partitions)
			clear(e.assigned)
		}
		if err != nil {
			e.log.Error("partition assignment failed", "partitions", describe(ev.Partitions, false), "err", err)
			return err
		}
		for _, tp := range ev.Partitions {
			e.assigned[partition{*tp.Topic, tp.Partition}] = true
		}
		e.m.Rebalances.WithLabelValues("assigned").Inc()
		e.m.Partitions.Set(float64(len(e.assigned)))
		e.log.Log(context.Background(), quietIfEmpty(ev.Partitions), "partitions assigned", "partitions", describe(ev.Partitions, false), "total", len(e.assigned), "protocol", strings.ToLower(c.GetRebalanceProtocol()))
	case kafka.RevokedPartitions:
		if c.AssignmentLost() {
			// The group moved on without us (e.g. a session timeout): a commit would be
			// rejected. The new owners start from the last commit and may see some records again.
			e.m.Rebalances.WithLabelValues("lost").Inc()
			e.log.Warn("partitions lost; records handled since the last commit will be delivered again", "partitions", describe(ev.Partitions, false))
		} else {
			e.m.Rebalances.WithLabelValues("revoked").Inc()
			if err := e.commit("revoke"); err != nil {
				e.log.Warn("commit on revoke failed; the new owners will see some records again", "err", err)
			}
		}
		var err error
		if cooperative {
			err = c.IncrementalUnassign(ev.Partitions)
			for _, tp := range ev.Partitions {
				delete(e.assigned, partition{*tp.Topic, tp.Partition})
			}
		} else {
			err = c.Unassign()
			clear(e.assigned)
		}
		e.m.Partitions.Set(float64(len(e.assigned)))
		e.log.Log(context.Background(), quietIfEmpty(ev.Partitions), "partitions revoked", "partitions", describe(ev.Partitions, false), "total", len(e.assigned))
		if err != nil {
			e.log.Error("partition unassignment failed", "err", err)
			return err
		}
	}
	return nil
}

// quietIfEmpty logs the empty steps of a cooperative rebalance at debug level.
func quietIfEmpty(ps []kafka.TopicPartition) slog.Level {
	if len(ps) == 0 {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// Close commits the stored offsets, leaves the group and closes the clients. Run calls it;
// call it yourself only when Run is never called. Safe to call more than once.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		var errs []error
		if err := e.commit("shutdown"); err != nil {
			errs = append(errs, err)
		}
		// Close leaves the group; librdkafka revokes the assignment through rebalance first.
		if err := e.c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close kafka consumer: %w", err))
		}
		if e.dlq != nil {
			if left := e.dlq.Flush(5000); left > 0 {
				e.log.Warn("dead-letter producer closed with unacknowledged records", "count", left)
			}
			e.dlq.Close()
		}
		e.pumps.Wait()
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

// where names a record in errors: topic/partition@offset.
func where(m *kafka.Message) string {
	return fmt.Sprintf("%s/%d@%d", *m.TopicPartition.Topic, m.TopicPartition.Partition, m.TopicPartition.Offset)
}

// loc names a record in log lines.
func loc(m *kafka.Message) []any {
	return []any{"topic", *m.TopicPartition.Topic, "partition", m.TopicPartition.Partition, "offset", int64(m.TopicPartition.Offset)}
}

// describe renders partitions compactly, e.g. "iov.vehicle.events[0 1] iov.vehicle.status[2]",
// or with offsets ("[0@17]", partitions without one left out) when withOffsets.
func describe(tps []kafka.TopicPartition, withOffsets bool) string {
	byTopic := map[string][]kafka.TopicPartition{}
	for _, tp := range tps {
		if tp.Topic != nil && (!withOffsets || tp.Offset >= 0) {
			byTopic[*tp.Topic] = append(byTopic[*tp.Topic], tp)
		}
	}
	var b strings.Builder
	for i, topic := range slices.Sorted(maps.Keys(byTopic)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(topic)
		b.WriteByte('[')
		ps := byTopic[topic]
		slices.SortFunc(ps, func(a, b kafka.TopicPartition) int { return int(a.Partition - b.Partition) })
		for j, tp := range ps {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.Itoa(int(tp.Partition)))
			if withOffsets {
				b.WriteByte('@')
				b.WriteString(tp.Offset.String())
			}
		}
		b.WriteByte(']')
	}
	return b.String()
}
