package load

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
	"github.com/iov-platform/iov/tools/devkit/stack"
	"github.com/iov-platform/iov/tools/devkit/stack/stacktest"
)

// rawProvider is a minimal HookProvider that writes each payload to Kafka keyed by the
// client id. dropEvery > 0 makes it acknowledge but not write every n-th message, and
// duplicate makes it write every message twice, so the verifier can be shown to catch both.
type rawProvider struct {
	exhookv2.UnimplementedHookProviderServer
	cl        *kgo.Client
	topic     string
	dropEvery int64
	duplicate bool
	n         atomic.Int64
}

func (p *rawProvider) OnProviderLoaded(context.Context, *exhookv2.ProviderLoadedRequest) (*exhookv2.LoadedResponse, error) {
	return &exhookv2.LoadedResponse{Hooks: []*exhookv2.HookSpec{{Name: "message.publish", Topics: []string{"#"}}}}, nil
}

func (p *rawProvider) OnMessagePublish(ctx context.Context, req *exhookv2.MessagePublishRequest) (*exhookv2.ValuedResponse, error) {
	n := p.n.Add(1)
	if p.dropEvery == 0 || n%p.dropEvery != 0 {
		rec := &kgo.Record{Topic: p.topic, Key: []byte(req.GetMessage().GetFrom()), Value: req.GetMessage().GetPayload()}
		if err := p.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			return nil, err
		}
		if p.duplicate {
			if err := p.cl.ProduceSync(ctx, &kgo.Record{Topic: p.topic, Key: rec.Key, Value: rec.Value}).FirstErr(); err != nil {
				return nil, err
			}
		}
	}
	return &exhookv2.ValuedResponse{Type: exhookv2.ValuedResponse_IGNORE}, nil
}

func serve(t *testing.T, p exhookv2.HookProviderServer) string { return emqxsim.ServeProvider(t, p) }

func TestRunVerifiesAgainstKafka(t *testing.T) {
	st := stacktest.Start(t, stack.Options{Partitions: 3, Topics: []string{"raw"}})
	cl := stacktest.Client(t, st, kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))

	tests := []struct {
		name           string
		dropEvery      int64
		duplicate      bool
		wantLost       int
		wantDuplicates int
	}{
		{"faithful provider", 0, false, 0, 0},
		{"provider that drops every 7th", 7, false, 60 / 7, 0},
		{"provider that writes twice", 0, true, 0, 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &rawProvider{cl: cl, topic: "raw", dropEvery: tt.dropEvery, duplicate: tt.duplicate}
			rep, err := Run(context.Background(), Options{
				Addr: serve(t, p), Vehicles: 6, Messages: 10, Pool: 2, RequestTimeout: 5 * time.Second,
				Bootstrap: st.KafkaBootstrap(), KafkaTopic: "raw", Extract: RawPayload, VerifyWait: 3 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Sent != 60 || rep.Acked != 60 || rep.Errors != 0 {
				t.Fatalf("sent=%d acked=%d errors=%d", rep.Sent, rep.Acked, rep.Errors)
			}
			if !rep.Verified || rep.Lost != tt.wantLost || rep.Duplicates != tt.wantDuplicates || rep.Consumed != 60-tt.wantLost {
				t.Fatalf("report %+v", rep)
			}
			if rep.OK() != (tt.wantLost == 0 && tt.wantDuplicates == 0) {
				t.Fatalf("OK() = %v for %+v", rep.OK(), rep)
			}
			if rep.P50 <= 0 || rep.P99 < rep.P50 || rep.Max < rep.P99 {
				t.Fatalf("latencies p50=%s p99=%s max=%s", rep.P50, rep.P99, rep.Max)
			}
		})
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{},
		{Addr: "x:1", Vehicles: 1},
		{Addr: "x:1", Vehicles: 1, Messages: 1, TopicTemplate: "no/vehicle"},
		{Addr: "x:1", Vehicles: 1, Messages: 1, Bootstrap: "k:9092"},
	} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("Run(%+v) accepted", o)
		}
	}
}

