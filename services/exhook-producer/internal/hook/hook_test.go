package hook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
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

// fakeProducer records what would have gone to Kafka.
type fakeProducer struct {
	mu      sync.Mutex
	recs    []kafkasink.Record
	waits   []bool
	err     error
	reports []func(error) // ProduceCallback's, until settle
}

func (f *fakeProducer) ProduceCallback(ctx context.Context, rec kafkasink.Record, done func(error)) error {
	if err := f.Produce(ctx, rec, false); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports = append(f.reports, done)
	return nil
}

// settle delivers the delivery reports of the records queued so far with err.
func (f *fakeProducer) settle(err error) {
	f.mu.Lock()
	reports := f.reports
	f.reports = nil
	f.mu.Unlock()
	for _, done := range reports {
		done(err)
	}
}

func (f *fakeProducer) Produce(_ context.Context, rec kafkasink.Record, wait bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.recs = append(f.recs, rec)
	f.waits = append(f.waits, wait)
	return nil
}

// fakeEncoder keeps the value it was given, so tests can inspect the envelope.
type fakeEncoder struct {
	last any
	err  error
}

func (e *fakeEncoder) Encode(v any) ([]byte, error) {
	e.last = v
	return []byte("avro"), e.err
}

type fixture struct {
	srv     *Server
	prod    *fakeProducer
	enc     *fakeEncoder
	status  *fakeEncoder
	metrics *metrics.Metrics
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	rt, err := route.New([]route.Config{
		{Name: "tel", Filter: "vehicles/+/telemetry", KafkaTopic: "tel", Key: route.KeyConfig{From: route.KeyTopicSegment, Segment: 1}, Payload: route.PayloadJSON, Delivery: route.Async},
		{Name: "ev", Filter: "vehicles/+/events/#", KafkaTopic: "ev", Key: route.KeyConfig{From: route.KeyTopicSegment, Segment: 1}, Payload: route.PayloadBytes, Delivery: route.Sync},
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{prod: &fakeProducer{}, enc: &fakeEncoder{}, status: &fakeEncoder{}, metrics: metrics.New(prometheus.NewRegistry())}
	f.srv, err = New(Options{
		Router: rt, Producer: f.prod, Messages: map[string]Encoder{"tel": f.enc, "ev": f.enc},
		Status: f.status, StatusTopic: "status", DeadLetter: "dlq", SyncTimeout: time.Second,
		Metrics: f.metrics, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { return time.UnixMilli(now) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// The fixture's clock, and when EMQX received the test messages (unix millis).
const now, received = 1_790_000_000_000, 1_789_999_999_000

func publish(topic, from string, payload []byte) *exhookv2.MessagePublishRequest {
	return &exhookv2.MessagePublishRequest{Message: &exhookv2.Message{
		Node: "emqx@n1", Id: "ID1", Qos: 1, From: from, Topic: topic, Payload: payload, Timestamp: received,
		Headers: map[string]string{"username": "u1", "peerhost": "10.0.0.9"},
	}}
}

func TestPublishRoutesAndReplies(t *testing.T) {
	tests := []struct {
		name       string
		topic      string
		payload    string
		wantTopic  string // "" = nothing produced
		wantWait   bool
		wantKey    string
		wantOutcom string
		wantRoute  string
	}{
		{"async json", "vehicles/V1/telemetry", `{"a":1}`, "tel", false, "V1", metrics.OutcomeQueued, "tel"},
		{"sync bytes", "vehicles/V2/events/x", "\x00\x01", "ev", true, "V2", metrics.OutcomeProduced, "ev"},
		{"bad json to dlq", "vehicles/V3/telemetry", `{`, "dlq", false, "V3", metrics.OutcomeDeadLettered, "tel"},
		{"empty vehicle to dlq keyed by client", "vehicles//telemetry", `{}`, "dlq", false, "client-9", metrics.OutcomeDeadLettered, "tel"},
		{"unrouted passes", "other/topic", `x`, "", false, "", metrics.OutcomeUnrouted, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			resp, err := f.srv.OnMessagePublish(context.Background(), publish(tt.topic, "client-9", []byte(tt.payload)))
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetType() != exhookv2.ValuedResponse_IGNORE || resp.GetMessage() != nil {
				t.Fatalf("reply %+v, want bare IGNORE so EMQX publishes the message unchanged", resp)
			}
			if got := testutil.ToFloat64(f.metrics.Messages.WithLabelValues(tt.wantRoute, tt.wantOutcom)); got != 1 {
				t.Fatalf("metric %s/%s = %v", tt.wantRoute, tt.wantOutcom, got)
			}
			if tt.wantTopic == "" {
				if len(f.prod.recs) != 0 {
					t.Fatalf("produced %d records for an unrouted topic", len(f.prod.recs))
				}
				return
			}
			if len(f.prod.recs) != 1 {
				t.Fatalf("produced %d records", len(f.prod.recs))
			}
			rec := f.prod.recs[0]
			if rec.Topic != tt.wantTopic || string(rec.Key) != tt.wantKey || f.prod.waits[0] != tt.wantWait {
				t.Fatalf("record topic=%s key=%s wait=%v", rec.Topic, rec.Key, f.prod.waits[0])
			}
			if tt.wantTopic == "dlq" {
				if string(rec.Value) != tt.payload {
					t.Fatalf("dead letter value %q, want the raw payload", rec.Value)
				}
				h := map[string]string{}
				for _, kv := range rec.Headers {
					h[kv.Key] = string(kv.Value)
				}
				if h[HeaderError] == "" || h[HeaderTopic] != tt.topic || h[HeaderRoute] != "tel" || h[HeaderMessageID] != "ID1" {
					t.Fatalf("dead letter headers %v", h)
				}
				return
			}
			m := f.enc.last.(*schemas.VehicleMessage)
			if m.VehicleID != tt.wantKey || m.MQTTTopic != tt.topic || string(m.Payload) != tt.payload || m.Route != tt.wantRoute ||
				m.Username == nil || *m.Username != "u1" || m.PublishedAt.UnixMilli() != received || m.IngestedAt.UnixMilli() != now || m.Node != "emqx@n1" {
				t.Fatalf("envelope %+v", m)
			}
		})
	}
}

// TestAsyncIsCountedProducedOnlyWhenKafkaAcknowledges: an async call is "queued" when EMQX
// is answered, and "produced" or "lost" only on its delivery report.
func TestAsyncIsCountedProducedOnlyWhenKafkaAcknowledges(t *testing.T) {
	tests := []struct {
		name   string
		report error
		want   string
	}{
		{"acknowledged", nil, metrics.OutcomeProduced},
		{"timed out", kafka.NewError(kafka.ErrMsgTimedOut, "Local: Message timed out", false), metrics.OutcomeLost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if _, err := f.srv.OnMessagePublish(context.Background(), publish("vehicles/V1/telemetry", "c", []byte(`{}`))); err != nil {
				t.Fatal(err)
			}
			count := func(outcome string) float64 {
				return testutil.ToFloat64(f.metrics.Messages.WithLabelValues("tel", outcome))
			}
			if count(metrics.OutcomeQueued) != 1 || count(metrics.OutcomeProduced) != 0 || count(metrics.OutcomeLost) != 0 {
				t.Fatalf("before the report: queued %v produced %v lost %v", count(metrics.OutcomeQueued), count(metrics.OutcomeProduced), count(metrics.OutcomeLost))
			}
			f.prod.settle(tt.report)
			for _, o := range []string{metrics.OutcomeProduced, metrics.OutcomeLost} {
				want := 0.0
				if o == tt.want {
					want = 1
				}
				if got := count(o); got != want {
					t.Errorf("%s = %v after the report, want %v", o, got, want)
				}
			}
		})
	}
}

// TestImplausibleFieldsAreFixedOrDeadLettered: a qos outside 0..2 cannot come from MQTT, so
// the message goes to the dead-letter topic with the reason; an implausible EMQX timestamp
// is replaced by the ingestion time, and the record says so in a header (and a metric).
func TestImplausibleFieldsAreFixedOrDeadLettered(t *testing.T) {
	tests := []struct {
		name          string
		qos           uint32
		timestamp     uint64
		wantTopic     string
		wantPublished int64  // envelope's published_at, unix millis
		wantHeader    string // iov.mqtt.timestamp.invalid, "" = none
	}{
		{"plausible", 2, received, "tel", received, ""},
		{"qos 3", 3, received, "dlq", 0, ""},
		{"qos 255", 255, received, "dlq", 0, ""},
		{"timestamp 0", 1, 0, "tel", now, "0"},
		{"timestamp before 2000", 1, 946684799999, "tel", now, "946684799999"},
		{"timestamp 2000-01-01", 1, 946684800000, "tel", 946684800000, ""},
		{"timestamp an hour ahead", 1, now + 3600_000, "tel", now + 3600_000, ""},
		{"timestamp more than an hour ahead", 1, now + 3600_001, "tel", now, fmt.Sprint(now + 3600_001)},
		{"timestamp year 292278994", 1, 9223372036854775807, "tel", now, "9223372036854775807"},
		{"timestamp beyond int64", 1, 18446744073709551615, "tel", now, "18446744073709551615"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			req := publish("vehicles/V1/telemetry", "c", []byte(`{}`))
			req.Message.Qos, req.Message.Timestamp = tt.qos, tt.timestamp
			if _, err := f.srv.OnMessagePublish(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			rec := f.prod.recs[0]
			h := map[string]string{}
			for _, kv := range rec.Headers {
				h[kv.Key] = string(kv.Value)
			}
			if rec.Topic != tt.wantTopic {
				t.Fatalf("record on %s, want %s", rec.Topic, tt.wantTopic)
			}
			if tt.wantTopic == "dlq" {
				if !strings.Contains(h[HeaderError], "outside 0..2") || h[HeaderQoS] != fmt.Sprint(tt.qos) {
					t.Fatalf("dead letter headers %v", h)
				}
				return
			}
			if m := f.enc.last.(*schemas.VehicleMessage); m.PublishedAt.UnixMilli() != tt.wantPublished {
				t.Fatalf("published_at %d, want %d", m.PublishedAt.UnixMilli(), tt.wantPublished)
			}
			if h[HeaderTimestampInvalid] != tt.wantHeader {
				t.Fatalf("%s header %q, want %q", HeaderTimestampInvalid, h[HeaderTimestampInvalid], tt.wantHeader)
			}
			want := 0.0
			if tt.wantHeader != "" {
				want = 1
			}
			if got := testutil.ToFloat64(f.metrics.FieldsReplaced.WithLabelValues("tel", "timestamp")); got != want {
				t.Fatalf("fields replaced = %v, want %v", got, want)
			}
		})
	}
}

func TestPublishErrorsBecomeGRPCStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want codes.Code
	}{
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded},
		{"fatal producer", kafkasink.ErrFatal, codes.Internal},
		{"too large", kafka.NewError(kafka.ErrMsgSizeTooLarge, "too big", false), codes.InvalidArgument},
		{"broker down", errors.New("all brokers down"), codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.prod.err = tt.err
			_, err := f.srv.OnMessagePublish(context.Background(), publish("vehicles/V/events/x", "c", []byte("x")))
			if status.Code(err) != tt.want {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tt.want)
			}
			if got := testutil.ToFloat64(f.metrics.Messages.WithLabelValues("ev", metrics.OutcomeFailed)); got != 1 {
				t.Fatalf("failed metric = %v", got)
			}
		})
	}
	f := newFixture(t)
	if _, err := f.srv.OnMessagePublish(context.Background(), &exhookv2.MessagePublishRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("request without message: %v", err)
	}
}

