package commands

import (
	"strings"
	"testing"
	"time"

	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/tools/devkit/stack"
	"github.com/iov-platform/iov/tools/devkit/stack/stacktest"
)

func TestDecodeStatuses(t *testing.T) {
	st := stacktest.Start(t, stack.Options{})
	reg := serde.NewRegistry(st.RegistryURL(), "", "")
	enc, err := serde.NewEncoder(reg, serde.TopicSubject("status"), schemas.MustLatest(schemas.CommandStatusName), true)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(key, cmd, vin, status string, off int64) stack.Record {
		b, err := enc.Encode(&schemas.CommandStatus{CommandID: cmd, VehicleID: vin, Status: status, Source: schemas.SourceBroker,
			OccurredAt: time.UnixMilli(1000).UTC(), Node: "n"})
		if err != nil {
			t.Fatal(err)
		}
		return stack.Record{Topic: "status", Partition: 2, Offset: off, Key: []byte(key), Value: b}
	}
	dec := serde.NewDecoder(reg)

	evs, err := DecodeStatuses(dec, []stack.Record{rec("V1", "c1", "V1", "SENT", 0), rec("V2", "c2", "V2", "SENT", 1), rec("V1", "c1", "V1", "ACKED", 2)})
	if err != nil {
		t.Fatal(err)
	}
	if got := States(Of(evs, "c1")); got != "SENT,ACKED" {
		t.Fatalf("c1: %s", got)
	}
	if c1 := Of(evs, "c1"); c1[1].Partition != 2 || c1[1].Offset != 2 || c1[1].VehicleID != "V1" {
		t.Fatalf("c1 ACKED at %d@%d for %s", c1[1].Partition, c1[1].Offset, c1[1].VehicleID)
	}
	if got := States(Of(evs, "none")); got != "" {
		t.Fatalf("unknown command: %q", got)
	}

	for name, tc := range map[string]struct {
		recs []stack.Record
		want string
	}{
		"wrong key":    {[]stack.Record{rec("V1", "c1", "V1", "SENT", 0), rec("V9", "c2", "V2", "SENT", 1)}, `status record 2@1: key "V9", vehicle "V2"`},
		"not a status": {[]stack.Record{{Partition: 0, Offset: 7, Key: []byte("V1"), Value: []byte("garbage")}}, "status record 0@7: "},
	} {
		got, err := DecodeStatuses(dec, tc.recs)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
		if len(got) != len(tc.recs)-1 {
			t.Errorf("%s: %d events before the bad record", name, len(got))
		}
	}
}
