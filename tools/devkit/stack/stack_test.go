package stack

import (
	"errors"
	"testing"

	"github.com/riferrei/srclient"
)

// TestEnforceCompatRefusesIncompatibleSchemas: with EnforceCompat the stack's registry refuses
// what Confluent's would; without, srfake takes anything.
func TestEnforceCompatRefusesIncompatibleSchemas(t *testing.T) {
	const (
		v1  = `{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}`
		bad = `{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}`
	)
	for _, enforce := range []bool{false, true} {
		st, err := Start(Options{Partitions: 1, EnforceCompat: enforce})
		if err != nil {
			t.Fatal(err)
		}
		reg := srclient.NewSchemaRegistryClient(st.RegistryURL())
		reg.CodecCreationEnabled(false)
		if _, err := reg.CreateSchema("s-value", v1, srclient.Avro); err != nil {
			t.Fatal(err)
		}
		_, err = reg.CreateSchema("s-value", bad, srclient.Avro)
		var se srclient.Error
		if refused := errors.As(err, &se) && se.Code == 409; refused != enforce {
			t.Errorf("EnforceCompat=%v: registering an incompatible version: %v", enforce, err)
		}
		st.Close()
	}
}
