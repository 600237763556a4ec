package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/iov-platform/iov/kit/kafkagroup"
	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/schemas/wire"
	"github.com/iov-platform/iov/services/sample-consumer/internal/app"
	"github.com/iov-platform/iov/services/sample-consumer/internal/config"
	"github.com/iov-platform/iov/services/sample-consumer/internal/consume"
	"github.com/iov-platform/iov/services/sample-consumer/internal/engine"
	"github.com/iov-platform/iov/tools/devkit/e2e"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

const (
	telemetryTopic = "iov.vehicle.telemetry"
	eventsTopic    = "iov.vehicle.events"
	statusTopic    = "iov.vehicle.status"
	tripsTopic     = "fleet.trips" // a record type the consumer has no Go type for
	deadTopic      = "iov.consumer.deadletter"
)

var allTopics = []string{telemetryTopic, eventsTopic, statusTopic, tripsTopic}

// env is one in-process Kafka + registry with the producer-side encoders.
type env struct {
	stack     *stack.Stack
	kafka     *kgo.Client
	telemetry *serde.Encoder // latest vehicle_message under iov.vehicle.telemetry-value
	events    *serde.Encoder // latest vehicle_message under iov.vehicle.events-value
	status    *serde.Encoder // latest client_event under iov.vehicle.status-value
	trips     *serde.Encoder
	log       *slog.Logger
}

const tripSchema = `{"type":"record","name":"Trip","namespace":"com.example.fleet","fields":[
  {"name":"vehicle_id","type":"string"},{"name":"km","type":"double"}]}`

func newEnv(t *testing.T) *env { return newEnvOn(t, e2e.KFake) }

func newEnvOn(t *testing.T, b e2e.Backend) *env {
	t.Helper()
	return newEnvWith(t, e2e.Start(t, b, envStackOptions()))
}

func envStackOptions() stack.Options {
	return stack.Options{Partitions: 3, Topics: append([]string{deadTopic}, allTopics...)}
}

func newEnvWith(t *testing.T, st *stack.Stack) *env {
	t.Helper()
	e := &env{log: testLogger(t), stack: st}
	var err error
	if e.kafka, err = kgo.NewClient(kgo.SeedBrokers(st.KafkaBootstrap())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.kafka.Close)
	reg := serde.NewRegistry(st.RegistryURL(), "", "")
	for _, x := range []struct {
		enc   **serde.Encoder
		topic string
		def   schemas.Definition
	}{
		{&e.telemetry, telemetryTopic, schemas.MustLatest(schemas.VehicleMessageName)},
		{&e.events, eventsTopic, schemas.MustLatest(schemas.VehicleMessageName)},
		{&e.status, statusTopic, schemas.MustLatest(schemas.ClientEventName)},
		{&e.trips, tripsTopic, schemas.Definition{Name: "trip", Version: 1, Text: tripSchema}},
	} {
		if *x.enc, err = serde.NewEncoder(reg, serde.TopicSubject(x.topic), x.def, true); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// config returns a consumer config for group with fast group timings.
func (e *env) config(t *testing.T, group, deadLetter string, maxAttempts int) *config.Config {
	t.Helper()
	cfg, err := config.Parse(fmt.Appendf(nil, `
http: {listenAddress: "127.0.0.1:0"}
log: {level: debug, format: text}
kafka:
  bootstrapServers: %q
  groupId: %s
  topics: [%s]
  deadLetterTopic: %q
  properties:
    session.timeout.ms: "6000"
    heartbeat.interval.ms: "300"
    fetch.wait.max.ms: "50"
    auto.commit.interval.ms: "200"
    topic.metadata.refresh.interval.ms: "1000"
registry: {url: %q}
handler: {maxAttempts: %d, initialBackoff: 10ms, maxBackoff: 40ms}
`, e.stack.KafkaBootstrap(), group, strings.Join(allTopics, ", "), deadLetter, e.stack.RegistryURL(), maxAttempts))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// produce writes records in order and returns them with partition and offset set.
func (e *env) produce(t *testing.T, recs ...*kgo.Record) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.kafka.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return recs
}

func record(t *testing.T, topic string, enc *serde.Encoder, key string, v any) *kgo.Record {
	t.Helper()
	b, err := enc.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: b, Headers: []kgo.RecordHeader{{Key: "trace-id", Value: []byte("t-" + key)}}}
}

var msgSeq atomic.Int64

func vehicleMessage(vin, route string, seq int) schemas.VehicleMessage {
	id := msgSeq.Add(1)
	user := "fleet-a"
	now := time.Now().UTC().Truncate(time.Millisecond)
	return schemas.VehicleMessage{
		MessageID:      fmt.Sprintf("M%06d", id),
		VehicleID:      vin,
		ClientID:       vin,
		Username:       &user,
		MQTTTopic:      "vehicles/" + vin + "/" + route,
		QoS:            1,
		Payload:        fmt.Appendf(nil, `{"seq":%d}`, seq),
		PayloadFormat:  schemas.PayloadJSON,
		PublishedAt:    now,
		IngestedAt:     now,
		Node:           "emqx@127.0.0.1",
		Route:          route,
		Headers:        map[string]string{"peerhost": "127.0.0.1"},
		MQTTProperties: map[string]string{"Content-Type": "application/json"},
		UserProperties: []schemas.UserProperty{{Name: "fw", Value: "1.2"}},
	}
}

// recorder is a Handler that records every call and can be told to fail.
type recorder struct {
	mu    sync.Mutex
	calls []consume.Record
	fail  func(r consume.Record) error // nil: always succeed
}

func (r *recorder) Handle(_ context.Context, rec consume.Record) error {
	r.mu.Lock()
	r.calls = append(r.calls, rec)
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		return fail(rec)
	}
	return nil
}

