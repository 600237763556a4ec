package consume_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/schematest"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/schemas/wire"
	"github.com/iov-platform/iov/services/sample-consumer/internal/consume"
)

type fixture struct {
	reg     *srclient.SchemaRegistryClient
	dec     *consume.Decoder
	message *serde.Encoder // latest vehicle_message
	event   *serde.Encoder // latest client_event
	other   *serde.Encoder // a record type the decoder does not know
}

const otherSchema = `{"type":"record","name":"Trip","namespace":"com.example.fleet","fields":[
  {"name":"vehicle_id","type":"string"},{"name":"km","type":"double"}]}`

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	fake := srfake.New()
	tb.Cleanup(fake.Close)
	f := &fixture{reg: serde.NewRegistry(fake.URL(), "", "")}
	var err error
	if f.dec, err = consume.NewDecoder(f.reg); err != nil {
		tb.Fatal(err)
	}
	for _, e := range []struct {
		enc     **serde.Encoder
		subject string
		def     schemas.Definition
	}{
		{&f.message, "t-value", schemas.MustLatest(schemas.VehicleMessageName)},
		{&f.event, "s-value", schemas.MustLatest(schemas.ClientEventName)},
		{&f.other, "o-value", schemas.Definition{Name: "trip", Version: 1, Text: otherSchema}},
	} {
		if *e.enc, err = serde.NewEncoder(f.reg, e.subject, e.def, true); err != nil {
			tb.Fatal(err)
		}
	}
	return f
}

func encode(tb testing.TB, enc *serde.Encoder, v any) []byte {
	tb.Helper()
	b, err := enc.Encode(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestDecodeKnownTypes(t *testing.T) {
	f := newFixture(t)
	msg := schematest.VehicleMessage()
	reason := "keepalive_timeout"
	ev := schemas.ClientEvent{
		Event: schemas.ClientDisconnected, VehicleID: "VIN9", ClientID: "VIN9", Peerhost: "10.0.0.9",
		Protocol: "mqtt", Reason: &reason, OccurredAt: time.UnixMilli(1_700_000_001_000).UTC(), Node: "emqx@1",
	}
	tests := []struct {
		name   string
		enc    *serde.Encoder
		record []byte
		want   any
	}{
		{"vehicle message", f.message, encode(t, f.message, msg), &msg},
		{"client event", f.event, encode(t, f.event, ev), &ev},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, v, err := f.dec.Decode(tt.record)
			if err != nil {
				t.Fatal(err)
			}
			if id != tt.enc.ID() {
				t.Fatalf("schema id %d, want %d", id, tt.enc.ID())
			}
			if !reflect.DeepEqual(v, tt.want) {
				t.Fatalf("decoded %#v\nwant    %#v", v, tt.want)
			}
		})
	}
}

// TestDecodeEveryVersionIntoLatestType: records written with each vehicle_message version
// (v1, v2 from ExHook v2 producers, v3 with MQTT 5 properties) decode into the latest type,
// the fields the writer did not have at their defaults.
func TestDecodeEveryVersionIntoLatestType(t *testing.T) {
	f := newFixture(t)
	defs, err := schemas.Versions(schemas.VehicleMessageName)
	if err != nil {
		t.Fatal(err)
	}
	in := schematest.VehicleMessage()
	noProps := func(v schemas.VehicleMessage) schemas.VehicleMessage {
		v.MQTTProperties, v.UserProperties = map[string]string{}, []schemas.UserProperty{}
		return v
	}
	want := map[int]schemas.VehicleMessage{
		1: func(v schemas.VehicleMessage) schemas.VehicleMessage {
			v.Route, v.Headers = "", map[string]string{}
			return noProps(v)
		}(in),
		2: noProps(in),
		3: in,
	}
	if len(defs) != len(want) {
		t.Fatalf("vehicle_message has %d versions, the test knows %d: extend it", len(defs), len(want))
	}
	for _, def := range defs {
		t.Run(fmt.Sprintf("v%d", def.Version), func(t *testing.T) {
			enc, err := serde.NewEncoder(f.reg, fmt.Sprintf("v%d-value", def.Version), def, true)
			if err != nil {
				t.Fatal(err)
			}
			// hamba/avro encodes by field name: the latest struct writes an older record
			// with just that version's fields.
			id, v, err := f.dec.Decode(encode(t, enc, in))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := v.(*schemas.VehicleMessage)
			if !ok || id != enc.ID() {
				t.Fatalf("decoded %T with schema id %d, want *schemas.VehicleMessage with %d", v, id, enc.ID())
			}
			if !reflect.DeepEqual(*got, want[def.Version]) {
				t.Fatalf("decoded %#v\nwant    %#v", *got, want[def.Version])
			}
		})
	}
}

