package kafkagroup

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/iov-platform/iov/kit/internal/kafkatest"
)

const topic = "iov.test"

type cluster struct {
	kfake *kfake.Cluster
	kgo   *kgo.Client
}

func newCluster(t *testing.T, partitions int32) *cluster {
	t.Helper()
	c := kafkatest.Cluster(t, partitions, topic)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &cluster{kfake: c, kgo: cl}
}

// produce writes n records to every partition below partitions, values "p/i".
func (c *cluster) produce(t *testing.T, partitions int32, from, n int) {
	t.Helper()
	var recs []*kgo.Record
	for p := range partitions {
		for i := from; i < from+n; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%d/%d", p, i)})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.kgo.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// runner polls one member on its own goroutine, storing every record it gets; do runs a
// function there, between polls, so tests look at the member without racing its callbacks.
type runner struct {
	t        *testing.T
	g        *Member
	metrics  Metrics
	joined   chan struct{}
	revoked  chan struct{}
	calls    chan func()
	stop     chan struct{}
	stopped  chan error
	mu       sync.Mutex
	received []string
	logs     *kafkatest.LogBuffer // debug and up
}

func (c *cluster) member(t *testing.T, group string) *runner {
	t.Helper()
	r := &runner{t: t, joined: make(chan struct{}), revoked: make(chan struct{}, 100), calls: make(chan func()),
		stop: make(chan struct{}), stopped: make(chan error, 1), logs: &kafkatest.LogBuffer{},
		metrics: Metrics{
			Rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rebalances"}, []string{"event"}),
			Partitions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "partitions"}),
		}}
	var w io.Writer = r.logs
	if testing.Verbose() {
		w = io.MultiWriter(r.logs, os.Stderr)
	}
	g, err := New(Config{
		ClientID:         "kafkagroup-test",
		BootstrapServers: kafkatest.Bootstrap(c.kfake),
		GroupID:          group,
		Properties: map[string]string{
			"session.timeout.ms":                 "6000",
			"heartbeat.interval.ms":              "300",
			"fetch.wait.max.ms":                  "50",
			"topic.metadata.refresh.interval.ms": "1000",
			// Only the member's own commits (revoke, shutdown) in the first minute; librdkafka
			// still commits stored offsets itself when it unassigns partitions.
			"auto.commit.interval.ms": "60000",
		},
	}, Options{
		Log:         slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})).With("member", group),
		Metrics:     r.metrics,
		ClientError: func(err kafka.Error) { t.Logf("client error: %v", err) },
		OnJoined:    func() { close(r.joined) }, // a second call would panic
		OnRevoked:   func() { r.revoked <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	r.g = g
	if err := g.Subscribe([]string{topic}); err != nil {
		t.Fatal(err)
	}
	go r.loop()
	t.Cleanup(func() { _ = r.close() })
	return r
}

func (r *runner) loop() {
	for {
		select {
		case <-r.stop:
			r.stopped <- r.g.Close()
			return
		case f := <-r.calls:
			f()
			continue
		default:
		}
		m, err := r.g.Poll(20 * time.Millisecond)
		if err != nil {
			r.stopped <- err
			return
		}
		if m != nil {
			r.mu.Lock()
			r.received = append(r.received, string(m.Value))
			r.mu.Unlock()
			r.g.Store(m)
		}
	}
}

func (r *runner) do(f func(g *Member)) {
	done := make(chan struct{})
	r.calls <- func() { f(r.g); close(done) }
	<-done
}

func (r *runner) close() error {
	select {
	case <-r.stop:
		return nil
	default:
	}
	close(r.stop)
	return <-r.stopped
}

func (r *runner) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.received...)
}

// settled waits for at least n records, then a little longer for any that should not come.
func (r *runner) settled(n int) string {
	r.t.Helper()
	waitFor(r.t, fmt.Sprintf("%d records", n), func() bool { return len(r.got()) >= n })
	time.Sleep(300 * time.Millisecond)
	return strings.Join(r.got(), ",")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *runner) partitions() int { return int(testutil.ToFloat64(r.metrics.Partitions)) }
func (r *runner) rebalances(event string) int {
	return int(testutil.ToFloat64(r.metrics.Rebalances.WithLabelValues(event)))
}

func TestStoredOffsetsAreCommittedAtClose(t *testing.T) {
	c := newCluster(t, 1)
	c.produce(t, 1, 0, 6)
	a := c.member(t, "g")
	waitFor(t, "6 records", func() bool { return len(a.got()) == 6 })
	select {
	case <-a.joined:
	default:
		t.Fatal("OnJoined not called")
	}
	if a.partitions() != 1 || a.rebalances("assigned") < 1 {
		t.Fatalf("partitions %d, assigned events %d", a.partitions(), a.rebalances("assigned"))
	}
	if err := a.close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.g.Close(); err != nil { // again: same (nil) result, nothing done twice
		t.Fatalf("second Close: %v", err)
	}
	if a.partitions() != 0 || a.rebalances("revoked") != 1 {
		t.Fatalf("after Close: partitions %d, revoked events %d", a.partitions(), a.rebalances("revoked"))
	}
	if logs := a.logs.String(); !strings.Contains(logs, `msg="offsets committed" member=g reason=shutdown offsets=iov.test[0@6]`) {
		t.Fatalf("no commit at shutdown logged:\n%s", logs)
	}

	// A new member of the group starts after everything a stored.
	c.produce(t, 1, 6, 2)
	b := c.member(t, "g")
	if got := b.settled(2); got != "0/6,0/7" {
		t.Fatalf("new member got %s, want only the records after the committed offset", got)
	}
}

