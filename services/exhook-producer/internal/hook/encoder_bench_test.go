package hook

import "github.com/hamba/avro/v2"

// avroEncoder encodes with the real schema but no registry, for benchmarks.
type avroEncoder struct{ schema avro.Schema }

func (e avroEncoder) Encode(v any) ([]byte, error) { return avro.Marshal(e.schema, v) }
