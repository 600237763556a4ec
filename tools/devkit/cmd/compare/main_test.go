package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
	"github.com/iov-platform/iov/tools/devkit/load"
	"github.com/iov-platform/iov/tools/devkit/stack"
	"github.com/iov-platform/iov/tools/devkit/stack/stacktest"
)

func TestRatioMedianSummary(t *testing.T) {
	if got := ratio(20000, 2000); got != 10 {
		t.Errorf("ratio = %v", got)
	}
	if ratio(0, 5) != 0 || ratio(5, 0) != 0 || fmtRatio(0) != "n/a" || fmtRatio(9.64) != "9.6x" {
		t.Error("ratio of nothing must print n/a")
	}

	r := result{rounds: []load.Report{
		{Acked: 100, Elapsed: time.Second, P50: 10 * time.Millisecond, P99: 90 * time.Millisecond, Max: 100 * time.Millisecond},
		{Acked: 100, Elapsed: 500 * time.Millisecond, P50: 30 * time.Millisecond, P99: 70 * time.Millisecond, Max: 80 * time.Millisecond},
		{Acked: 98, Errors: 2, Elapsed: 2 * time.Second, P50: 20 * time.Millisecond, P99: 80 * time.Millisecond, Max: 90 * time.Millisecond, FirstError: "boom"},
	}, cpu: 298 * time.Millisecond}
	r.summarize()
	if r.rate != 100 || r.rateMin != 49 || r.rateMax != 200 {
		t.Errorf("rate %v (%v-%v)", r.rate, r.rateMin, r.rateMax)
	}
	if r.p50 != 20*time.Millisecond || r.p99 != 80*time.Millisecond || r.max != 90*time.Millisecond {
		t.Errorf("p50 %s p99 %s max %s", r.p50, r.p99, r.max)
	}
	if r.acked != 298 || r.errors != 2 || r.firstError != "boom" || r.ok() || r.cpuPerMsg() != time.Millisecond {
		t.Errorf("summary %+v cpu/msg %s", r, r.cpuPerMsg())
	}

	ours := result{server: nameOurs, mode: "async", rate: 20000, p50: 50 * time.Millisecond, p99: 100 * time.Millisecond,
		acked: 10, cpu: 10 * time.Microsecond, peakRSS: 80 << 20, exit: "exit 0"}
	py := result{server: namePython, mode: "async", rate: 2000, p50: 500 * time.Millisecond, p99: 1500 * time.Millisecond,
		acked: 10, cpu: 100 * time.Microsecond, peakRSS: 40 << 20, lost: 3, exit: "exit 1", stats: "published=10"}
	var b strings.Builder
	printResults(&b, []result{py, ours})
	out := b.String()
	for _, want := range []string{
		"ratios async: msg/s ours/python 10.0x; python/ours: p50 10.0x, p99 15.0x, peak RSS 0.5x, CPU/msg 10.0x",
		"note async: the python bridge had errors=0 lost=3",
		"note: python-bridge async stopped with exit 1", "python-bridge async counters at exit (incl. warm-up): published=10",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// envValue is a record value as the bridge writes it.
func envValue(t *testing.T, vin string, payload []byte) []byte {
	t.Helper()
	value, err := json.Marshal(envelope{ID: vin + "-0", ClientID: vin, Topic: "compare/" + vin + "/telemetry",
		QoS: 1, Payload: payload, Timestamp: 1, Node: "emqx@127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return value
}

func TestBridgeEnvelope(t *testing.T) {
	payload := []byte(`{"run":"r","vin":"V1","seq":0}`)
	got, err := bridgeEnvelope([]byte("V1"), envValue(t, "V1", payload))
	if err != nil || string(got) != string(payload) {
		t.Fatalf("bridgeEnvelope = %q, %v; want the MQTT payload", got, err)
	}
	bad := map[string]struct{ key, value []byte }{
		"key is not the client id": {[]byte("V2"), envValue(t, "V1", payload)},
		"not JSON":                 {[]byte("V1"), []byte("\x00\x00\x00\x00\x01avro")},
		"incomplete envelope":      {[]byte("V1"), []byte(`{"clientid":"V1","payload":"eyJydW4iOiJyIiwidmluIjoiVjEiLCJzZXEiOjB9"}`)},
		"no payload":               {[]byte("V1"), envValue(t, "V1", nil)},
	}
	for name, rec := range bad {
		if p, err := bridgeEnvelope(rec.key, rec.value); err == nil {
			t.Errorf("%s: accepted, payload %q", name, p)
		}
	}
}

// bridgeOrSkip returns the interpreter and bridge script, or skips the test when the
// interpreter lacks the bridge's packages. `make test` sets COMPARE_PYTHON to the virtual
// environment tools/baseline-python/install-deps.sh builds.
func bridgeOrSkip(t *testing.T) (python, bridge string) {
	t.Helper()
	python = os.Getenv("COMPARE_PYTHON")
	if python == "" {
		python = "/usr/bin/python3"
	}
	const install = "COMPARE_PYTHON=$(tools/baseline-python/install-deps.sh) builds the venv and names its python"
	if _, err := os.Stat(python); err != nil {
		t.Skipf("python bridge test needs %s: %v; %s", python, err, install)
	}
	if out, err := exec.Command(python, "-c", "import grpc, kafka, google.protobuf").CombinedOutput(); err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Skipf("python bridge test needs grpcio, kafka-python and protobuf for %s (%s); %s",
			python, lines[len(lines)-1], install)
	}
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Skipf("python bridge test needs protoc (protobuf-compiler); %s", install)
	}
	return python, "../../../baseline-python/exhook_bridge.py"
}

// startPythonForTest starts the bridge; it is stopped when t ends, if the test has not
// stopped it (stop again only reports the exit).
func startPythonForTest(ctx context.Context, t *testing.T, o pythonOptions) *server {
	t.Helper()
	srv, err := startPython(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.stop(10 * time.Second) })
	return srv
}

// TestPythonBridge runs the baseline bridge against the in-process Kafka: every message of a
// small load arrives as a well-formed envelope keyed by client id, every RPC answers, the
// publish hook replies IGNORE, and SIGTERM stops it cleanly with its counters.
func TestPythonBridge(t *testing.T) {
	python, bridge := bridgeOrSkip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	st := stacktest.Start(t, stack.Options{Partitions: 3, Topics: []string{"py.async"}})
	logw := &testLog{t: t}
	srv := startPythonForTest(ctx, t, pythonOptions{Python: python, Bridge: bridge, Bootstrap: st.KafkaBootstrap(),
		Topic: "py.async", Filter: mqttFilter, Workers: 4, Log: logw})

	rep, err := load.Run(ctx, load.Options{Addr: srv.addr, Vehicles: 5, Messages: 5, Pool: 2,
		RequestTimeout: 5 * time.Second, TopicTemplate: mqttTopic, PayloadBytes: 100, QoS: 1,
		Bootstrap: st.KafkaBootstrap(), KafkaTopic: "py.async", Extract: bridgeEnvelope, VerifyWait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Acked != 25 || rep.Errors != 0 {
		t.Fatalf("load: %+v", rep)
	}
	if !rep.Verified || rep.Consumed != 25 || rep.Lost != 0 || rep.Duplicates != 0 || rep.OutOfOrder != 0 {
		t.Fatalf("kafka holds %+v, want all 25 once and in order", rep)
	}

	sim, err := emqxsim.Dial(emqxsim.Options{Addr: srv.addr, PoolSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	loaded, err := sim.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h := loaded.GetHooks(); len(h) != 1 || h[0].GetName() != "message.publish" || len(h[0].GetTopics()) != 1 || h[0].GetTopics()[0] != mqttFilter {
		t.Fatalf("OnProviderLoaded hooks %v", h)
	}
	resp, err := sim.Publish(ctx, sim.NewMessage("VIN1", "compare/VIN1/telemetry", 1, []byte(`{"x":1}`)))
	if err != nil || resp.GetType() != exhookv2.ValuedResponse_IGNORE {
		t.Fatalf("OnMessagePublish = %v, %v; want IGNORE", resp, err)
	}
	// Every other RPC of the service answers (an empty request is valid for every message).
	cc, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if n := len(exhookv2.HookProvider_ServiceDesc.Methods); n != 21 {
		t.Fatalf("service has %d RPCs", n)
	}
	for _, m := range exhookv2.HookProvider_ServiceDesc.Methods {
		if m.MethodName == "OnMessagePublish" {
			continue // would write an empty message to Kafka; exercised above
		}
		if err := cc.Invoke(ctx, "/"+exhookv2.HookProvider_ServiceDesc.ServiceName+"/"+m.MethodName,
			&exhookv2.EmptySuccess{}, &exhookv2.EmptySuccess{}); err != nil {
			t.Errorf("%s: %v", m.MethodName, err)
		}
	}

	exit := srv.stop(20 * time.Second)
	if exit != "exit 0" || srv.Stats() != "published=26 delivered=26 rejected=0 lost=0" {
		t.Fatalf("stopped with %q, stats %q", exit, srv.Stats())
	}
}

// TestPythonBridgeSyncOutage: in sync mode a Kafka outage is an error for EMQX (not a silent
// IGNORE), and SIGTERM flushes the record of the failed call once Kafka is back.
func TestPythonBridgeSyncOutage(t *testing.T) {
	python, bridge := bridgeOrSkip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	st := stacktest.Start(t, stack.Options{Partitions: 1, Topics: []string{"py.sync"}})
	srv := startPythonForTest(ctx, t, pythonOptions{Python: python, Bridge: bridge, Bootstrap: st.KafkaBootstrap(),
		Topic: "py.sync", Filter: mqttFilter, Workers: 2, Sync: true, Log: &testLog{t: t},
		ExtraArgs: []string{"--sync-timeout", "0.5"}})
	sim, err := emqxsim.Dial(emqxsim.Options{Addr: srv.addr, PoolSize: 1, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	if _, err := sim.Publish(ctx, sim.NewMessage("VIN1", "compare/VIN1/telemetry", 1, []byte(`{"n":"before"}`))); err != nil {
		t.Fatalf("publish with Kafka up: %v", err)
	}

	st.StopKafka()
	_, err = sim.Publish(ctx, sim.NewMessage("VIN1", "compare/VIN1/telemetry", 1, []byte(`{"n":"during"}`)))
	if c := status.Code(err); (c != codes.DeadlineExceeded && c != codes.Unavailable) || !strings.Contains(err.Error(), "kafka produce failed") {
		t.Fatalf("publish with Kafka down: %v; want the bridge's DEADLINE_EXCEEDED or UNAVAILABLE", err)
	}

	if err := st.StartKafka(); err != nil {
		t.Fatal(err)
	}
	exit := srv.stop(20 * time.Second)
	if exit != "exit 0" || srv.Stats() != "published=1 delivered=1 rejected=1 lost=0" {
		t.Fatalf("stopped with %q, stats %q", exit, srv.Stats())
	}
	// The restarted Kafka is empty; the flush on SIGTERM wrote the failed call's record
	// (at-least-once, as with our producer's sync route).
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	recs, err := stack.ReadAll(rctx, st.KafkaBootstrap(), 1, "py.sync")
	if err != nil {
		t.Fatal(err)
	}
	var env envelope
	if len(recs) != 1 || json.Unmarshal(recs[0].Value, &env) != nil || string(env.Payload) != `{"n":"during"}` || string(recs[0].Key) != "VIN1" {
		t.Fatalf("after restart kafka holds %d records: %+v", len(recs), recs)
	}
}

// testLog sends a child's output to the test log.
type testLog struct{ t *testing.T }

func (l *testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
