// Package kafkagroup is the consumer-group plumbing the platform's Kafka consumers share,
// on confluent-kafka-go (librdkafka): a Member subscribes with cooperative-sticky
// assignment, keeps track of its partitions through rebalances, hands out records from
// Poll, stores the offset of every record the service finished and commits the stored
// offsets when partitions are revoked and at shutdown. What is done with a record —
// retries, dead-lettering, waiting — is the service's.
//
// The at-least-once contract: librdkafka auto-commits (enable.auto.commit=true) only
// offsets the member stored (enable.auto.offset.store=false, Store), and the service stores
// a record's offset only after it finished the record.
//
// A Member is used from one goroutine, the one that polls: rebalances run inside Poll.
package kafkagroup

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
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iov-platform/iov/kit/kafkalog"
	_ "github.com/iov-platform/iov/kit/kafkawait" // the clients' pollers wait in Go, not in C
)

// Protected are the librdkafka settings the at-least-once contract depends on: New always
// applies them, and services refuse other values in their configuration.
var Protected = map[string]string{
	"enable.auto.commit":       "true",
	"enable.auto.offset.store": "false",
}

// Config is the consumer's librdkafka configuration.
type Config struct {
	ClientID         string
	BootstrapServers string
	GroupID          string
	// Properties are extra librdkafka settings. They may change the defaults
	// (auto.offset.reset=earliest, partition.assignment.strategy=cooperative-sticky), not
	// Protected, the bootstrap servers or the group id.
	Properties map[string]string
	// Drop names Properties not meant for the consumer (e.g. producer-only settings).
	Drop []string
}

// Metrics are the member's collectors; both are required.
type Metrics struct {
	Rebalances *prometheus.CounterVec // by event: assigned|revoked|lost
	Partitions prometheus.Gauge       // partitions assigned now
}

// Options are what the member needs besides its configuration.
type Options struct {
	Log     *slog.Logger
	Metrics Metrics
	// ClientError is called, from Poll, with every consumer error that is not fatal;
	// default: logged as a warning.
	ClientError func(kafka.Error)
	// OnJoined, if set, is called from Poll on the first assignment, even an empty one.
	OnJoined func()
	// OnRevoked, if set, is called from Poll after partitions were revoked (or lost): Owns
	// already reports them gone.
	OnRevoked func()
}

