package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/services/downlink/internal/app"
	"github.com/iov-platform/iov/services/downlink/internal/config"
	"github.com/iov-platform/iov/tools/devkit/commands"
	"github.com/iov-platform/iov/tools/devkit/e2e"
	"github.com/iov-platform/iov/tools/devkit/stack"
	"github.com/iov-platform/iov/tools/devkit/vehicle"
)

const (
	commandsTopic = "iov.vehicle.commands"
	statusTopic   = "iov.vehicle.command-status"
	deadTopic     = "iov.deadletter"
)

// env is one in-process Kafka + registry, with a command encoder and a status decoder.
type env struct {
	stack *stack.Stack
	kafka *kgo.Client
	enc   *serde.Encoder
	dec   *serde.Decoder
	log   *slog.Logger
	logs  *bufWriter // what log wrote
}

func newEnv(t *testing.T, extraTopics ...string) *env { return newEnvOn(t, e2e.KFake, extraTopics...) }

func newEnvOn(t *testing.T, b e2e.Backend, extraTopics ...string) *env {
	t.Helper()
	st := e2e.Start(t, b, stack.Options{Partitions: 3, Topics: append([]string{commandsTopic, statusTopic, deadTopic}, extraTopics...)})
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.KafkaBootstrap()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	reg := serde.NewRegistry(st.RegistryURL(), "", "")
	enc, err := serde.NewEncoder(reg, serde.TopicSubject(commandsTopic), schemas.MustLatest(schemas.VehicleCommandName), true)
	if err != nil {
		t.Fatal(err)
	}
	log, logs := testLogger(t)
	return &env{stack: st, kafka: cl, enc: enc, dec: serde.NewDecoder(reg), log: log, logs: logs}
}

// testLogger buffers the log and prints it only when the test failed.
func testLogger(t *testing.T) (*slog.Logger, *bufWriter) {
	t.Helper()
	w := &bufWriter{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", w.String())
		}
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})), w
}

type bufWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *bufWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *bufWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func newCommand(id, vin, name string, issued, expires time.Time) schemas.VehicleCommand {
	by := "fleet-app"
	return schemas.VehicleCommand{CommandID: id, VehicleID: vin, Name: name, Params: map[string]string{"door": "all"},
		IssuedAt: issued.UTC().Truncate(time.Millisecond), ExpiresAt: expires.UTC().Truncate(time.Millisecond), IssuedBy: &by}
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

func (e *env) commandRecord(t *testing.T, key string, c schemas.VehicleCommand) *kgo.Record {
	t.Helper()
	b, err := e.enc.Encode(&c)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: commandsTopic, Key: []byte(key), Value: b, Headers: []kgo.RecordHeader{{Key: "trace-id", Value: []byte("t-" + c.CommandID)}}}
}

// statuses reads and decodes the whole status topic.
func (e *env) statuses(t *testing.T) []commands.Status {
	t.Helper()
	evs, err := commands.DecodeStatuses(e.dec, e.records(t, statusTopic))
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// records reads every record the topic holds now: up to its end offsets, so that a slow
// fetch can never pass for an empty topic.
func (e *env) records(t *testing.T, topic string) []stack.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(e.kafka).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	ends.Each(func(o kadm.ListedOffset) { total += int(o.Offset) })
	if total == 0 {
		return nil
	}
	recs, err := stack.ReadAll(ctx, e.stack.KafkaBootstrap(), total, topic)
	if err != nil {
		t.Fatalf("read %s: %d of %d records: %v", topic, len(recs), total, err)
	}
	return recs
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// downlinkConfig is a downlink config with fast group timings and retries.
func (e *env) downlinkConfig(t *testing.T, brokerURL, group, clientID string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(fmt.Appendf(nil, `
http: {listenAddress: "127.0.0.1:0"}
log: {level: debug, format: text}
kafka:
  bootstrapServers: %q
  groupId: %s
  properties:
    session.timeout.ms: "6000"
    heartbeat.interval.ms: "300"
    fetch.wait.max.ms: "50"
    auto.commit.interval.ms: "200"
    topic.metadata.refresh.interval.ms: "1000"
registry: {url: %q}
mqtt:
  brokerUrl: %q
  clientId: %q
  publishTimeout: 3s
  keepAlive: 10s
  connectTimeout: 2s
  retry: {initialBackoff: 50ms, maxBackoff: 300ms}
shutdown: {drainTimeout: 5s}
`, e.stack.KafkaBootstrap(), group, e.stack.RegistryURL(), brokerURL, clientID))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// downlink is one running App.
type downlink struct {
	app    *app.App
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func (e *env) startDownlink(t *testing.T, cfg *config.Config) *downlink {
	t.Helper()
	a, err := app.New(cfg, e.log.With("instance", cfg.MQTT.ClientID))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &downlink{app: a, cancel: cancel, done: make(chan error, 1)}
	go func() { d.done <- a.Run(ctx) }()
	t.Cleanup(func() { _ = d.stop(t) })
	return d
}

func (d *downlink) waitReady(t *testing.T) {
	t.Helper()
	waitFor(t, 20*time.Second, func() bool { return httpStatus(d.app.HTTPAddr(), "/ready") == http.StatusOK }, func() string {
		return "downlink never became ready: " + httpBody(d.app.HTTPAddr(), "/ready")
	})
}

// stop cancels the downlink and returns Run's result; safe to call more than once.
func (d *downlink) stop(t *testing.T) error {
	t.Helper()
	d.cancel()
	d.once.Do(func() {
		select {
		case d.err = <-d.done:
		case <-time.After(30 * time.Second):
			t.Error("downlink did not stop within 30s")
		}
	})
	return d.err
}

func httpStatus(addr, path string) int {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func httpBody(addr, path string) string {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
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

// startVehicle connects a simulated vehicle subscribed to its commands.
func startVehicle(t *testing.T, brokerURL, vin string) *vehicle.Vehicle {
	t.Helper()
	v, err := vehicle.Connect(brokerURL, vin, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}
