// Package spool is the durable delivery mode: every accepted record is appended to a local
// write-ahead log (tidwall/wal) and EMQX is answered only once the append is fsynced. Appends
// that arrive while an fsync is running are written together in the next group (group
// commit: one write and one fsync per group, all its callers answered at once); the
// committer first lets the calls already running on the core reach Append. A shipper drains the log
// to Kafka in append order (so per vehicle order holds) and releases what Kafka
// acknowledged, about once a second. The log is a sequence of tidwall/wal logs ("parts",
// one directory each, named by its first index): the committer appends to the newest, and a
// release starts a new one and deletes the older parts Kafka acknowledged whole, so it
// never rewrites data nor waits for a commit (tidwall/wal's own TruncateFront rewrites and
// fsyncs the rest of the segment holding the index, under the lock every write takes). The
// log survives Kafka outages, process restarts and SIGKILL; a torn tail (a write cut short
// by power loss) is cut at the next Open, and only unacknowledged appends can be in it.
// After a crash, records of the parts not yet deleted are shipped again (at-least-once):
// up to about two release intervals of acknowledged traffic.
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
	"strings"
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
	Metrics      *Metrics
	Log          *slog.Logger
}

// group is the appends that one write and one fsync make durable (group commit). Its
// appenders all wait on done, closed once err is set.
type group struct {
	datas [][]byte
	done  chan struct{}
	err   error
}

func newGroup() *group { return &group{done: make(chan struct{})} }

// part is one tidwall/wal log holding a run of the spool's indexes from first on. A part is
// never truncated: it is deleted whole once every index in it is released.
type part struct {
	dir   string // the spool's directory itself for a spool written before parts existed
	first uint64
	log   *wal.Log
}

// Spool is the durable queue.
type Spool struct {
	o  Options
	wo *wal.Options

	// wmu is held by the committer while it writes to the newest part, and by Release while
	// it replaces the newest part, so that it never replaces one mid-write.
	wmu sync.Mutex
	// pmu guards parts and the bounds; never held across a disk operation. Order: wmu, pmu.
	pmu   sync.Mutex
	parts []*part // oldest first; the committer appends to the last
	first uint64  // lowest index not released
	last  uint64  // highest index written

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
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool dir: %w", err)
	}
	s := &Spool{o: o, wo: &wal.Options{SegmentSize: o.SegmentBytes, AllowEmpty: true, DirPerms: 0o750, FilePerms: 0o640},
		pending: newGroup(), kick: make(chan struct{}, 1), room: make(chan struct{}), written: make(chan struct{}), commitDone: make(chan struct{})}
	if err := s.openParts(); err != nil {
		s.closeParts(s.parts)
		return nil, fmt.Errorf("open spool %s: %w", o.Dir, err)
	}
	s.bytes = dirSize(o.Dir)
	if first, last, _ := s.Bounds(); last >= first {
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
			err := s.write(&batch, g.datas)
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

// write appends datas to the newest part in one write and one fsync.
func (s *Spool) write(batch *wal.Batch, datas [][]byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	p := s.newest()
	last, err := p.log.LastIndex()
	if err != nil {
		return err
	}
	for i, d := range datas {
		batch.Write(last+uint64(i)+1, d)
	}
	start := time.Now()
	err = p.log.WriteBatch(batch)
	s.o.Metrics.batch(len(datas), time.Since(start))
	if last, lerr := p.log.LastIndex(); lerr == nil { // a failed batch may have written part of it
		s.pmu.Lock()
		s.last = last
		s.pmu.Unlock()
	}
	return err
}

func (s *Spool) newest() *part {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return s.parts[len(s.parts)-1]
}

// Bounds returns the first and last index held; last < first when empty.
func (s *Spool) Bounds() (first, last uint64, err error) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return s.first, s.last, nil
}

// Written returns a channel closed after the next durable batch, for the shipper to wait on.
func (s *Spool) Written() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written
}