func (r *recorder) snapshot() []consume.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]consume.Record(nil), r.calls...)
}

// waitCalls waits until the handler was called at least n times.
func (r *recorder) waitCalls(t *testing.T, n int) []consume.Record {
	t.Helper()
	waitFor(t, 30*time.Second, func() bool { return len(r.snapshot()) >= n }, func() string {
		return fmt.Sprintf("handler called %d times, want %d", len(r.snapshot()), n)
	})
	return r.snapshot()
}

// settle waits a little for records that should not come, then returns all calls.
func (r *recorder) settle() []consume.Record {
	time.Sleep(1500 * time.Millisecond)
	return r.snapshot()
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// consumer is one running App.
type consumer struct {
	app    *app.App
	cancel context.CancelFunc
	done   chan error
	err    error
	once   sync.Once
}

func (e *env) start(t *testing.T, cfg *config.Config, h consume.Handler) *consumer {
	t.Helper()
	a, err := app.New(cfg, e.log, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{app: a, cancel: cancel, done: make(chan error, 1)}
	go func() { c.done <- a.Run(ctx) }()
	t.Cleanup(func() { c.stop(t) })
	waitFor(t, 10*time.Second, func() bool { return httpStatus(a.HTTPAddr(), "/ready") == http.StatusOK || c.finished() }, func() string {
		return "consumer never became ready"
	})
	return c
}

func (c *consumer) finished() bool {
	select {
	case err := <-c.done:
		c.once.Do(func() { c.err = err })
		c.done <- err
		return true
	default:
		return false
	}
}

// stop cancels the consumer and returns Run's result; safe to call more than once.
func (c *consumer) stop(t *testing.T) error {
	t.Helper()
	c.cancel()
	return c.wait(t, 30*time.Second)
}

// wait returns Run's result without cancelling.
func (c *consumer) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-c.done:
		c.once.Do(func() { c.err = err })
		c.done <- err
		return c.err
	case <-time.After(timeout):
		t.Fatal("consumer did not stop")
		return nil
	}
}

