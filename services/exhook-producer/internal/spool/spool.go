// Package spool is the durable delivery mode: every accepted record is appended to a local
// write-ahead log (tidwall/wal) and EMQX is answered only once the append is fsynced. Appends
// that arrive while an fsync is running are written together in the next group (group
// commit: one write and one fsync per group, all its callers answered at once); the
// committer first lets the calls already running on the core reach Append. A shipper drains the log
// to Kafka in append order (so per vehicle order holds) and truncates what Kafka
// acknowledged, about once a second. The log survives Kafka outages, process restarts and
// SIGKILL; a torn tail (a write cut short by power loss) is cut at the next Open, and only
// unacknowledged appends can be in it. After a crash, records between the last truncation
// and the crash are shipped again (at-least-once).
package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/tidwall/wal"

	"github.com/iov-platform/iov/kit/kafkasink"
)

// Full-spool policies.
const (
	WhenFullReject = "reject" // fail the hook call at once
	WhenFullBlock  = "block"  // wait for the shipper to make room, until the call's deadline
)

// How the committer waits for a group's fsync (Options.SyncWait).
const (
	// SyncWaitRelease: fsync in the committer, which gives up its P meanwhile, so the core
	// runs other calls; it comes back through the run queue.
	SyncWaitRelease = "release"
	// SyncWaitHold: fsync on a helper thread while the committer keeps its P for up to
	// HoldBound, then waits without it. A shorter tail on a disk that syncs in well under
	// HoldBound; Linux with cgo only.
	SyncWaitHold = "hold"
)

// HoldBound is the longest the committer keeps its P waiting for one fsync (SyncWaitHold).
const HoldBound = time.Millisecond

// ErrFull is returned when the spool is at its size limit.
var ErrFull = errors.New("spool is full")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("spool is closed")

// Entry is one record waiting for Kafka.
type Entry struct {
	Topic      string   `avro:"topic"`
	Key        []byte   `avro:"key"`
	Value      []byte   `avro:"value"`
	Headers    []Header `avro:"headers"`
	AcceptedAt int64    `avro:"accepted_at"` // unix millis
}

// NewEntry is the spool entry of rec, accepted at (unix millis).
func NewEntry(rec kafkasink.Record, at int64) *Entry {
	e := &Entry{Topic: rec.Topic, Key: rec.Key, Value: rec.Value, AcceptedAt: at, Headers: make([]Header, len(rec.Headers))}
	for i, h := range rec.Headers {
		e.Headers[i] = Header{Key: h.Key, Value: h.Value}
	}
	return e
}

// Header is a Kafka record header.
type Header struct {
	Key   string `avro:"key"`
	Value []byte `avro:"value"`
}

// entrySchema is the on-disk format of an entry. Changing it needs a migration of spools
// that may still hold entries.
var entrySchema = avro.MustParse(`{
  "type": "record", "name": "SpoolEntry", "namespace": "io.iovplatform.internal.v1",
  "fields": [
    {"name": "topic", "type": "string"},
    {"name": "key", "type": "bytes"},
    {"name": "value", "type": "bytes"},
    {"name": "headers", "type": {"type": "array", "items": {
      "type": "record", "name": "Header",
      "fields": [{"name": "key", "type": "string"}, {"name": "value", "type": "bytes"}]}}},
    {"name": "accepted_at", "type": "long"}
  ]}`)

// Options configures Open.
type Options struct {
	Dir      string
	MaxBytes int64  // size limit of the log on disk
	WhenFull string // reject | block
	// SegmentBytes is the WAL segment size (default 16 MiB).
	SegmentBytes int
	// SyncWait is SyncWaitRelease (default) or SyncWaitHold.
	SyncWait string
	Metrics  *Metrics
	Log      *slog.Logger
}

// group is the appends that one write and one fsync make durable (group commit). Its
// appenders all wait on done, closed once err is set.
type group struct {
	datas [][]byte
	done  chan struct{}
	err   error
}

func newGroup() *group { return &group{done: make(chan struct{})} }

// Spool is the durable queue.
type Spool struct {
	o   Options
	wal *wal.Log

	// walMu orders the log's writes and their fsync (hold) with its truncations, so that
	// the tail handle is never that of a file a release replaced.
	walMu sync.Mutex
	hold  *holdSyncer // nil: tidwall/wal fsyncs in WriteBatch
	tail  tailFile

	mu      sync.Mutex
	pending *group // the group the next append joins
	closed  bool
	bytes   int64 // on-disk size, approximate between truncations
	kick    chan struct{}
	room    chan struct{} // closed and replaced when truncation frees space
	written chan struct{} // closed and replaced after each durable batch

	commitDone chan struct{}
}

