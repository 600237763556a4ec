// Package consume is the consumer's application API: the decoded Record a handler gets, the
// Handler interface, and the Decoder that turns framed Avro into Go values.
//
// Application teams implement Handler (see LogHandler for the shape) and pass it to app.New
// in main.go; the engine package owns everything Kafka: the consumer group, retries,
// dead-lettering and offset commits.
package consume

import (
	"context"
	"errors"
	"time"
)

// Header is one Kafka record header. Keys may repeat.
type Header struct {
	Key   string
	Value []byte
}

// Record is one Kafka record with its value decoded.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       string // the vehicle id on the platform's topics
	Timestamp time.Time
	Headers   []Header
	SchemaID  int // registry id of the schema the record was written with
	// Value is *schemas.VehicleMessage or *schemas.ClientEvent when the writer schema is one
	// of those records (older versions are resolved to the latest Go type), otherwise the
	// generic decoding of the writer schema (map[string]any for a record).
	Value any
	// Attempt counts deliveries of this record to the handler in this process: 1, then 2.. on
	// retries. A record can also arrive again after a restart or rebalance (at-least-once),
	// which Attempt does not show: make handlers idempotent.
	Attempt int
}

// Header returns the value of the last header named key.
func (r Record) Header(key string) (string, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value), true
		}
	}
	return "", false
}

// Handler processes one record. Returning nil marks the record done: its offset is committed
// and it is not delivered again (barring a crash before the commit). Returning an error
// retries it with backoff, up to handler.maxAttempts; then the record is dead-lettered, or the
// consumer stops when no dead-letter topic is configured. Wrap an error with Permanent to skip
// the retries.
//
// Records of one partition (so of one vehicle) are handled one at a time, in offset order.
// ctx is not cancelled on shutdown (the record in hand is finished first): bound slow calls
// with timeouts of your own.
type Handler interface {
	Handle(ctx context.Context, r Record) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, r Record) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, r Record) error { return f(ctx, r) }

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying (e.g. a record that fails validation): the
// record is dead-lettered, or stops the consumer, after this attempt.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
