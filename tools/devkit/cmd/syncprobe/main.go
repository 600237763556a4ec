// Command syncprobe measures how long this machine's disk takes to make a small append
// durable: the bound on the spool's fixed-rate latency (one write plus one sync per group
// commit). For each method it appends --size bytes --count times to a file in --dir and
// times the sync after each write, then prints the distribution and the CPU time per write + sync.
// With --interval the appends are paced like a fixed-rate run's commits (a sync after an idle
// gap costs more than one right after another; the CPU then includes the process's wake-ups).
//
//	go run ./cmd/syncprobe --dir /tmp --count 2000 --size 256
//	go run ./cmd/syncprobe --dir /tmp --count 3000 --interval 1ms
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

type method struct {
	name     string
	prealloc bool
	sync     func(f *os.File) error
}

func main() {
	dir := flag.String("dir", os.TempDir(), "directory on the disk to measure")
	count := flag.Int("count", 2000, "appends per method")
	size := flag.Int("size", 256, "bytes per append")
	interval := flag.Duration("interval", 0, "start an append at most this often (0: back to back), to see the disk at a fixed rate's pace: a sync after an idle gap can cost more than one right after another")
	flag.Parse()
	if *count <= 0 || *size <= 0 || *interval < 0 {
		fmt.Fprintln(os.Stderr, "syncprobe: --count and --size must be positive, --interval not negative")
		os.Exit(2)
	}
	methods := []method{
		{"append + fsync", false, func(f *os.File) error { return f.Sync() }},
		{"append + fdatasync", false, func(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }},
		{"preallocated + fsync", true, func(f *os.File) error { return f.Sync() }},
		{"preallocated + fdatasync", true, func(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }},
	}
	fmt.Printf("%d appends of %d bytes per method in %s, one every %v at most\n", *count, *size, *dir, *interval)
	fmt.Printf("%-26s %9s %9s %9s %9s %9s %9s %9s\n", "method", "p50", "p90", "p99", "p99.9", "max", "mean", "CPU/op")
	for _, m := range methods {
		lat, cpu, err := run(*dir, m, *count, *size, *interval)
		if err != nil {
			fmt.Fprintln(os.Stderr, "syncprobe:", m.name+":", err)
			os.Exit(1)
		}
		slices.Sort(lat)
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		fmt.Printf("%-26s %9s %9s %9s %9s %9s %9s %9s\n", m.name, r(q(0.5)), r(q(0.9)), r(q(0.99)), r(q(0.999)), r(lat[len(lat)-1]), r(sum/time.Duration(len(lat))), r(cpu/time.Duration(*count)))
	}
}

func r(d time.Duration) time.Duration { return d.Round(time.Microsecond) }

// cpuTime is the process's user+system CPU so far.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// run returns the latency of each sync and the CPU time of the appends and syncs.
func run(dir string, m method, count, size int, interval time.Duration) ([]time.Duration, time.Duration, error) {
	path := filepath.Join(dir, fmt.Sprintf("syncprobe-%d", os.Getpid()))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("open: %w", err)
	}
	defer os.Remove(path)
	defer f.Close()
	if m.prealloc {
		// Allocated and written once, so later writes change no block map or size:
		// fdatasync then has no metadata to flush.
		if err := unix.Fallocate(int(f.Fd()), 0, 0, int64(count*size)); err != nil {
			return nil, 0, fmt.Errorf("fallocate: %w", err)
		}
		if _, err := f.Write(make([]byte, count*size)); err != nil {
			return nil, 0, fmt.Errorf("zero fill: %w", err)
		}
		if err := f.Sync(); err != nil {
			return nil, 0, fmt.Errorf("sync: %w", err)
		}
		if _, err := f.Seek(0, 0); err != nil {
			return nil, 0, fmt.Errorf("seek: %w", err)
		}
	}
	buf := make([]byte, size)
	lat := make([]time.Duration, 0, count)
	cpu0 := cpuTime()
	next := time.Now()
	for i := range count {
		if interval > 0 {
			time.Sleep(time.Until(next))
			next = next.Add(interval)
		}
		buf[0] = byte(i)
		if _, err := f.Write(buf); err != nil {
			return nil, 0, fmt.Errorf("write: %w", err)
		}
		start := time.Now()
		if err := m.sync(f); err != nil {
			return nil, 0, fmt.Errorf("sync: %w", err)
		}
		lat = append(lat, time.Since(start))
	}
	return lat, cpuTime() - cpu0, nil
}