// Open opens or creates the spool in o.Dir. Entries left by a previous run are shipped
// first.
func Open(o Options) (*Spool, error) {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 16 << 20
	}
	if o.WhenFull == "" {
		o.WhenFull = WhenFullReject
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	switch o.SyncWait {
	case "":
		o.SyncWait = SyncWaitRelease
	case SyncWaitRelease, SyncWaitHold:
	default:
		return nil, fmt.Errorf("spool sync wait %q: want %s or %s", o.SyncWait, SyncWaitRelease, SyncWaitHold)
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool dir: %w", err)
	}
	wo := &wal.Options{NoSync: o.SyncWait == SyncWaitHold, SegmentSize: o.SegmentBytes, AllowEmpty: true, DirPerms: 0o750, FilePerms: 0o640}
	l, err := wal.Open(o.Dir, wo)
	if errors.Is(err, wal.ErrCorrupt) {
		// A torn tail: the last write did not finish (power loss, a full disk). Its
		// appends were never acknowledged, since each waits for its group's fsync.
		var cut int64
		if cut, err = cutTornTail(o.Dir); err == nil {
			o.Log.Warn("spool tail was torn; cut to its last whole record", "dir", o.Dir, "bytes_dropped", cut)
			l, err = wal.Open(o.Dir, wo)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open spool %s: %w", o.Dir, err)
	}
	var hold *holdSyncer
	if o.SyncWait == SyncWaitHold {
		if hold, err = newHoldSyncer(HoldBound); err != nil {
			l.Close()
			return nil, err
		}
	}
	s := &Spool{o: o, wal: l, hold: hold, tail: tailFile{dir: o.Dir, segmentBytes: int64(o.SegmentBytes)}, pending: newGroup(), kick: make(chan struct{}, 1), room: make(chan struct{}), written: make(chan struct{}), commitDone: make(chan struct{})}
	s.bytes = dirSize(o.Dir)
	first, last, _ := s.Bounds()
	if last >= first {
		o.Log.Info("spool holds records from a previous run", "dir", o.Dir, "records", last-first+1, "bytes", s.bytes)
	}
	s.updateGauges()
	go s.committer()
	return s, nil
}

// Append writes the entry and returns once it is durable on disk.
func (s *Spool) Append(ctx context.Context, e *Entry) error {
	data, err := avro.Marshal(entrySchema, e)
	if err != nil {
		return fmt.Errorf("spool encode: %w", err)
	}
	var g *group
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return ErrClosed
		}
		if s.o.MaxBytes <= 0 || s.bytes+int64(len(data)) <= s.o.MaxBytes {
			s.bytes += int64(len(data))
			g = s.pending
			g.datas = append(g.datas, data)
			select { // under the lock: Close cannot close kick in between
			case s.kick <- struct{}{}:
			default:
			}
			s.mu.Unlock()
			break
		}
		room := s.room
		s.mu.Unlock()
		if s.o.WhenFull == WhenFullReject {
			s.o.Metrics.appends("full")
			return fmt.Errorf("%w (%d bytes limit)", ErrFull, s.o.MaxBytes)
		}
		select {
		case <-room:
		case <-ctx.Done():
			s.o.Metrics.appends("full")
			return fmt.Errorf("%w: waited for room: %w", ErrFull, context.Cause(ctx))
		}
	}
	// The append cannot be withdrawn once queued: wait for its fate even past ctx, so a
	// success is never reported as an error (the committer is bounded by disk speed).
	<-g.done
	if err = g.err; err != nil {
		s.o.Metrics.appends("error")
		return fmt.Errorf("spool append: %w", err)
	}
	s.o.Metrics.appends("ok")
	return nil
}

// committer writes pending appends in groups, one write and one fsync per group.
func (s *Spool) committer() {
	defer close(s.commitDone)
	var batch wal.Batch
	for range s.kick {
		for {
			// The append that kicked is waiting; let the calls that are already runnable
			// reach Append first, so that they join this group instead of waiting for the
			// next fsync. Without it the committer runs right after the first appender
			// parks (Go's runnext) and most groups hold a few records, each fsync costing
			// ~100 µs of CPU. The price is latency: the yield lasts until the core's
			// runnable goroutines have run (services/exhook-producer/README.md, "Spool
			// round").
			runtime.Gosched()
			s.mu.Lock()
			g := s.pending
			if len(g.datas) == 0 {
				s.mu.Unlock()
				break
			}
			s.pending = newGroup()
			s.mu.Unlock()
			last, err := s.wal.LastIndex()
			if err == nil {
				for i, d := range g.datas {
					batch.Write(last+uint64(i)+1, d)
				}
				start := time.Now()
				err = s.write(&batch)
				s.o.Metrics.batch(len(g.datas), time.Since(start))
			}
			batch.Clear()
			g.err = err
			close(g.done)
			if err != nil {
				s.o.Log.Error("spool write failed", "dir", s.o.Dir, "records", len(g.datas), "err", err)
			}
			s.mu.Lock()
			close(s.written)
			s.written = make(chan struct{})
			s.mu.Unlock()
			s.updateGauges()
		}
	}
}