// Member is one consumer-group member.
type Member struct {
	o        Options
	log      *slog.Logger
	c        *kafka.Consumer
	assigned map[partition]bool // touched only from the polling goroutine (Poll callbacks)
	epoch    map[partition]int  // bumped on every assignment, to tell a revoke-and-reassign
	joined   bool
	paused   bool

	logs      chan struct{} // closed when the log forwarding ends
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

// New creates the consumer. Nothing is consumed until Subscribe and Poll.
func New(cfg Config, o Options) (*Member, error) {
	g := &Member{o: o, log: o.Log, assigned: map[partition]bool{}, epoch: map[partition]int{}, logs: make(chan struct{})}
	if g.o.ClientError == nil {
		g.o.ClientError = kafkalog.NewErrorLog(g.log, "consumer", 0).Log
	}
	cm := configMap(cfg)
	c, err := kafka.NewConsumer(&cm)
	if err != nil {
		return nil, fmt.Errorf("create kafka consumer: %w", err)
	}
	g.c = c
	go func() {
		defer close(g.logs)
		kafkalog.Forward(g.log, c.Logs(), kafkalog.Options{Client: "consumer"})
	}()
	return g, nil
}

func configMap(cfg Config) kafka.ConfigMap {
	cm := kafka.ConfigMap{
		"client.id":                     cfg.ClientID,
		"auto.offset.reset":             "earliest",
		"partition.assignment.strategy": "cooperative-sticky",
	}
	for k, v := range cfg.Properties {
		cm[k] = v
	}
	for _, k := range cfg.Drop {
		delete(cm, k)
	}
	for k, v := range Protected {
		cm[k] = v
	}
	cm["bootstrap.servers"] = cfg.BootstrapServers
	cm["group.id"] = cfg.GroupID
	cm["go.logs.channel.enable"] = true
	return cm
}

// Subscribe joins the group on topics; the assignment arrives in a later Poll.
func (g *Member) Subscribe(topics []string) error {
	return g.c.SubscribeTopics(topics, g.rebalance)
}

// Poll serves one librdkafka poll of up to timeout: rebalances run inside it, client errors
// go to ClientError, and a record, if one arrived, is returned. The error is a fatal
// consumer error: the member cannot go on.
func (g *Member) Poll(timeout time.Duration) (*kafka.Message, error) {
	switch ev := g.c.Poll(max(1, int(timeout/time.Millisecond))).(type) {
	case *kafka.Message:
		if ev.TopicPartition.Error != nil {
			var kerr kafka.Error
			if errors.As(ev.TopicPartition.Error, &kerr) {
				g.o.ClientError(kerr)
			} else {
				g.log.Warn("kafka consume error", "err", ev.TopicPartition.Error)
			}
			return nil, nil
		}
		return ev, nil
	case kafka.Error:
		if ev.IsFatal() {
			return nil, fmt.Errorf("kafka consumer fatal error: %w", ev)
		}
		g.o.ClientError(ev)
	case kafka.OffsetsCommitted:
		if ev.Error != nil {
			g.log.Warn("offset commit failed", "err", ev.Error)
		} else {
			g.log.Debug("offsets committed", "offsets", Describe(ev.Offsets, true))
		}
	}
	return nil, nil
}

// Owns tells whether m's partition is assigned to the member.
func (g *Member) Owns(m *kafka.Message) bool { return g.assigned[partOf(m)] }

// Epoch counts the assignments of m's partition to the member: a record whose partition
// is owned but whose epoch changed was revoked and assigned again meanwhile (its new
// assignment starts from the committed offset).
func (g *Member) Epoch(m *kafka.Message) int { return g.epoch[partOf(m)] }

// Store marks m finished; librdkafka commits it with the next auto-commit, revoke or
// shutdown.
func (g *Member) Store(m *kafka.Message) {
	if _, err := g.c.StoreMessage(m); err != nil {
		// E.g. the partition was revoked meanwhile: its new owner gets the record again.
		g.log.Warn("offset not stored; the record will be delivered again", append(LogAttrs(m), "err", err)...)
	}
}

// Pause stops fetching from every assigned partition, and from those assigned later, until
// Resume; Poll goes on serving the group (heartbeats, max.poll.interval.ms, rebalances).
func (g *Member) Pause() {
	if g.paused {
		return
	}
	g.paused = true
	if err := g.c.Pause(g.assignedList()); err != nil {
		g.log.Warn("pause partitions failed", "err", err)
	}
}

// Resume undoes Pause.
func (g *Member) Resume() {
	if !g.paused {
		return
	}
	g.paused = false
	if err := g.c.Resume(g.assignedList()); err != nil {
		g.log.Warn("resume partitions failed", "err", err)
	}
}

func (g *Member) assignedList() []kafka.TopicPartition {
	out := make([]kafka.TopicPartition, 0, len(g.assigned))
	for p := range g.assigned {
		out = append(out, kafka.TopicPartition{Topic: &p.topic, Partition: p.id})
	}
	return out
}

// commit synchronously commits the stored offsets of the assigned partitions.
func (g *Member) commit(reason string) error {
	offsets, err := g.c.Commit()
	if err != nil {
		var kerr kafka.Error
		if errors.As(err, &kerr) && kerr.Code() == kafka.ErrNoOffset {
			return nil // nothing stored since the last commit
		}
		return fmt.Errorf("commit offsets on %s: %w", reason, err)
	}
	g.log.Debug("offsets committed", "reason", reason, "offsets", Describe(offsets, true))
	return nil
}

// rebalance runs inside Poll: between records, or while a service waits through Poll. No
// record is in flight, so everything stored is everything finished.
func (g *Member) rebalance(c *kafka.Consumer, ev kafka.Event) error {
	cooperative := c.GetRebalanceProtocol() == "COOPERATIVE"
	switch ev := ev.(type) {
	case kafka.AssignedPartitions:
		var err error
		if cooperative {
			err = c.IncrementalAssign(ev.Partitions)
		} else {
			err = c.Assign(ev.Partitions)
			clear(g.assigned)
		}
		if err != nil {
			g.log.Error("partition assignment failed", "partitions", Describe(ev.Partitions, false), "err", err)
			return err
		}
		for _, tp := range ev.Partitions {
			p := partition{*tp.Topic, tp.Partition}
			g.assigned[p] = true
			g.epoch[p]++
		}
		if g.paused && len(ev.Partitions) > 0 {
			if err := c.Pause(ev.Partitions); err != nil {
				g.log.Warn("pause new partitions failed", "err", err)
			}
		}
		g.o.Metrics.Rebalances.WithLabelValues("assigned").Inc()
		g.o.Metrics.Partitions.Set(float64(len(g.assigned)))
		g.log.Log(context.Background(), quietIfEmpty(ev.Partitions), "partitions assigned",
			"partitions", Describe(ev.Partitions, false), "total", len(g.assigned), "protocol", strings.ToLower(c.GetRebalanceProtocol()))
		if !g.joined {
			g.joined = true
			if g.o.OnJoined != nil {
				g.o.OnJoined()
			}
		}
	case kafka.RevokedPartitions:
		if c.AssignmentLost() {
			// The group moved on without us (e.g. a session timeout): a commit would be
			// rejected. The new owners start from the last commit and may see some records again.
			g.o.Metrics.Rebalances.WithLabelValues("lost").Inc()
			g.log.Warn("partitions lost; records handled since the last commit will be delivered again", "partitions", Describe(ev.Partitions, false))
		} else {
			g.o.Metrics.Rebalances.WithLabelValues("revoked").Inc()
			if err := g.commit("revoke"); err != nil {
				g.log.Warn("commit on revoke failed; the new owners will see some records again", "err", err)
			}
		}
		var err error
		if cooperative {
			err = c.IncrementalUnassign(ev.Partitions)
			for _, tp := range ev.Partitions {
				delete(g.assigned, partition{*tp.Topic, tp.Partition})
			}
		} else {
			err = c.Unassign()
			clear(g.assigned)
		}
		if g.o.OnRevoked != nil {
			g.o.OnRevoked()
		}
		g.o.Metrics.Partitions.Set(float64(len(g.assigned)))
		g.log.Log(context.Background(), quietIfEmpty(ev.Partitions), "partitions revoked", "partitions", Describe(ev.Partitions, false), "total", len(g.assigned))
		if err != nil {
			g.log.Error("partition unassignment failed", "err", err)
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

// unsubscribe leaves the group and serves rebalance events until nothing is assigned or
// timeout passes. Records polled meanwhile are dropped unstored: they are delivered again to
// the partitions' next owner.
func (g *Member) unsubscribe(timeout time.Duration) {
	if err := g.c.Unsubscribe(); err != nil {
		g.log.Warn("unsubscribe failed", "err", err)
		return
	}
	deadline := time.Now().Add(timeout)
	for len(g.assigned) > 0 && time.Now().Before(deadline) {
		if _, err := g.Poll(100 * time.Millisecond); err != nil {
			g.log.Warn("poll while leaving the group", "err", err)
			return
		}
	}
	if n := len(g.assigned); n > 0 {
		g.log.Warn("still assigned after unsubscribe; closing anyway", "partitions", n)
	}
}

// Close commits the stored offsets, leaves the group and closes the consumer. Safe to call
// more than once.
func (g *Member) Close() error {
	g.closeOnce.Do(func() {
		var errs []error
		if err := g.commit("shutdown"); err != nil {
			errs = append(errs, err)
		}
		// Leave the group before closing: librdkafka can hang in Close when a cooperative
		// incremental assignment arrives while it is closing (librdkafka#4527), which is
		// exactly what happens when another member leaves at the same time. Unsubscribing
		// first and serving the revocation through Poll keeps Close from meeting one.
		g.unsubscribe(5 * time.Second)
		if err := g.c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close kafka consumer: %w", err))
		}
		<-g.logs
		g.closeErr = errors.Join(errs...)
	})
	return g.closeErr
}

// Where names a record in errors: topic/partition@offset.
func Where(m *kafka.Message) string {
	return fmt.Sprintf("%s/%d@%d", *m.TopicPartition.Topic, m.TopicPartition.Partition, m.TopicPartition.Offset)
}

// LogAttrs names a record in log lines: topic, partition and offset.
func LogAttrs(m *kafka.Message) []any {
	return []any{"topic", *m.TopicPartition.Topic, "partition", m.TopicPartition.Partition, "offset", int64(m.TopicPartition.Offset)}
}

// Describe renders partitions compactly, e.g. "iov.vehicle.events[0 1] iov.vehicle.status[2]",
// or with offsets ("[0@17]", partitions without one left out) when withOffsets.
func Describe(tps []kafka.TopicPartition, withOffsets bool) string {
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
