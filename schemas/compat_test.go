package schemas

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hamba/avro/v2"
)

// TestEveryVersionIsBackwardCompatible checks that a reader on version N reads data written
// with version N-1, for every family. The registry in tests (srfake) approves everything, so
// this test is the gate.
func TestEveryVersionIsBackwardCompatible(t *testing.T) {
	names, err := Names()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no schema families found")
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			defs, err := Versions(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkChain(defs); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCompatibilityCheckRejectsBreakingChange proves the gate can fail: a v2 that adds a field
// without a default cannot read v1 data.
func TestCompatibilityCheckRejectsBreakingChange(t *testing.T) {
	fsys := fstest.MapFS{
		"s/v1.avsc": {Data: []byte(`{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}`)},
		"s/v2.avsc": {Data: []byte(`{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}`)},
	}
	defs, err := versionsIn(fsys, "s", "s")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkChain(defs); err == nil {
		t.Fatal("adding a field without default was accepted as backward compatible")
	}
}

func TestVersionsRejectsGapsAndBadNames(t *testing.T) {
	rec := []byte(`{"type":"record","name":"R","fields":[]}`)
	tests := map[string]fstest.MapFS{
		"gap":      {"s/v1.avsc": {Data: rec}, "s/v3.avsc": {Data: rec}},
		"bad name": {"s/version1.avsc": {Data: rec}},
		"empty":    {"s/README.md": {Data: rec}},
	}
	for name, fsys := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := versionsIn(fsys, "s", "s"); err == nil {
				t.Fatal("expected an error")
			}
		})
	}
}

func checkChain(defs []Definition) error {
	for i := 1; i < len(defs); i++ {
		if err := CheckBackward(defs[i], defs[i-1]); err != nil {
			return err
		}
	}
	for _, d := range defs {
		if _, err := d.Parse(); err != nil {
			return err
		}
	}
	return nil
}

func TestNamesInAndVersionsInReadATree(t *testing.T) {
	rec := func(fields string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(`{"type":"record","name":"R","fields":[` + fields + `]}`)}
	}
	fsys := fstest.MapFS{
		"b/v1.avsc":  rec(`{"name":"a","type":"string"}`),
		"b/v2.avsc":  rec(`{"name":"a","type":"string"},{"name":"c","type":"int","default":0}`),
		"a/v1.avsc":  rec(``),
		"README.md":  {Data: []byte("not a family")},
		"a/notes.md": {Data: []byte("ignored")},
	}
	names, err := NamesIn(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b"}; !slices.Equal(names, want) {
		t.Fatalf("names = %v, want %v", names, want)
	}
	defs, err := VersionsIn(fsys, "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(defs) != 2 || defs[0].Version != 1 || defs[1].Version != 2 || defs[1].Name != "b" {
		t.Fatalf("versions = %+v", defs)
	}
	if err := CheckBackward(defs[1], defs[0]); err != nil {
		t.Fatalf("adding a field with a default: %v", err)
	}
	if err := CheckBackward(defs[0], defs[1]); err != nil {
		t.Fatalf("dropping a field: %v", err)
	}
}

// TestLatestVehicleMessageReadsOldRecords decodes records written with every older
// vehicle_message version into the latest Go type: the fields the old version had come
// through, the newer ones take their defaults.
func TestLatestVehicleMessageReadsOldRecords(t *testing.T) {
	user := "fleet-a"
	full := VehicleMessage{
		MessageID: "m1", VehicleID: "VIN1", ClientID: "VIN1", Username: &user, MQTTTopic: "vehicles/VIN1/telemetry",
		QoS: 1, Payload: []byte(`{"speed":42}`), PayloadFormat: PayloadJSON,
		PublishedAt: time.UnixMilli(1_700_000_000_123).UTC(), IngestedAt: time.UnixMilli(1_700_000_000_456).UTC(),
		Node: "emqx@n1", Route: "telemetry", Headers: map[string]string{"peerhost": "10.0.0.1"},
		MQTTProperties: map[string]string{"Content-Type": "application/json"},
		UserProperties: []UserProperty{{Name: "fw", Value: "1.2"}},
	}
	// What the latest reader must see for a record written with version N.
	want := map[int]func(VehicleMessage) VehicleMessage{
		1: func(v VehicleMessage) VehicleMessage {
			v.Route, v.Headers = "", map[string]string{}
			v.MQTTProperties, v.UserProperties = map[string]string{}, []UserProperty{}
			return v
		},
		2: func(v VehicleMessage) VehicleMessage {
			v.MQTTProperties, v.UserProperties = map[string]string{}, []UserProperty{}
			return v
		},
		3: func(v VehicleMessage) VehicleMessage { return v },
	}
	defs, err := Versions(VehicleMessageName)
	if err != nil {
		t.Fatal(err)
	}
	latest := defs[len(defs)-1]
	if latest.Version != 3 {
		t.Fatalf("latest vehicle_message is v%d: extend this test for it", latest.Version)
	}
	reader, err := latest.Parse()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range defs {
		t.Run(fmt.Sprintf("v%d", d.Version), func(t *testing.T) {
			writer, err := d.Parse()
			if err != nil {
				t.Fatal(err)
			}
			body, err := avro.Marshal(writer, full) // writes only the fields version N has
			if err != nil {
				t.Fatal(err)
			}
			resolved, err := avro.NewSchemaCompatibility().Resolve(reader, writer)
			if err != nil {
				t.Fatal(err)
			}
			var got VehicleMessage
			if err := avro.Unmarshal(resolved, body, &got); err != nil {
				t.Fatal(err)
			}
			if exp := want[d.Version](full); !reflect.DeepEqual(got, exp) {
				t.Fatalf("v%d record read as\n %+v\nwant\n %+v", d.Version, got, exp)
			}
		})
	}
}