// Read returns the entry at index.
func (s *Spool) Read(index uint64) (*Entry, error) {
	s.pmu.Lock()
	i := len(s.parts) - 1
	for i > 0 && s.parts[i].first > index {
		i--
	}
	p := s.parts[i]
	s.pmu.Unlock()
	data, err := p.log.Read(index)
	if err != nil {
		return nil, fmt.Errorf("spool read %d: %w", index, err)
	}
	var e Entry
	if err := avro.Unmarshal(entrySchema, data, &e); err != nil {
		return nil, fmt.Errorf("spool decode %d: %w", index, err)
	}
	return &e, nil
}

// Release drops every entry before index: Kafka has acknowledged them. It starts a new part
// if the newest holds released entries, and deletes the parts that hold only released ones.
func (s *Spool) Release(index uint64) error {
	s.pmu.Lock()
	if index <= s.first {
		s.pmu.Unlock()
		return nil
	}
	if index > s.last+1 {
		last := s.last
		s.pmu.Unlock()
		return fmt.Errorf("spool release to %d: past the last index %d", index, last)
	}
	s.first = index
	s.pmu.Unlock()
	if err := s.rotate(index); err != nil {
		return fmt.Errorf("spool release to %d: %w", index, err)
	}
	s.pmu.Lock()
	n := 0 // parts[:n] hold only released entries
	for n < len(s.parts)-1 && s.parts[n+1].first <= s.first {
		n++
	}
	dropped := s.parts[:n]
	s.parts = append([]*part(nil), s.parts[n:]...)
	s.pmu.Unlock()
	var errs []error
	for _, p := range dropped {
		errs = append(errs, p.remove())
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
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spool release to %d: %w", index, err)
	}
	return nil
}

// rotate starts a new newest part if the newest holds entries below index. It waits for
// the commit running, if any; creating a part is a few metadata operations, no fsync.
func (s *Spool) rotate(index uint64) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.pmu.Lock()
	newest, next := s.parts[len(s.parts)-1], s.last+1
	s.pmu.Unlock()
	if newest.first >= index || newest.first >= next {
		return nil
	}
	p, err := createPart(s.o.Dir, next, s.wo)
	if err != nil {
		return err
	}
	s.pmu.Lock()
	s.parts = append(s.parts, p)
	s.pmu.Unlock()
	return nil
}

