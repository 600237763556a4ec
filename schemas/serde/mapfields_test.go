package serde

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/schematest"
	"github.com/iov-platform/iov/schemas/wire"
)

// checkSameAsHamba encodes v with an Encoder of schema and with hamba/avro's whole-schema
// encoding (avro.Marshal) and fails unless they agree: byte for byte when no map of v has
// more than one entry (hamba/avro writes a map in Go's random iteration order, so two
// encodings of a larger map differ in order only); otherwise the same bytes up to the first
// map, the same length (maps of one block), and the record decodes strictly (no byte left)
// to v.
func checkSameAsHamba(t *testing.T, schema avro.Schema, v any, maxMapLen int) {
	t.Helper()
	e, err := newEncoder(1, schema)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.Encode(v)
	ref, refErr := avro.Marshal(schema, v)
	if (err == nil) != (refErr == nil) {
		t.Fatalf("Encoder error %v, hamba/avro's %v", err, refErr)
	}
	if err != nil {
		return
	}
	if id, _, werr := wire.Split(rec); werr != nil || id != 1 {
		t.Fatalf("frame: id %d, %v", id, werr)
	}
	got := rec[wire.HeaderSize:]
	if maxMapLen <= 1 || e.segments == nil {
		if !bytes.Equal(got, ref) {
			t.Fatalf("encoding differs from hamba/avro's:\n got %x\nwant %x", got, ref)
		}
		return
	}
	// A map of more than one block is hamba/avro's own path; which entries make its first
	// block depends on the iteration order, and so can the byte size's length in the header.
	if maxMapLen <= hambaBlockLength && len(got) != len(ref) {
		t.Fatalf("encoding of %d bytes, hamba/avro's %d", len(got), len(ref))
	}
	if n := bytesBeforeFirstMap(t, schema, v); !bytes.Equal(got[:n], ref[:n]) {
		t.Fatalf("fields before the first map differ:\n got %x\nwant %x", got[:n], ref[:n])
	}
	out := reflect.New(reflect.TypeOf(v).Elem())
	if err := unmarshal(schema, got, out.Interface()); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if f := differingField(reflect.ValueOf(v).Elem(), out.Elem()); f != "" {
		t.Fatalf("round trip: %s differs", f)
	}
}

