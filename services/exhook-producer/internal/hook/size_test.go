package hook

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/iov-platform/iov/kit/kafkasink"
	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/services/exhook-producer/internal/metrics"
	"github.com/iov-platform/iov/services/exhook-producer/internal/route"
)

// sizeServer is a Server with the real Avro envelope and the given record limit.
func sizeServer(t testing.TB, limit int, topicLimits map[string]int) (*Server, *fakeProducer, *metrics.Metrics) {
	t.Helper()
	rt, err := route.New([]route.Config{
		{Name: "tel", Filter: "vehicles/+/telemetry", KafkaTopic: "tel", Key: route.KeyConfig{From: route.KeyTopicSegment, Segment: 1}, Payload: route.PayloadBytes, Delivery: route.Async},
		{Name: "raw", Filter: "raw/#", KafkaTopic: "raw", Key: route.KeyConfig{From: route.KeyClientID}, Payload: route.PayloadBytes, Delivery: route.Sync},
	})
	if err != nil {
		t.Fatal(err)
	}
	schema, err := schemas.MustLatest(schemas.VehicleMessageName).Parse()
	if err != nil {
		t.Fatal(err)
	}
	enc := avroEncoder{schema}
	prod, m := &fakeProducer{}, metrics.New(prometheus.NewRegistry())
	srv, err := New(Options{
		Router: rt, Producer: prod, Messages: map[string]Encoder{"tel": enc, "raw": enc}, Status: &fakeEncoder{},
		StatusTopic: "status", DeadLetter: "dlq", SyncTimeout: time.Second, MaxRecordBytes: limit, TopicRecordBytes: topicLimits,
		Metrics: m, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return time.UnixMilli(now) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv, prod, m
}

// TestRecordLimitBoundaries: the whole record (value with the envelope, key, headers) is
// checked against the limit, whichever field makes it large: limit-1 and limit go to Kafka,
// limit+1 is refused with a headers-only note on the dead-letter topic, its identifiers cut.
func TestRecordLimitBoundaries(t *testing.T) {
	const limit = 300_000
	big := strings.Repeat("v", 50_000) // the key case carries it three times (key, vehicle id, topic)
	headers := map[string]string{}
	for i := range 1000 {
		headers[fmt.Sprintf("user-property-%04d", i)] = strings.Repeat("h", 80)
	}
	cases := []struct {
		name string
		msg  func(payload int) *exhookv2.Message // a message with a payload of that many bytes
	}{
		{"payload", func(n int) *exhookv2.Message {
			return &exhookv2.Message{Id: "ID", From: "c1", Topic: "vehicles/V1/telemetry", Payload: make([]byte, n)}
		}},
		{"key", func(n int) *exhookv2.Message {
			return &exhookv2.Message{Id: "ID", From: "c1", Topic: "vehicles/" + big + "/telemetry", Payload: make([]byte, n)}
		}},
		{"client id", func(n int) *exhookv2.Message {
			return &exhookv2.Message{Id: "ID", From: big, Topic: "raw/x", Payload: make([]byte, n)}
		}},
		{"headers", func(n int) *exhookv2.Message {
			return &exhookv2.Message{Id: "ID", From: "c1", Topic: "vehicles/V1/telemetry", Payload: make([]byte, n), Headers: headers}
		}},
	}
	for _, c := range cases {
		// Find the payload that makes the record exactly `size` bytes, as the hook builds it.
		measure, prod, _ := sizeServer(t, 0, nil)
		sizeOf := func(payload int) int {
			prod.recs = nil
			if _, err := measure.OnMessagePublish(context.Background(), &exhookv2.MessagePublishRequest{Message: c.msg(payload)}); err != nil {
				t.Fatal(err)
			}
			return kafkasink.RecordSize(prod.recs[0])
		}
		payloadFor := func(size int) int {
			p := 0
			for range 5 {
				got := sizeOf(p)
				if got == size {
					return p
				}
				p += size - got
			}
			t.Fatalf("%s: no payload makes a %d-byte record", c.name, size)
			return 0
		}
		for _, d := range []int{-1, 0, 1} {
			t.Run(fmt.Sprintf("%s limit%+d", c.name, d), func(t *testing.T) {
				payload := payloadFor(limit + d)
				srv, prod, m := sizeServer(t, limit, nil)
				msg := c.msg(payload)
				_, err := srv.OnMessagePublish(context.Background(), &exhookv2.MessagePublishRequest{Message: msg})
				route := "tel"
				if strings.HasPrefix(msg.GetTopic(), "raw/") {
					route = "raw"
				}
				if d <= 0 {
					if err != nil || len(prod.recs) != 1 || prod.recs[0].Topic != route || kafkasink.RecordSize(prod.recs[0]) != limit+d {
						t.Fatalf("record of limit%+d: %v, %d records", d, err, len(prod.recs))
					}
					return
				}
				if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), fmt.Sprintf("record of %d bytes", limit+1)) {
					t.Fatalf("record of limit+1: %v, want InvalidArgument", err)
				}
				if got := testutil.ToFloat64(m.Messages.WithLabelValues(route, metrics.OutcomeOversize)); got != 1 {
					t.Fatalf("oversize metric %v", got)
				}
				if len(prod.recs) != 1 || prod.recs[0].Topic != "dlq" || len(prod.recs[0].Value) != 0 {
					t.Fatalf("want one headers-only note on the dead-letter topic, got %d records", len(prod.recs))
				}
				note := prod.recs[0]
				if kafkasink.RecordSize(note) > 4096 || len(note.Key) > clipBytes+32 {
					t.Fatalf("note of %d bytes, key of %d: identifiers not cut", kafkasink.RecordSize(note), len(note.Key))
				}
				h := map[string]string{}
				for _, kv := range note.Headers {
					h[kv.Key] = string(kv.Value)
				}
				if h[HeaderSize] != fmt.Sprint(payload) || h[HeaderMessageID] != "ID" || !strings.Contains(h[HeaderError], "exceeds the 300000-byte record limit") {
					t.Fatalf("note headers %v", h)
				}
			})
		}
	}
}