// openParts opens the parts found in the spool's directory, oldest first, or creates the
// first. Segment files in the directory itself are a spool written before parts existed:
// they are its oldest part. Leftovers of a part's creation or deletion are removed.
func (s *Spool) openParts() error {
	ents, err := os.ReadDir(s.o.Dir)
	if err != nil {
		return fmt.Errorf("read spool dir: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		switch {
		case e.IsDir() && (strings.HasSuffix(n, tmpSuffix) || strings.HasSuffix(n, delSuffix)):
			if err := os.RemoveAll(filepath.Join(s.o.Dir, n)); err != nil {
				return fmt.Errorf("remove %s: %w", n, err)
			}
		case !e.IsDir() && isIndexName(n) && len(s.parts) == 0:
			if err := s.openPart(s.o.Dir); err != nil {
				return err
			}
		}
	}
	for _, e := range ents {
		if e.IsDir() && isIndexName(e.Name()) && len(e.Name()) == indexNameLen {
			if err := s.openPart(filepath.Join(s.o.Dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if len(s.parts) == 0 {
		p, err := createPart(s.o.Dir, 1, s.wo)
		if err != nil {
			return err
		}
		s.parts = append(s.parts, p)
	}
	s.first = s.parts[0].first
	return nil
}

// openPart opens the part in dir as the newest, cutting a torn tail.
func (s *Spool) openPart(dir string) error {
	l, err := wal.Open(dir, s.wo)
	if errors.Is(err, wal.ErrCorrupt) {
		// A torn tail: the last write did not finish (power loss, a full disk). Its
		// appends were never acknowledged, since each waits for its group's fsync.
		var cut int64
		if cut, err = cutTornTail(dir); err == nil {
			s.o.Log.Warn("spool tail was torn; cut to its last whole record", "dir", dir, "bytes_dropped", cut)
			l, err = wal.Open(dir, s.wo)
		}
	}
	if err != nil {
		return fmt.Errorf("open part %s: %w", dir, err)
	}
	p := &part{dir: dir, log: l}
	last, err := l.LastIndex()
	if err == nil {
		p.first, err = l.FirstIndex()
	}
	if err == nil && len(s.parts) > 0 && p.first != s.last+1 {
		err = fmt.Errorf("starts at %d, the part before it ends at %d: %w", p.first, s.last, wal.ErrCorrupt)
	}
	if err != nil {
		_ = l.Close()
		return fmt.Errorf("open part %s: %w", dir, err)
	}
	s.parts = append(s.parts, p)
	s.last = last
	return nil
}

const (
	indexNameLen = 20 // tidwall/wal's segment names, and the parts': an index in 20 digits
	tmpSuffix    = ".tmp"
	delSuffix    = ".del"
)

func isIndexName(n string) bool {
	if len(n) < indexNameLen {
		return false
	}
	for _, c := range n[:indexNameLen] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// createPart creates an empty part whose first index is first. tidwall/wal takes a log's
// first index from the name of its first segment file, so the part starts as an empty file
// of that name; it is built under a temporary name and renamed, so a crash never leaves a
// part without it. Like tidwall/wal's own new segments, the new names are not fsynced: the
// first commit's fsync of the file commits them with it on a journaling file system.
func createPart(root string, first uint64, wo *wal.Options) (*part, error) {
	name := fmt.Sprintf("%0*d", indexNameLen, first)
	dir := filepath.Join(root, name)
	tmp := dir + tmpSuffix
	if err := os.MkdirAll(tmp, wo.DirPerms); err != nil {
		return nil, fmt.Errorf("create part: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(tmp, name), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, wo.FilePerms)
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("create part: %w", err)
	}
	l, err := wal.Open(dir, wo)
	if err != nil {
		return nil, fmt.Errorf("open new part: %w", err)
	}
	return &part{dir: dir, first: first, log: l}, nil
}

// remove closes the part and deletes it: renamed first, so that a crash leaves it whole or
// marked for deletion. A part in the spool's directory itself loses its segment files,
// oldest first, as tidwall/wal's truncation does.
func (p *part) remove() error {
	if err := p.log.Close(); err != nil {
		return fmt.Errorf("close part %s: %w", p.dir, err)
	}
	if isIndexName(filepath.Base(p.dir)) {
		del := p.dir + delSuffix
		if err := os.Rename(p.dir, del); err != nil {
			return fmt.Errorf("remove part: %w", err)
		}
		return os.RemoveAll(del)
	}
	ents, err := os.ReadDir(p.dir)
	if err != nil {
		return fmt.Errorf("remove part: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() && isIndexName(e.Name()) {
			if err := os.Remove(filepath.Join(p.dir, e.Name())); err != nil {
				return fmt.Errorf("remove part: %w", err)
			}
		}
	}
	return nil
}

func (s *Spool) closeParts(parts []*part) error {
	var errs []error
	for _, p := range parts {
		errs = append(errs, p.log.Close())
	}
	return errors.Join(errs...)
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
	s.pmu.Lock()
	parts := s.parts
	s.pmu.Unlock()
	return s.closeParts(parts)
}

// cutTornTail truncates the newest segment of the log in dir after its last whole record
// and returns how many bytes it dropped. A record is tidwall/wal's binary format: a uvarint
// length, then that many bytes.
func cutTornTail(dir string) (int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("read spool dir: %w", err)
	}
	var tail string
	for _, e := range ents {
		if n := e.Name(); len(n) == indexNameLen && !e.IsDir() && isIndexName(n) && n > tail {
			tail = n
		}
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
