// Package engine runs the downlink's consumer group on the commands topic with
// confluent-kafka-go (librdkafka): cooperative-sticky assignment, one record at a time (so
// per partition, hence per vehicle, commands are handled in order), and commits that only
// ever cover handled records.
//
// The at-least-once contract: librdkafka auto-commits (enable.auto.commit=true) only offsets
// the engine stored, and the engine stores a record's offset (enable.auto.offset.store=false,
// StoreMessage) only after the handler finished it. Stored offsets are also committed
// synchronously when partitions are revoked and at shutdown.
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
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

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
	m       *metrics.Metrics
	c       *kafka.Consumer
	joined  bool
	paused  bool
	pending []*kafka.Message // returned by Poll while a handler waited; handled next

	assigned  map[partition]bool // touched only from the polling goroutine (Poll callbacks)
	epoch     map[partition]int  // bumped on every assignment, to tell a revoke-and-reassign
	pumps     sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

type partition struct {
	topic string
	id    int32
}

func partOf(m *kafka.Message) partition {
	return partition{*m.TopicPartition.Topic, m.TopicPartition.Partition}
}

// producerOnly are librdkafka producer settings kafka.properties may carry for the producer.
var producerOnly = []string{"acks", "enable.idempotence", "partitioner", "linger.ms", "compression.type", "message.timeout.ms", "batch.size", "retries", "max.in.flight.requests.per.connection"}

