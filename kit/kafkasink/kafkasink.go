// Package kafkasink produces records to Kafka with confluent-kafka-go (librdkafka):
// idempotent and acks=all, so a retried record is written once and, per partition, in order.
// Two events can still write a record twice, and both are counted: librdkafka's epoch bump
// (Metrics.IdempotenceResets) and the re-send after a fatal error (Metrics.Recoveries).
//
// One event loop per librdkafka producer settles delivery reports (waking the waiting
// Produce, or calling the ProduceCallback). When librdkafka reports a fatal error (e.g. an
// idempotence sequence desynchronisation after a broker lost its state), the sink replaces
// the producer: it purges the old one, creates a new one (a new producer id restarts the
// idempotence sequence), re-queues on it, in their original order, the records produced
// without a waiting caller (Produce without wait, ProduceCallback), and fails the waiting
// callers' records with ErrReplaced. New records wait for the replacement. If the old
// producer cannot be emptied or the new one cannot be created, the sink gives up: Fatal
// returns the error and Failed is closed, so the service can exit and be restarted.
//
// A probe asks the cluster for metadata (every second by default), so State tells whether
// the producer can deliver: StateDelivering, StateUnreachable (no broker answered for
// UnreachableAfter), StateRecovering (replacing a fatal producer) or StateFailed.
package kafkasink

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iov-platform/iov/kit/kafkalog"
	_ "github.com/iov-platform/iov/kit/kafkawait" // the clients' pollers wait in Go, not in C
	"github.com/iov-platform/iov/kit/logging"
)

// Record is one Kafka record to produce.
type Record struct {
	Topic   string
	Key     []byte
	Value   []byte
	Headers []kafka.Header
}

// ErrFatal wraps an error the sink could not recover from (the fatal producer could not be
// replaced): the service must stop.
var ErrFatal = errors.New("kafka producer is in a fatal state")

// ErrReplaced is the result of a waited-for record that the producer held when it hit a
// fatal error and was replaced: the record was not confirmed (it may or may not have been
// written) and was not re-sent.
var ErrReplaced = errors.New("kafka producer replaced after a fatal error; record not confirmed")

// Delivery results, the `result` label of Metrics.Deliveries.
const (
	Delivered = "delivered"
	Failed    = "failed"
)

// State is whether the producer can deliver, the `state` label of Metrics.State.
type State string

// Producer states.
const (
	StateDelivering  State = "delivering"  // a broker answered within UnreachableAfter
	StateUnreachable State = "unreachable" // no broker answered for UnreachableAfter (or not yet)
	StateRecovering  State = "recovering"  // replacing a producer that hit a fatal error
	StateFailed      State = "failed"      // the replacement failed; Fatal returns why
)

// States lists every State, in the order of increasing trouble.
var States = []State{StateDelivering, StateUnreachable, StateRecovering, StateFailed}

// Metrics are the sink's collectors.
type Metrics struct {
	// Deliveries counts delivery reports by topic and result (delivered|failed); nil: not
	// counted.
	Deliveries *prometheus.CounterVec
	// Errors counts client errors outside delivery reports by code (lower case); required.
	Errors *prometheus.CounterVec
	// State has one series per State, by label state: 1 for the current one, 0 for the
	// others; nil: not exported. Curry other labels (e.g. producer) before passing it.
	State *prometheus.GaugeVec
	// Recoveries counts producers replaced after a fatal error; nil: not counted.
	Recoveries prometheus.Counter
	// IdempotenceResets counts the times a producer took a new producer id or epoch after
	// its first (librdkafka bumps the epoch after a sequence error, an unknown producer id
	// or a timed-out record, on any partition). Records the producer had in flight on other
	// partitions then go out again under the new epoch, which the broker cannot match with
	// the old one: the ones already written are written twice (librdkafka issue #4953).
	// Read from librdkafka's statistics (eos.producer_id, producer_epoch, epoch_cnt), which
	// the sink then turns on (statistics.interval.ms: StatsInterval unless the settings give
	// it); nil: not counted.
	IdempotenceResets prometheus.Counter
}