// Bounds returns the first and last index held; last < first when empty.
func (s *Spool) Bounds() (first, last uint64, err error) {
	if first, err = s.wal.FirstIndex(); err != nil {
		return 0, 0, err
	}
	if last, err = s.wal.LastIndex(); err != nil {
		return 0, 0, err
	}
	return first, last, nil
}

// Written returns a channel closed after the next durable batch, for the shipper to wait on.
func (s *Spool) Written() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written
}

// Read returns the entry at index.
func (s *Spool) Read(index uint64) (*Entry, error) {
	data, err := s.wal.Read(index)
	if err != nil {
		return nil, fmt.Errorf("spool read %d: %w", index, err)
	}
	var e Entry
	if err := avro.Unmarshal(entrySchema, data, &e); err != nil {
		return nil, fmt.Errorf("spool decode %d: %w", index, err)
	}
	return &e, nil
}

// Release drops every entry before index: Kafka has acknowledged them.
func (s *Spool) Release(index uint64) error {
	first, err := s.wal.FirstIndex()
	if err != nil || index <= first {
		return err
	}
	s.walMu.Lock()
	err = s.wal.TruncateFront(index)
	s.tail.stale = true
	s.walMu.Unlock()
	if err != nil {
		return fmt.Errorf("spool truncate to %d: %w", index, err)
	}
	size := dirSize(s.o.Dir)
	s.mu.Lock()
	// Appends accepted but not yet written are counted in s.bytes and not on disk yet.
	for _, d := range s.pending.datas {
		size += int64(len(d))
	}
	s.bytes = size
	close(s.room)
	s.room = make(chan struct{})
	s.mu.Unlock()
	s.updateGauges()
	return nil
}

// halfFull reports whether the spool holds more than half its size limit.
func (s *Spool) halfFull() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.o.MaxBytes > 0 && 2*s.bytes > s.o.MaxBytes
}

func (s *Spool) updateGauges() {
	first, last, err := s.Bounds()
	if err != nil {
		return
	}
	s.mu.Lock()
	b := s.bytes
	s.mu.Unlock()
	entries := int64(0)
	if last >= first {
		entries = int64(last - first + 1)
	}
	s.o.Metrics.gauges(entries, b, s.o.MaxBytes)
}

// Close stops accepting appends, waits for queued ones, and closes the log. Entries not yet
// released stay on disk for the next Open.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.kick)
	s.mu.Unlock()
	<-s.commitDone
	if s.hold != nil {
		s.hold.close()
	}
	s.walMu.Lock()
	s.tail.close()
	s.walMu.Unlock()
	return s.wal.Close()
}

// write makes the batch durable: tidwall/wal's own fsync (release), or the hold syncer's
// fsync of the tail segment.
func (s *Spool) write(b *wal.Batch) error {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if err := s.wal.WriteBatch(b); err != nil || s.hold == nil {
		return err
	}
	fd, err := s.tail.fd()
	if err != nil {
		return err
	}
	return s.hold.sync(fd)
}

// cutTornTail truncates the newest segment of the log in dir after its last whole record
// and returns how many bytes it dropped. A record is tidwall/wal's binary format: a uvarint
// length, then that many bytes.
func cutTornTail(dir string) (int64, error) {
	tail, err := newestSegmentName(dir)
	if err != nil {
		return 0, err
	}
	if tail == "" {
		return 0, fmt.Errorf("no segment to repair: %w", wal.ErrCorrupt)
	}
	path := filepath.Join(dir, tail)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read tail segment: %w", err)
	}
	whole := 0
	for whole < len(data) {
		size, n := binary.Uvarint(data[whole:])
		if n <= 0 || uint64(len(data)-whole-n) < size {
			break
		}
		whole += n + int(size)
	}
	if whole == len(data) {
		return 0, fmt.Errorf("tail segment %s is whole: %w", tail, wal.ErrCorrupt)
	}
	if err := os.Truncate(path, int64(whole)); err != nil {
		return 0, fmt.Errorf("cut torn tail: %w", err)
	}
	return int64(len(data) - whole), nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
