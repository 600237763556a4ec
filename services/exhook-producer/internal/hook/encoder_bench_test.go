package hook

import (
	"context"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/iov-platform/iov/kit/kafkasink"
	"github.com/iov-platform/iov/schemas"
)

// avroEncoder encodes with the real schema but no registry, for benchmarks.
type avroEncoder struct{ schema avro.Schema }

func (e avroEncoder) Encode(v any) ([]byte, error) { return avro.Marshal(e.schema, v) }

type discard struct{}

func (discard) Produce(context.Context, kafkasink.Record, bool) error { return nil }

func (discard) ProduceCallback(context.Context, kafkasink.Record, func(error)) error { return nil }

// newBenchFixture is newFixture with the real Avro encoding of the latest VehicleMessage on
// the "tel" route and a producer that drops records.
func newBenchFixture(b *testing.B) *fixture {
	f := newFixture(b)
	schema, err := schemas.MustLatest(schemas.VehicleMessageName).Parse()
	if err != nil {
		b.Fatal(err)
	}
	f.srv.o.Messages["tel"] = avroEncoder{schema}
	f.srv.o.Producer = discard{}
	return f
}
