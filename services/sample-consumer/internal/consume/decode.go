package consume

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/hamba/avro/v2"
	"github.com/riferrei/srclient"

	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/schemas/wire"
)

// ErrRegistry wraps failures to ask the schema registry (unreachable, 5xx, auth): the record
// may be fine, so the engine retries it and never dead-letters it for this.
var ErrRegistry = errors.New("schema registry unavailable")

// Decoder decodes framed Avro records (magic byte, schema id, body). Records whose writer
// schema is a record type registered with Register decode into that Go type, resolved from
// the writer's version to the reader's (so v1 data fills the latest struct, with defaults);
// any other schema decodes generically.
//
// Every error except ErrRegistry means the record itself cannot be decoded: not framed, a
// schema id the registry does not know, a non-Avro schema, a body that does not match its
// schema, or a writer version the reader cannot read.
type Decoder struct {
	reg   serde.Registry
	serde *serde.Decoder
	types map[string]readerType // writer schema full name -> Go type
}

type readerType struct {
	schema avro.Schema
	typ    reflect.Type // struct type; values are decoded into a new *typ
}

// NewDecoder returns a decoder that knows the platform's record types:
// schemas.VehicleMessage and schemas.ClientEvent, at their latest versions.
func NewDecoder(reg serde.Registry) (*Decoder, error) {
	d := &Decoder{reg: reg, serde: serde.NewDecoder(reg), types: map[string]readerType{}}
	for name, v := range map[string]any{
		schemas.VehicleMessageName: schemas.VehicleMessage{},
		schemas.ClientEventName:    schemas.ClientEvent{},
	} {
		def, err := schemas.Latest(name)
		if err != nil {
			return nil, err
		}
		if err := d.Register(def, v); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Register makes records named like def's record schema decode into a new value of sample's
// type (a struct with avro tags matching def), returned as a pointer. Use it to add your own
// record types.
func (d *Decoder) Register(def schemas.Definition, sample any) error {
	s, err := def.Parse()
	if err != nil {
		return err
	}
	named, ok := s.(avro.NamedSchema)
	if !ok {
		return fmt.Errorf("register %s v%d: not a named schema", def.Name, def.Version)
	}
	t := reflect.TypeOf(sample)
	if t == nil || t.Kind() != reflect.Struct {
		return fmt.Errorf("register %s v%d: want a struct value, got %T", def.Name, def.Version, sample)
	}
	d.types[named.FullName()] = readerType{schema: s, typ: t}
	return nil
}

// Decode returns the writer's schema id and the decoded value of a framed record.
func (d *Decoder) Decode(record []byte) (int, any, error) {
	id, _, err := wire.Split(record)
	if err != nil {
		return 0, nil, err
	}
	if err := d.checkWriter(id); err != nil {
		return id, nil, err
	}
	writer, err := d.serde.WriterSchema(id)
	if err != nil {
		return id, nil, err
	}
	if named, ok := writer.(avro.NamedSchema); ok {
		if rt, ok := d.types[named.FullName()]; ok {
			v := reflect.New(rt.typ).Interface()
			if _, err := d.serde.Decode(record, rt.schema, v); err != nil {
				return id, nil, err
			}
			return id, v, nil
		}
	}
	_, v, err := d.serde.DecodeGeneric(record)
	return id, v, err
}

// checkWriter asks the registry for schema id (cached after the first time) to tell a record
// that names an unknown or non-Avro schema (the record is bad) from a registry that cannot
// be asked right now (the record may be fine). Only the registry's own "schema not found"
// (error code 40403) condemns a record: a bare 404 can come from a proxy or a wrong base URL.
func (d *Decoder) checkWriter(id int) error {
	s, err := d.reg.GetSchema(id)
	if err != nil {
		var srErr srclient.Error
		if errors.As(err, &srErr) && srErr.Code == 40403 {
			return fmt.Errorf("schema id %d is not in the registry", id)
		}
		return fmt.Errorf("%w: fetch schema id %d: %w", ErrRegistry, id, err)
	}
	if st := s.SchemaType(); st != nil && !strings.EqualFold(string(*st), string(srclient.Avro)) {
		return fmt.Errorf("schema id %d is %s, not AVRO", id, *st)
	}
	return nil
}
