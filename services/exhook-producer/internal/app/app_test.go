package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/services/exhook-producer/internal/app"
	"github.com/iov-platform/iov/services/exhook-producer/internal/config"
	"github.com/iov-platform/iov/services/exhook-producer/internal/hook"
	"github.com/iov-platform/iov/tools/devkit/e2e"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

const (
	telemetryTopic = "iov.vehicle.telemetry"
	eventsTopic    = "iov.vehicle.events"
	statusTopic    = "iov.vehicle.status"
	deadTopic      = "iov.deadletter"
)

func testConfig(t *testing.T, bootstrap, registry string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
grpc: {listenAddress: "127.0.0.1:0"}
http: {listenAddress: "127.0.0.1:0"}
log: {level: warn, format: text}
kafka:
  bootstrapServers: %q
  syncTimeout: 3s
  properties: {linger.ms: "1", message.timeout.ms: "60000"}
registry: {url: %q}
shutdown: {drainTimeout: 10s}
topics: {status: %s, deadLetter: %s}
routes:
  - {name: telemetry, filter: "vehicles/+/telemetry", kafkaTopic: %s, key: {from: topic-segment, segment: 1}, payload: json, delivery: async}
  - {name: events, filter: "vehicles/+/events/#", kafkaTopic: %s, key: {from: topic-segment, segment: 1}, payload: json, delivery: sync}
`, bootstrap, registry, statusTopic, deadTopic, telemetryTopic, eventsTopic)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type harness struct {
	stack  *stack.Stack
	app    *app.App
	sim    *emqxsim.Client
	cancel context.CancelFunc
	runErr chan error
}

func logger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func start(t *testing.T, cfg *config.Config, st *stack.Stack) *harness {
	t.Helper()
	h := launch(t, cfg, st)
	waitReady(t, h.app.HTTPAddr())
	return h
}

// launch runs the app and dials it like EMQX, without waiting for readiness.
func launch(t *testing.T, cfg *config.Config, st *stack.Stack) *harness {
	t.Helper()
	a, err := app.New(cfg, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{stack: st, app: a, cancel: cancel, runErr: make(chan error, 1)}
	go func() { h.runErr <- a.Run(ctx) }()
	h.sim, err = emqxsim.Dial(emqxsim.Options{Addr: a.GRPCAddr(), PoolSize: 4, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.sim.Close()
		h.stop(t)
	})
	return h
}

func startStack(t *testing.T) *stack.Stack { return startStackOn(t, e2e.KFake) }

func startStackOn(t *testing.T, b e2e.Backend) *stack.Stack {
	t.Helper()
	return e2e.Start(t, b, stack.Options{Partitions: 4, Topics: []string{telemetryTopic, eventsTopic, statusTopic, deadTopic}})
}

// stop cancels the app and returns Run's error; safe to call twice.
func (h *harness) stop(t *testing.T) error {
	t.Helper()
	h.cancel()
	select {
	case err, ok := <-h.runErr:
		if ok {
			close(h.runErr)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("app did not stop within 30s")
		return nil
	}
}

func waitReady(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("producer never became ready")
}

func decoder(t *testing.T, st *stack.Stack) *serde.Decoder {
	t.Helper()
	return serde.NewDecoder(serde.NewRegistry(st.RegistryURL(), "", ""))
}

func decodeMessage(t *testing.T, dec *serde.Decoder, value []byte) schemas.VehicleMessage {
	t.Helper()
	reader, err := schemas.MustLatest(schemas.VehicleMessageName).Parse()
	if err != nil {
		t.Fatal(err)
	}
	var m schemas.VehicleMessage
	if _, err := dec.Decode(value, reader, &m); err != nil {
		t.Fatalf("record does not decode: %v", err)
	}
	return m
}

type seqPayload struct {
	Seq int `json:"seq"`
}

// TestEveryMessageArrivesOnceInOrder drives the real gRPC server the way EMQX does: many
// vehicles in parallel, each publishing in sequence, over a connection pool.
func TestEveryMessageArrivesOnceInOrder(t *testing.T) { e2e.Run(t, everyMessageArrivesOnceInOrder) }

func everyMessageArrivesOnceInOrder(t *testing.T, b e2e.Backend) {
	st := startStackOn(t, b)
	h := start(t, testConfig(t, st.KafkaBootstrap(), st.RegistryURL()), st)
	ctx := context.Background()

	loaded, err := h.sim.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hooks := map[string][]string{}
	for _, spec := range loaded.GetHooks() {
		hooks[spec.GetName()] = spec.GetTopics()
	}
	if got := strings.Join(hooks[hook.HookMessagePublish], ","); got != "vehicles/+/telemetry,vehicles/+/events/#" {
		t.Fatalf("message.publish registered for %q", got)
	}
	if _, ok := hooks[hook.HookClientConnected]; !ok {
		t.Fatal("client.connected not registered")
	}

	const vehicles, perVehicle = 40, 25
	var wg sync.WaitGroup
	errs := make(chan error, vehicles)
	for v := range vehicles {
		wg.Go(func() {
			vin := fmt.Sprintf("VIN%04d", v)
			for i := range perVehicle {
				topic := "vehicles/" + vin + "/telemetry"
				if i%3 == 0 {
					topic = "vehicles/" + vin + "/events/door"
				}
				resp, err := h.sim.Publish(ctx, h.sim.NewMessage(vin, topic, 1, fmt.Appendf(nil, `{"seq":%d}`, i)))
				if err != nil {
					errs <- fmt.Errorf("%s #%d: %w", vin, i, err)
					return
				}
				if resp.GetType() != exhookv2.ValuedResponse_IGNORE {
					errs <- fmt.Errorf("%s #%d: reply %v, want IGNORE", vin, i, resp.GetType())
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	total := vehicles * perVehicle
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	recs, err := stack.ReadAll(rctx, st.KafkaBootstrap(), total, telemetryTopic, eventsTopic)
	if err != nil {
		t.Fatalf("read back %d of %d: %v", len(recs), total, err)
	}
	// Nothing more than sent: read again until idle.
	extra, _ := stack.ReadAll(rctx, st.KafkaBootstrap(), 0, telemetryTopic, eventsTopic)
	if len(extra) != total {
		t.Fatalf("kafka holds %d records, sent %d", len(extra), total)
	}

	dec := decoder(t, st)
	seen := map[string]bool{}
	type topicVehicle struct{ topic, vin string }
	last := map[topicVehicle]int{}
	partition := map[topicVehicle]int32{}
	for _, r := range recs {
		m := decodeMessage(t, dec, r.Value)
		if string(r.Key) != m.VehicleID || !strings.HasPrefix(m.VehicleID, "VIN") {
			t.Fatalf("key %q, vehicle_id %q", r.Key, m.VehicleID)
		}
		if seen[m.MessageID] {
			t.Fatalf("message %s delivered twice", m.MessageID)
		}
		seen[m.MessageID] = true
		var p seqPayload
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatal(err)
		}
		k := topicVehicle{r.Topic, m.VehicleID}
		if prev, ok := last[k]; ok && p.Seq <= prev {
			t.Fatalf("%s on %s: seq %d after %d", m.VehicleID, r.Topic, p.Seq, prev)
		}
		last[k] = p.Seq
		if pp, ok := partition[k]; ok && pp != r.Partition {
			t.Fatalf("%s spread over partitions %d and %d", m.VehicleID, pp, r.Partition)
		}
		partition[k] = r.Partition
		wantRoute := "telemetry"
		if r.Topic == eventsTopic {
			wantRoute = "events"
		}
		if m.Route != wantRoute || m.PayloadFormat != schemas.PayloadJSON || m.QoS != 1 || m.Headers["peerhost"] == "" || m.Username == nil {
			t.Fatalf("envelope fields wrong: %+v", m)
		}
	}
	if len(seen) != total {
		t.Fatalf("%d distinct messages, want %d", len(seen), total)
	}

	metrics := get(t, "http://"+h.app.HTTPAddr()+"/metrics")
	for _, want := range []string{
		`exhook_messages_total{outcome="produced",route="telemetry"}`,
		`exhook_messages_total{outcome="produced",route="events"}`,
		`exhook_hook_duration_seconds_bucket{hook="message.publish",mode="sync"`,
		fmt.Sprintf("exhook_publish_calls_total{grpc_code=%q} %d\n", "OK", total), // counted before the answer is sent
		`grpc_server_handled_total{grpc_code="OK",grpc_method="OnProviderLoaded"`,
		`grpc_server_call_seconds_count `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// grpcprom runs on the other methods only (exhook_publish_calls_total counts this one).
	if strings.Contains(metrics, `grpc_method="OnMessagePublish"`) {
		t.Error("/metrics has grpcprom series of OnMessagePublish")
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestClientEventsGoToStatusTopic(t *testing.T) { e2e.Run(t, clientEventsGoToStatusTopic) }

func clientEventsGoToStatusTopic(t *testing.T, b e2e.Backend) {
	st := startStackOn(t, b)
	h := start(t, testConfig(t, st.KafkaBootstrap(), st.RegistryURL()), st)
	ctx := context.Background()
	if err := h.sim.Connected(ctx, "VIN9"); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.Disconnected(ctx, "VIN9", "keepalive_timeout"); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	recs, err := stack.ReadAll(rctx, st.KafkaBootstrap(), 2, statusTopic)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := schemas.MustLatest(schemas.ClientEventName).Parse()
	if err != nil {
		t.Fatal(err)
	}
	dec := decoder(t, st)
	var events []schemas.ClientEvent
	for _, r := range recs {
		var ev schemas.ClientEvent
		if _, err := dec.Decode(r.Value, reader, &ev); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != "VIN9" {
			t.Fatalf("key %q", r.Key)
		}
		events = append(events, ev)
	}
	if events[0].Event != schemas.ClientConnected || events[1].Event != schemas.ClientDisconnected ||
		events[1].Reason == nil || *events[1].Reason != "keepalive_timeout" || events[0].Peerhost != "127.0.0.1" {
		t.Fatalf("events = %+v", events)
	}
}

func TestBadPayloadGoesToDeadLetterTopic(t *testing.T) { e2e.Run(t, badPayloadGoesToDeadLetterTopic) }

func badPayloadGoesToDeadLetterTopic(t *testing.T, b e2e.Backend) {
	st := startStackOn(t, b)
	h := start(t, testConfig(t, st.KafkaBootstrap(), st.RegistryURL()), st)
	ctx := context.Background()
	bad := []byte(`{"speed": 12,`)
	tests := []struct {
		topic string
	}{{"vehicles/VIN1/telemetry"}, {"vehicles/VIN1/events/crash"}}
	for _, tt := range tests {
		msg := h.sim.NewMessage("VIN1", tt.topic, 1, bad)
		resp, err := h.sim.Publish(ctx, msg)
		if err != nil {
			t.Fatalf("%s: %v", tt.topic, err)
		}
		if resp.GetType() != exhookv2.ValuedResponse_IGNORE {
			t.Fatalf("reply %v", resp.GetType())
		}
	}
	// A good message after the bad ones still flows.
	if _, err := h.sim.Publish(ctx, h.sim.NewMessage("VIN1", "vehicles/VIN1/telemetry", 0, []byte(`{"seq":1}`))); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	dead, err := stack.ReadAll(rctx, st.KafkaBootstrap(), 2, deadTopic)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range dead {
		if string(r.Value) != string(bad) || string(r.Key) != "VIN1" {
			t.Fatalf("dead letter %d: key %q value %q", i, r.Key, r.Value)
		}
		if !strings.Contains(r.Headers[hook.HeaderError], "JSON") || r.Headers[hook.HeaderTopic] != tests[i].topic || r.Headers[hook.HeaderMessageID] == "" {
			t.Fatalf("dead letter %d headers: %v", i, r.Headers)
		}
	}
	good, err := stack.ReadAll(rctx, st.KafkaBootstrap(), 0, telemetryTopic, eventsTopic)
	if err != nil || len(good) != 1 {
		t.Fatalf("routed topics hold %d records (%v), want only the good one", len(good), err)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestSyncModeReturnsErrorWhenKafkaUnreachable: a sync route must not say yes without a
// Kafka acknowledgement.
func TestSyncModeReturnsErrorWhenKafkaUnreachable(t *testing.T) {
	st := startStack(t)
	cfg := testConfig(t, freePort(t), st.RegistryURL())
	cfg.Shutdown.DrainTimeout = 2 * time.Second
	a, err := app.New(cfg, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	sim, err := emqxsim.Dial(emqxsim.Options{Addr: a.GRPCAddr(), PoolSize: 1, RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	// Readiness says the producer cannot deliver: no broker ever answered.
	waitFor(t, func() bool {
		resp, err := http.Get("http://" + a.HTTPAddr() + "/ready")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), "kafka unreachable")
	})
	if a.KafkaState() != "unreachable" {
		t.Fatalf("producer state %s with kafka down", a.KafkaState())
	}

	_, err = sim.Publish(context.Background(), sim.NewMessage("VIN1", "vehicles/VIN1/events/crash", 1, []byte(`{}`)))
	if code := status.Code(err); code != codes.DeadlineExceeded {
		t.Fatalf("sync publish with kafka down: code %v (%v), want DeadlineExceeded", code, err)
	}
	// Async mode answers at once (the record waits in the producer queue).
	if _, err := sim.Publish(context.Background(), sim.NewMessage("VIN1", "vehicles/VIN1/telemetry", 1, []byte(`{}`))); err != nil {
		t.Fatalf("async publish: %v", err)
	}
	cancel()
	// Shutdown must report what it could not deliver rather than claim success.
	if err := <-done; err == nil || !strings.Contains(err.Error(), "unacknowledged") {
		t.Fatalf("Run after undeliverable records = %v, want an unacknowledged-records error", err)
	}
}

// TestGracefulShutdownLosesNoAcknowledgedMessage stops the producer in the middle of a load:
// every message EMQX got a success reply for must be in Kafka.
func TestGracefulShutdownLosesNoAcknowledgedMessage(t *testing.T) {
	st := startStack(t)
	h := start(t, testConfig(t, st.KafkaBootstrap(), st.RegistryURL()), st)

	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	for v := range 20 {
		wg.Go(func() {
			vin := fmt.Sprintf("VIN%02d", v)
			for i := 0; ctx.Err() == nil; i++ {
				msg := h.sim.NewMessage(vin, "vehicles/"+vin+"/telemetry", 1, fmt.Appendf(nil, `{"seq":%d}`, i))
				if _, err := h.sim.Publish(ctx, msg); err != nil {
					if ctx.Err() == nil {
						time.Sleep(5 * time.Millisecond) // server gone: keep trying like EMQX would
					}
					continue
				}
				mu.Lock()
				acked[msg.GetId()] = true
				mu.Unlock()
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	if err := h.stop(t); err != nil {
		t.Fatalf("drain: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	stopLoad()
	wg.Wait()
	if len(acked) < 100 {
		t.Fatalf("only %d messages acknowledged before shutdown; load too small to mean anything", len(acked))
	}

	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs, err := stack.ReadAll(rctx, st.KafkaBootstrap(), 0, telemetryTopic)
	if err != nil {
		t.Fatal(err)
	}
	dec := decoder(t, st)
	inKafka := map[string]bool{}
	for _, r := range recs {
		inKafka[decodeMessage(t, dec, r.Value).MessageID] = true
	}
	missing := 0
	for id := range acked {
		if !inKafka[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged messages missing from kafka after graceful shutdown", missing, len(acked))
	}
	t.Logf("%d acknowledged, %d in kafka", len(acked), len(inKafka))
}

func TestStartupFailsClearlyWithoutRegistry(t *testing.T) {
	cfg := testConfig(t, freePort(t), "http://"+freePort(t))
	_, err := app.New(cfg, logger(t))
	if err == nil || !strings.Contains(err.Error(), "subject") {
		t.Fatalf("New without a registry = %v, want a schema registration error", err)
	}
}

// TestHealthAndReflection: EMQX operators and probes see the service through grpc.health.v1
// and server reflection.
func TestHealthAndReflection(t *testing.T) {
	st := startStack(t)
	h := start(t, testConfig(t, st.KafkaBootstrap(), st.RegistryURL()), st)
	cc, err := grpc.NewClient(h.app.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, svc := range []string{"", exhookv2.HookProvider_ServiceDesc.ServiceName, "emqx.exhook.v3.HookProvider"} {
		resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q = %v, %v", svc, resp.GetStatus(), err)
		}
	}
	stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if !slices.Contains(names, "emqx.exhook.v2.HookProvider") || !slices.Contains(names, "emqx.exhook.v3.HookProvider") ||
		!slices.Contains(names, "grpc.health.v1.Health") {
		t.Fatalf("reflection lists %v", names)
	}
}
