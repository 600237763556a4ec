// Package engine runs the downlink's consumer group on the commands topic with
// confluent-kafka-go (librdkafka): cooperative-sticky assignment, one record at a time (so
// per partition, hence per vehicle, commands are handled in order), and commits that only
// ever cover handled records.
//
// The at-least-once contract (kafkagroup's): librdkafka auto-commits only offsets the engine
// stored, and the engine stores a record's offset only after the handler finished it. Stored
// offsets are also committed synchronously when partitions are revoked and at shutdown.
//
// A handler that has to wait (a publish retry while EMQX is unreachable, a Kafka retry) waits
// through Waiter: the engine pauses its partitions and keeps polling, so the member keeps
// its place in the group (max.poll.interval.ms) and takes part in rebalances. If the record's
// partition is revoked meanwhile, Wait returns ErrRevoked and the record is left to its new
// owner.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/iov-platform/iov/kit/kafkagroup"
	"github.com/iov-platform/iov/kit/kafkalog"
	"github.com/iov-platform/iov/services/downlink/internal/config"
	"github.com/iov-platform/iov/services/downlink/internal/metrics"
)

// ErrRevoked means the partition of the record in hand was revoked while the handler
// waited: the record is not finished here, its new owner handles it.
var ErrRevoked = errors.New("partition revoked while the record was being handled")

// Waiter lets a handler wait without leaving the consumer group.
type Waiter interface {
	// Wait returns after d, or early with ctx's error or ErrRevoked.
	Wait(ctx context.Context, d time.Duration) error
}

// Handler finishes one record. nil means finished (the offset is stored); an error means not
// finished: the offset is not stored and, unless it is ErrRevoked or the handler context's
// error (shutdown), the engine stops.
type Handler interface {
	Handle(ctx context.Context, m *kafka.Message, w Waiter) error
}

// Options is what the engine needs from the service.
type Options struct {
	Kafka    config.Kafka
	Handler  Handler
	Log      *slog.Logger
	Metrics  *metrics.Metrics
	OnJoined func() // called (from the poll loop) on the first partition assignment, even an empty one
}

// Engine is one consumer-group member.
type Engine struct {
	opts    Options
	log     *slog.Logger
	errs    *kafkalog.ErrorLog // rate-limited client error lines
	m       *metrics.Metrics
	g       *kafkagroup.Member
	pending []*kafka.Message // returned by Poll while a handler waited; handled next
}

// producerOnly are librdkafka producer settings kafka.properties may carry for the producer.
var producerOnly = []string{"acks", "enable.idempotence", "partitioner", "linger.ms", "compression.type", "message.timeout.ms", "batch.size", "retries", "max.in.flight.requests.per.connection"}

// New creates the consumer. Nothing is consumed until Run.
func New(opts Options) (*Engine, error) {
	e := &Engine{opts: opts, log: opts.Log.With("component", "consumer"), m: opts.Metrics}
	e.errs = kafkalog.NewErrorLog(e.log, "", 0)
	g, err := kafkagroup.New(kafkagroup.Config{
		ClientID:         "iov-downlink",
		BootstrapServers: opts.Kafka.BootstrapServers,
		GroupID:          opts.Kafka.GroupID,
		Properties:       opts.Kafka.Properties,
		Drop:             producerOnly,
	}, kafkagroup.Options{
		Log:         e.log,
		Metrics:     kafkagroup.Metrics{Rebalances: opts.Metrics.Rebalances, Partitions: opts.Metrics.Partitions},
		ClientError: e.clientError,
		OnJoined:    opts.OnJoined,
		// Records held back from partitions we no longer own are fetched again by their new
		// owner (or by us, from the committed offset, if they come back).
		OnRevoked: func() { e.pending = slices.DeleteFunc(e.pending, func(m *kafka.Message) bool { return !e.g.Owns(m) }) },
	})
	if err != nil {
		return nil, err
	}
	e.g = g
	return e, nil
}

// Run subscribes and handles records until ctx ends or a record cannot be finished, then
// commits the stored offsets and closes the consumer. The record in hand when ctx ends is
// finished with handlerCtx, which the caller ends at its drain deadline; a record abandoned
// then stays unstored and is delivered again later.
func (e *Engine) Run(ctx, handlerCtx context.Context) (err error) {
	defer func() { err = errors.Join(err, e.Close()) }()
	topic := e.opts.Kafka.CommandsTopic
	if err := e.g.Subscribe([]string{topic}); err != nil {
		return fmt.Errorf("subscribe %s: %w", topic, err)
	}
	e.log.Info("consumer subscribed", "group", e.opts.Kafka.GroupID, "topic", topic)
	for ctx.Err() == nil {
		m, err := e.next()
		if err != nil {
			return err
		}
		if m == nil {
			continue
		}
		w := waiter{e, m, e.g.Epoch(m)}
		err = e.opts.Handler.Handle(handlerCtx, m, w)
		e.g.Resume()
		if err == nil && w.revoked() {
			err = ErrRevoked
		}
		switch {
		case err == nil:
			e.g.Store(m)
		case errors.Is(err, ErrRevoked):
			e.log.Info("record left to the partition's new owner", kafkagroup.LogAttrs(m)...)
		case handlerCtx.Err() != nil:
			e.log.Warn("shutdown before the record was finished; it will be handled again", append(kafkagroup.LogAttrs(m), "err", err)...)
			return nil
		default:
			return fmt.Errorf("record %s: %w", kafkagroup.Where(m), err)
		}
	}
	return nil
}

// next returns the next record to handle: one held back while a handler waited, or a new
// one from Poll (nil when none arrived within the poll interval).
func (e *Engine) next() (*kafka.Message, error) {
	for len(e.pending) > 0 {
		m := e.pending[0]
		e.pending = e.pending[1:]
		if e.g.Owns(m) {
			return m, nil
		}
	}
	return e.g.Poll(100 * time.Millisecond)
}

func (e *Engine) clientError(err kafka.Error) {
	e.m.ClientErrors.WithLabelValues("consumer", strings.ToLower(err.Code().String())).Inc()
	e.errs.Log(err)
}

type waiter struct {
	e     *Engine
	m     *kafka.Message
	epoch int
}

func (w waiter) revoked() bool {
	return !w.e.g.Owns(w.m) || w.e.g.Epoch(w.m) != w.epoch
}

// Wait pauses every assigned partition (until the handler returns) and polls until d has
// passed, so that heartbeats, max.poll.interval.ms and rebalances are served.
func (w waiter) Wait(ctx context.Context, d time.Duration) error {
	e := w.e
	e.g.Pause()
	deadline := time.Now().Add(d)
	for {
		if w.revoked() {
			return ErrRevoked
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		m, err := e.g.Poll(min(left, 100*time.Millisecond))
		if err != nil {
			return err
		}
		if m != nil {
			// Fetched before the pause took effect: handled after the current record, so
			// the order within its partition holds.
			e.pending = append(e.pending, m)
		}
	}
}

// Close commits the stored offsets, leaves the group and closes the consumer. Run calls it;
// call it yourself only when Run is never called. Safe to call more than once.
func (e *Engine) Close() error { return e.g.Close() }
