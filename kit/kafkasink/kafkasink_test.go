package kafkasink

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/iov-platform/iov/kit/internal/kafkatest"
)

const topic = "iov.test"

type fixture struct {
	cluster *kfake.Cluster
	sink    *Sink
	m       Metrics
	logs    *kafkatest.LogBuffer
}

func newFixture(t *testing.T, extra kafka.ConfigMap) *fixture {
	t.Helper()
	c := kafkatest.Cluster(t, 2, topic)
	f := &fixture{cluster: c, logs: &kafkatest.LogBuffer{}, m: Metrics{
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deliveries"}, []string{"topic", "result"}),
		Errors:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "errors"}, []string{"code"}),
	}}
	cm := kafka.ConfigMap{
		"bootstrap.servers":         kafkatest.Bootstrap(c),
		"linger.ms":                 1,
		"partitioner":               "murmur2_random",
		"go.delivery.report.fields": "key",
	}
	for k, v := range extra {
		cm[k] = v
	}
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	if f.sink, err = New(cm, Options{Log: log, Metrics: f.m}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.sink.Close)
	return f
}

// read returns the first n records of topic.
func (f *fixture) read(t *testing.T, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.cluster.ListenAddrs()...), kgo.ConsumeTopics(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", len(recs), n, err)
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}

func TestProduceWaitsForTheAcknowledgement(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	hs := Headers(map[string]string{"b": "2", "a": "1", "empty": ""})
	if err := f.sink.Produce(ctx, Record{Topic: topic, Key: []byte("VIN1"), Value: []byte("sync"), Headers: hs}, true); err != nil {
		t.Fatal(err)
	}
	// Acknowledged means counted before Produce returned.
	if got := testutil.ToFloat64(f.m.Deliveries.WithLabelValues(topic, Delivered)); got != 1 {
		t.Fatalf("delivered = %v after a sync produce", got)
	}
	r := f.read(t, 1)[0]
	if string(r.Key) != "VIN1" || string(r.Value) != "sync" || len(r.Headers) != 2 ||
		r.Headers[0].Key != "a" || string(r.Headers[0].Value) != "1" || r.Headers[1].Key != "b" {
		t.Fatalf("record %+v", r)
	}
}

func TestAsyncAndCallbackProduce(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	done := make(chan error, 1)
	if err := f.sink.ProduceCallback(ctx, Record{Topic: topic, Key: []byte("VIN1"), Value: []byte("cb")}, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := f.sink.Produce(ctx, Record{Topic: topic, Key: []byte("VIN2"), Value: []byte{byte(i)}}, false); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("callback: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("callback not called")
	}
	if left := f.sink.Flush(10 * time.Second); left != 0 || f.sink.Queued() != 0 {
		t.Fatalf("Flush left %d, Queued %d", left, f.sink.Queued())
	}
	if got := testutil.ToFloat64(f.m.Deliveries.WithLabelValues(topic, Delivered)); got != 6 {
		t.Fatalf("delivered = %v, want 6", got)
	}
	// One vehicle's records stay in order on one partition.
	var vin2 []byte
	for _, r := range f.read(t, 6) {
		if string(r.Key) == "VIN2" {
			vin2 = append(vin2, r.Value...)
		}
	}
	if !bytes.Equal(vin2, []byte{0, 1, 2, 3, 4}) {
		t.Fatalf("VIN2 values %v", vin2)
	}
	if err := f.sink.Ping(5 * time.Second); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestDeliveryFailures(t *testing.T) {
	f := newFixture(t, kafka.ConfigMap{"message.timeout.ms": 300})
	ctx := context.Background()
	const missing = "iov.missing" // not created: the record times out
	err := f.sink.Produce(ctx, Record{Topic: missing, Key: []byte("VIN1")}, true)
	var kerr kafka.Error
	if err == nil || !strings.HasPrefix(err.Error(), "produce iov.missing: ") || !errors.As(err, &kerr) {
		t.Fatalf("sync produce to a missing topic = %v", err)
	}
	// Nobody waits for an async record: its failure is logged with the key.
	if err := f.sink.Produce(ctx, Record{Topic: missing, Key: []byte("VIN2")}, false); err != nil {
		t.Fatal(err)
	}
	if left := f.sink.Flush(10 * time.Second); left != 0 {
		t.Fatalf("Flush left %d", left)
	}
	if got := testutil.ToFloat64(f.m.Deliveries.WithLabelValues(missing, Failed)); got != 2 {
		t.Fatalf("failed = %v, want 2", got)
	}
	if logs := f.logs.String(); strings.Count(logs, `msg="kafka delivery failed"`) != 1 || !strings.Contains(logs, "key=VIN2") {
		t.Fatalf("logs:\n%s", logs)
	}
	if f.sink.Fatal() != nil {
		t.Fatalf("Fatal = %v after delivery failures", f.sink.Fatal())
	}
}

func TestProduceWithoutAcknowledgementHonoursTheContext(t *testing.T) {
	f := newFixture(t, kafka.ConfigMap{"message.timeout.ms": 5000})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := f.sink.Produce(ctx, Record{Topic: "iov.missing"}, true)
	if err == nil || !strings.Contains(err.Error(), "produce iov.missing: no acknowledgement: ") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Produce = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Produce returned after %s, want about 100ms", d)
	}
}

func TestNewDoesNotChangeTheCallersSettings(t *testing.T) {
	cm := kafka.ConfigMap{"bootstrap.servers": "127.0.0.1:1", "acks": "1", "enable.idempotence": false}
	s, err := New(cm, Options{Log: slog.New(slog.DiscardHandler), Metrics: Metrics{
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "errors"}, []string{"code"}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close() // twice is fine
	if len(cm) != 3 || cm["acks"] != "1" || cm["enable.idempotence"] != false {
		t.Fatalf("settings changed: %v", cm)
	}
	if err := s.Fatal(); err != nil {
		t.Fatal(err)
	}
}

func TestNewRejectsBadSettings(t *testing.T) {
	_, err := New(kafka.ConfigMap{"no.such.setting": "x"}, Options{Log: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.HasPrefix(err.Error(), "create kafka producer: ") {
		t.Fatalf("New = %v", err)
	}
}

func TestHeaders(t *testing.T) {
	hs := Headers(map[string]string{"z": "1", "a": "2", "m": ""})
	if len(hs) != 2 || hs[0].Key != "a" || string(hs[0].Value) != "2" || hs[1].Key != "z" {
		t.Fatalf("Headers = %v", hs)
	}
	if hs := Headers(nil); hs == nil || len(hs) != 0 {
		t.Fatalf("Headers(nil) = %#v", hs)
	}
}