// Options are what the sink needs besides the librdkafka settings.
type Options struct {
	Log     *slog.Logger
	Metrics Metrics
	// Logs says how librdkafka's own log lines are forwarded.
	Logs kafkalog.Options
	// UnreachableAfter is how long no broker may answer the probe before the state turns
	// StateUnreachable; default 5s.
	UnreachableAfter time.Duration
	// ProbeInterval is how often the cluster is asked for metadata (one question at a time,
	// each waiting up to UnreachableAfter or 1s, the shorter); default UnreachableAfter/4,
	// at most 1s.
	// librdkafka's "all brokers down" event is not used: it also fires, with counts like
	// "0/2 brokers are down", while a broker is up.
	ProbeInterval time.Duration
	// RecoverTimeout bounds the wait for a fatal producer to hand back its records; default
	// 30s. Past it the sink gives up (StateFailed).
	RecoverTimeout time.Duration
	// OnState, if set, is called (from one goroutine at a time) with each new state.
	OnState func(State)
}

// StatsInterval is librdkafka's statistics.interval.ms when Metrics.IdempotenceResets is
// set and the settings do not give it: a reset shows in the metric within this time.
const StatsInterval = 10 * time.Second

// pending is one produced record until its delivery report; it is the message's opaque.
type pending struct {
	seq  uint64
	rec  Record
	ack  chan error  // a waiting Produce
	done func(error) // ProduceCallback
}

// generation is one librdkafka producer; the sink replaces it after a fatal error.
type generation struct {
	n    int
	p    *kafka.Producer
	done chan struct{} // closed when the event loop ends
	logs chan struct{} // closed when the log forwarding ends

	// use guards p against Close: every call on p holds it for reading.
	use    sync.RWMutex
	closed bool

	// The last idempotence state seen in the statistics; only the event loop uses them.
	pid, epoch int64 // producer id and epoch
	ids        int64 // producer ids acquired so far (eos.epoch_cnt); 0: none seen yet

	// Under Sink.mu.
	fatal       error      // the fatal error, once seen
	undelivered []*pending // failed records kept for a re-send, once fatal or drained
}

// Sink wraps one librdkafka producer at a time.
type Sink struct {
	conf kafka.ConfigMap
	o    Options
	seq  atomic.Uint64
	// inflight counts records handed to a producer and not yet settled by the event loop
	// (or kept for a re-send): Flush waits for it, not for librdkafka's queue alone, so that
	// every report has been handled when it returns.
	inflight atomic.Int64

	mu     sync.Mutex
	cur    *generation
	open   chan struct{} // closed while cur takes records; replaced during a recovery
	failed chan struct{} // closed once the sink gave up
	fatal  error         // why it gave up
	closed bool

	stateMu     sync.Mutex
	state       State
	reachedOnce bool      // a broker answered once; under stateMu
	downSince   time.Time // since when no broker answers; zero while one does

	errs *kafkalog.ErrorLog // client errors, rate limited

	stop      chan struct{} // ends the probe
	probeDone chan struct{}
	closeOnce sync.Once
}

// EventsChannelSize is the events channel's size unless the settings give
// go.events.channel.size: delivery reports of a second at 10k messages a second.
const EventsChannelSize = 10000

