package spool

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/iov-platform/iov/kit/kafkasink"
)

// Producer is what the shipper needs from the Kafka sink. Its producer must retry
// transient failures without limit (message.timeout.ms=0), so a delivery error is
// permanent (e.g. record too large, topic gone).
type Producer interface {
	ProduceCallback(ctx context.Context, rec kafkasink.Record, done func(error)) error
	Fatal() error
}

// Shipper drains the spool to Kafka in append order.
type Shipper struct {
	sp         *Spool
	prod       Producer
	deadLetter string
	log        *slog.Logger

	mu        sync.Mutex
	next      uint64          // next index to hand to the producer
	settled   map[uint64]bool // settled out of order, above the watermark
	watermark uint64          // every index <= watermark is settled
	changed   chan struct{}   // closed and replaced when the watermark moves
	released  time.Time       // last release, on Run's goroutine
}

// NewShipper ships sp's entries through prod; entries Kafka refuses permanently are
// written to deadLetter with the reason in headers.
func NewShipper(sp *Spool, prod Producer, deadLetter string, log *slog.Logger) (*Shipper, error) {
	first, _, err := sp.Bounds()
	if err != nil {
		return nil, err
	}
	return &Shipper{sp: sp, prod: prod, deadLetter: deadLetter, log: log,
		next: first, watermark: first - 1, settled: map[uint64]bool{}, changed: make(chan struct{})}, nil
}

// releaseEvery is how often the shipper truncates what Kafka acknowledged while the spool
// is less than half full. A truncation rewrites the rest of the tail segment, fsyncs it and
// holds the log's lock meanwhile, so every append arriving then waits for one more fsync:
// every 100 ms that was the fixed-rate p99. After a crash, up to this much acknowledged
// traffic is shipped again.
const releaseEvery = time.Second

// Run ships until ctx ends or the producer turns fatal. It releases shipped entries from
// the spool as Kafka acknowledges them: every releaseEvery, every 100 ms once the spool is
// half full.
func (sh *Shipper) Run(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	defer sh.release()
	for {
		if err := sh.prod.Fatal(); err != nil {
			return fmt.Errorf("spool shipper stopped: %w", err)
		}
		written := sh.sp.Written()
		_, last, err := sh.sp.Bounds()
		if err != nil {
			return err
		}
		if sh.next > last {
			select {
			case <-ctx.Done():
				return nil
			case <-written:
			case <-tick.C:
				sh.maybeRelease()
			}
			continue
		}
		select {
		case <-tick.C:
			sh.maybeRelease()
		default:
		}
		if err := sh.ship(ctx, sh.next); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		sh.next++
	}
}

func (sh *Shipper) ship(ctx context.Context, idx uint64) error {
	e, err := sh.sp.Read(idx)
	if err != nil {
		// An unreadable entry cannot be shipped; keeping it would block the spool forever.
		sh.log.Error("spool entry unreadable, skipping", "index", idx, "err", err)
		sh.sp.o.Metrics.shipErr()
		sh.settle(idx)
		return nil
	}
	rec := kafkasink.Record{Topic: e.Topic, Key: e.Key, Value: e.Value, Headers: make([]kafka.Header, len(e.Headers))}
	for i, h := range e.Headers {
		rec.Headers[i] = kafka.Header{Key: h.Key, Value: h.Value}
	}
	return sh.prod.ProduceCallback(ctx, rec, func(err error) {
		if err == nil {
			sh.sp.o.Metrics.shipped("delivered")
			sh.settle(idx)
			return
		}
		sh.deadLetterEntry(ctx, idx, rec, err)
	})
}

// deadLetterEntry runs on the producer's event loop: it must not block.
func (sh *Shipper) deadLetterEntry(ctx context.Context, idx uint64, rec kafkasink.Record, cause error) {
	sh.log.Error("kafka refused spooled record; dead-lettering it", "index", idx, "topic", rec.Topic, "key", string(rec.Key), "err", cause)
	dl := kafkasink.Record{Topic: sh.deadLetter, Key: rec.Key, Value: rec.Value,
		Headers: append(rec.Headers, kafka.Header{Key: "iov.error", Value: []byte(cause.Error())}, kafka.Header{Key: "iov.original.topic", Value: []byte(rec.Topic)})}
	go func() {
		err := sh.prod.ProduceCallback(ctx, dl, func(err error) {
			if err != nil {
				sh.log.Error("dead-letter of spooled record failed; it stays in the spool", "index", idx, "err", err)
				sh.sp.o.Metrics.shipErr()
				return
			}
			sh.sp.o.Metrics.shipped("dead_lettered")
			sh.settle(idx)
		})
		if err != nil {
			sh.log.Error("dead-letter of spooled record failed; it stays in the spool", "index", idx, "err", err)
			sh.sp.o.Metrics.shipErr()
		}
	}()
}

func (sh *Shipper) settle(idx uint64) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.settled[idx] = true
	moved := false
	for sh.settled[sh.watermark+1] {
		delete(sh.settled, sh.watermark+1)
		sh.watermark++
		moved = true
	}
	if moved {
		close(sh.changed)
		sh.changed = make(chan struct{})
	}
}

// maybeRelease releases if releaseEvery has passed since the last release or the spool is
// half full.
func (sh *Shipper) maybeRelease() {
	if time.Since(sh.released) >= releaseEvery || sh.sp.halfFull() {
		sh.released = time.Now()
		sh.release()
	}
}

// release truncates the spool below the watermark.
func (sh *Shipper) release() {
	sh.mu.Lock()
	upTo := sh.watermark + 1
	sh.mu.Unlock()
	if err := sh.sp.Release(upTo); err != nil {
		sh.log.Error("spool release failed", "err", err)
	}
}

// Pending is the number of spooled records not yet settled with Kafka.
func (sh *Shipper) Pending() uint64 {
	_, last, err := sh.sp.Bounds()
	if err != nil {
		return 0
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if last <= sh.watermark {
		return 0
	}
	return last - sh.watermark
}

// WaitEmpty blocks until every spooled record is settled or ctx ends. Use it while
// draining, after no more appends can arrive.
func (sh *Shipper) WaitEmpty(ctx context.Context) error {
	for {
		sh.mu.Lock()
		changed := sh.changed
		sh.mu.Unlock()
		if sh.Pending() == 0 {
			sh.release()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("spool still holds %d records: %w", sh.Pending(), context.Cause(ctx))
		case <-changed:
		}
	}
}