func TestDecodeUnknownRecordTypeGenerically(t *testing.T) {
	f := newFixture(t)
	rec := encode(t, f.other, map[string]any{"vehicle_id": "VIN1", "km": 12.5})
	id, v, err := f.dec.Decode(rec)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := v.(map[string]any)
	if !ok || id != f.other.ID() || m["vehicle_id"] != "VIN1" || m["km"] != 12.5 {
		t.Fatalf("decoded id %d %#v", id, v)
	}
}

func TestRegisterOwnType(t *testing.T) {
	f := newFixture(t)
	type trip struct {
		VehicleID string  `avro:"vehicle_id"`
		KM        float64 `avro:"km"`
	}
	if err := f.dec.Register(schemas.Definition{Name: "trip", Version: 1, Text: otherSchema}, trip{}); err != nil {
		t.Fatal(err)
	}
	_, v, err := f.dec.Decode(encode(t, f.other, trip{"VIN2", 3}))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := v.(*trip); !ok || *got != (trip{"VIN2", 3}) {
		t.Fatalf("decoded %#v", v)
	}
	if err := f.dec.Register(schemas.Definition{Name: "trip", Version: 1, Text: otherSchema}, &trip{}); err == nil {
		t.Fatal("Register accepted a pointer sample")
	}
	if err := f.dec.Register(schemas.Definition{Name: "s", Version: 1, Text: `"string"`}, trip{}); err == nil {
		t.Fatal("Register accepted an unnamed schema")
	}
}

// TestBadRecordsArePoisonNotRegistryErrors: every way a record itself can be broken is
// reported as a plain error (dead-letter material), never as ErrRegistry (retry material).
func TestBadRecordsArePoisonNotRegistryErrors(t *testing.T) {
	f := newFixture(t)
	good := encode(t, f.message, schematest.VehicleMessage())
	unknownID, _ := wire.AppendHeader(nil, 99999)
	tests := []struct {
		name   string
		record []byte
		want   string
	}{
		{"empty", nil, "shorter than the 5-byte header"},
		{"raw json", []byte(`{"speed": 42, "vin": "VIN1"}`), "unknown magic byte"},
		{"unknown schema id", append(unknownID, good[wire.HeaderSize:]...), "schema id 99999 is not in the registry"},
		{"truncated body", good[:len(good)-3], "unexpected EOF"},
		{"trailing bytes", append(append([]byte{}, good...), 1, 2), "trailing bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, v, err := f.dec.Decode(tt.record)
			if err == nil {
				t.Fatalf("decoded %#v", v)
			}
			if errors.Is(err, consume.ErrRegistry) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q: want a non-registry error containing %q", err, tt.want)
			}
		})
	}
}

func TestUnreachableRegistryIsRetryable(t *testing.T) {
	fake := srfake.New()
	reg := serde.NewRegistry(fake.URL(), "", "")
	enc, err := serde.NewEncoder(reg, "t-value", schemas.MustLatest(schemas.VehicleMessageName), true)
	if err != nil {
		t.Fatal(err)
	}
	rec := encode(t, enc, schematest.VehicleMessage())
	fake.Close()
	dec, err := consume.NewDecoder(serde.NewRegistry(fake.URL(), "", ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dec.Decode(rec); !errors.Is(err, consume.ErrRegistry) {
		t.Fatalf("Decode with the registry down = %v, want ErrRegistry", err)
	}
}

// FuzzDecode: whatever bytes arrive on a topic, Decode returns a value or an error, never
// panics, never blames the (healthy) registry, and a value always comes with the id framed
// in the record.
func FuzzDecode(f *testing.F) {
	fx := newFixture(f)
	msg := encode(f, fx.message, schematest.VehicleMessage())
	f.Add(msg)
	f.Add(msg[:len(msg)/2])
	f.Add(encode(f, fx.event, schemas.ClientEvent{Event: schemas.ClientConnected, VehicleID: "V", OccurredAt: time.UnixMilli(1).UTC()}))
	f.Add(encode(f, fx.other, map[string]any{"vehicle_id": "V", "km": 1.0}))
	f.Add([]byte(`{"speed":1}`))
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, record []byte) {
		id, v, err := fx.dec.Decode(record)
		if errors.Is(err, consume.ErrRegistry) {
			t.Fatalf("registry blamed for %x: %v", record, err)
		}
		if err != nil {
			return
		}
		framed, _, werr := wire.Split(record)
		if werr != nil || framed != id || v == nil {
			t.Fatalf("Decode(%x) = id %d, %T, nil error; framed id %d (%v)", record, id, v, framed, werr)
		}
	})
}
