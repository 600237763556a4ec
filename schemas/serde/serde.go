// Package serde turns Go values into Confluent-framed Avro records and back, using a
// Confluent-compatible schema registry (through srclient) to map schemas to ids.
package serde

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hamba/avro/v2"
	"github.com/riferrei/srclient"

	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/wire"
)

// Registry is the part of srclient's client that serde needs.
type Registry interface {
	CreateSchema(subject, schema string, schemaType srclient.SchemaType, references ...srclient.Reference) (*srclient.Schema, error)
	LookupSchema(subject, schema string, schemaType srclient.SchemaType, references ...srclient.Reference) (*srclient.Schema, error)
	GetSchema(schemaID int) (*srclient.Schema, error)
}

// NewRegistry returns an srclient registry client for url with caching on and srclient's own
// (goavro) codec creation off: we encode with hamba/avro.
func NewRegistry(url, username, password string, opts ...srclient.Option) *srclient.SchemaRegistryClient {
	c := srclient.NewSchemaRegistryClient(url, opts...)
	c.CodecCreationEnabled(false)
	c.CachingEnabled(true)
	if username != "" {
		c.SetCredentials(username, password)
	}
	return c
}

// TopicSubject is the Confluent TopicNameStrategy subject for a topic's record values.
func TopicSubject(topic string) string { return topic + "-value" }

// Encoder frames values of one schema under one subject.
type Encoder struct {
	id     int
	schema avro.Schema
	pool   sync.Pool
	// segments is the record's fields cut at its map<string> fields (nil: the schema has
	// none), and plans holds, per Go type encoded, where those maps are in it (mapfields.go).
	segments []segment
	plans    sync.Map // reflect.Type -> *typePlan (nil: the whole-schema path)
}

type encBuf struct {
	w *avro.Writer // hamba/avro's writer on no io.Writer: the record is its buffer
}

// NewEncoder resolves def's id under subject. With register it registers the schema (a no-op
// returning the existing id when it is already there); without, the schema must already be
// registered, which is what a locked-down production registry wants.
func NewEncoder(reg Registry, subject string, def schemas.Definition, register bool) (*Encoder, error) {
	schema, err := def.Parse()
	if err != nil {
		return nil, err
	}
	var s *srclient.Schema
	if register {
		s, err = reg.CreateSchema(subject, def.Text, srclient.Avro)
	} else {
		s, err = reg.LookupSchema(subject, def.Text, srclient.Avro)
	}
	if err != nil {
		return nil, fmt.Errorf("schema %s v%d under subject %s: %w", def.Name, def.Version, subject, err)
	}
	e, err := newEncoder(s.ID(), schema)
	if err != nil {
		return nil, fmt.Errorf("schema %s v%d: %w", def.Name, def.Version, err)
	}
	return e, nil
}

func newEncoder(id int, schema avro.Schema) (*Encoder, error) {
	segs, err := cutAtStringMaps(schema)
	if err != nil {
		return nil, err
	}
	e := &Encoder{id: id, schema: schema, segments: segs}
	e.pool.New = func() any { return &encBuf{w: avro.NewWriter(nil, 512)} }
	return e, nil
}

// ID is the registry's id for the encoder's schema.
func (e *Encoder) ID() int { return e.id }

// Encode returns v as a framed record in a new slice.
func (e *Encoder) Encode(v any) ([]byte, error) {
	b := e.pool.Get().(*encBuf)
	defer e.pool.Put(b)
	w := b.w
	w.Reset(nil)
	w.Error = nil
	var h [wire.HeaderSize]byte
	hdr, err := wire.AppendHeader(h[:0], e.id)
	if err != nil {
		return nil, err
	}
	_, _ = w.Write(hdr)
	if p := e.plan(v); p != nil {
		p.encode(w, v)
	} else {
		w.WriteVal(e.schema, v)
	}
	if w.Error != nil {
		return nil, fmt.Errorf("avro encode: %w", w.Error)
	}
	return bytes.Clone(w.Buffer()), nil
}

