package app_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/services/exhook-producer/internal/app"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

// readiness returns /ready's status and body.
func readiness(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// runWithoutAutoRegister starts a producer with registry.autoRegister false on registryURL and
// returns it with a stop function that cancels Run and returns its error.
func runWithoutAutoRegister(t *testing.T, bootstrap, registryURL string) (*app.App, func() error) {
	t.Helper()
	cfg := testConfig(t, bootstrap, registryURL)
	cfg.Registry.AutoRegister = false
	a, err := app.New(cfg, logger(t))
	if err != nil {
		t.Fatalf("New must not fail on a missing schema without autoRegister: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	return a, func() error {
		cancel()
		select {
		case err := <-runErr:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("app did not stop within 30s")
			return nil
		}
	}
}

// TestWithoutAutoRegisterNotReadyUntilSchemasRegistered: with registry.autoRegister false and
// the schemas missing, the producer starts but is not ready, names every subject and missing
// version, serves no hook; once the schemas are registered (as schemactl would) it turns ready
// and writes with the registered ids.
func TestWithoutAutoRegisterNotReadyUntilSchemasRegistered(t *testing.T) {
	st := startStack(t)
	a, stop := runWithoutAutoRegister(t, st.KafkaBootstrap(), st.RegistryURL())
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	ctx := context.Background()

	message := schemas.MustLatest(schemas.VehicleMessageName)
	status := schemas.MustLatest(schemas.ClientEventName)
	code, body := readiness(t, a.HTTPAddr())
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/ready = %d %q, want 503", code, body)
	}
	for _, want := range []string{
		"schema not registered (registry.autoRegister is false: register it with schemactl): ",
		"subject iov.vehicle.telemetry-value has no vehicle_message v" + strconv.Itoa(message.Version),
		"subject iov.vehicle.events-value has no vehicle_message v" + strconv.Itoa(message.Version),
		"subject iov.vehicle.status-value has no client_event v" + strconv.Itoa(status.Version),
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/ready body %q lacks %q", body, want)
		}
	}

	reg := serde.NewRegistry(st.RegistryURL(), "", "")
	for subject, def := range map[string]schemas.Definition{
		serde.TopicSubject(telemetryTopic): message,
		serde.TopicSubject(eventsTopic):    message,
		serde.TopicSubject(statusTopic):    status,
	} {
		if _, err := serde.NewEncoder(reg, subject, def, true); err != nil {
			t.Fatal(err)
		}
	}
	waitReady(t, a.HTTPAddr())

	sim, err := emqxsim.Dial(emqxsim.Options{Addr: a.GRPCAddr(), PoolSize: 1, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	if err := sim.Connected(ctx, "VIN7"); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	recs, err := stack.ReadAll(rctx, st.KafkaBootstrap(), 1, statusTopic)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := status.Parse()
	if err != nil {
		t.Fatal(err)
	}
	var ev schemas.ClientEvent
	if _, err := decoder(t, st).Decode(recs[0].Value, reader, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.VehicleID != "VIN7" || ev.Event != schemas.ClientConnected {
		t.Fatalf("event = %+v", ev)
	}
}

// TestWithoutAutoRegisterStopsCleanlyWhileWaiting: a producer stopped while it still waits for
// its schemas shuts down without error and frees its ports.
func TestWithoutAutoRegisterStopsCleanlyWhileWaiting(t *testing.T) {
	st := startStack(t)
	a, stop := runWithoutAutoRegister(t, st.KafkaBootstrap(), st.RegistryURL())
	if code, body := readiness(t, a.HTTPAddr()); code != http.StatusServiceUnavailable || !strings.Contains(body, "schema not registered") {
		t.Fatalf("/ready = %d %q", code, body)
	}
	grpcAddr := a.GRPCAddr()
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", grpcAddr)
	if err != nil {
		t.Fatalf("gRPC port still held after stop: %v", err)
	}
	ln.Close()
}

// TestWithoutAutoRegisterUnreachableRegistrySaysSo: a registry that does not answer is
// reported as a failed lookup, not as a missing schema.
func TestWithoutAutoRegisterUnreachableRegistrySaysSo(t *testing.T) {
	st := startStack(t)
	a, stop := runWithoutAutoRegister(t, st.KafkaBootstrap(), "http://"+freePort(t))
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	code, body := readiness(t, a.HTTPAddr())
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "schema lookup failed: subject iov.vehicle.telemetry-value, vehicle_message v") ||
		strings.Contains(body, "schema not registered") {
		t.Fatalf("/ready = %d %q", code, body)
	}
}