func httpStatus(addr, path string) int {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func httpGet(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

type position struct {
	topic     string
	partition int32
	offset    int64
}

func posOf(r *kgo.Record) position       { return position{r.Topic, r.Partition, r.Offset} }
func posOfRec(r consume.Record) position { return position{r.Topic, r.Partition, r.Offset} }
func offsetsOf(calls []consume.Record) []int64 {
	out := make([]int64, len(calls))
	for i, c := range calls {
		out[i] = c.Offset
	}
	return out
}

// TestRecordsHandledAsWrittenInOrder: records written by the producer's encoders on every
// platform topic reach the handler once each, decoded into the typed structs exactly as
// written, and in offset order within each partition (so in order per vehicle).
func TestRecordsHandledAsWrittenInOrder(t *testing.T) { e2e.Run(t, recordsHandledAsWrittenInOrder) }

func recordsHandledAsWrittenInOrder(t *testing.T, b e2e.Backend) {
	t.Parallel()
	e := newEnvOn(t, b)
	want := map[position]any{}
	ids := map[position]int{}
	var recs []*kgo.Record
	var values []any
	var encs []*serde.Encoder
	for i := range 12 {
		for v := range 6 {
			vin := fmt.Sprintf("VIN%03d", v)
			var r *kgo.Record
			var val any
			var enc *serde.Encoder
			switch {
			case i%4 == 3:
				m := vehicleMessage(vin, "events", i)
				r, val, enc = record(t, eventsTopic, e.events, vin, m), &m, e.events
			case i%6 == 5:
				reason := fmt.Sprintf("r%d", i)
				ev := schemas.ClientEvent{Event: schemas.ClientDisconnected, VehicleID: vin, ClientID: vin, Peerhost: "10.0.0.1", Protocol: "mqtt", Reason: &reason, OccurredAt: time.Now().UTC().Truncate(time.Millisecond), Node: "emqx@1"}
				r, val, enc = record(t, statusTopic, e.status, vin, ev), &ev, e.status
			case i == 4:
				trip := map[string]any{"vehicle_id": vin, "km": float64(i)}
				r, val, enc = record(t, tripsTopic, e.trips, vin, trip), trip, e.trips
			default:
				m := vehicleMessage(vin, "telemetry", i)
				r, val, enc = record(t, telemetryTopic, e.telemetry, vin, m), &m, e.telemetry
			}
			recs, values, encs = append(recs, r), append(values, val), append(encs, enc)
		}
	}
	e.produce(t, recs...)
	for i, r := range recs {
		want[posOf(r)] = values[i]
		ids[posOf(r)] = encs[i].ID()
	}

	h := &recorder{}
	c := e.start(t, e.config(t, "g-order", "", 3), h)
	calls := h.waitCalls(t, len(recs))
	calls = append(calls, h.settle()[len(calls):]...)
	if len(calls) != len(recs) {
		t.Fatalf("handler called %d times for %d records", len(calls), len(recs))
	}

	seen := map[position]bool{}
	last := map[position]int64{} // per topic/partition (offset field unused)
	for _, got := range calls {
		p := posOfRec(got)
		if seen[p] {
			t.Fatalf("%v handled twice", p)
		}
		seen[p] = true
		w, ok := want[p]
		if !ok {
			t.Fatalf("handled %v, which was not written", p)
		}
		if !reflect.DeepEqual(got.Value, w) {
			t.Fatalf("%v decoded as %#v\nwritten as %#v", p, got.Value, w)
		}
		if got.SchemaID != ids[p] || got.Attempt != 1 || got.Timestamp.IsZero() {
			t.Fatalf("%v: schema id %d (want %d), attempt %d, timestamp %v", p, got.SchemaID, ids[p], got.Attempt, got.Timestamp)
		}
		if tid, _ := got.Header("trace-id"); tid != "t-"+got.Key || !strings.HasPrefix(got.Key, "VIN") {
			t.Fatalf("%v: key %q, trace-id header %q", p, got.Key, tid)
		}
		tp := position{topic: p.topic, partition: p.partition}
		if prev, ok := last[tp]; ok && p.offset <= prev {
			t.Fatalf("%s/%d: offset %d handled after %d", p.topic, p.partition, p.offset, prev)
		}
		last[tp] = p.offset
	}

	// Per vehicle and topic, the payload sequence is increasing.
	type topicVehicle struct{ topic, vin string }
	lastSeq := map[topicVehicle]int{}
	for _, got := range calls {
		m, ok := got.Value.(*schemas.VehicleMessage)
		if !ok {
			continue
		}
		var p struct{ Seq int }
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatal(err)
		}
		k := topicVehicle{got.Topic, m.VehicleID}
		if prev, ok := lastSeq[k]; ok && p.Seq <= prev {
			t.Fatalf("%s on %s: seq %d after %d", m.VehicleID, got.Topic, p.Seq, prev)
		}
		lastSeq[k] = p.Seq
	}

	metrics := httpGet(t, c.app.HTTPAddr(), "/metrics")
	for _, want := range []string{
		fmt.Sprintf(`consumer_records_total{result="handled",topic=%q} 42`, telemetryTopic),
		fmt.Sprintf(`consumer_records_total{result="handled",topic=%q} 6`, tripsTopic),
		fmt.Sprintf(`consumer_handler_duration_seconds_count{outcome="ok",topic=%q} 6`, statusTopic),
		"consumer_assigned_partitions 12",
		"consumer_ready 1",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if err := c.stop(t); err != nil {
		t.Fatalf("clean stop returned %v", err)
	}
}

// TestOldSchemaVersionDecodesIntoLatestStruct: a record written with vehicle_message v1
// reaches the handler as the latest Go type with the later fields at their defaults.
func TestOldSchemaVersionDecodesIntoLatestStruct(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	defs, err := schemas.Versions(schemas.VehicleMessageName)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := serde.NewEncoder(serde.NewRegistry(e.stack.RegistryURL(), "", ""), serde.TopicSubject(telemetryTopic), defs[0], true)
	if err != nil {
		t.Fatal(err)
	}
	if v1.ID() == e.telemetry.ID() {
		t.Fatal("v1 and latest share a schema id")
	}
	written := vehicleMessage("VIN1", "telemetry", 1)
	// hamba/avro encodes by field name, so the latest struct writes a v1 record fine: the
	// v2 fields are simply not in the v1 schema.
	e.produce(t, record(t, telemetryTopic, v1, "VIN1", written))

	h := &recorder{}
	e.start(t, e.config(t, "g-v1", "", 3), h)
	got := h.waitCalls(t, 1)[0]
	m, ok := got.Value.(*schemas.VehicleMessage)
	if !ok {
		t.Fatalf("v1 record decoded as %T", got.Value)
	}
	want := written
	want.Route, want.Headers = "", map[string]string{}
	want.MQTTProperties, want.UserProperties = map[string]string{}, []schemas.UserProperty{}
	if !reflect.DeepEqual(*m, want) || got.SchemaID != v1.ID() {
		t.Fatalf("decoded (schema id %d) %#v\nwant (schema id %d) %#v", got.SchemaID, *m, v1.ID(), want)
	}
}

// TestCommittedRecordsAreNotRedelivered: offsets are committed after handling, so a new
// member of the same group starts after the handled records and sees only new ones.
func TestCommittedRecordsAreNotRedelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var first []*kgo.Record
	for i := range 10 {
		vin := fmt.Sprintf("VIN%d", i%4)
		first = append(first, record(t, telemetryTopic, e.telemetry, vin, vehicleMessage(vin, "telemetry", i)))
	}
	e.produce(t, first...)
	cfg := e.config(t, "g-commit", "", 3)

	a := &recorder{}
	ca := e.start(t, cfg, a)
	a.waitCalls(t, len(first))
	if err := ca.stop(t); err != nil {
		t.Fatalf("first consumer stop: %v", err)
	}

	b := &recorder{}
	e.start(t, cfg, b)
	var second []*kgo.Record
	for i := range 5 {
		vin := fmt.Sprintf("VIN%d", i%4)
		second = append(second, record(t, telemetryTopic, e.telemetry, vin, vehicleMessage(vin, "telemetry", 100+i)))
	}
	e.produce(t, second...)
	b.waitCalls(t, len(second))
	calls := b.settle()
	wantPos := map[position]bool{}
	for _, r := range second {
		wantPos[posOf(r)] = true
	}
	if len(calls) != len(second) {
		t.Fatalf("second consumer handled %d records, want only the %d new ones", len(calls), len(second))
	}
	for _, c := range calls {
		if !wantPos[posOfRec(c)] {
			t.Fatalf("second consumer got already-handled record %v", posOfRec(c))
		}
	}
}

// oneVehicle writes n telemetry records for one vehicle, so they share a partition.
func (e *env) oneVehicle(t *testing.T, vin string, n int) []*kgo.Record {
	t.Helper()
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, record(t, telemetryTopic, e.telemetry, vin, vehicleMessage(vin, "telemetry", i)))
	}
	return e.produce(t, recs...)
}