// TestVerifyCounts checks the verifier's accounting on a topic written by hand: records of
// other runs are ignored, a repeated record is a duplicate, a lower seq after a higher one is
// out of order, and an acknowledged message that is absent is lost.
func TestVerifyCounts(t *testing.T) {
	st := stacktest.Start(t, stack.Options{Partitions: 1, Topics: []string{"counts"}, DataDir: t.TempDir()})
	cl := stacktest.Client(t, st)
	rec := func(run string, v, seq int) *kgo.Record {
		body, _ := json.Marshal(payload{Run: run, Vehicle: vehicleID(v), Seq: seq})
		return &kgo.Record{Topic: "counts", Key: []byte(vehicleID(v)), Value: body}
	}
	recs := []*kgo.Record{
		rec("other", 0, 0), // another run: ignored
		rec("r", 0, 0),
		rec("r", 0, 2),
		rec("r", 0, 1), // out of order
		rec("r", 0, 2), // duplicate
		rec("r", 1, 0), // vehicle 1's seq 1 is missing
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	acked := [][]int{{0, 1, 2}, {0, 1}}
	sent := [][]int{{0, 1, 2, 3}, {0, 1}} // vehicle 0's seq 3 failed at the hook and is not in Kafka
	var rep Report
	o := Options{Bootstrap: st.KafkaBootstrap(), KafkaTopic: "counts", Extract: RawPayload}
	// A message is missing, so verify waits VerifyWait for it; a wait that ends before a
	// read could finish must still count from a complete read (a read cut at the deadline
	// once passed for an empty topic: "nothing read back").
	for _, wait := range []time.Duration{time.Nanosecond, time.Second} {
		o.VerifyWait = wait
		if err := verify(context.Background(), o, "r", acked, sent, &rep); err != nil {
			t.Fatal(err)
		}
		if !rep.Verified || rep.Consumed != 4 || rep.Lost != 1 || rep.RoutedLost != 2 || rep.Duplicates != 1 || rep.OutOfOrder != 1 {
			t.Fatalf("VerifyWait %s: report %+v, want consumed 4, lost 1, routed lost 2, duplicates 1, out of order 1", wait, rep)
		}
		if want := []string{vehicleID(0) + " #2 at 0@2 and 0@4"}; !slices.Equal(rep.DuplicateAt, want) || rep.ReadTwice != 0 {
			t.Fatalf("VerifyWait %s: duplicates at %q, read twice %d; want %q, 0", wait, rep.DuplicateAt, rep.ReadTwice, want)
		}
	}
	// An Extract error names the record and fails the verification.
	o.Extract = func(_, _ []byte) ([]byte, error) { return nil, errors.New("not an envelope") }
	if err := verify(context.Background(), o, "r", acked, sent, &rep); err == nil || !strings.Contains(err.Error(), "counts/0@") {
		t.Fatalf("verify with a failing Extract = %v", err)
	}
	// Kafka still restarting when the verification starts (its port refuses connections, as
	// after TestBrokerFaults/restart-all): the read waits for it and counts the same.
	o.Extract, o.VerifyWait = RawPayload, time.Second
	st.StopKafka()
	restarted := make(chan error, 1)
	go func() {
		time.Sleep(time.Second)
		restarted <- st.StartKafka()
	}()
	rep = Report{}
	err := verify(context.Background(), o, "r", acked, sent, &rep)
	if rerr := <-restarted; rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatalf("verify while Kafka restarts: %v", err)
	}
	if !rep.Verified || rep.Consumed != 4 || rep.Lost != 1 || rep.RoutedLost != 2 || rep.Duplicates != 1 || rep.OutOfOrder != 1 {
		t.Fatalf("verify while Kafka restarts: report %+v, want consumed 4, lost 1, routed lost 2, duplicates 1, out of order 1", rep)
	}
}