// Decoder reads framed records written with any registered schema, resolving the writer's
// schema to the reader's so that old and new versions decode into the same Go type.
type Decoder struct {
	reg Registry

	mu       sync.RWMutex
	writers  map[int]avro.Schema
	resolved map[resolveKey]avro.Schema
}

type resolveKey struct {
	writerID int
	reader   [32]byte
}

// NewDecoder returns a decoder that fetches writer schemas from reg by id and caches them.
func NewDecoder(reg Registry) *Decoder {
	return &Decoder{reg: reg, writers: map[int]avro.Schema{}, resolved: map[resolveKey]avro.Schema{}}
}

// ErrIncompatible wraps a writer schema the reader schema cannot read.
var ErrIncompatible = errors.New("writer schema not readable with reader schema")

// WriterSchema returns the schema a record was written with.
func (d *Decoder) WriterSchema(id int) (avro.Schema, error) {
	d.mu.RLock()
	s, ok := d.writers[id]
	d.mu.RUnlock()
	if ok {
		return s, nil
	}
	rs, err := d.reg.GetSchema(id)
	if err != nil {
		return nil, fmt.Errorf("fetch schema id %d: %w", id, err)
	}
	s, err = avro.ParseWithCache(rs.Schema(), "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("parse schema id %d: %w", id, err)
	}
	d.mu.Lock()
	d.writers[id] = s
	d.mu.Unlock()
	return s, nil
}

// Decode reads a framed record into v, which must match reader. It returns the writer's
// schema id.
func (d *Decoder) Decode(record []byte, reader avro.Schema, v any) (int, error) {
	id, body, err := wire.Split(record)
	if err != nil {
		return 0, err
	}
	schema, err := d.readSchema(id, reader)
	if err != nil {
		return id, err
	}
	if err := unmarshal(schema, body, v); err != nil {
		return id, fmt.Errorf("avro decode (schema id %d): %w", id, err)
	}
	return id, nil
}

// DecodeGeneric reads a framed record with its writer's schema into generic Go values
// (map[string]any for records), for topics whose Go type the caller does not know.
func (d *Decoder) DecodeGeneric(record []byte) (int, any, error) {
	id, body, err := wire.Split(record)
	if err != nil {
		return 0, nil, err
	}
	schema, err := d.WriterSchema(id)
	if err != nil {
		return id, nil, err
	}
	var v any
	if err := unmarshal(schema, body, &v); err != nil {
		return id, nil, fmt.Errorf("avro decode (schema id %d): %w", id, err)
	}
	return id, v, nil
}

// ErrTrailingBytes means a record decoded but bytes were left over: it is not what the
// writer's schema says it is.
var ErrTrailingBytes = errors.New("trailing bytes after avro body")

// unmarshal is avro.Unmarshal made strict: hamba/avro's Unmarshal reports a truncated body as
// success (it drops io.EOF), which would turn a corrupt record into a half-filled value.
func unmarshal(schema avro.Schema, body []byte, v any) error {
	r := avro.NewReader(nil, 0).Reset(body)
	r.ReadVal(schema, v)
	if r.Error != nil {
		if errors.Is(r.Error, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return r.Error
	}
	if r.Peek(); r.Error == nil {
		return ErrTrailingBytes
	}
	return nil
}

func (d *Decoder) readSchema(id int, reader avro.Schema) (avro.Schema, error) {
	key := resolveKey{writerID: id, reader: reader.Fingerprint()}
	d.mu.RLock()
	s, ok := d.resolved[key]
	d.mu.RUnlock()
	if ok {
		return s, nil
	}
	writer, err := d.WriterSchema(id)
	if err != nil {
		return nil, err
	}
	if writer.Fingerprint() == key.reader {
		s = reader
	} else {
		s, err = avro.NewSchemaCompatibility().Resolve(reader, writer)
		if err != nil {
			return nil, fmt.Errorf("%w (schema id %d): %w", ErrIncompatible, id, err)
		}
	}
	d.mu.Lock()
	d.resolved[key] = s
	d.mu.Unlock()
	return s, nil
}
