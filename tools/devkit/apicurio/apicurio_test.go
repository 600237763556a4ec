package apicurio

import (
	"context"
	"errors"
	"testing"

	"github.com/riferrei/srclient"
)

// TestRealRegistryRefusesAtBackward: the real registry starts, takes a first version, and at
// BACKWARD refuses a version that adds a field without a default (srfake would accept it).
func TestRealRegistryRefusesAtBackward(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a JVM")
	}
	reg, err := Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	c := srclient.NewSchemaRegistryClient(reg.URL())
	c.CodecCreationEnabled(false)
	const (
		v1  = `{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}`
		ok  = `{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}`
		bad = `{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0},{"name":"c","type":"long"}]}`
	)
	if _, err := c.CreateSchema("r-value", v1, srclient.Avro); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ChangeSubjectCompatibilityLevel("r-value", srclient.Backward); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSchema("r-value", ok, srclient.Avro); err != nil {
		t.Fatalf("compatible version refused: %v", err)
	}
	compatible, err := c.IsSchemaCompatible("r-value", bad, "latest", srclient.Avro)
	if err != nil || compatible {
		t.Fatalf("compatibility of a field without default = %v, %v; want false", compatible, err)
	}
	_, err = c.CreateSchema("r-value", bad, srclient.Avro)
	var se srclient.Error
	if !errors.As(err, &se) {
		t.Fatalf("registering a field without default: %v, want a registry error", err)
	}
	latest, err := c.GetLatestSchema("r-value")
	if err != nil || latest.Version() != 2 {
		t.Fatalf("latest = %v, %v; want version 2", latest, err)
	}
}
