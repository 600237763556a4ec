package spool

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// crashChildDir names the spool directory of the child process in
// TestKillNineMidGroupKeepsEveryAcknowledgedAppend.
const crashChildDir = "SPOOL_CRASH_CHILD_DIR"

// crashChildReleases, set, has the child release entries every millisecond meanwhile, as a
// shipper does, so that the kill also crosses truncations: every entry below the newest
// acknowledged one of each writer (below the last index each saw before that append).
const crashChildReleases = "SPOOL_CRASH_CHILD_RELEASES"

const crashWriters = 32

// TestCrashChild is the process that TestKillNineMidGroupKeepsEveryAcknowledgedAppend
// kills: crashWriters goroutines ("vehicles") append one entry after another, each waiting
// for the last to be durable, as the hook does, and print every acknowledged one.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildDir)
	if dir == "" {
		t.Skip("the child process of TestKillNineMidGroupKeepsEveryAcknowledgedAppend")
	}
	sp, err := Open(Options{Dir: dir, Log: quiet(), SegmentBytes: 4096, SyncWait: testSyncWait})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var below [crashWriters]atomic.Uint64 // per writer: its newest acknowledged entry is above this index
	if os.Getenv(crashChildReleases) != "" {
		go func() {
			for {
				upTo := below[0].Load()
				for w := range below {
					upTo = min(upTo, below[w].Load())
				}
				if first, _, _ := sp.Bounds(); upTo > first {
					if err := sp.Release(upTo); err != nil {
						fmt.Println("release:", err)
						os.Exit(2)
					}
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Go(func() {
			for seq := 0; ; seq++ {
				e := &Entry{Topic: "t", Key: fmt.Appendf(nil, "V%02d", w), Value: fmt.Appendf(nil, "%d %d", w, seq)}
				_, last, _ := sp.Bounds()
				if err := sp.Append(context.Background(), e); err != nil {
					fmt.Println("append:", err)
					os.Exit(2)
				}
				below[w].Store(last) // Release(last) keeps index last and above
				mu.Lock()
				fmt.Fprintf(out, "%d %d\n", w, seq)
				_ = out.Flush() // acknowledged: the parent may count it from here on
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestKillNineMidGroupKeepsEveryAcknowledgedAppend kills a process with SIGKILL while many
// groups are being committed (several segments of 4 KiB, so segment changes are crossed
// too), reopens its spool and checks the spool's promise: every acknowledged append is
// there, each writer's entries are in its order with no gap and no duplicate, and appends
// continue after the last index. With releases, each writer's oldest entries may be gone,
// but only a prefix of them.
func TestKillNineMidGroupKeepsEveryAcknowledgedAppend(t *testing.T) {
	if testing.Short() {
		t.Skip("runs and kills a child process")
	}
	t.Run("appends", func(t *testing.T) { killNineMidGroup(t, false) })
	t.Run("appends and releases", func(t *testing.T) { killNineMidGroup(t, true) })
}

func killNineMidGroup(t *testing.T, releases bool) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildDir+"="+dir)
	if releases {
		cmd.Env = append(cmd.Env, crashChildReleases+"=1")
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := make([]int, crashWriters) // highest acknowledged seq + 1 per writer
	sc := bufio.NewScanner(stdout)
	total := 0
	killed := false
	for sc.Scan() {
		w, seq, ok := parseAck(sc.Text())
		if !ok {
			t.Fatalf("child: %s", sc.Text())
		}
		if seq+1 > acked[w] {
			acked[w] = seq + 1
		}
		if total++; total == 3000 && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true // keep reading what the child printed before it died
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("child ended after %d acknowledgements without being killed", total)
	}

	sp, _ := open(t, dir, 0, "")
	defer sp.Close()
	first, last, err := sp.Bounds()
	if err != nil || (first != 1) != releases {
		t.Fatalf("bounds %d..%d: %v", first, last, err)
	}
	next := make([]int, crashWriters) // next seq expected per writer
	seen := make([]bool, crashWriters)
	for i := first; i <= last; i++ {
		e, err := sp.Read(i)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		w, seq, ok := parseAck(string(e.Value))
		if !ok || string(e.Key) != fmt.Sprintf("V%02d", w) {
			t.Fatalf("entry %d = %q / %q", i, e.Key, e.Value)
		}
		if !seen[w] && releases {
			next[w], seen[w] = seq, true // its older entries were released
		}
		if seq != next[w] {
			t.Fatalf("entry %d: writer %d seq %d, want %d (gap, duplicate or reorder)", i, w, seq, next[w])
		}
		next[w]++
	}
	for w := range crashWriters {
		// A writer has at most one append in flight: the spool holds what it acknowledged
		// and perhaps the one the kill cut short.
		if next[w] < acked[w] || next[w] > acked[w]+1 {
			t.Fatalf("writer %d: spool holds seq 0..%d, acknowledged 0..%d", w, next[w]-1, acked[w]-1)
		}
	}
	if err := sp.Append(context.Background(), entry(0)); err != nil {
		t.Fatal(err)
	}
	if _, l, _ := sp.Bounds(); l != last+1 {
		t.Fatalf("append after reopen at %d, want %d", l, last+1)
	}
	t.Logf("%d acknowledged before the kill was seen, %d entries in the spool", total, last)
}

func parseAck(s string) (w, seq int, ok bool) {
	a, b, found := strings.Cut(s, " ")
	if !found {
		return 0, 0, false
	}
	w, err1 := strconv.Atoi(a)
	seq, err2 := strconv.Atoi(b)
	return w, seq, err1 == nil && err2 == nil && w >= 0 && w < crashWriters && seq >= 0
}

// TestTornTailIsCutAtOpen: a write cut short (power loss, full disk) leaves part of a
// record at the end of the newest segment. The spool opens, keeps every whole record,
// and appends after them.
func TestTornTailIsCutAtOpen(t *testing.T) {
	for name, torn := range map[string][]byte{
		"torn data":   {100, 'p', 'a', 'r'}, // length 100, 3 bytes of it
		"torn length": {0x80},               // a uvarint cut in its middle
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			sp, _ := open(t, dir, 0, "")
			for i := range 20 {
				if err := sp.Append(context.Background(), entry(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := sp.Close(); err != nil {
				t.Fatal(err)
			}
			seg := newestSegment(t, dir)
			f, err := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(torn); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			sp, _ = open(t, dir, 0, "")
			if first, last, err := sp.Bounds(); err != nil || first != 1 || last != 20 {
				t.Fatalf("bounds after the repair %d..%d %v, want 1..20", first, last, err)
			}
			if err := sp.Append(context.Background(), entry(20)); err != nil {
				t.Fatal(err)
			}
			if err := sp.Close(); err != nil {
				t.Fatal(err)
			}
			sp, _ = open(t, dir, 0, "")
			defer sp.Close()
			for i := range 21 {
				e, err := sp.Read(uint64(i + 1))
				if err != nil || string(e.Value) != fmt.Sprintf("value-%04d", i) {
					t.Fatalf("entry %d after the repair: %+v %v", i+1, e, err)
				}
			}
		})
	}
}

func newestSegment(t *testing.T, dir string) string {
	t.Helper()
	tail, err := newestSegmentName(dir)
	if err != nil || tail == "" {
		t.Fatalf("spool dir: newest segment %q, %v", tail, err)
	}
	return filepath.Join(dir, tail)
}
