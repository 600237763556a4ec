package app_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/iov-platform/iov/services/exhook-producer/internal/config"
	"github.com/iov-platform/iov/services/exhook-producer/internal/hook"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

const spoolTopic = "iov.vehicle.spooled"

func spoolConfig(t *testing.T, bootstrap, registry, dir string, listen string) *config.Config {
	t.Helper()
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	cfg, err := config.Parse(fmt.Appendf(nil, `
grpc: {listenAddress: %q}
http: {listenAddress: "127.0.0.1:0"}
log: {level: warn, format: text}
kafka:
  bootstrapServers: %q
  syncTimeout: 3s
  maxPayloadBytes: 4096
  properties: {linger.ms: "1", reconnect.backoff.max.ms: "200", message.timeout.ms: "60000"}
registry: {url: %q}
shutdown: {drainTimeout: 10s}
spool: {dir: %q, maxBytes: 67108864, whenFull: reject}
topics: {status: %s, deadLetter: %s}
routes:
  - {name: spooled, filter: "vehicles/+/spooled", kafkaTopic: %s, key: {from: topic-segment, segment: 1}, payload: json, delivery: spool}
  - {name: events, filter: "vehicles/+/events/#", kafkaTopic: %s, key: {from: topic-segment, segment: 1}, payload: json, delivery: sync}
`, listen, bootstrap, registry, dir, statusTopic, deadTopic, spoolTopic, eventsTopic))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// messageIDs reads every record of topic and returns the message ids it holds (with
// how many times each appears).
func messageIDs(t *testing.T, st *stack.Stack, want int, topic string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dec := decoder(t, st)
	ids := map[string]int{}
	for ctx.Err() == nil {
		recs, err := stack.ReadAll(ctx, st.KafkaBootstrap(), 0, topic)
		if err != nil && ctx.Err() == nil {
			t.Fatal(err)
		}
		clear(ids)
		for _, r := range recs {
			ids[decodeMessage(t, dec, r.Value).MessageID]++
		}
		if len(ids) >= want {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	return ids
}

// TestKafkaOutage: while Kafka is down, spool calls are acknowledged from disk and every
// one arrives once Kafka is back; every sync call fails back to the caller.
func TestKafkaOutage(t *testing.T) {
	st, err := stack.Start(stack.Options{Partitions: 3, Topics: []string{spoolTopic, eventsTopic, statusTopic, deadTopic}, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := start(t, spoolConfig(t, st.KafkaBootstrap(), st.RegistryURL(), t.TempDir(), ""), st)
	ctx := context.Background()

	st.StopKafka()
	var acked []string
	for i := range 200 {
		vin := fmt.Sprintf("VIN%02d", i%10)
		msg := h.sim.NewMessage(vin, "vehicles/"+vin+"/spooled", 1, fmt.Appendf(nil, `{"seq":%d}`, i))
		if _, err := h.sim.Publish(ctx, msg); err != nil {
			t.Fatalf("spool publish during outage: %v", err)
		}
		acked = append(acked, msg.GetId())
	}
	syncFailures := 0
	for i := range 5 {
		sim, err := emqxsim.Dial(emqxsim.Options{Addr: h.app.GRPCAddr(), PoolSize: 1, RequestTimeout: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = sim.Publish(ctx, sim.NewMessage("VIN1", "vehicles/VIN1/events/x", 1, fmt.Appendf(nil, `{"i":%d}`, i)))
		sim.Close()
		if code := status.Code(err); code == codes.DeadlineExceeded || code == codes.Unavailable {
			syncFailures++
		} else {
			t.Errorf("sync publish during outage: %v, want an error", err)
		}
	}
	if syncFailures != 5 {
		t.Fatalf("%d of 5 sync calls reported failure", syncFailures)
	}

	if err := st.StartKafka(); err != nil {
		t.Fatal(err)
	}
	ids := messageIDs(t, st, len(acked), spoolTopic)
	for _, id := range acked {
		if ids[id] == 0 {
			t.Fatalf("spooled message %s lost across the outage (%d of %d arrived)", id, len(ids), len(acked))
		}
	}
	dups := 0
	for _, n := range ids {
		dups += n - 1
	}
	t.Logf("%d spooled messages all arrived after the outage, %d duplicates", len(acked), dups)
}

// TestCorruptAndOversizePayloadsOnSpoolRoute: a payload that does not decode is kept, through
// the spool, on the dead-letter topic; one too large for Kafka is refused with a note there.
func TestCorruptAndOversizePayloadsOnSpoolRoute(t *testing.T) {
	st := startStack(t)
	h := start(t, spoolConfig(t, st.KafkaBootstrap(), st.RegistryURL(), t.TempDir(), ""), st)
	corrupt := []byte("{\"speed\": 1\x00\xff")
	if _, err := h.sim.Publish(context.Background(), h.sim.NewMessage("VIN1", "vehicles/VIN1/spooled", 1, corrupt)); err != nil {
		t.Fatalf("corrupt payload: %v, want IGNORE (dead-lettered)", err)
	}
	big := fmt.Appendf(nil, `{"blob":"%s"}`, strings.Repeat("a", 5000))
	_, err := h.sim.Publish(context.Background(), h.sim.NewMessage("VIN1", "vehicles/VIN1/spooled", 1, big))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversize publish: %v, want InvalidArgument", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs, err := stack.ReadAll(ctx, st.KafkaBootstrap(), 2, deadTopic)
	if err != nil {
		t.Fatal(err)
	}
	if string(recs[0].Value) != string(corrupt) || !strings.Contains(recs[0].Headers[hook.HeaderError], "JSON") {
		t.Fatalf("corrupt payload dead letter %+v", recs[0])
	}
	if recs[1].Headers[hook.HeaderSize] != fmt.Sprint(len(big)) || len(recs[1].Value) != 0 {
		t.Fatalf("oversize note %+v", recs[1])
	}
	// A normal message right after still flows through the spool.
	if _, err := h.sim.Publish(context.Background(), h.sim.NewMessage("VIN1", "vehicles/VIN1/spooled", 1, []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	if ids := messageIDs(t, st, 1, spoolTopic); len(ids) != 1 {
		t.Fatalf("spool topic holds %d messages", len(ids))
	}
}

// TestSIGKILLLosesNoSpooledMessage kills the real binary with SIGKILL in the middle of a
// load, restarts it on the same spool, and checks that every acknowledged message reached
// Kafka.
func TestSIGKILLLosesNoSpooledMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the producer binary")
	}
	bin := filepath.Join(t.TempDir(), "exhook-producer")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	st := startStack(t)
	dir := t.TempDir()
	addr := freePort(t)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	writeConfig(t, cfgPath, st, dir, addr)

	startProc := func() *exec.Cmd {
		cmd := exec.Command(bin, "--config", cfgPath)
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { // keep the pipe drained; show output with -v
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				if testing.Verbose() {
					t.Log(sc.Text())
				}
			}
		}()
		return cmd
	}
	proc := startProc()
	sim, err := emqxsim.Dial(emqxsim.Options{Addr: addr, PoolSize: 4, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()

	var mu sync.Mutex
	var acked []string
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for v := range 16 {
		wg.Go(func() {
			vin := fmt.Sprintf("VIN%02d", v)
			for i := 0; ctx.Err() == nil; i++ {
				msg := sim.NewMessage(vin, "vehicles/"+vin+"/spooled", 1, fmt.Appendf(nil, `{"seq":%d}`, i))
				if _, err := sim.Publish(ctx, msg); err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked = append(acked, msg.GetId())
				mu.Unlock()
			}
		})
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 300 })
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()
	mu.Lock()
	atKill := len(acked)
	mu.Unlock()

	proc = startProc()
	defer func() {
		_ = proc.Process.Signal(syscall.SIGTERM)
		_ = proc.Wait()
	}()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= atKill+300 })
	stopLoad()
	wg.Wait()

	ids := messageIDs(t, st, len(acked), spoolTopic)
	missing := 0
	for _, id := range acked {
		if ids[id] == 0 {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged messages missing after SIGKILL and restart", missing, len(acked))
	}
	t.Logf("%d acknowledged (%d before the kill), all in kafka (%d distinct records)", len(acked), atKill, len(ids))
}

func writeConfig(t *testing.T, path string, st *stack.Stack, dir, addr string) {
	t.Helper()
	cfg := spoolConfig(t, st.KafkaBootstrap(), st.RegistryURL(), dir, addr)
	data := fmt.Sprintf(`
grpc: {listenAddress: %q}
http: {listenAddress: "127.0.0.1:0"}
log: {level: info, format: text}
kafka: {bootstrapServers: %q, properties: {linger.ms: "1"}}
registry: {url: %q}
spool: {dir: %q}
topics: {status: %s, deadLetter: %s}
routes:
  - {name: spooled, filter: "vehicles/+/spooled", kafkaTopic: %s, key: {from: topic-segment, segment: 1}, payload: json, delivery: spool}
`, cfg.GRPC.ListenAddress, cfg.Kafka.BootstrapServers, cfg.Registry.URL, cfg.Spool.Dir, statusTopic, deadTopic, spoolTopic)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWholeRecordIsCheckedAgainstTheClientLimit: a payload under kafka.maxPayloadBytes whose
// record (envelope, key) is over message.max.bytes is refused with a note on the dead-letter
// topic, not with librdkafka's bare "message size too large"; one that fits goes through.
func TestWholeRecordIsCheckedAgainstTheClientLimit(t *testing.T) {
	st := startStack(t)
	cfg := testConfig(t, st.KafkaBootstrap(), st.RegistryURL())
	cfg.Kafka.Properties["message.max.bytes"] = "10000"
	h := start(t, cfg, st)
	ctx := context.Background()
	fits := fmt.Appendf(nil, `{"blob":"%s"}`, strings.Repeat("a", 9000))
	if _, err := h.sim.Publish(ctx, h.sim.NewMessage("VIN1", "vehicles/VIN1/events/x", 1, fits)); err != nil {
		t.Fatalf("record under the limit: %v", err)
	}
	over := fmt.Appendf(nil, `{"blob":"%s"}`, strings.Repeat("a", 9980)) // < maxPayloadBytes, record > 10000
	_, err := h.sim.Publish(ctx, h.sim.NewMessage("VIN1", "vehicles/VIN1/events/x", 1, over))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "exceeds the 10000-byte record limit") {
		t.Fatalf("record over the limit: %v, want InvalidArgument naming the record limit", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	notes, err := stack.ReadAll(rctx, st.KafkaBootstrap(), 1, deadTopic)
	if err != nil {
		t.Fatal(err)
	}
	if n := notes[0]; len(n.Value) != 0 || n.Headers[hook.HeaderSize] != fmt.Sprint(len(over)) || string(n.Key) != "VIN1" {
		t.Fatalf("oversize note %+v", n)
	}
	if ids := messageIDs(t, st, 1, eventsTopic); len(ids) != 1 {
		t.Fatalf("events topic holds %d messages, want the one that fits", len(ids))
	}
}

// TestAsyncRecordsAreSpilledAtShutdown: with Kafka down, async calls are answered and the
// records wait in the producer; at shutdown they go to the spool (spool.dir set, no spool
// route), and the next start ships every one of them.
func TestAsyncRecordsAreSpilledAtShutdown(t *testing.T) {
	st := startStack(t)
	dir := t.TempDir()
	newConfig := func() *config.Config {
		cfg := testConfig(t, st.KafkaBootstrap(), st.RegistryURL())
		cfg.Spool.Dir = dir
		cfg.Shutdown.DrainTimeout = 2 * time.Second
		return cfg
	}
	h := start(t, newConfig(), st)
	st.StopKafka()
	ctx := context.Background()
	var acked []string
	for i := range 300 {
		vin := fmt.Sprintf("VIN%02d", i%10)
		msg := h.sim.NewMessage(vin, "vehicles/"+vin+"/telemetry", 1, fmt.Appendf(nil, `{"seq":%d}`, i))
		if _, err := h.sim.Publish(ctx, msg); err != nil {
			t.Fatalf("async publish with kafka down: %v", err)
		}
		acked = append(acked, msg.GetId())
	}
	h.sim.Close()
	if err := h.stop(t); err != nil {
		t.Fatalf("shutdown with every unacknowledged record spilled: %v", err)
	}

	if err := st.StartKafka(); err != nil {
		t.Fatal(err)
	}
	start(t, newConfig(), st) // ships the spool
	ids := messageIDs(t, st, len(acked), telemetryTopic)
	for _, id := range acked {
		if ids[id] == 0 {
			t.Fatalf("async message %s acknowledged before the shutdown is lost (%d of %d in kafka)", id, len(ids), len(acked))
		}
	}
}
