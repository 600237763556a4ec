package serde

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/hamba/avro/v2"
)

// hamba/avro writes a Go map through reflect2's map iterator: six allocations per
// VehicleMessage (headers and mqtt_properties, even when empty), a third of what the hook
// allocates per message. The record's binary form is its fields one after the other, so the
// Encoder cuts the record at its map<string> fields: the runs of other fields are encoded by
// hamba/avro as records of those fields (taken from the same Go value), and each map by
// ranging over it and writing it with hamba/avro's own block writer, as its map encoder
// does: one block (negative count, byte size) of at most hambaBlockLength entries, then the
// end block. A larger map, or a Go type whose map fields are not plain map[string]string,
// takes hamba/avro's own path. TestSegmentedEncodingMatchesHamba and
// FuzzSegmentedEncodingMatchesHamba hold the output to hamba/avro's whole-schema encoding.

// hambaBlockLength is hamba/avro's default map block length (Config.BlockLength 0), which
// avro.DefaultConfig, the config the Encoder's writers use, has.
const hambaBlockLength = 100

// segment is a run of the record's fields other than map<string> (fields set), or one
// map<string> field (mapField set).
type segment struct {
	fields   *avro.RecordSchema // a record of the run's fields: its encoding is theirs
	mapField string
	mapType  avro.Schema // the map field's schema, for hamba/avro's path of a large map
}

// cutAtStringMaps returns the segments of a record schema with map<string> fields, or nil.
func cutAtStringMaps(schema avro.Schema) ([]segment, error) {
	rec, ok := schema.(*avro.RecordSchema)
	if !ok {
		return nil, nil
	}
	var segs []segment
	var run []*avro.Field
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		r, err := avro.NewRecordSchema(fmt.Sprintf("%s_fields_%d", rec.Name(), len(segs)), rec.Namespace(), run)
		if err != nil {
			return fmt.Errorf("fields before a map: %w", err)
		}
		segs = append(segs, segment{fields: r})
		run = nil
		return nil
	}
	maps := 0
	for _, f := range rec.Fields() {
		if isStringMap(f.Type()) {
			if err := flush(); err != nil {
				return nil, err
			}
			segs = append(segs, segment{mapField: f.Name(), mapType: f.Type()})
			maps++
			continue
		}
		nf, err := avro.NewField(f.Name(), f.Type())
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name(), err)
		}
		run = append(run, nf)
	}
	if maps == 0 {
		return nil, nil
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return segs, nil
}

func isStringMap(s avro.Schema) bool {
	m, ok := s.(*avro.MapSchema)
	if !ok {
		return false
	}
	v, ok := m.Values().(*avro.PrimitiveSchema)
	return ok && v.Type() == avro.String && v.Logical() == nil
}

// typePlan is how values of one Go struct type are encoded segment by segment: the index of
// each map segment's Go field (-1 for the other segments).
type typePlan struct {
	segs     []segment
	mapIndex []int
}

// plan returns the segmented plan for v's type, or nil for hamba/avro's whole-schema path.
func (e *Encoder) plan(v any) *typePlan {
	if e.segments == nil || v == nil {
		return nil
	}
	t := reflect.TypeOf(v)
	if t.Kind() == reflect.Pointer && reflect.ValueOf(v).IsNil() {
		return nil // hamba/avro's path says what it makes of it
	}
	if p, ok := e.plans.Load(t); ok {
		return p.(*typePlan)
	}
	p := newTypePlan(e.segments, t)
	e.plans.Store(t, p)
	return p
}

var stringMap = reflect.TypeFor[map[string]string]()

// newTypePlan maps each map segment to a direct field of the struct (or pointer to struct)
// t that hamba/avro would take for it (tag avro:"name", or the Go name when untagged) and is
// a map[string]string; nil when one is missing or of another type.
func newTypePlan(segs []segment, t reflect.Type) *typePlan {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	p := &typePlan{segs: segs, mapIndex: make([]int, len(segs))}
	for i, s := range segs {
		p.mapIndex[i] = -1
		if s.fields != nil {
			continue
		}
		idx := -1
		for j := range t.NumField() {
			sf := t.Field(j)
			name := sf.Name
			if tag, ok := sf.Tag.Lookup("avro"); ok {
				name, _, _ = strings.Cut(tag, ",")
			}
			if name != s.mapField {
				continue
			}
			if idx >= 0 || sf.Anonymous || !sf.IsExported() || sf.Type != stringMap {
				return nil
			}
			idx = j
		}
		if idx < 0 {
			return nil
		}
		p.mapIndex[i] = idx
	}
	return p
}

// encode writes v (of the plan's type) segment by segment.
func (p *typePlan) encode(w *avro.Writer, v any) {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	for i, s := range p.segs {
		if w.Error != nil {
			return
		}
		if s.fields != nil {
			w.WriteVal(s.fields, v)
			continue
		}
		m := rv.Field(p.mapIndex[i]).Interface().(map[string]string)
		if len(m) > hambaBlockLength {
			w.WriteVal(s.mapType, m)
			continue
		}
		if len(m) > 0 {
			w.WriteBlockCB(func(w *avro.Writer) int64 {
				for k, v := range m {
					w.WriteString(k)
					w.WriteString(v)
				}
				return int64(len(m))
			})
		}
		w.WriteLong(0) // the end block
	}
}