// TestFailingHandlerIsRetried: a handler that fails twice and then succeeds gets the record
// three times, and every record is handled in order, none skipped.
func TestFailingHandlerIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	recs := e.oneVehicle(t, "VIN1", 5)
	flaky := recs[2].Offset
	h := &recorder{}
	h.fail = func(r consume.Record) error {
		if r.Offset == flaky && r.Attempt < 3 {
			return errors.New("downstream unavailable")
		}
		return nil
	}
	c := e.start(t, e.config(t, "g-retry", "", 5), h)
	calls := h.waitCalls(t, 7)
	calls = append(calls, h.settle()[len(calls):]...)
	base := recs[0].Offset
	want := []int64{base, base + 1, base + 2, base + 2, base + 2, base + 3, base + 4}
	if got := offsetsOf(calls); !reflect.DeepEqual(got, want) {
		t.Fatalf("handled offsets %v, want %v", got, want)
	}
	for i, n := range []int{1, 2, 3} {
		if calls[2+i].Attempt != n {
			t.Fatalf("call %d: attempt %d, want %d", 2+i, calls[2+i].Attempt, n)
		}
	}
	metrics := httpGet(t, c.app.HTTPAddr(), "/metrics")
	for _, want := range []string{
		fmt.Sprintf(`consumer_retries_total{stage="handler",topic=%q} 2`, telemetryTopic),
		fmt.Sprintf(`consumer_records_total{result="handled",topic=%q} 5`, telemetryTopic),
		fmt.Sprintf(`consumer_handler_duration_seconds_count{outcome="error",topic=%q} 2`, telemetryTopic),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestHandlerThatAlwaysFailsStopsConsumer: after maxAttempts the consumer stops with an
// error naming the record; the records before it are committed, it and the ones after are
// not, so the next member of the group starts exactly at it.
func TestHandlerThatAlwaysFailsStopsConsumer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	recs := e.oneVehicle(t, "VIN1", 3)
	bad := recs[1]
	h := &recorder{fail: func(r consume.Record) error {
		if r.Offset == bad.Offset {
			return errors.New("boom")
		}
		return nil
	}}
	cfg := e.config(t, "g-fail", "", 3)
	c := e.start(t, cfg, h)
	err := c.wait(t, 30*time.Second)
	where := fmt.Sprintf("%s/%d@%d", bad.Topic, bad.Partition, bad.Offset)
	if err == nil || !strings.Contains(err.Error(), where) || !strings.Contains(err.Error(), "3 attempts failed") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Run = %v, want the handler failure of %s", err, where)
	}
	if got, want := offsetsOf(h.snapshot()), []int64{recs[0].Offset, bad.Offset, bad.Offset, bad.Offset}; !reflect.DeepEqual(got, want) {
		t.Fatalf("handled offsets %v, want %v", got, want)
	}

	next := &recorder{}
	e.start(t, cfg, next)
	calls := next.waitCalls(t, 2)
	calls = append(calls, next.settle()[len(calls):]...)
	if got, want := offsetsOf(calls), []int64{bad.Offset, recs[2].Offset}; !reflect.DeepEqual(got, want) {
		t.Fatalf("next consumer handled offsets %v, want %v (the failed record again, nothing before it)", got, want)
	}
}