// TestVerifyUnkeyed: with Unkeyed, records keyed by something else than the vehicle are
// counted (a keyed verification refuses them) and order is not judged; lost and duplicates
// still are.
func TestVerifyUnkeyed(t *testing.T) {
	st := stacktest.Start(t, stack.Options{Partitions: 1, Topics: []string{"unkeyed"}})
	cl := stacktest.Client(t, st)
	rec := func(v, seq int, key string) *kgo.Record {
		body, _ := json.Marshal(payload{Run: "r", Vehicle: vehicleID(v), Seq: seq})
		return &kgo.Record{Topic: "unkeyed", Key: []byte(key), Value: body}
	}
	recs := []*kgo.Record{
		rec(0, 1, "msg-a"),
		rec(0, 0, "msg-b"), // earlier seq after a later one: not judged
		rec(0, 1, "msg-c"), // duplicate
		rec(1, 0, "msg-d"), // vehicle 1's seq 1 is missing
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	acked := [][]int{{0, 1}, {0, 1}}
	o := Options{Bootstrap: st.KafkaBootstrap(), KafkaTopic: "unkeyed", Extract: RawPayload, VerifyWait: time.Nanosecond}
	var rep Report
	if err := verify(context.Background(), o, "r", acked, acked, &rep); err == nil || !strings.Contains(err.Error(), `record key "msg-`) {
		t.Fatalf("keyed verification of records keyed by message id = %v, want a key error", err)
	}
	o.Unkeyed = true
	rep = Report{}
	if err := verify(context.Background(), o, "r", acked, acked, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Verified || rep.Consumed != 3 || rep.Lost != 1 || rep.Duplicates != 1 || rep.OutOfOrder != 0 {
		t.Fatalf("report %+v, want consumed 3, lost 1, duplicates 1, out of order 0", rep)
	}
}

// TestTally: one read's accounting. A message at two offsets is a duplicate, listed with
// both; the same offset returned twice by the reader is not; the list is bounded.
func TestTally(t *testing.T) {
	rec := func(run string, v, seq int, part int32, off int64) stack.Record {
		body, _ := json.Marshal(payload{Run: run, Vehicle: vehicleID(v), Seq: seq})
		return stack.Record{Topic: "t", Partition: part, Offset: off, Key: []byte(vehicleID(v)), Value: body}
	}
	many := []stack.Record{rec("r", 0, 0, 0, 0)}
	for i := range maxDuplicateAt + 5 {
		many = append(many, rec("r", 0, 0, 0, int64(i+1)))
	}
	for _, tc := range []struct {
		name                         string
		recs                         []stack.Record
		duplicates, readTwice, order int
		at                           []string
	}{
		{"once each", []stack.Record{rec("r", 0, 0, 1, 7), rec("r", 0, 1, 1, 8), rec("r", 1, 0, 0, 3)}, 0, 0, 0, nil},
		{"written twice", []stack.Record{rec("r", 0, 0, 1, 7), rec("r", 0, 1, 1, 8), rec("r", 0, 0, 1, 9)}, 1, 0, 0,
			[]string{vehicleID(0) + " #0 at 1@7 and 1@9"}},
		{"read twice", []stack.Record{rec("r", 0, 0, 1, 7), rec("r", 0, 1, 1, 8), rec("r", 0, 0, 1, 7), rec("r", 0, 1, 1, 8)}, 0, 2, 0, nil},
		{"out of order", []stack.Record{rec("r", 0, 1, 1, 7), rec("r", 0, 0, 1, 8)}, 0, 0, 1, nil},
		{"another run's", []stack.Record{rec("r", 0, 0, 1, 7), rec("other", 0, 0, 1, 8)}, 0, 0, 0, nil},
		{"a bounded list", many, maxDuplicateAt + 5, 0, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rep Report
			found, err := tally(tc.recs, false, RawPayload, "r", &rep)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Duplicates != tc.duplicates || rep.ReadTwice != tc.readTwice || rep.OutOfOrder != tc.order {
				t.Fatalf("duplicates %d, read twice %d, out of order %d; want %d, %d, %d", rep.Duplicates, rep.ReadTwice, rep.OutOfOrder, tc.duplicates, tc.readTwice, tc.order)
			}
			if tc.at != nil && !slices.Equal(rep.DuplicateAt, tc.at) || len(rep.DuplicateAt) != min(tc.duplicates, maxDuplicateAt) {
				t.Fatalf("duplicates at %q, want %q (%d)", rep.DuplicateAt, tc.at, min(tc.duplicates, maxDuplicateAt))
			}
			if first := found[vehicleID(0)][0]; first != (position{tc.recs[0].Partition, tc.recs[0].Offset}) && tc.name != "out of order" {
				t.Fatalf("first copy of %s #0 at %s", vehicleID(0), first)
			}
		})
	}
	// A record of this run keyed by another vehicle is refused (keyed verification).
	bad := rec("r", 0, 0, 0, 0)
	bad.Key = []byte("other")
	if _, err := tally([]stack.Record{bad}, false, RawPayload, "r", &Report{}); err == nil || !strings.Contains(err.Error(), "record key") {
		t.Fatalf("tally of a record keyed by another vehicle = %v", err)
	}
}
