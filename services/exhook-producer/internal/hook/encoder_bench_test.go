package hook

import (
	"context"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/iov-platform/iov/kit/kafkasink"
	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
)

// avroEncoder encodes with the real schema but no registry.
type avroEncoder struct{ schema avro.Schema }

func (e avroEncoder) Encode(v any) ([]byte, error) { return avro.Marshal(e.schema, v) }

type discard struct{}

func (discard) Produce(context.Context, kafkasink.Record, bool) error { return nil }

func (discard) ProduceCallback(context.Context, kafkasink.Record, func(error)) error { return nil }

// newBenchFixture is newFixture with the producer's Avro encoder (schemas/serde, the latest
// VehicleMessage, registered in an in-memory registry) on the "tel" route and a producer
// that drops records.
func newBenchFixture(b *testing.B) *fixture {
	f := newFixture(b)
	reg := srfake.New()
	b.Cleanup(reg.Close)
	enc, err := serde.NewEncoder(serde.NewRegistry(reg.URL(), "", ""), serde.TopicSubject("tel"), schemas.MustLatest(schemas.VehicleMessageName), true)
	if err != nil {
		b.Fatal(err)
	}
	f.srv.o.Messages["tel"] = enc
	f.srv.o.Producer = discard{}
	return f
}
