// Package mempeak records where a process's memory is at its peak, for performance work:
// each time the resident set (VmRSS) grows 5% past the largest seen, it writes the Go
// runtime's memory classes beside VmRSS (peak.txt: what is heap objects, GC headroom,
// goroutine stacks, and, as VmRSS minus Go's total, C memory such as librdkafka's and the
// binary) and a heap profile (heap.pprof, inuse_space/alloc_space) into a directory. The
// last files written are the peak's.
package mempeak

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/prometheus/procfs"
)

// classes are the runtime/metrics written, in order.
var classes = []string{
	"/memory/classes/total:bytes",
	"/memory/classes/heap/objects:bytes",
	"/gc/heap/live:bytes",
	"/gc/heap/goal:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/os-stacks:bytes",
	"/memory/classes/metadata/other:bytes",
	"/memory/classes/metadata/mspan/inuse:bytes",
	"/memory/classes/metadata/mcache/inuse:bytes",
	"/memory/classes/profiling/buckets:bytes",
	"/memory/classes/other:bytes",
	"/sched/goroutines:goroutines",
}

// Watch samples VmRSS every interval until ctx ends or stop is called, and writes a snapshot
// at each new peak. stop ends the watcher and returns once it has stopped: no file is written
// in dir after that (call it before removing dir, or before exit so that the last peak's
// files are whole).
func Watch(ctx context.Context, dir string, interval time.Duration) (stop func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("mempeak: %w", err)
	}
	self, err := procfs.Self()
	if err != nil {
		return nil, fmt.Errorf("mempeak: %w", err)
	}
	samples := make([]metrics.Sample, len(classes))
	for i, n := range classes {
		samples[i].Name = n
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var peak uint64
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			st, err := self.NewStatus()
			if err != nil || st.VmRSS <= peak+peak/20 {
				continue
			}
			peak = st.VmRSS
			metrics.Read(samples)
			_ = write(dir, st.VmRSS, samples)
		}
	}()
	return func() { cancel(); <-done }, nil
}

func write(dir string, rss uint64, samples []metrics.Sample) error {
	var b strings.Builder
	fmt.Fprintf(&b, "VmRSS %.1f MiB\n", mib(rss))
	total := uint64(0)
	for _, s := range samples {
		if s.Value.Kind() != metrics.KindUint64 {
			continue
		}
		v := s.Value.Uint64()
		if s.Name == "/sched/goroutines:goroutines" {
			fmt.Fprintf(&b, "%s %d\n", s.Name, v)
			continue
		}
		if s.Name == "/memory/classes/total:bytes" {
			total = v
		}
		fmt.Fprintf(&b, "%s %.1f MiB\n", s.Name, mib(v))
	}
	if rss > total {
		fmt.Fprintf(&b, "VmRSS - Go total (C memory, binary) %.1f MiB\n", mib(rss-total))
	}
	var heap bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&heap, 0); err != nil {
		return err
	}
	// Each file replaced whole, so a reader never sees half of one.
	if err := replace(filepath.Join(dir, "heap.pprof"), heap.Bytes()); err != nil {
		return err
	}
	return replace(filepath.Join(dir, "peak.txt"), []byte(b.String()))
}

func replace(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
