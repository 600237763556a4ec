package serde_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/schematest"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/schemas/wire"
)

func newRegistry(t *testing.T) serde.Registry {
	t.Helper()
	fake := srfake.New()
	t.Cleanup(fake.Close)
	return serde.NewRegistry(fake.URL(), "", "")
}

func definition(t *testing.T, name string, version int) schemas.Definition {
	t.Helper()
	defs, err := schemas.Versions(name)
	if err != nil {
		t.Fatal(err)
	}
	return defs[version-1]
}

func TestRoundTripThroughWireFormat(t *testing.T) {
	reg := newRegistry(t)
	def := schemas.MustLatest(schemas.VehicleMessageName)
	enc, err := serde.NewEncoder(reg, serde.TopicSubject("iov.vehicle.telemetry"), def, true)
	if err != nil {
		t.Fatal(err)
	}
	in := schematest.VehicleMessage()
	rec, err := enc.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := wire.Split(rec)
	if err != nil {
		t.Fatal(err)
	}
	if id != enc.ID() || id <= 0 {
		t.Fatalf("framed id %d, encoder id %d", id, enc.ID())
	}

	reader, err := def.Parse()
	if err != nil {
		t.Fatal(err)
	}
	dec := serde.NewDecoder(reg)
	var out schemas.VehicleMessage
	gotID, err := dec.Decode(rec, reader, &out)
	if err != nil {
		t.Fatal(err)
	}
	if gotID != id {
		t.Fatalf("decoded id %d, want %d", gotID, id)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip mismatch:\n in %+v\nout %+v", in, out)
	}

	_, generic, err := dec.DecodeGeneric(rec)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := generic.(map[string]any)
	if !ok || m["vehicle_id"] != "VIN123" || !bytes.Equal(m["payload"].([]byte), in.Payload) {
		t.Fatalf("generic decode = %#v", generic)
	}
}