func TestProviderLoadedRegistersRouteFilters(t *testing.T) {
	f := newFixture(t)
	resp, err := f.srv.OnProviderLoaded(context.Background(), &exhookv2.ProviderLoadedRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, h := range resp.GetHooks() {
		got[h.GetName()] = h.GetTopics()
	}
	if len(got) != 3 || len(got[HookMessagePublish]) != 2 || got[HookMessagePublish][1] != "vehicles/+/events/#" {
		t.Fatalf("hooks %v", got)
	}
}

// With a hook scope, message.publish is registered for the scope, not for the routes, so
// EMQX (which asks only when it loads the server) keeps calling for routes added later.
func TestProviderLoadedRegistersHookScope(t *testing.T) {
	f := newFixture(t)
	f.srv.o.HookScope = []string{"vehicles/#"}
	resp, err := f.srv.OnProviderLoaded(context.Background(), &exhookv2.ProviderLoadedRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range resp.GetHooks() {
		if h.GetName() == HookMessagePublish {
			if !slices.Equal(h.GetTopics(), []string{"vehicles/#"}) {
				t.Fatalf("message.publish topics %q, want the scope", h.GetTopics())
			}
			return
		}
	}
	t.Fatal("message.publish not registered")
}

func TestClientEvents(t *testing.T) {
	f := newFixture(t)
	ci := &exhookv2.ClientInfo{Clientid: "V7", Username: "fleet", Peerhost: "1.2.3.4", Protocol: "mqtt", Node: "n"}
	if _, err := f.srv.OnClientDisconnected(context.Background(), &exhookv2.ClientDisconnectedRequest{Clientinfo: ci, Reason: "normal"}); err != nil {
		t.Fatal(err)
	}
	ev := f.status.last.(*schemas.ClientEvent)
	if ev.Event != schemas.ClientDisconnected || *ev.Reason != "normal" || ev.VehicleID != "V7" || *ev.Username != "fleet" {
		t.Fatalf("event %+v", ev)
	}
	if rec := f.prod.recs[0]; rec.Topic != "status" || string(rec.Key) != "V7" {
		t.Fatalf("record %+v", rec)
	}
	if _, err := f.srv.OnClientConnected(context.Background(), &exhookv2.ClientConnectedRequest{Clientinfo: &exhookv2.ClientInfo{}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("connected without clientid: %v", err)
	}
}

// BenchmarkOnMessagePublish measures the hook's own cost per message (routing, envelope,
// Avro encoding of the real schema) without Kafka.
func BenchmarkOnMessagePublish(b *testing.B) {
	f := newBenchFixture(b)
	req := publish("vehicles/WVW1234567890/telemetry", "WVW1234567890", []byte(`{"speed":88,"soc":0.71,"lat":48.1,"lon":11.5}`))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.srv.OnMessagePublish(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// A route's message series are resolved once, at their first use: none is in /metrics
// before the route's first message, and the same series counts every message after it.
func TestRouteSeriesAppearAtFirstUse(t *testing.T) {
	f := newFixture(t)
	if n := testutil.CollectAndCount(f.metrics.Messages) + testutil.CollectAndCount(f.metrics.HookDuration); n != 0 {
		t.Fatalf("%d series before the first message", n)
	}
	for range 3 {
		if _, err := f.srv.OnMessagePublish(context.Background(), publish("vehicles/V1/telemetry", "V1", []byte(`{"a":1}`))); err != nil {
			t.Fatal(err)
		}
	}
	if n := testutil.CollectAndCount(f.metrics.Messages); n != 1 {
		t.Fatalf("%d message series after one route's messages, want 1 (tel queued)", n)
	}
	if n := testutil.CollectAndCount(f.metrics.HookDuration); n != 1 {
		t.Fatalf("%d duration series, want 1", n)
	}
	if got := testutil.ToFloat64(f.metrics.Messages.WithLabelValues("tel", metrics.OutcomeQueued)); got != 3 {
		t.Fatalf("tel queued %v, want 3", got)
	}
}
