package schemas

import (
	"fmt"
	"testing"
	"testing/fstest"

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
	var prev avro.Schema
	for _, d := range defs {
		s, err := d.Parse()
		if err != nil {
			return err
		}
		if prev != nil {
			if err := avro.NewSchemaCompatibility().Compatible(s, prev); err != nil {
				return fmt.Errorf("%s v%d cannot read v%d data: %w", d.Name, d.Version, d.Version-1, err)
			}
		}
		prev = s
	}
	return nil
}