func TestRegisteringTwiceKeepsTheID(t *testing.T) {
	reg := newRegistry(t)
	def := schemas.MustLatest(schemas.ClientEventName)
	a, err := serde.NewEncoder(reg, "s-value", def, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := serde.NewEncoder(reg, "s-value", def, false)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() != b.ID() {
		t.Fatalf("ids differ: %d vs %d", a.ID(), b.ID())
	}
	if _, err := serde.NewEncoder(reg, "other-value", def, false); err == nil {
		t.Fatal("lookup of an unregistered subject succeeded")
	}
}

// A consumer on the latest schema reads records written with v1: the new fields take their
// defaults.
func TestDecodeOldVersionIntoLatestType(t *testing.T) {
	reg := newRegistry(t)
	v1 := definition(t, schemas.VehicleMessageName, 1)
	enc, err := serde.NewEncoder(reg, "t-value", v1, true)
	if err != nil {
		t.Fatal(err)
	}
	type v1Message struct {
		MessageID     string    `avro:"message_id"`
		VehicleID     string    `avro:"vehicle_id"`
		ClientID      string    `avro:"client_id"`
		Username      *string   `avro:"username"`
		MQTTTopic     string    `avro:"mqtt_topic"`
		QoS           int32     `avro:"qos"`
		Payload       []byte    `avro:"payload"`
		PayloadFormat string    `avro:"payload_format"`
		PublishedAt   time.Time `avro:"published_at"`
		IngestedAt    time.Time `avro:"ingested_at"`
		Node          string    `avro:"node"`
	}
	rec, err := enc.Encode(v1Message{MessageID: "m1", VehicleID: "V1", ClientID: "c", MQTTTopic: "t", QoS: 1,
		Payload: []byte{1, 2}, PayloadFormat: schemas.PayloadBytes, PublishedAt: time.UnixMilli(5), IngestedAt: time.UnixMilli(6), Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	reader, err := schemas.MustLatest(schemas.VehicleMessageName).Parse()
	if err != nil {
		t.Fatal(err)
	}
	var out schemas.VehicleMessage
	if _, err := serde.NewDecoder(reg).Decode(rec, reader, &out); err != nil {
		t.Fatal(err)
	}
	if out.VehicleID != "V1" || out.Route != "" || len(out.Headers) != 0 || !bytes.Equal(out.Payload, []byte{1, 2}) {
		t.Fatalf("decoded %+v", out)
	}
}

func TestDecodeErrors(t *testing.T) {
	reg := newRegistry(t)
	reader, err := schemas.MustLatest(schemas.VehicleMessageName).Parse()
	if err != nil {
		t.Fatal(err)
	}
	eventEnc, err := serde.NewEncoder(reg, "e-value", schemas.MustLatest(schemas.ClientEventName), true)
	if err != nil {
		t.Fatal(err)
	}
	event, err := eventEnc.Encode(schemas.ClientEvent{Event: schemas.ClientConnected, VehicleID: "V", ClientID: "V", OccurredAt: time.UnixMilli(1), Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	dec := serde.NewDecoder(reg)
	var out schemas.VehicleMessage
	if _, err := dec.Decode(event, reader, &out); !errors.Is(err, serde.ErrIncompatible) {
		t.Fatalf("decoding a ClientEvent as VehicleMessage: err = %v, want ErrIncompatible", err)
	}
	if _, err := dec.Decode([]byte(`{"json":true}`), reader, &out); !errors.Is(err, wire.ErrBadMagic) {
		t.Fatalf("json input: err = %v, want ErrBadMagic", err)
	}
	if _, err := dec.Decode([]byte{0, 0, 0, 0x30, 0x39, 1}, reader, &out); err == nil {
		t.Fatal("unknown schema id decoded")
	}
	eventReader, err := schemas.MustLatest(schemas.ClientEventName).Parse()
	if err != nil {
		t.Fatal(err)
	}
	var ev schemas.ClientEvent
	if _, err := dec.Decode(event, eventReader, &ev); err != nil || ev.VehicleID != "V" {
		t.Fatalf("intact event: %+v, %v", ev, err)
	}
	if _, _, err := dec.DecodeGeneric(event[:len(event)-3]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated record: err = %v, want unexpected EOF", err)
	}
	if _, err := dec.Decode(append(bytes.Clone(event), 0x02), eventReader, &ev); !errors.Is(err, serde.ErrTrailingBytes) {
		t.Fatalf("record with trailing bytes: err = %v, want ErrTrailingBytes", err)
	}
}

// FuzzDecode feeds arbitrary bytes behind a valid header: the decoder must return an error or
// a value, never panic or hang.
func FuzzDecode(f *testing.F) {
	fake := srfake.New()
	defer fake.Close()
	reg := serde.NewRegistry(fake.URL(), "", "")
	def := schemas.MustLatest(schemas.VehicleMessageName)
	enc, err := serde.NewEncoder(reg, "f-value", def, true)
	if err != nil {
		f.Fatal(err)
	}
	good, err := enc.Encode(schematest.VehicleMessage())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good[wire.HeaderSize:])
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	reader, err := def.Parse()
	if err != nil {
		f.Fatal(err)
	}
	dec := serde.NewDecoder(reg)
	hdr, _ := wire.AppendHeader(nil, enc.ID())
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := append(append([]byte{}, hdr...), body...)
		var out schemas.VehicleMessage
		_, _ = dec.Decode(rec, reader, &out)
		_, _, _ = dec.DecodeGeneric(rec)
	})
}

func BenchmarkEncode(b *testing.B) {
	fake := srfake.New()
	defer fake.Close()
	reg := serde.NewRegistry(fake.URL(), "", "")
	enc, err := serde.NewEncoder(reg, "b-value", schemas.MustLatest(schemas.VehicleMessageName), true)
	if err != nil {
		b.Fatal(err)
	}
	m := schematest.VehicleMessage()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Encode(m); err != nil {
			b.Fatal(err)
		}
	}
}

// Every family's latest version round-trips its Go type through the registry.
func TestEveryFamilyRoundTripsItsGoType(t *testing.T) {
	reg := newRegistry(t)
	by := "app-1"
	reason := "normal"
	tests := []struct {
		name string
		in   any
		out  func() any
	}{
		{schemas.VehicleMessageName, ptr(schematest.VehicleMessage()), func() any { return &schemas.VehicleMessage{} }},
		{schemas.ClientEventName, &schemas.ClientEvent{Event: schemas.ClientDisconnected, VehicleID: "V", ClientID: "V", Reason: &reason, OccurredAt: time.UnixMilli(9).UTC(), Node: "n"}, func() any { return &schemas.ClientEvent{} }},
		{schemas.VehicleCommandName, &schemas.VehicleCommand{CommandID: "c1", VehicleID: "V", Name: "door.lock", Params: map[string]string{"door": "all"},
			IssuedAt: time.UnixMilli(1).UTC(), ExpiresAt: time.UnixMilli(2).UTC(), IssuedBy: &by}, func() any { return &schemas.VehicleCommand{} }},
		{schemas.CommandStatusName, &schemas.CommandStatus{CommandID: "c1", VehicleID: "V", Status: schemas.CommandResponded, Source: schemas.SourceVehicle,
			OccurredAt: time.UnixMilli(3).UTC(), Response: []byte(`{"ok":true}`)}, func() any { return &schemas.CommandStatus{} }},
	}
	dec := serde.NewDecoder(reg)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def := schemas.MustLatest(tt.name)
			enc, err := serde.NewEncoder(reg, tt.name+"-value", def, true)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := enc.Encode(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			reader, err := def.Parse()
			if err != nil {
				t.Fatal(err)
			}
			out := tt.out()
			if _, err := dec.Decode(rec, reader, out); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tt.in, out) {
				t.Fatalf("round trip:\n in %+v\nout %+v", tt.in, out)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
