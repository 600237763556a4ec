package mempeak

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A new resident peak is written down with the Go memory classes, and the peak file tracks
// the largest one.
func TestWritesTheResidentPeak(t *testing.T) {
	dir := t.TempDir()
	stop, err := Watch(context.Background(), dir, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer stop() // before t.TempDir's removal: the watcher may be writing

	const grow = 96 << 20
	ballast := make([]byte, grow)
	for i := range ballast { // resident only once touched
		ballast[i] = 1
	}
	var text string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(dir, "peak.txt"))
		text = string(b)
		if rss := field(text, "VmRSS"); rss >= grow>>20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no peak of %d MiB or more written:\n%s", grow>>20, text)
		}
	}
	runtime.KeepAlive(ballast)
	for _, want := range []string{"/memory/classes/total:bytes", "/memory/classes/heap/objects:bytes", "/memory/classes/heap/stacks:bytes", "/sched/goroutines:goroutines"} {
		if !strings.Contains(text, want) {
			t.Errorf("peak.txt lacks %s:\n%s", want, text)
		}
	}
	if objects := field(text, "/memory/classes/heap/objects:bytes"); objects < grow>>20 {
		t.Errorf("heap objects %.1f MiB at the peak, want the %d MiB ballast", objects, grow>>20)
	}
	if st, err := os.Stat(filepath.Join(dir, "heap.pprof")); err != nil || st.Size() == 0 {
		t.Errorf("heap profile: %v", err)
	}
}

// field is the MiB figure on the line that starts with name.
func field(text, name string) float64 {
	for line := range strings.SplitSeq(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSuffix(rest, " MiB"), 64)
			return v
		}
	}
	return 0
}