// New creates the producer from the librdkafka settings cm (not modified) and starts its
// event loop and probe. What the sink relies on is always set, whatever cm says:
// enable.idempotence=true, acks=all, go.delivery.reports=true, go.delivery.report.fields=none,
// go.logs.channel.enable=true.
func New(cm kafka.ConfigMap, o Options) (*Sink, error) {
	conf := maps.Clone(cm)
	if conf == nil {
		conf = kafka.ConfigMap{}
	}
	conf["enable.idempotence"] = true
	conf["acks"] = "all"
	delete(conf, "request.required.acks") // acks' alias: which of the two wins is undefined
	conf["go.delivery.reports"] = true
	// A delivery report is matched to its record by the opaque; the sink keeps the record
	// itself, so copying the key and value back from C per report (confluent-kafka-go's
	// default "key,value") would be two allocations and copies per message for nothing.
	conf["go.delivery.report.fields"] = "none"
	conf["go.logs.channel.enable"] = true
	// confluent-kafka-go's defaults make a 1,000,000-slot events channel and produce channel
	// per producer (24 MB of pointer slots, which every GC cycle scans in full: a quarter of
	// the producer's resident memory and a visible share of its CPU). The sink calls Produce
	// and drains Events continuously, so smaller buffers lose nothing: when the events
	// channel is full, the delivery reports wait in librdkafka's queue.
	for key, size := range map[string]int{"go.events.channel.size": EventsChannelSize, "go.produce.channel.size": 1} {
		if _, set := conf[key]; !set {
			conf[key] = size
		}
	}
	if _, set := conf["statistics.interval.ms"]; !set && o.Metrics.IdempotenceResets != nil {
		conf["statistics.interval.ms"] = int(StatsInterval / time.Millisecond)
	}
	if o.UnreachableAfter <= 0 {
		o.UnreachableAfter = 5 * time.Second
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = max(min(time.Second, o.UnreachableAfter/4), 50*time.Millisecond)
	}
	if o.RecoverTimeout <= 0 {
		o.RecoverTimeout = 30 * time.Second
	}
	s := &Sink{conf: conf, o: o, open: make(chan struct{}), failed: make(chan struct{}),
		stop: make(chan struct{}), probeDone: make(chan struct{}), errs: kafkalog.NewErrorLog(o.Log, o.Logs.Client, 0)}
	close(s.open)
	g, err := s.newGeneration(1)
	if err != nil {
		return nil, err
	}
	s.cur = g
	s.setState(StateUnreachable)
	go s.probe()
	return s, nil
}

func (s *Sink) newGeneration(n int) (*generation, error) {
	conf := maps.Clone(s.conf)
	p, err := kafka.NewProducer(&conf)
	if err != nil {
		return nil, fmt.Errorf("create kafka producer: %w", err)
	}
	g := &generation{n: n, p: p, done: make(chan struct{}), logs: make(chan struct{})}
	go s.events(g)
	go func() {
		defer close(g.logs)
		kafkalog.Forward(s.o.Log, p.Logs(), s.o.Logs)
	}()
	return g, nil
}

// current returns the producer records go to, and a channel closed once it takes them.
func (s *Sink) current() (*generation, chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.open, s.fatal
}

// with runs f on g's producer unless g was closed.
func (g *generation) with(f func(p *kafka.Producer)) bool {
	g.use.RLock()
	defer g.use.RUnlock()
	if g.closed {
		return false
	}
	f(g.p)
	return true
}

// close closes g's producer and waits for its event loop and logs to end.
func (g *generation) close() {
	g.use.Lock()
	if !g.closed {
		g.closed = true
		g.p.Close()
	}
	g.use.Unlock()
	<-g.done
	<-g.logs
}

// Ping asks the cluster for metadata, to tell whether brokers are reachable.
func (s *Sink) Ping(timeout time.Duration) error {
	g, _, _ := s.current()
	err := errors.New("producer closed")
	g.with(func(p *kafka.Producer) {
		_, err = p.GetMetadata(nil, false, int(timeout/time.Millisecond))
	})
	if err != nil {
		return fmt.Errorf("kafka metadata: %w", err)
	}
	return nil
}

// Fatal returns the error the sink could not recover from, if any (it wraps ErrFatal).
func (s *Sink) Fatal() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fatal
}

// Failed is closed once the sink gave up recovering from a fatal error.
func (s *Sink) Failed() <-chan struct{} { return s.failed }

// State is the current producer state.
func (s *Sink) State() State {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.state
}