// New creates the consumer. Nothing is consumed until Run.
func New(opts Options) (*Engine, error) {
	e := &Engine{opts: opts, log: opts.Log.With("component", "consumer"), m: opts.Metrics, assigned: map[partition]bool{}, epoch: map[partition]int{}}
	cm := kafka.ConfigMap{
		"client.id":                     "iov-downlink",
		"auto.offset.reset":             "earliest",
		"partition.assignment.strategy": "cooperative-sticky",
	}
	for k, v := range opts.Kafka.Properties {
		cm[k] = v
	}
	for _, k := range producerOnly {
		delete(cm, k)
	}
	for k, v := range config.ConsumerProtected {
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
	e.pumps.Go(func() {
		for l := range c.Logs() {
			level := slog.LevelDebug
			switch {
			case l.Level <= 3:
				level = slog.LevelError
			case l.Level == 4:
				level = slog.LevelWarn
			case l.Level <= 5:
				level = slog.LevelInfo
			}
			e.log.Log(context.Background(), level, l.Message, "component", "librdkafka", "client", "consumer", "tag", l.Tag)
		}
	})
	return e, nil
}

// Run subscribes and handles records until ctx ends or a record cannot be finished, then
// commits the stored offsets and closes the consumer. The record in hand when ctx ends is
// finished with handlerCtx, which the caller ends at its drain deadline; a record abandoned
// then stays unstored and is delivered again later.
func (e *Engine) Run(ctx, handlerCtx context.Context) (err error) {
	defer func() { err = errors.Join(err, e.Close()) }()
	topic := e.opts.Kafka.CommandsTopic
	if err := e.c.SubscribeTopics([]string{topic}, e.rebalance); err != nil {
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
		w := waiter{e, m, e.epoch[partOf(m)]}
		err = e.opts.Handler.Handle(handlerCtx, m, w)
		e.resume()
		if err == nil && w.revoked() {
			err = ErrRevoked
		}
		switch {
		case err == nil:
			e.store(m)
		case errors.Is(err, ErrRevoked):
			e.log.Info("record left to the partition's new owner", loc(m)...)
		case handlerCtx.Err() != nil:
			e.log.Warn("shutdown before the record was finished; it will be handled again", append(loc(m), "err", err)...)
			return nil
		default:
			return fmt.Errorf("record %s: %w", where(m), err)
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
		if e.assigned[partOf(m)] {
			return m, nil
		}
	}
	m, err := e.poll(100 * time.Millisecond)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// poll serves one Poll: rebalances run inside it, errors are counted, a record is returned.
func (e *Engine) poll(timeout time.Duration) (*kafka.Message, error) {
	switch ev := e.c.Poll(max(1, int(timeout/time.Millisecond))).(type) {
	case *kafka.Message:
		if ev.TopicPartition.Error != nil {
			var kerr kafka.Error
			if errors.As(ev.TopicPartition.Error, &kerr) {
				e.clientError(kerr)
			} else {
				e.log.Warn("kafka consume error", "err", ev.TopicPartition.Error)
			}
			return nil, nil
		}
		return ev, nil
	case kafka.Error:
		if ev.IsFatal() {
			return nil, fmt.Errorf("kafka consumer fatal error: %w", ev)
		}
		e.clientError(ev)
	case kafka.OffsetsCommitted:
		if ev.Error != nil {
			e.log.Warn("offset commit failed", "err", ev.Error)
		} else {
			e.log.Debug("offsets committed", "offsets", describe(ev.Offsets, true))
		}
	}
	return nil, nil
}

func (e *Engine) clientError(err kafka.Error) {
	e.m.ClientErrors.WithLabelValues("consumer", strings.ToLower(err.Code().String())).Inc()
	e.log.Warn("kafka consumer error", "code", err.Code().String(), "err", err)
}

type waiter struct {
	e     *Engine
	m     *kafka.Message
	epoch int
}

func (w waiter) revoked() bool {
	p := partOf(w.m)
	return !w.e.assigned[p] || w.e.epoch[p] != w.epoch
}

// Wait pauses every assigned partition (until the handler returns) and polls until d has
// passed, so that heartbeats, max.poll.interval.ms and rebalances are served.
func (w waiter) Wait(ctx context.Context, d time.Duration) error {
	e := w.e
	e.pause()
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
		m, err := e.poll(min(left, 100*time.Millisecond))
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

func (e *Engine) assignedList() []kafka.TopicPartition {
	out := make([]kafka.TopicPartition, 0, len(e.assigned))
	for p := range e.assigned {
		out = append(out, kafka.TopicPartition{Topic: &p.topic, Partition: p.id})
	}
	return out
}

func (e *Engine) pause() {
	if e.paused {
		return
	}
	e.paused = true
	if err := e.c.Pause(e.assignedList()); err != nil {
		e.log.Warn("pause partitions failed", "err", err)
	}
}

func (e *Engine) resume() {
	if !e.paused {
		return
	}
	e.paused = false
	if err := e.c.Resume(e.assignedList()); err != nil {
		e.log.Warn("resume partitions failed", "err", err)
	}
}

// store marks m done; librdkafka commits it with the next auto-commit, revoke or shutdown.
func (e *Engine) store(m *kafka.Message) {
	if _, err := e.c.StoreMessage(m); err != nil {
		// E.g. the partition was revoked meanwhile: its new owner gets the record again.
		e.log.Warn("offset not stored; the record will be handled again", append(loc(m), "err", err)...)
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

// rebalance runs inside Poll: between records, or inside a handler's Wait.
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
			p := partition{*tp.Topic, tp.Partition}
			e.assigned[p] = true
			e.epoch[p]++
		}
		if e.paused && len(ev.Partitions) > 0 {
			if err := c.Pause(ev.Partitions); err != nil {
				e.log.Warn("pause new partitions failed", "err", err)
			}
		}
		e.m.Rebalances.WithLabelValues("assigned").Inc()
		e.m.Partitions.Set(float64(len(e.assigned)))
		e.log.Log(context.Background(), quietIfEmpty(ev.Partitions), "partitions assigned", "partitions", describe(ev.Partitions, false), "total", len(e.assigned))
		if !e.joined {
			e.joined = true
			if e.opts.OnJoined != nil {
				e.opts.OnJoined()
			}
		}
	case kafka.RevokedPartitions:
		if c.AssignmentLost() {
			e.m.Rebalances.WithLabelValues("lost").Inc()
			e.log.Warn("partitions lost; commands handled since the last commit will be handled again", "partitions", describe(ev.Partitions, false))
		} else {
			e.m.Rebalances.WithLabelValues("revoked").Inc()
			if err := e.commit("revoke"); err != nil {
				e.log.Warn("commit on revoke failed; the new owners will handle some commands again", "err", err)
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
		// Records held back from partitions we no longer own are fetched again by their
		// new owner (or by us, from the committed offset, if they come back).
		e.pending = slices.DeleteFunc(e.pending, func(m *kafka.Message) bool { return !e.assigned[partOf(m)] })
		e.m.Partitions.Set(float64(len(e.assigned)))
		e.log.Log(context.Background(), quietIfEmpty(ev.Partitions), "partitions revoked", "partitions", describe(ev.Partitions, false), "total", len(e.assigned))
		if err != nil {
			e.log.Error("partition unassignment failed", "err", err)
			return err
		}
	}
	return nil
}

func quietIfEmpty(ps []kafka.TopicPartition) slog.Level {
	if len(ps) == 0 {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// Close commits the stored offsets, leaves the group and closes the consumer. Run calls it;
// call it yourself only when Run is never called. Safe to call more than once.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		var errs []error
		if err := e.commit("shutdown"); err != nil {
			errs = append(errs, err)
		}
		if err := e.c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close kafka consumer: %w", err))
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

func loc(m *kafka.Message) []any {
	return []any{"topic", *m.TopicPartition.Topic, "partition", m.TopicPartition.Partition, "offset", int64(m.TopicPartition.Offset)}
}

// describe renders partitions compactly, e.g. "iov.vehicle.commands[0 1]", or with offsets
// ("[0@17]", partitions without one left out) when withOffsets.
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
