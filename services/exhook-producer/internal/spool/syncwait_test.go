package spool

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestSuiteWithSyncWaitHold runs this package's tests again, crash tests included, with
// every spool's committer waiting through the hold syncer.
func TestSuiteWithSyncWaitHold(t *testing.T) {
	if testSyncWait != "" {
		t.Skip("this is the run it starts")
	}
	if !holdAvailable {
		t.Skip("hold needs Linux and cgo")
	}
	cmd := exec.Command(os.Args[0], "-test.count=1", "-test.run=.")
	cmd.Env = append(os.Environ(), "SPOOL_TEST_SYNC_WAIT="+SyncWaitHold)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("suite with syncWait hold: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "PASS") {
		t.Fatalf("suite with syncWait hold did not pass:\n%s", out)
	}
}

func TestOpenRefusesAnUnknownSyncWait(t *testing.T) {
	_, err := Open(Options{Dir: t.TempDir(), SyncWait: "spin", Log: quiet(), Metrics: NewMetrics(prometheus.NewRegistry())})
	if err == nil || !strings.Contains(err.Error(), `spool sync wait "spin"`) {
		t.Fatalf("Open: %v", err)
	}
}

func openHold(t *testing.T, dir string) *Spool {
	t.Helper()
	if !holdAvailable {
		t.Skip("hold needs Linux and cgo")
	}
	sp, err := Open(Options{Dir: dir, Log: quiet(), Metrics: NewMetrics(prometheus.NewRegistry()), SegmentBytes: 4096, SyncWait: SyncWaitHold})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// TestHoldSyncsTheNewestSegment: with syncWait hold, tidwall/wal writes without fsync and
// the spool fsyncs the tail segment itself. After every append the helper has run one more
// fsync, and the file it synced is the log's newest segment: first while the log grows
// across 4 KiB segments (tidwall/wal starts new ones), then with a release every 37 appends
// that keeps the last 3 entries (each rewrites the tail into a file of a new name).
func TestHoldSyncsTheNewestSegment(t *testing.T) {
	dir := t.TempDir()
	sp := openHold(t, dir)
	defer sp.Close()
	check := func(i int) string {
		t.Helper()
		before := sp.hold.syncs()
		if err := sp.Append(context.Background(), entry(i)); err != nil {
			t.Fatal(err)
		}
		if got := sp.hold.syncs(); got <= before {
			t.Fatalf("append %d: the helper ran no fsync (%d before, %d after)", i, before, got)
		}
		newest := newestSegment(t, dir)
		want, err := os.Stat(newest)
		if err != nil {
			t.Fatal(err)
		}
		sp.walMu.Lock()
		synced, err := sp.tail.f.Stat()
		sp.walMu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(synced, want) {
			t.Fatalf("append %d: synced %s, the newest segment is %s", i, synced.Name(), newest)
		}
		return newest
	}
	grown := map[string]bool{}
	for i := range 600 {
		grown[check(i)] = true
	}
	rewritten := map[string]bool{}
	for i := 600; i < 1000; i++ {
		rewritten[check(i)] = true
		if i%37 == 36 {
			_, last, _ := sp.Bounds()
			if err := sp.Release(last - 2); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(grown) < 4 || len(rewritten) < 10 {
		t.Fatalf("%d segments while growing, %d tails after releases: the test needs more", len(grown), len(rewritten))
	}
}

func TestHoldSyncer(t *testing.T) {
	if !holdAvailable {
		t.Skip("hold needs Linux and cgo")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Run("past the bound it waits in the poller, then skips the held wait", func(t *testing.T) {
		h, err := newHoldSyncer(0) // no held wait at all
		if err != nil {
			t.Fatal(err)
		}
		defer h.close()
		for i := range 3 {
			if _, err := f.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if err := h.sync(int(f.Fd())); err != nil {
				t.Fatal(err)
			}
			if got := h.syncs(); got != uint64(i+1) {
				t.Fatalf("syncs %d, want %d", got, i+1)
			}
		}
		if h.skip != skipAfterSlow-2 {
			t.Fatalf("skip %d after a slow sync and two more, want %d", h.skip, skipAfterSlow-2)
		}
	})
	t.Run("an fsync error reaches the committer and the helper goes on", func(t *testing.T) {
		h, err := newHoldSyncer(time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer h.close()
		if err := h.sync(-1); !errors.Is(err, syscall.EBADF) {
			t.Fatalf("sync of a bad descriptor: %v", err)
		}
		if err := h.sync(int(f.Fd())); err != nil {
			t.Fatalf("sync after an error: %v", err)
		}
	})
}

func TestCloseStopsTheSyncHelper(t *testing.T) {
	before := liveHelpers()
	sp := openHold(t, t.TempDir())
	if got := liveHelpers(); got != before+1 {
		t.Fatalf("helpers %d after Open, want %d", got, before+1)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for liveHelpers() != before {
		if time.Now().After(deadline) {
			t.Fatalf("helpers %d after Close, want %d", liveHelpers(), before)
		}
		time.Sleep(time.Millisecond)
	}
}
