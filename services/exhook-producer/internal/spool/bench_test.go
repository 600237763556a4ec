package spool

import (
	"context"
	"testing"
)

// BenchmarkAppendParallel is the spool's per-message path: encode, join a group, wait for
// its write and fsync. With -benchmem, allocs/op shows a regression; ns/op is bounded by
// the disk (fsyncs shared by the group) and says little about CPU.
func BenchmarkAppendParallel(b *testing.B) {
	sp, m := open(b, b.TempDir(), 0, "")
	defer sp.Close()
	e := entry(1)
	b.SetParallelism(64) // calls in flight per GOMAXPROCS, as many vehicles publishing
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := sp.Append(context.Background(), e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	_, last, _ := sp.Bounds()
	b.ReportMetric(float64(last)/float64(histogramCount(b, m)), "records/fsync")
}

// BenchmarkRelease is one truncation with 20 entries still unshipped behind it: tidwall/wal
// rewrites them into a new file, fsyncs it and renames it, holding the log's lock, so an
// append arriving meanwhile waits this long on top of its own commit.
func BenchmarkRelease(b *testing.B) {
	sp, _ := open(b, b.TempDir(), 0, "")
	defer sp.Close()
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := range 21 {
			if err := sp.Append(ctx, entry(j)); err != nil {
				b.Fatal(err)
			}
		}
		_, last, err := sp.Bounds()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := sp.Release(last - 19); err != nil { // keep the last 20
			b.Fatal(err)
		}
	}
}
