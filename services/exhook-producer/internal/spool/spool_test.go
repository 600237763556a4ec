package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/tidwall/wal"

	"github.com/iov-platform/iov/kit/kafkasink"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func open(t testing.TB, dir string, maxBytes int64, whenFull string) (*Spool, *Metrics) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	sp, err := Open(Options{Dir: dir, MaxBytes: maxBytes, WhenFull: whenFull, Metrics: m, Log: quiet(), SegmentBytes: 4096})
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

// partDirs is the names of the parts in dir, oldest first.
func partDirs(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// TestReleaseDeletesWholeParts: a release starts a new part and deletes the parts whose
// entries are all released; the entries not released stay readable, in the same
// directory layout after a reopen, and appends continue the index.
func TestReleaseDeletesWholeParts(t *testing.T) {
	dir := t.TempDir()
	sp, _ := open(t, dir, 0, "")
	appendN := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := sp.Append(context.Background(), entry(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN(0, 50) // indexes 1..50
	if err := sp.Release(21); err != nil {
		t.Fatal(err)
	}
	if got := partDirs(t, dir); !slices.Equal(got, []string{"00000000000000000001", "00000000000000000051"}) {
		t.Fatalf("parts after releasing 1..20: %v", got)
	}
	appendN(50, 80) // 51..80, into the new part
	if err := sp.Release(60); err != nil {
		t.Fatal(err)
	}
	if got := partDirs(t, dir); !slices.Equal(got, []string{"00000000000000000051", "00000000000000000081"}) {
		t.Fatalf("parts after releasing 1..59: %v", got)
	}
	if err := sp.Release(50); err != nil { // behind the released index: nothing
		t.Fatal(err)
	}
	if err := sp.Release(82); err == nil {
		t.Fatal("release past the last index + 1 succeeded")
	}
	first, last, _ := sp.Bounds()
	if first != 60 || last != 80 {
		t.Fatalf("bounds %d..%d, want 60..80", first, last)
	}
	for i := first; i <= last; i++ {
		if e, err := sp.Read(i); err != nil || string(e.Value) != fmt.Sprintf("value-%04d", i-1) {
			t.Fatalf("entry %d: %+v %v", i, e, err)
		}
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened, the released entries of the oldest kept part are back (at-least-once).
	sp, _ = open(t, dir, 0, "")
	defer sp.Close()
	appendN(80, 81)
	if first, last, _ = sp.Bounds(); first != 51 || last != 81 {
		t.Fatalf("bounds after reopen %d..%d, want 51..81", first, last)
	}
	if e, err := sp.Read(81); err != nil || string(e.Value) != "value-0080" {
		t.Fatalf("entry 81 after reopen: %+v %v", e, err)
	}
}

// TestOpenTakesOverASpoolWithoutParts: a spool written before parts existed is one
// tidwall/wal log in the spool's directory itself. It opens as the oldest part, new
// appends follow it, and its files go once everything in it is released.
func TestOpenTakesOverASpoolWithoutParts(t *testing.T) {
	dir := t.TempDir()
	l, err := wal.Open(dir, &wal.Options{SegmentSize: 4096, AllowEmpty: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		data, err := avro.Marshal(entrySchema, entry(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Write(uint64(i+1), data); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.TruncateFront(11); err != nil { // the old spool's release
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	sp, _ := open(t, dir, 0, "")
	defer sp.Close()
	if first, last, _ := sp.Bounds(); first != 11 || last != 30 {
		t.Fatalf("bounds %d..%d, want 11..30", first, last)
	}
	if err := sp.Append(context.Background(), entry(30)); err != nil {
		t.Fatal(err)
	}
	for i := uint64(11); i <= 31; i++ {
		if e, err := sp.Read(i); err != nil || string(e.Value) != fmt.Sprintf("value-%04d", i-1) {
			t.Fatalf("entry %d: %+v %v", i, e, err)
		}
	}
	if err := sp.Release(32); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "00000000000000000032" || !ents[0].IsDir() {
		t.Fatalf("spool dir after releasing everything: %v, want the new part only", ents)
	}
}
