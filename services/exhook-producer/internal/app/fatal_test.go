package app_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/iov-platform/iov/services/exhook-producer/internal/app"
	"github.com/iov-platform/iov/services/exhook-producer/internal/config"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

// transition is when the producer's state became state.
type transition struct {
	at    time.Time
	state string
}

func (tr transition) String() string { return tr.at.Format(time.StampMilli) + " " + tr.state }

// changedWithin reports whether the state changed between from and to (with the watcher's
// poll interval as margin).
func changedWithin(trs []transition, from, to time.Time) bool {
	for i, tr := range trs {
		if i == 0 {
			continue // the first state seen, not a change
		}
		if !tr.at.Before(from.Add(-10*time.Millisecond)) && !tr.at.After(to.Add(10*time.Millisecond)) {
			return true
		}
	}
	return false
}

// sample is one look at the producer's health signals.
type sample struct {
	at, end  time.Time // when the look started and ended
	state    string // the main producer's state, read before and after the probes
	stable   bool   // the state was the same before and after the probes
	ready    bool   // GET /ready answered 200
	serving  bool   // gRPC health answered SERVING
	gauge    string // every 10th sample: exhook_kafka_producer_state{producer="main"} that is 1
	gaugeRdy bool   // and exhook_ready
}

var stateLine = regexp.MustCompile(`exhook_kafka_producer_state\{producer="main",state="(\w+)"\} 1`)
var readyLine = regexp.MustCompile(`(?m)^exhook_ready (\S+)`)

// metricsState reads the main producer's state and exhook_ready from /metrics.
func metricsState(addr string) (state string, ready bool) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	var b []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			break
		}
	}
	if m := stateLine.FindSubmatch(b); m != nil {
		state = string(m[1])
	}
	if m := readyLine.FindSubmatch(b); m != nil {
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		ready = v == 1
	}
	return state, ready
}

// sampleHealth looks at every health signal, over and over, until ctx ends.
func sampleHealth(ctx context.Context, t *testing.T, a *app.App) <-chan []sample {
	httpAddr, grpcAddr := a.HTTPAddr(), a.GRPCAddr()
	out := make(chan []sample, 1)
	cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	hc := healthpb.NewHealthClient(cc)
	go func() {
		defer cc.Close()
		var samples []sample
		for ctx.Err() == nil {
			s := sample{at: time.Now()}
			before := string(a.KafkaState())
			if resp, err := http.Get("http://" + httpAddr + "/ready"); err == nil {
				s.ready = resp.StatusCode == http.StatusOK
				resp.Body.Close()
			}
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			if resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{}); err == nil {
				s.serving = resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
			}
			cancel()
			s.state = string(a.KafkaState())
			s.stable = s.state == before
			if len(samples)%10 == 0 { // exhook_ready and the state metric, less often: /metrics is slow
				state, ready := metricsState(httpAddr)
				s.gauge, s.gaugeRdy, s.stable = state, ready, s.stable && string(a.KafkaState()) == s.state
			}
			s.end = time.Now()
			if ctx.Err() == nil {
				samples = append(samples, s)
			}
			time.Sleep(5 * time.Millisecond)
		}
		out <- samples
	}()
	return out
}

