package spool

import (
	"fmt"
	"os"
	"path/filepath"
)

// tailFile is the spool's own read-only handle on the log's tail segment, for the hold
// syncer to fsync after tidwall/wal wrote a group with NoSync. tidwall/wal names a segment
// by its first index (20 digits), so the tail is the greatest name. The handle is replaced:
//   - after a release, which may rewrite the tail into a new file (stale);
//   - once the file has reached the segment size: tidwall/wal then starts a new segment,
//     and it fsyncs the one it closes itself (cycle).
//
// Every use is under Spool.walMu, with the log's writes and truncations.
type tailFile struct {
	dir          string
	segmentBytes int64
	f            *os.File
	stale        bool
}

// fd returns the descriptor of the current tail segment.
func (t *tailFile) fd() (int, error) {
	if t.f != nil && !t.stale {
		fi, err := t.f.Stat()
		if err != nil {
			return 0, fmt.Errorf("spool tail: %w", err)
		}
		if fi.Size() < t.segmentBytes {
			return int(t.f.Fd()), nil
		}
	}
	if err := t.reopen(); err != nil {
		return 0, err
	}
	return int(t.f.Fd()), nil
}

func (t *tailFile) reopen() error {
	tail, err := newestSegmentName(t.dir)
	if err != nil {
		return fmt.Errorf("spool tail: %w", err)
	}
	if tail == "" {
		return fmt.Errorf("spool tail: no segment in %s", t.dir)
	}
	f, err := os.Open(filepath.Join(t.dir, tail))
	if err != nil {
		return fmt.Errorf("spool tail: %w", err)
	}
	t.close()
	t.f, t.stale = f, false
	return nil
}

func (t *tailFile) close() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
}

// newestSegmentName is the name of the log's tail segment in dir: tidwall/wal names each
// segment by its first index in 20 digits. "" when there is none.
func newestSegmentName(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("read spool dir: %w", err)
	}
	var tail string
	for _, e := range ents {
		if n := e.Name(); len(n) == 20 && !e.IsDir() && n > tail {
			tail = n
		}
	}
	return tail, nil
}
