package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/iov-platform/iov/kit/kafkasink"
)

// testSyncWait is the SyncWait the suite's spools use: SPOOL_TEST_SYNC_WAIT, which
// TestSuiteWithSyncWaitHold sets to run the whole suite again with the hold syncer.
var testSyncWait = os.Getenv("SPOOL_TEST_SYNC_WAIT")

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func open(t testing.TB, dir string, maxBytes int64, whenFull string) (*Spool, *Metrics) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	sp, err := Open(Options{Dir: dir, MaxBytes: maxBytes, WhenFull: whenFull, Metrics: m, Log: quiet(), SegmentBytes: 4096, SyncWait: testSyncWait})
	if err != nil {
		t.Fatal(err)
	}
	return sp, m
}

func entry(i int) *Entry {
	return &Entry{Topic: "t", Key: fmt.Appendf(nil, "V%d", i%7), Value: fmt.Appendf(nil, "value-%04d", i),
		Headers: []Header{{Key: "h", Value: []byte("x")}}, AcceptedAt: int64(i)}
}

func TestAppendIsDurableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	sp, _ := open(t, dir, 0, "")
	for i := range 50 {
		if err := sp.Append(context.Background(), entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sp.Append(context.Background(), entry(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	sp, _ = open(t, dir, 0, "")
	defer sp.Close()
	first, last, err := sp.Bounds()
	if err != nil || first != 1 || last != 50 {
		t.Fatalf("bounds %d..%d %v", first, last, err)
	}
	for i := range 50 {
		e, err := sp.Read(uint64(i + 1))
		if err != nil {
			t.Fatal(err)
		}
		if string(e.Value) != fmt.Sprintf("value-%04d", i) || e.AcceptedAt != int64(i) || string(e.Headers[0].Value) != "x" {
			t.Fatalf("entry %d = %+v", i, e)
		}
	}
}

func TestConcurrentAppendsShareFsyncs(t *testing.T) {
	sp, m := open(t, t.TempDir(), 0, "")
	defer sp.Close()
	const n = 400
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := sp.Append(context.Background(), entry(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	hist := histogramCount(t, m)
	if hist >= n {
		t.Fatalf("%d fsync batches for %d concurrent appends: no group commit", hist, n)
	}
	if _, last, _ := sp.Bounds(); last != n {
		t.Fatalf("last index %d, want %d", last, n)
	}
	t.Logf("%d appends in %d fsync batches", n, hist)
}

func histogramCount(t testing.TB, m *Metrics) uint64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	m.BatchSize.Collect(ch)
	var pb dto.Metric
	if err := (<-ch).Write(&pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetHistogram().GetSampleCount()
}

func TestFullSpoolRejectsOrBlocks(t *testing.T) {
	t.Run("reject", func(t *testing.T) {
		sp, m := open(t, t.TempDir(), 200, WhenFullReject)
		defer sp.Close()
		var err error
		accepted := 0
		for i := 0; i < 100 && err == nil; i++ {
			if err = sp.Append(context.Background(), entry(i)); err == nil {
				accepted++
			}
		}
		if !errors.Is(err, ErrFull) || accepted == 0 {
			t.Fatalf("after %d appends: %v, want ErrFull", accepted, err)
		}
		if got := testutil.ToFloat64(m.Appends.WithLabelValues("full")); got != 1 {
			t.Fatalf("full counter %v", got)
		}
		// What was accepted is still there.
		if _, last, _ := sp.Bounds(); last != uint64(accepted) {
			t.Fatalf("spool holds %d, accepted %d", last, accepted)
		}
	})
	t.Run("block", func(t *testing.T) {
		sp, _ := open(t, t.TempDir(), 200, WhenFullBlock)
		defer sp.Close()
		n := 0
		for ; ; n++ {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			err := sp.Append(ctx, entry(n))
			cancel()
			if errors.Is(err, ErrFull) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		done := make(chan error, 1)
		go func() { done <- sp.Append(context.Background(), entry(n)) }()
		select {
		case err := <-done:
			t.Fatalf("append into a full spool returned %v before room was made", err)
		case <-time.After(100 * time.Millisecond):
		}
		if err := sp.Release(uint64(n + 1)); err != nil { // everything shipped
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("blocked append after release: %v", err)
		}
	})
}

// fakeProducer settles records in order on one goroutine, like librdkafka's event loop for
// one partition; it fails records whose value is in refuse and keeps what it delivered.
type fakeProducer struct {
	mu        sync.Mutex
	delivered []kafkasink.Record
	refuse    map[string]bool
	once      sync.Once
	queue     chan func()
}

func (f *fakeProducer) ProduceCallback(_ context.Context, rec kafkasink.Record, done func(error)) error {
	f.once.Do(func() {
		f.queue = make(chan func(), 1024)
		go func() {
			for fn := range f.queue {
				fn()
			}
		}()
	})
	f.queue <- func() {
		f.mu.Lock()
		refused := f.refuse[string(rec.Value)] && rec.Topic != "dlq"
		if !refused {
			f.delivered = append(f.delivered, rec)
		}
		f.mu.Unlock()
		if refused {
			done(errors.New("Broker: Message size too large"))
			return
		}
		done(nil)
	}
	return nil
}

func (f *fakeProducer) Fatal() error { return nil }

func TestShipperShipsInOrderAndEmptiesTheSpool(t *testing.T) {
	dir := t.TempDir()
	sp, m := open(t, dir, 0, "")
	// Records from a "previous run" plus new ones while shipping.
	for i := range 30 {
		if err := sp.Append(context.Background(), entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	prod := &fakeProducer{refuse: map[string]bool{"value-0010": true}}
	sh, err := NewShipper(sp, prod, "dlq", quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- sh.Run(ctx) }()
	for i := 30; i < 60; i++ {
		if err := sp.Append(context.Background(), entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := sh.WaitEmpty(wctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	first, last, _ := sp.Bounds()
	if last >= first {
		t.Fatalf("spool not empty after shipping: %d..%d", first, last)
	}
	if got := testutil.ToFloat64(m.Entries); got != 0 {
		t.Fatalf("entries gauge %v", got)
	}
	// Per key, order is append order; the refused record went to the dead-letter topic.
	lastSeen := map[string]string{}
	var dead []kafkasink.Record
	for _, r := range prod.delivered {
		if r.Topic == "dlq" {
			dead = append(dead, r)
			continue
		}
		if prev, ok := lastSeen[string(r.Key)]; ok && string(r.Value) <= prev {
			t.Fatalf("key %s: %s after %s", r.Key, r.Value, prev)
		}
		lastSeen[string(r.Key)] = string(r.Value)
	}
	if len(prod.delivered) != 60 || len(dead) != 1 || string(dead[0].Value) != "value-0010" {
		t.Fatalf("delivered %d records, %d dead letters", len(prod.delivered), len(dead))
	}
	if got := testutil.ToFloat64(m.Shipped.WithLabelValues("dead_lettered")); got != 1 {
		t.Fatalf("dead_lettered = %v", got)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened, the spool is still empty and continues its index.
	sp, _ = open(t, dir, 0, "")
	defer sp.Close()
	if err := sp.Append(context.Background(), entry(99)); err != nil {
		t.Fatal(err)
	}
	first, last, _ = sp.Bounds()
	if first != 61 || last != 61 {
		t.Fatalf("after reopen bounds %d..%d, want 61..61", first, last)
	}
}