// Produce queues rec. With wait it returns only after Kafka acknowledged the record
// (acks=all) or failed it, or when ctx ends; without wait it returns once the record is
// queued in the producer. A full local queue, or a producer being replaced, is
// back-pressure: Produce waits until ctx ends.
func (s *Sink) Produce(ctx context.Context, rec Record, wait bool) error {
	pd := &pending{rec: rec}
	if !wait {
		return s.produce(ctx, pd)
	}
	pd.ack = make(chan error, 1)
	if err := s.produce(ctx, pd); err != nil {
		return err
	}
	select {
	case err := <-pd.ack:
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

// ProduceCallback queues rec and calls done, from an event loop, with the delivery result.
// done must not block. A record the producer held when it hit a fatal error is re-sent on
// its replacement, and done is called once, with the final result.
func (s *Sink) ProduceCallback(ctx context.Context, rec Record, done func(error)) error {
	return s.produce(ctx, &pending{rec: rec, done: done})
}

func (s *Sink) produce(ctx context.Context, pd *pending) error {
	backoff := time.Millisecond
	for {
		g, open, fatal := s.current()
		if fatal != nil {
			return fatal
		}
		select {
		case <-open:
		default:
			select {
			case <-open:
				continue // look again: the producer was replaced
			case <-ctx.Done():
				return fmt.Errorf("produce %s: kafka producer being replaced: %w", pd.rec.Topic, context.Cause(ctx))
			}
		}
		err := s.send(g, pd)
		if err == nil {
			return nil
		}
		var kerr kafka.Error
		switch {
		case errors.As(err, &kerr) && kerr.Code() == kafka.ErrQueueFull:
		case errors.As(err, &kerr) && kerr.Code() == kafka.ErrFatal, errors.Is(err, errClosed) && !s.isClosed():
			// Replaced (or about to be): wait for the new producer.
			s.fatalError(g, err)
			continue
		default:
			return fmt.Errorf("produce %s: %w", pd.rec.Topic, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("produce %s: local queue full: %w", pd.rec.Topic, context.Cause(ctx))
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

var errClosed = errors.New("kafka producer closed")

// send hands pd to g's producer once.
func (s *Sink) send(g *generation, pd *pending) error {
	pd.seq = s.seq.Add(1)
	msg := &kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &pd.rec.Topic, Partition: kafka.PartitionAny},
		Key:            pd.rec.Key,
		Value:          pd.rec.Value,
		Headers:        pd.rec.Headers,
		Opaque:         pd,
	}
	err := errClosed
	s.inflight.Add(1)
	g.with(func(p *kafka.Producer) { err = p.Produce(msg, nil) })
	if err != nil {
		s.inflight.Add(-1)
	}
	return err
}

func (s *Sink) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// fatalCodes are delivery errors that leave the idempotent producer unusable: librdkafka
// raises them as fatal errors too (the error event may come after the report).
var fatalCodes = []kafka.ErrorCode{kafka.ErrFatal, kafka.ErrOutOfOrderSequenceNumber,
	kafka.ErrInvalidProducerEpoch, kafka.ErrProducerFenced}

func (s *Sink) events(g *generation) {
	defer close(g.done)
	for ev := range g.p.Events() {
		switch e := ev.(type) {
		case *kafka.Message:
			s.report(g, e)
		case *kafka.Stats:
			s.stats(g, e.String())
		case kafka.Error:
			s.o.Metrics.Errors.WithLabelValues(strings.ToLower(e.Code().String())).Inc()
			if e.IsFatal() {
				s.fatalError(g, e)
				continue
			}
			s.errs.Log(e)
		}
	}
}

// stats reads g's idempotence state from one librdkafka statistics report and counts the
// resets since the last one: a new producer id (eos.epoch_cnt counts the ids acquired from
// a broker, the first included; a new id starts at epoch 0) or a higher epoch of the same id
// (an idempotent producer bumps its epoch itself, without asking a broker).
func (s *Sink) stats(g *generation, report string) {
	var st struct {
		EOS struct {
			EpochCnt      int64 `json:"epoch_cnt"`
			ProducerID    int64 `json:"producer_id"`
			ProducerEpoch int64 `json:"producer_epoch"`
		} `json:"eos"`
	}
	if err := json.Unmarshal([]byte(report), &st); err != nil {
		s.o.Log.Warn("kafka statistics unreadable", "err", err)
		return
	}
	e := st.EOS
	if e.ProducerID < 0 || e.EpochCnt <= 0 {
		return // no producer id yet (or a moment without one, during a reset)
	}
	var resets int64
	if g.ids > 0 && e.ProducerID == g.pid {
		resets = e.ProducerEpoch - g.epoch
	} else {
		resets = e.EpochCnt - max(g.ids, 1) + e.ProducerEpoch
	}
	g.pid, g.epoch, g.ids = e.ProducerID, e.ProducerEpoch, e.EpochCnt
	if resets <= 0 {
		return
	}
	if s.o.Metrics.IdempotenceResets != nil {
		s.o.Metrics.IdempotenceResets.Add(float64(resets))
	}
	s.o.Log.Warn("kafka producer took a new producer id or epoch; records it had in flight may be written twice",
		"generation", g.n, "producer_id", e.ProducerID, "epoch", e.ProducerEpoch, "resets", resets)
}

// report settles one delivery report of g.
func (s *Sink) report(g *generation, m *kafka.Message) {
	topic := ""
	if m.TopicPartition.Topic != nil {
		topic = *m.TopicPartition.Topic
	}
	pd, _ := m.Opaque.(*pending)
	defer s.inflight.Add(-1)
	err := m.TopicPartition.Error
	if err == nil {
		s.delivery(topic, Delivered)
		pd.settle(nil)
		return
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) && slices.Contains(fatalCodes, kerr.Code()) {
		s.fatalError(g, kerr)
	}
	s.mu.Lock()
	keep := g.fatal != nil && pd.ack == nil
	if keep {
		g.undelivered = append(g.undelivered, pd)
	}
	s.mu.Unlock()
	switch {
	case keep: // re-sent on the next producer, or handed to Undelivered
	case g.fatal != nil:
		s.delivery(topic, Failed)
		pd.settle(fmt.Errorf("%w: %w", ErrReplaced, err))
	default:
		s.delivery(topic, Failed)
		if pd.ack == nil && pd.done == nil {
			// Async: nobody waits for this record, so this is where a lost one shows.
			s.o.Log.Error("kafka delivery failed", "topic", topic, "key", logging.Clip(string(pd.rec.Key), 64), "err", err)
		}
		pd.settle(err)
	}
}

func (pd *pending) settle(err error) {
	switch {
	case pd.ack != nil:
		pd.ack <- err
	case pd.done != nil:
		pd.done(err)
	}
}

func (s *Sink) delivery(topic, result string) {
	if s.o.Metrics.Deliveries != nil {
		s.o.Metrics.Deliveries.WithLabelValues(topic, result).Inc()
	}
}

// fatalError marks g fatal and, if g is the current producer, starts replacing it.
func (s *Sink) fatalError(g *generation, err error) {
	s.mu.Lock()
	if g.fatal != nil {
		s.mu.Unlock()
		return
	}
	g.fatal = err
	replace := s.cur == g && !s.closed && s.fatal == nil
	if replace {
		s.open = make(chan struct{})
	}
	s.mu.Unlock()
	s.o.Log.Error("kafka producer fatal error; replacing the producer", "generation", g.n, "err", err)
	if replace {
		s.setState(StateRecovering)
		go s.replace(g)
	}
}

// replace empties the fatal producer g, creates its successor and re-queues g's records on
// it in their original order; then new records may flow again.
func (s *Sink) replace(g *generation) {
	start := time.Now()
	recs, err := s.empty(g, s.o.RecoverTimeout)
	var next *generation
	if err == nil {
		next, err = s.newGeneration(g.n + 1)
	}
	if err != nil {
		s.giveUp(fmt.Errorf("%w: %w (could not replace it: %w)", ErrFatal, g.fatal, err), recs)
		return
	}
	for _, pd := range recs {
		for {
			err := s.send(next, pd)
			var kerr kafka.Error
			if errors.As(err, &kerr) && kerr.Code() == kafka.ErrQueueFull {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if err != nil {
				pd.settle(fmt.Errorf("re-send after a fatal error: %w", err))
			}
			break
		}
	}
	s.mu.Lock()
	s.cur = next
	close(s.open)
	s.mu.Unlock()
	if s.o.Metrics.Recoveries != nil {
		s.o.Metrics.Recoveries.Inc()
	}
	s.o.Log.Warn("kafka producer replaced", "generation", next.n, "resent", len(recs), "took", time.Since(start).Round(time.Millisecond))
	s.updateState()
}

// empty purges every record g holds, waits (up to timeout) until each was reported, closes g
// and returns, in the order they were produced, the records kept for a re-send (every one
// without a waiting caller). g must be marked fatal or be drained.
func (s *Sink) empty(g *generation, timeout time.Duration) ([]*pending, error) {
	deadline := time.Now().Add(timeout)
	left := 0
	g.with(func(p *kafka.Producer) {
		for i := 0; ; i++ {
			if i%10 == 0 { // again now and then: a record may have slipped in meanwhile
				_ = p.Purge(kafka.PurgeQueue | kafka.PurgeInFlight)
			}
			if left = p.Len(); left == 0 || time.Now().After(deadline) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	var err error
	if left > 0 {
		err = fmt.Errorf("%d records not handed back within %s", left, timeout)
	}
	g.close() // the event loop has now settled every report
	s.mu.Lock()
	recs := g.undelivered
	g.undelivered = nil
	s.mu.Unlock()
	slices.SortFunc(recs, func(a, b *pending) int { return cmp.Compare(a.seq, b.seq) })
	return recs, err
}

// giveUp records that the sink cannot deliver any more and fails recs.
func (s *Sink) giveUp(err error, recs []*pending) {
	s.mu.Lock()
	s.fatal = err
	close(s.failed)
	select {
	case <-s.open:
	default:
		close(s.open)
	}
	s.mu.Unlock()
	s.o.Log.Error("kafka producer cannot be replaced", "err", err)
	for _, pd := range recs {
		pd.settle(err)
	}
	s.setState(StateFailed)
}

// probe asks for metadata every ProbeInterval (or when the last question is answered, if
// later), and re-evaluates the state every 100ms so that it turns StateUnreachable once no
// broker answered a question asked UnreachableAfter ago.
func (s *Sink) probe() {
	defer close(s.probeDone)
	ask := time.NewTicker(s.o.ProbeInterval)
	defer ask.Stop()
	eval := time.NewTicker(100 * time.Millisecond)
	defer eval.Stop()
	type answer struct {
		err   error
		asked time.Time
	}
	answers := make(chan answer, 1)
	asking := false
	var next time.Time // when to ask again
	for {
		if !asking && !time.Now().Before(next) {
			g, open, _ := s.current()
			select {
			case <-open:
				asking, next = true, time.Now().Add(s.o.ProbeInterval)
				go func() {
					a := answer{err: errClosed, asked: time.Now()}
					g.with(func(p *kafka.Producer) {
						_, a.err = p.GetMetadata(nil, false, int(min(s.o.UnreachableAfter, time.Second)/time.Millisecond))
					})
					answers <- a
				}()
			default:
			}
		}
		select {
		case <-s.stop:
			if asking {
				<-answers
			}
			return
		case a := <-answers:
			asking = false
			s.reached(a.err == nil, a.asked)
		case <-ask.C:
		case <-eval.C:
		}
		s.updateState()
	}
}

// reached records whether a broker answered a question asked at (or, false, that none is
// connected since then).
func (s *Sink) reached(ok bool, at time.Time) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	switch {
	case ok:
		s.reachedOnce = true
		s.downSince = time.Time{}
	case s.downSince.IsZero():
		s.downSince = at
	}
}

// updateState derives the state from the last probes, outside a recovery.
func (s *Sink) updateState() {
	s.mu.Lock()
	fatal := s.fatal
	recovering := false
	select {
	case <-s.open:
	default:
		recovering = true
	}
	s.mu.Unlock()
	s.stateMu.Lock()
	reachable := s.reachedOnce && (s.downSince.IsZero() || time.Since(s.downSince) < s.o.UnreachableAfter)
	s.stateMu.Unlock()
	switch {
	case fatal != nil:
		s.setState(StateFailed)
	case recovering:
		s.setState(StateRecovering)
	case reachable:
		s.setState(StateDelivering)
	default:
		s.setState(StateUnreachable)
	}
}

func (s *Sink) setState(st State) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if s.state == st {
		return
	}
	prev := s.state
	s.state = st
	if g := s.o.Metrics.State; g != nil {
		for _, x := range States {
			v := 0.0
			if x == st {
				v = 1
			}
			g.WithLabelValues(string(x)).Set(v)
		}
	}
	if prev != "" {
		s.o.Log.Info("kafka producer state", "state", string(st), "was", string(prev))
	}
	if s.o.OnState != nil {
		s.o.OnState(st)
	}
}

// Record size accounting, as librdkafka and the broker count (librdkafka rdkafka_proto.h,
// MessageSet v2): a record costs at most RecordOverhead bytes besides its key, value and
// headers (each header at most HeaderOverhead besides its key and value); a batch adds
// BatchOverhead, which the broker counts against the topic's max.message.bytes.
const (
	RecordOverhead = 5 + 1 + 10 + 5 + 5 + 5 + 5 // length, attributes, timestamp, offset, key and value lengths, header count (varints at their largest)
	HeaderOverhead = 5 + 5                      // key and value lengths
	BatchOverhead  = 61
)

// RecordSize is the largest size rec can take in a batch: librdkafka refuses a record above
// message.max.bytes, a broker one whose batch (RecordSize+BatchOverhead) is above the topic's
// max.message.bytes.
func RecordSize(rec Record) int {
	n := RecordOverhead + len(rec.Key) + len(rec.Value)
	for _, h := range rec.Headers {
		n += HeaderOverhead + len(h.Key) + len(h.Value)
	}
	return n
}

// TopicMaxMessageBytes asks the cluster for each topic's max.message.bytes (the largest
// batch a broker takes). Topics it could not learn are left out, with the error.
func (s *Sink) TopicMaxMessageBytes(ctx context.Context, topics []string) (map[string]int, error) {
	g, _, _ := s.current()
	out := map[string]int{}
	var errs []error
	ok := g.with(func(p *kafka.Producer) {
		admin, err := kafka.NewAdminClientFromProducer(p)
		if err != nil {
			errs = append(errs, err)
			return
		}
		defer admin.Close()
		res := make([]kafka.ConfigResource, len(topics))
		for i, t := range topics {
			res[i] = kafka.ConfigResource{Type: kafka.ResourceTopic, Name: t}
		}
		results, err := admin.DescribeConfigs(ctx, res)
		if err != nil {
			errs = append(errs, err)
			return
		}
		for _, r := range results {
			v, err := strconv.Atoi(r.Config["max.message.bytes"].Value)
			switch {
			case r.Error.Code() != kafka.ErrNoError:
				errs = append(errs, fmt.Errorf("topic %s: %w", r.Name, r.Error))
			case err != nil:
				errs = append(errs, fmt.Errorf("topic %s: max.message.bytes: %w", r.Name, err))
			default:
				out[r.Name] = v
			}
		}
	})
	if !ok {
		errs = append(errs, errClosed)
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("describe topic configs: %w", err)
	}
	return out, nil
}

// Queued is the number of records not yet acknowledged or failed.
func (s *Sink) Queued() int { return int(s.inflight.Load()) }

// Flush waits up to timeout for every queued record to be delivered and its report handled
// (and for a producer being replaced to be ready) and returns how many are still
// outstanding.
func (s *Sink) Flush(timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	_, open, _ := s.current()
	select {
	case <-open:
	case <-time.After(timeout):
	}
	for {
		left := s.Queued()
		if left == 0 || !time.Now().Before(deadline) {
			return left
		}
		g, _, _ := s.current()
		queued := 0
		g.with(func(p *kafka.Producer) { queued = p.Flush(100) })
		if queued == 0 {
			time.Sleep(time.Millisecond) // reports read, still being handled
		}
	}
}

// Undelivered closes the sink after taking back, within timeout, every record it still
// holds: waiting callers get ErrReplaced, and the records produced without a waiting caller
// are returned in the order they were produced (their callbacks are not called), e.g. to be
// kept on disk. Call it instead of Close, after Flush.
func (s *Sink) Undelivered(timeout time.Duration) ([]Record, error) {
	s.stopProbe()
	_, open, _ := s.current()
	select {
	case <-open:
	case <-time.After(timeout):
	}
	s.mu.Lock()
	s.closed = true
	g := s.cur
	if g.fatal == nil {
		g.fatal = errors.New("shutting down")
	}
	s.mu.Unlock()
	pds, err := s.empty(g, timeout)
	recs := make([]Record, len(pds))
	for i, pd := range pds {
		recs[i] = pd.rec
	}
	return recs, err
}

func (s *Sink) stopProbe() {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.probeDone
	})
}

// Close closes the producer; call Flush first. Records still queued are failed. Safe to
// call more than once.
func (s *Sink) Close() {
	s.stopProbe()
	_, open, _ := s.current()
	<-open // a replacement ends within RecoverTimeout
	s.mu.Lock()
	s.closed = true
	g := s.cur
	s.mu.Unlock()
	g.close()
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
