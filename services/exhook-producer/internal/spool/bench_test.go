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