// TestUndecodableRecordsGoToDeadLetterTopic: raw JSON, a record naming an unknown schema id,
// a record the handler rejects permanently and one it fails maxAttempts times are copied to
// the dead-letter topic (same key, value and headers plus the error headers), in order, and
// the consumer carries on with the records behind them.
func TestUndecodableRecordsGoToDeadLetterTopic(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	good := func(i int) *kgo.Record {
		return record(t, telemetryTopic, e.telemetry, "VIN1", vehicleMessage("VIN1", "telemetry", i))
	}
	raw := &kgo.Record{Topic: telemetryTopic, Key: []byte("VIN1"), Value: []byte(`{"speed":42}`), Headers: []kgo.RecordHeader{{Key: "trace-id", Value: []byte("raw")}}}
	unknownID, _ := wire.AppendHeader(nil, 4242)
	unknown := &kgo.Record{Topic: telemetryTopic, Key: []byte("VIN1"), Value: append(unknownID, 2, 'x')}
	rejected, exhausted := good(3), good(4)
	recs := e.produce(t, good(0), raw, unknown, good(1), rejected, exhausted, good(2))

	h := &recorder{fail: func(r consume.Record) error {
		switch r.Offset {
		case rejected.Offset:
			return consume.Permanent(errors.New("speed out of range"))
		case exhausted.Offset:
			return errors.New("database down")
		}
		return nil
	}}
	c := e.start(t, e.config(t, "g-dlq", deadTopic, 3), h)
	calls := h.waitCalls(t, 7)
	calls = append(calls, h.settle()[len(calls):]...)
	x := exhausted.Offset
	want := []int64{recs[0].Offset, recs[3].Offset, rejected.Offset, x, x, x, recs[6].Offset}
	if got := offsetsOf(calls); !reflect.DeepEqual(got, want) {
		t.Fatalf("handled offsets %v, want %v", got, want)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dead, err := stack.ReadAll(ctx, e.stack.KafkaBootstrap(), 4, deadTopic)
	if err != nil {
		t.Fatalf("read dead letters (%d): %v", len(dead), err)
	}
	for i, x := range []struct {
		src         *kgo.Record
		stage, want string
	}{
		{raw, engine.StageDecode, "unknown magic byte"},
		{unknown, engine.StageDecode, "schema id 4242 is not in the registry"},
		{rejected, engine.StageHandler, "speed out of range"},
		{exhausted, engine.StageHandler, "3 attempts failed, last: database down"},
	} {
		d := dead[i]
		if string(d.Key) != "VIN1" || string(d.Value) != string(x.src.Value) {
			t.Fatalf("dead letter %d: key %q value %q, want a copy of %v", i, d.Key, d.Value, posOf(x.src))
		}
		h := d.Headers
		if !strings.Contains(h[kafkagroup.HeaderError], x.want) || h[kafkagroup.HeaderStage] != x.stage ||
			h[kafkagroup.HeaderTopic] != telemetryTopic || h[kafkagroup.HeaderPartition] != fmt.Sprint(x.src.Partition) ||
			h[kafkagroup.HeaderOffset] != fmt.Sprint(x.src.Offset) || h[kafkagroup.HeaderGroup] != "g-dlq" || h[kafkagroup.HeaderTimestamp] == "" {
			t.Fatalf("dead letter %d headers: %v", i, h)
		}
		if len(x.src.Headers) > 0 && h["trace-id"] != string(x.src.Headers[0].Value) {
			t.Fatalf("dead letter %d lost the original headers: %v", i, h)
		}
	}
	if a, b := dead[2].Headers[kafkagroup.HeaderAttempts], dead[3].Headers[kafkagroup.HeaderAttempts]; a != "1" || b != "3" {
		t.Fatalf("attempts headers %q (permanent error) and %q (always failing), want 1 and 3", a, b)
	}

	metrics := httpGet(t, c.app.HTTPAddr(), "/metrics")
	for _, want := range []string{
		fmt.Sprintf(`consumer_decode_errors_total{kind="poison",topic=%q} 2`, telemetryTopic),
		fmt.Sprintf(`consumer_records_total{result="dead_lettered",topic=%q} 4`, telemetryTopic),
		fmt.Sprintf(`consumer_records_total{result="handled",topic=%q} 3`, telemetryTopic),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if err := c.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// TestUndecodableRecordStopsConsumerWithoutDeadLetterTopic: with no dead-letter topic an
// undecodable record stops the consumer with a clear error and is not committed: the next
// member of the group stops on it again rather than skipping it.
func TestUndecodableRecordStopsConsumerWithoutDeadLetterTopic(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := record(t, telemetryTopic, e.telemetry, "VIN1", vehicleMessage("VIN1", "telemetry", 0))
	raw := &kgo.Record{Topic: telemetryTopic, Key: []byte("VIN1"), Value: []byte(`{"speed":42}`)}
	after := record(t, telemetryTopic, e.telemetry, "VIN1", vehicleMessage("VIN1", "telemetry", 1))
	e.produce(t, first, raw, after)
	where := fmt.Sprintf("%s/%d@%d", raw.Topic, raw.Partition, raw.Offset)
	cfg := e.config(t, "g-poison", "", 3)

	for i := range 2 {
		h := &recorder{}
		c := e.start(t, cfg, h)
		err := c.wait(t, 30*time.Second)
		if err == nil || !strings.Contains(err.Error(), where) || !strings.Contains(err.Error(), "unknown magic byte") ||
			!strings.Contains(err.Error(), "no kafka.deadLetterTopic") {
			t.Fatalf("run %d: Run = %v, want a decode error for %s", i, err, where)
		}
		want := []int64{}
		if i == 0 {
			want = []int64{first.Offset} // the second run starts after it
		}
		if got := offsetsOf(h.snapshot()); !reflect.DeepEqual(got, want) {
			t.Fatalf("run %d: handled offsets %v, want %v", i, got, want)
		}
	}
}

// TestShutdownFinishesRecordInHand: on shutdown readiness turns 503 at once, the record being
// handled is finished and committed, and the records behind it are left for the next member.
func TestShutdownFinishesRecordInHand(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	recs := e.oneVehicle(t, "VIN1", 3)
	entered, release := make(chan struct{}), make(chan struct{})
	h := &recorder{fail: func(r consume.Record) error {
		if r.Offset == recs[1].Offset {
			close(entered)
			<-release
		}
		return nil
	}}
	cfg := e.config(t, "g-drain", "", 3)
	c := e.start(t, cfg, h)
	<-entered
	c.cancel()
	waitFor(t, 5*time.Second, func() bool { return httpStatus(c.app.HTTPAddr(), "/ready") == http.StatusServiceUnavailable }, func() string {
		return "readiness still OK while draining"
	})
	if body := httpGet(t, c.app.HTTPAddr(), "/ready"); !strings.Contains(body, "draining") {
		t.Fatalf("/ready body %q", body)
	}
	close(release)
	if err := c.wait(t, 30*time.Second); err != nil {
		t.Fatalf("Run after drain = %v", err)
	}
	if got, want := offsetsOf(h.snapshot()), []int64{recs[0].Offset, recs[1].Offset}; !reflect.DeepEqual(got, want) {
		t.Fatalf("handled offsets %v, want %v (the record in hand finished, nothing after it)", got, want)
	}

	next := &recorder{}
	e.start(t, cfg, next)
	next.waitCalls(t, 1)
	if got, want := offsetsOf(next.settle()), []int64{recs[2].Offset}; !reflect.DeepEqual(got, want) {
		t.Fatalf("next consumer handled offsets %v, want %v", got, want)
	}
}

// TestRegistryOutageIsNotDeadLettered: a record that cannot be decoded because the registry
// cannot be asked is retried and then stops the consumer, never dead-lettered: the record is
// probably fine.
func TestRegistryOutageIsNotDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec := e.oneVehicle(t, "VIN1", 1)[0]
	cfg := e.config(t, "g-registry", deadTopic, 3)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Registry.URL = "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now

	h := &recorder{}
	c := e.start(t, cfg, h)
	err = c.wait(t, 30*time.Second)
	if !errors.Is(err, consume.ErrRegistry) || !strings.Contains(err.Error(), fmt.Sprintf("@%d", rec.Offset)) || !strings.Contains(err.Error(), "3 attempts failed") {
		t.Fatalf("Run = %v, want a registry error after 3 attempts", err)
	}
	if len(h.snapshot()) != 0 {
		t.Fatal("handler called without a decoded value")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if dead, _ := stack.ReadAll(ctx, e.stack.KafkaBootstrap(), 0, deadTopic); len(dead) != 0 {
		t.Fatalf("%d records dead-lettered during a registry outage", len(dead))
	}
}

// TestRebalanceHandsOverWithoutLossOrRepeats: a second member joining the group takes over
// some partitions (cooperative-sticky: the first member keeps the rest without stopping).
// The first member commits what it handled when the partitions are revoked, so the second
// one starts where it left off: every record is handled exactly once across both. Periodic
// auto-commit is effectively off here, so this relies on the synchronous commit on revoke
// (the engine's; librdkafka's auto-commit makes one too).
func TestRebalanceHandsOverWithoutLossOrRepeats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.config(t, "g-rebalance", "", 3)
	cfg.Kafka.Properties["auto.commit.interval.ms"] = "600000"
	manual, err := kgo.NewClient(kgo.SeedBrokers(e.stack.KafkaBootstrap()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer manual.Close()
	// Two records on every partition of every topic, wherever the assignor moves partitions.
	batch := func(from int) []*kgo.Record {
		var recs []*kgo.Record
		for i := range 2 {
			for p := range int32(3) {
				vin := fmt.Sprintf("VIN%d", p)
				ev := schemas.ClientEvent{Event: schemas.ClientConnected, VehicleID: vin, OccurredAt: time.Now().UTC().Truncate(time.Millisecond)}
				for _, r := range []*kgo.Record{
					record(t, telemetryTopic, e.telemetry, vin, vehicleMessage(vin, "telemetry", from+i)),
					record(t, eventsTopic, e.events, vin, vehicleMessage(vin, "events", from+i)),
					record(t, statusTopic, e.status, vin, ev),
					record(t, tripsTopic, e.trips, vin, map[string]any{"vehicle_id": vin, "km": 1.0}),
				} {
					r.Partition = p
					recs = append(recs, r)
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := manual.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		return recs
	}
	first := batch(0)
	a := &recorder{}
	ca := e.start(t, cfg, a)
	a.waitCalls(t, len(first))

	b := &recorder{}
	cb := e.start(t, cfg, b)
	assigned := func(c *consumer) int {
		var n int
		for _, line := range strings.Split(httpGet(t, c.app.HTTPAddr(), "/metrics"), "\n") {
			if v, ok := strings.CutPrefix(line, "consumer_assigned_partitions "); ok {
				fmt.Sscan(v, &n)
			}
		}
		return n
	}
	waitFor(t, 30*time.Second, func() bool { na, nb := assigned(ca), assigned(cb); return nb > 0 && na > 0 && na+nb == 12 }, func() string {
		return fmt.Sprintf("partitions not shared: first member %d, second %d", assigned(ca), assigned(cb))
	})
	second := batch(100)
	waitFor(t, 30*time.Second, func() bool { return len(a.snapshot())+len(b.snapshot()) >= len(first)+len(second) }, func() string {
		return fmt.Sprintf("handled %d+%d records, want %d", len(a.snapshot()), len(b.snapshot()), len(first)+len(second))
	})
	b.settle()
	count := map[position]int{}
	for _, c := range append(a.snapshot(), b.snapshot()...) {
		count[posOfRec(c)]++
	}
	for _, r := range append(first, second...) {
		if n := count[posOf(r)]; n != 1 {
			t.Errorf("%v handled %d times", posOf(r), n)
		}
	}
	if len(count) != len(first)+len(second) {
		t.Fatalf("%d distinct records handled, want %d", len(count), len(first)+len(second))
	}
	if len(b.snapshot()) == 0 {
		t.Fatal("second member handled nothing")
	}
}

// testLogger sends logs to t.Log (shown for failed tests and with -v), and drops the ones
// that arrive after the test ended.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	level := slog.LevelInfo
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