// TestTopicLimitIsUsedWhenSmaller: a topic's max.message.bytes, where known, lowers the
// client's limit for that topic only.
func TestTopicLimitIsUsedWhenSmaller(t *testing.T) {
	srv, prod, _ := sizeServer(t, 1_000_000, map[string]int{"raw": 1000})
	payload := make([]byte, 2000)
	if _, err := srv.OnMessagePublish(context.Background(), &exhookv2.MessagePublishRequest{Message: &exhookv2.Message{Id: "1", From: "c", Topic: "vehicles/V/telemetry", Payload: payload}}); err != nil {
		t.Fatalf("tel: %v", err)
	}
	_, err := srv.OnMessagePublish(context.Background(), &exhookv2.MessagePublishRequest{Message: &exhookv2.Message{Id: "2", From: "c", Topic: "raw/x", Payload: payload}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "1000-byte record limit of raw") {
		t.Fatalf("raw: %v", err)
	}
	if len(prod.recs) != 2 || prod.recs[1].Topic != "dlq" {
		t.Fatalf("records %d", len(prod.recs))
	}
}

// TestLongFieldsAreCutInLogs: a megabyte client id does not make a megabyte log line.
func TestLongFieldsAreCutInLogs(t *testing.T) {
	srv, _, _ := sizeServer(t, 10_000, nil)
	var logs strings.Builder
	srv.o.Log = slog.New(slog.NewTextHandler(&logs, nil))
	huge := strings.Repeat("c", 1<<20)
	_, err := srv.OnMessagePublish(context.Background(), &exhookv2.MessagePublishRequest{Message: &exhookv2.Message{Id: huge, From: huge, Topic: "raw/" + huge}})
	if status.Code(err) != codes.InvalidArgument || len(err.Error()) > 2048 {
		t.Fatalf("error of %d bytes: %.200v", len(err.Error()), err)
	}
	if logs.Len() == 0 || logs.Len() > 4096 {
		t.Fatalf("log of %d bytes for a 1 MiB client id", logs.Len())
	}
}

// wireEncoder adds the Confluent wire header (magic byte, 4-byte schema id) as the
// registry-backed encoder does.
type wireEncoder struct{ Encoder }

func (e wireEncoder) Encode(v any) ([]byte, error) {
	b, err := e.Encoder.Encode(v)
	return append(make([]byte, 5), b...), err
}

// TestTypicalRecordOverhead measures what a typical message adds to its payload in the
// record (README: the accepted payload size): envelope, wire header, key, record overhead.
func TestTypicalRecordOverhead(t *testing.T) {
	srv, prod, _ := sizeServer(t, 0, nil)
	srv.o.Messages["tel"] = wireEncoder{srv.o.Messages["tel"]}
	vin := "WVW1234567890ABCD"
	msg := &exhookv2.Message{Node: "emqx@10.0.0.1", Id: "0006123A5B2C1D8EF4410000000A1B2C", Qos: 1, From: vin, Topic: "vehicles/" + vin + "/telemetry",
		Payload: make([]byte, 1000), Timestamp: 1700000000000, Headers: map[string]string{"username": "fleet-a", "peerhost": "10.1.2.3", "protocol": "mqtt", "proto_ver": "5"}}
	if _, err := srv.OnMessagePublish(context.Background(), &exhookv2.MessagePublishRequest{Message: msg}); err != nil {
		t.Fatal(err)
	}
	overhead := kafkasink.RecordSize(prod.recs[0]) - len(msg.GetPayload())
	if overhead < 100 || overhead > 1000 {
		t.Fatalf("overhead %d bytes", overhead)
	}
	t.Logf("a typical message's record is its payload + %d bytes: with message.max.bytes 1000000 the largest payload accepted is %d bytes", overhead, 1000000-overhead)
}
