// Package commands reads the downlink's command status events back from Kafka for tests and
// the demo: the Avro CommandStatus records on the status topic, decoded, with their place.
package commands

import (
	"fmt"
	"strings"

	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

// Status is a decoded CommandStatus with its partition and offset.
type Status struct {
	schemas.CommandStatus
	Partition int32
	Offset    int64
}

// DecodeStatuses decodes status records, in the order given, with the latest CommandStatus
// schema as reader; a record that does not decode or is not keyed by its vehicle id is an
// error.
func DecodeStatuses(dec *serde.Decoder, recs []stack.Record) ([]Status, error) {
	reader, err := schemas.MustLatest(schemas.CommandStatusName).Parse()
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(recs))
	for _, r := range recs {
		var st schemas.CommandStatus
		if _, err := dec.Decode(r.Value, reader, &st); err != nil {
			return out, fmt.Errorf("status record %d@%d: %w", r.Partition, r.Offset, err)
		}
		if string(r.Key) != st.VehicleID {
			return out, fmt.Errorf("status record %d@%d: key %q, vehicle %q", r.Partition, r.Offset, r.Key, st.VehicleID)
		}
		out = append(out, Status{CommandStatus: st, Partition: r.Partition, Offset: r.Offset})
	}
	return out, nil
}

// Of keeps the events of command id, in the order given.
func Of(evs []Status, id string) []Status {
	var out []Status
	for _, ev := range evs {
		if ev.CommandID == id {
			out = append(out, ev)
		}
	}
	return out
}

// States lists the events' statuses: "SENT,DELIVERED,RESPONDED".
func States(evs []Status) string {
	s := make([]string, len(evs))
	for i, ev := range evs {
		s[i] = ev.Status
	}
	return strings.Join(s, ",")
}