func TestUnstoredRecordsAreDeliveredAgain(t *testing.T) {
	c := newCluster(t, 1)
	c.produce(t, 1, 0, 4)
	g, err := New(Config{ClientID: "kafkagroup-test", BootstrapServers: kafkatest.Bootstrap(c.kfake), GroupID: "g"},
		Options{Log: slog.New(slog.DiscardHandler), Metrics: Metrics{
			Rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rebalances"}, []string{"event"}),
			Partitions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "partitions"}),
		}, ClientError: func(err kafka.Error) { t.Logf("client error: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Subscribe([]string{topic}); err != nil {
		t.Fatal(err)
	}
	// Store the first two records only.
	for n := 0; n < 4; {
		m, err := g.Poll(50 * time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if m == nil {
			continue
		}
		if n < 2 {
			g.Store(m)
		}
		n++
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	b := c.member(t, "g")
	if got := b.settled(2); got != "0/2,0/3" {
		t.Fatalf("got %s, want the two unstored records again", got)
	}
}

func TestRebalanceCommitsOnRevokeAndReassignBumpsTheEpoch(t *testing.T) {
	const parts = 4
	c := newCluster(t, parts)
	c.produce(t, parts, 0, 5)
	a := c.member(t, "g")
	waitFor(t, "a to consume everything", func() bool { return len(a.got()) == parts*5 })
	a.do(func(g *Member) {
		for p := range int32(parts) {
			if m := message(topic, p, 0); !g.Owns(m) || g.Epoch(m) != 1 {
				t.Errorf("partition %d: owned %v, epoch %d", p, g.Owns(m), g.Epoch(m))
			}
		}
	})

	b := c.member(t, "g")
	waitFor(t, "b to get partitions", func() bool { return b.partitions() > 0 && a.partitions()+b.partitions() == parts })
	<-b.joined
	if a.rebalances("revoked") < 1 || len(a.revoked) == 0 {
		t.Fatalf("a: revoked events %d, OnRevoked calls %d", a.rebalances("revoked"), len(a.revoked))
	}
	// a committed what it stored when its partitions were revoked: b starts after it.
	if logs := a.logs.String(); !strings.Contains(logs, `msg="offsets committed" member=g reason=revoke offsets="iov.test[0@5 1@5 2@5 3@5]"`) {
		t.Fatalf("no commit on revoke logged:\n%s", logs)
	}
	time.Sleep(500 * time.Millisecond)
	if got := b.got(); len(got) != 0 {
		t.Fatalf("b got records a had finished: %v", got)
	}
	var moved []int32
	b.do(func(g *Member) {
		for p := range int32(parts) {
			if g.Owns(message(topic, p, 0)) {
				moved = append(moved, p)
			}
		}
	})
	a.do(func(g *Member) {
		for p := range int32(parts) {
			m := message(topic, p, 0)
			if owned := !contains(moved, p); g.Owns(m) != owned {
				t.Errorf("a owns partition %d: %v, want %v", p, g.Owns(m), owned)
			}
		}
	})

	// New records go to exactly one member each.
	c.produce(t, parts, 5, 3)
	waitFor(t, "the new records", func() bool { return len(a.got())+len(b.got()) == parts*5+parts*3 })

	// b leaves: its partitions come back to a with a new epoch.
	if err := b.close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to own every partition again", func() bool { return a.partitions() == parts })
	a.do(func(g *Member) {
		for p := range int32(parts) {
			want := 1
			if contains(moved, p) {
				want = 2
			}
			if m := message(topic, p, 0); !g.Owns(m) || g.Epoch(m) != want {
				t.Errorf("partition %d: owned %v, epoch %d, want %d", p, g.Owns(m), g.Epoch(m), want)
			}
		}
	})
	seen := map[string]int{}
	for _, v := range append(a.got(), b.got()...) {
		seen[v]++
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("%s handled %d times", v, n)
		}
	}
}

func contains(ps []int32, p int32) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

func TestPauseStopsFetchingUntilResume(t *testing.T) {
	c := newCluster(t, 2)
	c.produce(t, 2, 0, 1)
	a := c.member(t, "g")
	waitFor(t, "the first records", func() bool { return len(a.got()) == 2 })
	a.do(func(g *Member) { g.Pause(); g.Pause() }) // twice is once
	c.produce(t, 2, 1, 2)
	time.Sleep(time.Second)
	if got := a.got(); len(got) != 2 {
		t.Fatalf("records fetched while paused: %v", got)
	}
	a.do(func(g *Member) { g.Resume(); g.Resume() })
	waitFor(t, "the records after Resume", func() bool { return len(a.got()) == 6 })
}