// bytesBeforeFirstMap is the length of hamba/avro's encoding of v's fields before the
// schema's first map<string> field.
func bytesBeforeFirstMap(t *testing.T, schema avro.Schema, v any) int {
	t.Helper()
	segs, err := cutAtStringMaps(schema)
	if err != nil || len(segs) == 0 {
		t.Fatalf("no map segments: %v", err)
	}
	if segs[0].fields == nil {
		return 0
	}
	b, err := avro.Marshal(segs[0].fields, v)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// differingField names the first field where a and b differ, "" if none: reflect.DeepEqual
// for decoded Avro, where an absent map or array comes back empty.
func differingField(a, b reflect.Value) string {
	for i := range a.NumField() {
		x, y := a.Field(i), b.Field(i)
		switch x.Kind() {
		case reflect.Map, reflect.Slice:
			if x.Len() == 0 && y.Len() == 0 {
				continue
			}
		case reflect.Struct:
			if tx, ok := x.Interface().(time.Time); ok {
				if !tx.Equal(y.Interface().(time.Time)) {
					return a.Type().Field(i).Name
				}
				continue
			}
		}
		if !reflect.DeepEqual(x.Interface(), y.Interface()) {
			return a.Type().Field(i).Name
		}
	}
	return ""
}

func parse(t testing.TB, name string, version int) avro.Schema {
	t.Helper()
	defs, err := schemas.Versions(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := defs[version-1].Parse()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randString(r *rand.Rand) string {
	const alphabet = "abcXYZ019/-_.: \x00é€😀"
	runes := []rune(alphabet)
	n := r.IntN(20)
	if r.IntN(10) == 0 {
		n = r.IntN(300) // longer than a one-byte length prefix
	}
	b := make([]rune, n)
	for i := range b {
		b[i] = runes[r.IntN(len(runes))]
	}
	return string(b)
}

// randMap is nil, empty, or has 1, a few, exactly one block (100), or more entries.
func randMap(r *rand.Rand) map[string]string {
	var n int
	switch r.IntN(8) {
	case 0:
		return nil
	case 1:
		return map[string]string{}
	case 2, 3:
		n = 1
	case 4, 5:
		n = 2 + r.IntN(10)
	case 6:
		n = hambaBlockLength + r.IntN(2) // 100 or 101: the block length's edge
	default:
		n = 150 + r.IntN(200)
	}
	m := make(map[string]string, n)
	for len(m) < n {
		m[fmt.Sprint(len(m), randString(r))] = randString(r)
	}
	return m
}

func randVehicleMessage(r *rand.Rand) *schemas.VehicleMessage {
	m := &schemas.VehicleMessage{
		MessageID: randString(r), VehicleID: randString(r), ClientID: randString(r), MQTTTopic: randString(r),
		QoS: r.Int32N(3), Payload: []byte(randString(r)), PayloadFormat: []string{schemas.PayloadBytes, schemas.PayloadJSON}[r.IntN(2)],
		PublishedAt: time.UnixMilli(r.Int64N(4e12)).UTC(), IngestedAt: time.UnixMilli(r.Int64N(4e12)).UTC(),
		Node: randString(r), Route: randString(r), Headers: randMap(r), MQTTProperties: randMap(r),
	}
	if r.IntN(2) == 0 {
		u := randString(r)
		m.Username = &u
	}
	for range r.IntN(4) {
		m.UserProperties = append(m.UserProperties, schemas.UserProperty{Name: randString(r), Value: randString(r)})
	}
	return m
}

// The segmented encoding is hamba/avro's whole-schema encoding, for every version of
// VehicleMessage (v1 has no map: hamba/avro's own path) and VehicleCommand (its params map),
// over random values: maps nil, empty, of one entry, a few, the block length and beyond it.
func TestSegmentedEncodingMatchesHamba(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for v := 1; v <= 3; v++ {
		schema := parse(t, schemas.VehicleMessageName, v)
		for range 500 {
			m := randVehicleMessage(r)
			if v < 3 { // fields v3 added
				m.MQTTProperties, m.UserProperties = nil, nil
			}
			if v < 2 { // fields v2 added
				m.Route, m.Headers = "", nil
			}
			checkSameAsHamba(t, schema, m, max(len(m.Headers), len(m.MQTTProperties)))
		}
	}
	cmd := parse(t, schemas.VehicleCommandName, len(mustVersions(t, schemas.VehicleCommandName)))
	for range 500 {
		c := &schemas.VehicleCommand{CommandID: randString(r), VehicleID: randString(r), Name: randString(r), Params: randMap(r),
			IssuedAt: time.UnixMilli(r.Int64N(4e12)).UTC(), ExpiresAt: time.UnixMilli(r.Int64N(4e12)).UTC()}
		checkSameAsHamba(t, cmd, c, len(c.Params))
	}
}

func mustVersions(t *testing.T, name string) []schemas.Definition {
	t.Helper()
	defs, err := schemas.Versions(name)
	if err != nil {
		t.Fatal(err)
	}
	return defs
}

// A VehicleMessage and a pointer to one take the segmented path; a nil pointer and Go types
// whose map fields are not plain map[string]string fields of their own take hamba/avro's.
func TestSegmentedEncodingFallsBackToHamba(t *testing.T) {
	schema := parse(t, schemas.VehicleMessageName, 3)
	m := schematest.VehicleMessage()
	m.MQTTProperties = map[string]string{"Content-Type": "a"}
	m.UserProperties = m.UserProperties[:1]
	e, err := newEncoder(1, schema)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{&m, m} {
		if e.plan(v) == nil {
			t.Fatalf("%T not on the segmented path", v)
		}
		checkSameAsHamba(t, schema, v, 1)
	}

	type header string
	type otherMaps struct {
		schemas.VehicleMessage
		Headers map[string]header `avro:"headers"` // shadows the embedded one for hamba/avro too
	}
	type untaggedMap struct {
		MessageID, VehicleID, ClientID, MQTTTopic, Node, Route, PayloadFormat string
		Username                                                              *string
		QoS                                                                   int32
		Payload                                                               []byte
		PublishedAt, IngestedAt                                               time.Time
		Headers                                                               map[string]string `avro:"headers"`
		MQTTProperties                                                        map[string]string `avro:"mqtt_properties"`
		UserProperties                                                        []schemas.UserProperty
	}
	for _, v := range []any{(*schemas.VehicleMessage)(nil), &otherMaps{VehicleMessage: m, Headers: map[string]header{"a": "b"}}} {
		if e.plan(v) != nil {
			t.Errorf("%T on the segmented path", v)
		}
		got := outcome(func() error { _, err := e.Encode(v); return err })
		want := outcome(func() error { _, err := avro.Marshal(schema, v); return err })
		if got != want {
			t.Errorf("%T: Encode %s, hamba/avro %s", v, got, want)
		}
		if got == "ok" {
			checkSameAsHamba(t, schema, v, 1)
		}
	}
	// Maps in place, but no avro names on the other fields: an error both ways.
	if _, err := e.Encode(&untaggedMap{}); err == nil {
		t.Error("untagged fields encoded")
	}
	checkSameAsHamba(t, schema, &untaggedMap{}, 1)
}

// outcome is "ok", "error" or "panic".
func outcome(f func() error) (o string) {
	defer func() {
		if recover() != nil {
			o = "panic"
		}
	}()
	if f() != nil {
		return "error"
	}
	return "ok"
}

// FuzzSegmentedEncodingMatchesHamba: fuzzed field values and maps of one entry (byte for byte)
// or several (length, prefix and round trip).
func FuzzSegmentedEncodingMatchesHamba(f *testing.F) {
	schema := parse(f, schemas.VehicleMessageName, 3)
	f.Add("id", "V1", "peerhost", "10.0.0.1", "Content-Type", "a/b", uint8(1), uint8(1), []byte(`{}`))
	f.Add("", "", "", "", "", "", uint8(0), uint8(0), []byte(nil))
	f.Add("\xff", "é", "k", "", "x", "\x00", uint8(7), uint8(120), []byte{0xff})
	f.Fuzz(func(t *testing.T, id, vehicle, hk, hv, pk, pv string, nh, np uint8, payload []byte) {
		m := &schemas.VehicleMessage{MessageID: id, VehicleID: vehicle, ClientID: hv, MQTTTopic: pk, Payload: payload,
			PayloadFormat: schemas.PayloadBytes, PublishedAt: time.UnixMilli(int64(nh) << 20).UTC(), Node: pv, Route: hk,
			Headers: mapOf(hk, hv, int(nh)), MQTTProperties: mapOf(pk, pv, int(np))}
		if nh%3 == 0 {
			m.Username = &hv
		}
		m.UserProperties = []schemas.UserProperty{{Name: hk, Value: pv}}
		checkSameAsHamba(t, schema, m, max(len(m.Headers), len(m.MQTTProperties)))
	})
}

// mapOf is nil for n 0, {k: v} for n 1, and n entries k0..k(n-1) otherwise.
func mapOf(k, v string, n int) map[string]string {
	switch n {
	case 0:
		return nil
	case 1:
		return map[string]string{k: v}
	}
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprint(k, i)] = v
	}
	return m
}

// BenchmarkEncodeVehicleMessage is the envelope's encoding with its real headers (one
// MQTT 3 message as EMQX sends it): the segmented path against hamba/avro's.
func BenchmarkEncodeVehicleMessage(b *testing.B) {
	schema := parse(b, schemas.VehicleMessageName, 3)
	m := schematest.VehicleMessage()
	m.Headers = map[string]string{"peerhost": "127.0.0.1", "protocol": "mqtt", "username": "u", "proto_ver": "4"}
	m.MQTTProperties, m.UserProperties = nil, nil
	e, err := newEncoder(1, schema)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("segmented", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.Encode(&m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hamba", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := avro.Marshal(schema, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