// TestFatalProducerStateRecovers restarts the memory-only Kafka under load. The new cluster
// has no producer state, so it answers librdkafka's next batches with
// OUT_OF_ORDER_SEQUENCE_NUMBER, which is fatal to the idempotent producer (franz-go
// v1.22.3 kfake 00_produce.go; the same "sequence desynchronization" the issue saw). The
// producer must replace its Kafka producers by itself, lose nothing that async or spool
// acknowledged after the restart began, and report not-ready exactly while it cannot deliver.
func TestFatalProducerStateRecovers(t *testing.T) {
	st, err := stack.Start(stack.Options{Partitions: 3, Topics: []string{spoolTopic, telemetryTopic, eventsTopic, statusTopic, deadTopic}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { st.Close() }()
	cfg, err := config.Parse(fmt.Appendf(nil, `
grpc: {listenAddress: "127.0.0.1:0"}
http: {listenAddress: "127.0.0.1:0"}
log: {level: warn, format: text}
kafka:
  bootstrapServers: %q
  syncTimeout: 3s
  unreachableAfter: 500ms
  properties: {linger.ms: "1", reconnect.backoff.ms: "50", reconnect.backoff.max.ms: "200", message.timeout.ms: "60000"}
registry: {url: %q}
shutdown: {drainTimeout: 10s}
spool: {dir: %q}
topics: {status: %s, deadLetter: %s}
routes:
  - {name: spooled, filter: "vehicles/+/spooled", kafkaTopic: %s, key: {from: topic-segment, segment: 1}, payload: json, delivery: spool}
  - {name: telemetry, filter: "vehicles/+/telemetry", kafkaTopic: %s, key: {from: topic-segment, segment: 1}, payload: json, delivery: async}
  - {name: events, filter: "vehicles/+/events/#", kafkaTopic: %s, key: {from: topic-segment, segment: 1}, payload: json, delivery: sync}
`, st.KafkaBootstrap(), st.RegistryURL(), t.TempDir(), statusTopic, deadTopic, spoolTopic, telemetryTopic, eventsTopic))
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, cfg, st)

	// Load: spool and async vehicles in parallel, and one sync vehicle.
	type ack struct {
		id    string
		sent  time.Time // when the call started
		topic string
	}
	var mu sync.Mutex
	var acks []ack
	var lastSyncOK time.Time
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var wg sync.WaitGroup
	for v := range 8 {
		wg.Go(func() {
			vin := fmt.Sprintf("VIN%02d", v)
			kind, topic := "spooled", spoolTopic
			if v%2 == 1 {
				kind, topic = "telemetry", telemetryTopic
			}
			for i := 0; ctx.Err() == nil; i++ {
				msg := h.sim.NewMessage(vin, "vehicles/"+vin+"/"+kind, 1, fmt.Appendf(nil, `{"seq":%d}`, i))
				sent := time.Now()
				if _, err := h.sim.Publish(ctx, msg); err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				mu.Lock()
				acks = append(acks, ack{msg.GetId(), sent, topic})
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			msg := h.sim.NewMessage("VIN99", "vehicles/VIN99/events/e", 1, fmt.Appendf(nil, `{"seq":%d}`, i))
			if _, err := h.sim.Publish(ctx, msg); err == nil {
				mu.Lock()
				lastSyncOK = time.Now()
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	sctx, stopSampling := context.WithCancel(context.Background())
	defer stopSampling()
	samplesc := sampleHealth(sctx, t, h.app)

	// The states the producer went through, polled cheaply and often.
	var transitions []transition
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for sctx.Err() == nil {
			if st := string(h.app.KafkaState()); len(transitions) == 0 || transitions[len(transitions)-1].state != st {
				transitions = append(transitions, transition{time.Now(), st})
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	time.Sleep(time.Second)
	st.StopKafka()
	stoppedAt := time.Now()
	time.Sleep(4 * time.Second)
	if err := st.StartKafka(); err != nil { // memory-only: a fresh cluster on the same port
		t.Fatal(err)
	}
	restartedAt := time.Now()

	// Calls recover by themselves within seconds: a sync call is acknowledged again.
	deadline := restartedAt.Add(20 * time.Second)
	for {
		mu.Lock()
		ok := lastSyncOK.After(restartedAt)
		mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sync calls still failing 20s after kafka came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	recoveredIn := lastSyncOK.Sub(restartedAt)
	mu.Unlock()
	time.Sleep(time.Second) // some load after the recovery
	stopLoad()
	wg.Wait()
	time.Sleep(500 * time.Millisecond)
	stopSampling()
	samples := <-samplesc
	<-watchDone

	// The fatal state was really reached, and handled.
	metrics := get(t, "http://"+h.app.HTTPAddr()+"/metrics")
	if !regexp.MustCompile(`exhook_kafka_producer_recoveries_total\{producer="main"\} [1-9]`).MatchString(metrics) {
		t.Fatalf("main producer never recovered from a fatal state:\n%s", grep(metrics, "exhook_kafka_producer"))
	}
	t.Logf("sync calls acknowledged again %s after kafka came back; %s", recoveredIn.Round(time.Millisecond), grep(metrics, "recoveries_total{"))

	// Health tells the truth at every moment.
	var sawRecovering, sawUnreachable bool
	for _, s := range samples {
		if !s.stable || changedWithin(transitions, s.at, s.end) {
			continue // a transition between the reads (e.g. a ~100ms replacement) or a gap
		}
		canDeliver := s.state == "delivering"
		sawRecovering = sawRecovering || s.state == "recovering"
		sawUnreachable = sawUnreachable || s.state == "unreachable"
		if s.ready != canDeliver || s.serving != canDeliver {
			t.Errorf("%s after the stop: producer %s but /ready ok=%v, grpc serving=%v",
				s.at.Sub(stoppedAt).Round(time.Millisecond), s.state, s.ready, s.serving)
		}
		if s.gauge != "" && (s.gauge != s.state || s.gaugeRdy != canDeliver) {
			t.Errorf("%s after the stop: producer %s but exhook_kafka_producer_state says %s, exhook_ready=%v",
				s.at.Sub(stoppedAt).Round(time.Millisecond), s.state, s.gauge, s.gaugeRdy)
		}
		// unreachableAfter (500ms) after the stop, plus slack for a loaded machine.
		between := s.at.After(stoppedAt.Add(2*time.Second)) && s.at.Before(restartedAt)
		if between && canDeliver {
			t.Errorf("%s after the stop, kafka down: producer state %s", s.at.Sub(stoppedAt).Round(time.Millisecond), s.state)
		}
	}
	t.Logf("%d health samples, all consistent; sampled unreachable: %v, recovering: %v (the replacement itself takes ~100ms)",
		len(samples), sawUnreachable, sawRecovering)
	// The producer said it could not deliver while kafka was down, and delivers at the end.
	var unreachableAt, recoveringAt time.Time
	for _, tr := range transitions {
		if tr.state == "unreachable" && tr.at.After(stoppedAt) && unreachableAt.IsZero() {
			unreachableAt = tr.at
		}
		if tr.state == "recovering" && recoveringAt.IsZero() {
			recoveringAt = tr.at
		}
	}
	if unreachableAt.IsZero() || unreachableAt.After(restartedAt) || recoveringAt.Before(restartedAt) {
		t.Errorf("state transitions %v: want unreachable after the stop (%s) and before the restart (%s), then recovering",
			transitions, stoppedAt.Format(time.StampMilli), restartedAt.Format(time.StampMilli))
	}
	if last := transitions[len(transitions)-1]; last.state != "delivering" {
		t.Errorf("producer %s at the end", last.state)
	}
	t.Logf("unreachable %s after the stop; recovering %s after the restart",
		unreachableAt.Sub(stoppedAt).Round(time.Millisecond), recoveringAt.Sub(restartedAt).Round(time.Millisecond))
	if last := samples[len(samples)-1]; !last.ready || !last.serving {
		t.Errorf("not ready at the end: %+v", last)
	}

	// Nothing sent once kafka was stopped and acknowledged is lost (what was written to the
	// first cluster before it died is gone with it: memory-only).
	mu.Lock()
	defer mu.Unlock()
	want := map[string]map[string]bool{spoolTopic: {}, telemetryTopic: {}}
	for _, a := range acks {
		if a.sent.After(stoppedAt) {
			want[a.topic][a.id] = true
		}
	}
	for topic, ids := range want {
		got := messageIDs(t, st, len(ids), topic)
		missing := 0
		for id := range ids {
			if got[id] == 0 {
				missing++
			}
		}
		if missing > 0 || len(ids) < 10 { // fewer would prove little
			t.Errorf("%s: %d of %d messages sent after the stop and acknowledged are missing", topic, missing, len(ids))
		}
		t.Logf("%s: %d sent after the stop and acknowledged, all in kafka", topic, len(ids))
	}
}

// grep returns the lines of text that contain sub.
func grep(text, sub string) string {
	var out []byte
	for _, l := range regexp.MustCompile(`(?m)^.*`+regexp.QuoteMeta(sub)+`.*$`).FindAllString(text, -1) {
		out = append(out, l...)
		out = append(out, '\n')
	}
	return string(out)
}
