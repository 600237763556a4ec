package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/iov-platform/iov/kit/kafkagroup"
	"github.com/iov-platform/iov/kit/kafkasink"
	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/services/downlink/internal/config"
	"github.com/iov-platform/iov/services/downlink/internal/engine"
	"github.com/iov-platform/iov/services/downlink/internal/metrics"
	"github.com/iov-platform/iov/services/downlink/internal/mqttpub"
)

// clock is the fake time shared by the processor and the waiter: waiting advances it.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// waiter advances the clock instead of sleeping; it can be told to fail after n waits.
type waiter struct {
	clock *clock
	waits []time.Duration
	fail  func(n int) error
}

func (w *waiter) Wait(_ context.Context, d time.Duration) error {
	w.waits = append(w.waits, d)
	if w.fail != nil {
		if err := w.fail(len(w.waits)); err != nil {
			return err
		}
	}
	w.clock.advance(d)
	return nil
}

// statusEncoder keeps the statuses and frames them as their index.
type statusEncoder struct{ statuses []schemas.CommandStatus }

func (e *statusEncoder) Encode(v any) ([]byte, error) {
	e.statuses = append(e.statuses, *v.(*schemas.CommandStatus))
	return fmt.Appendf(nil, "%d", len(e.statuses)-1), nil
}

// producer records what was acknowledged; failures(n) can fail attempt n.
type producer struct {
	t        *testing.T
	attempts int
	acked    []kafkasink.Record
	failures func(n int) error
}

func (p *producer) Produce(_ context.Context, rec kafkasink.Record, wait bool) error {
	if !wait {
		p.t.Errorf("record for %s produced without waiting for the acknowledgement", rec.Topic)
	}
	p.attempts++
	if p.failures != nil {
		if err := p.failures(p.attempts); err != nil {
			return err
		}
	}
	p.acked = append(p.acked, rec)
	return nil
}

// publisher answers each Publish with the next scripted result.
type publisher struct {
	connected func() bool
	script    []func() (*paho.PublishResponse, error)
	sent      []*paho.Publish
}

func (p *publisher) Connected() bool { return p.connected == nil || p.connected() }
func (p *publisher) Publish(_ context.Context, msg *paho.Publish) (*paho.PublishResponse, error) {
	p.sent = append(p.sent, msg)
	if len(p.script) == 0 {
		return &paho.PublishResponse{ReasonCode: 0}, nil
	}
	f := p.script[0]
	p.script = p.script[1:]
	return f()
}

type harness struct {
	t       *testing.T
	proc    *Processor
	clock   *clock
	wait    *waiter
	enc     *statusEncoder
	prod    *producer
	pub     *publisher
	m       *metrics.Metrics
	cmds    *serde.Encoder
	reg     *srfake.Registry
	offset  int64
	cfg     *config.Config
	records []*kafka.Message
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	cfg, err := config.Parse([]byte(`
kafka: {bootstrapServers: k}
registry: {url: "http://r"}
mqtt: {brokerUrl: "mqtt://e:1883", clientId: x, publishTimeout: 2s, retry: {initialBackoff: 100ms, maxBackoff: 1s}}
`))
	if err != nil {
		t.Fatal(err)
	}
	client := serde.NewRegistry(reg.URL(), "", "") // the processor's; the encoder's caches apart
	cmds, err := serde.NewEncoder(serde.NewRegistry(reg.URL(), "", ""), serde.TopicSubject(cfg.Kafka.CommandsTopic), schemas.MustLatest(schemas.VehicleCommandName), true)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, clock: &clock{now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}, enc: &statusEncoder{}, prod: &producer{t: t},
		pub: &publisher{}, m: metrics.New(prometheus.NewRegistry()), cmds: cmds, reg: reg, cfg: cfg}
	h.wait = &waiter{clock: h.clock}
	h.proc, err = New(Options{Registry: client, StatusEncoder: h.enc, Producer: h.prod, Publisher: h.pub, Kafka: cfg.Kafka, MQTT: cfg.MQTT,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: h.m, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) command(id string, ttl time.Duration) schemas.VehicleCommand {
	now := h.clock.Now()
	return schemas.VehicleCommand{CommandID: id, VehicleID: "VIN1", Name: "door.lock", IssuedAt: now, ExpiresAt: now.Add(ttl)}
}

func (h *harness) record(key string, value []byte) *kafka.Message {
	topic := h.cfg.Kafka.CommandsTopic
	h.offset++
	return &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: 2, Offset: kafka.Offset(h.offset)},
		Key: []byte(key), Value: value, Timestamp: h.clock.Now()}
}

func (h *harness) encode(c schemas.VehicleCommand) []byte {
	b, err := h.cmds.Encode(&c)
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

func (h *harness) handle(m *kafka.Message) error {
	return h.proc.Handle(context.Background(), m, h.wait)
}

// statuses lists the acknowledged status events as "STATE" or "STATE: reason".
func (h *harness) statuses() []string {
	var out []string
	for _, rec := range h.prod.acked {
		if rec.Topic != h.cfg.Kafka.StatusTopic {
			continue
		}
		var i int
		fmt.Sscan(string(rec.Value), &i)
		st := h.enc.statuses[i]
		if string(rec.Key) != st.VehicleID || st.Source != schemas.SourceDownlink {
			h.t.Fatalf("status %+v under key %q", st, rec.Key)
		}
		s := st.Status
		if st.Reason != nil {
			s += ": " + *st.Reason
		}
		out = append(out, s)
	}
	return out
}

func (h *harness) outcome(o string) float64 {
	return testutil.ToFloat64(h.m.Commands.WithLabelValues(o))
}

func TestSentThenPublished(t *testing.T) {
	h := newHarness(t)
	c := h.command("c-1", 90*time.Second+300*time.Millisecond)
	var order []string
	h.prod.failures = func(int) error { order = append(order, "kafka"); return nil }
	h.pub.script = append(h.pub.script, func() (*paho.PublishResponse, error) {
		order = append(order, "mqtt")
		return &paho.PublishResponse{ReasonCode: 0}, nil
	})
	if err := h.handle(h.record("VIN1", h.encode(c))); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ","); got != "kafka,mqtt" {
		t.Fatalf("effects in order %s, want SENT acknowledged by Kafka before the publish", got)
	}
	if got := h.statuses(); len(got) != 1 || got[0] != schemas.CommandSent {
		t.Fatalf("statuses %v", got)
	}
	msg := h.pub.sent[0]
	if msg.QoS != 1 || msg.Topic != "vehicles/VIN1/commands/c-1" || string(msg.Properties.CorrelationData) != "c-1" ||
		msg.Properties.ResponseTopic != "vehicles/VIN1/commands/c-1/response" || *msg.Properties.MessageExpiry != 91 ||
		msg.Properties.ContentType != ContentType || *msg.Properties.PayloadFormat != 1 || msg.Properties.User.Get(UserCommand) != "door.lock" {
		t.Fatalf("published %+v %+v", msg, msg.Properties)
	}
	if h.outcome(metrics.OutcomeSent) != 1 {
		t.Fatal("sent not counted")
	}
}

func TestPublishRetriedWhileNotExpired(t *testing.T) {
	h := newHarness(t)
	c := h.command("c-2", 10*time.Second)
	timeout := func() (*paho.PublishResponse, error) { return nil, context.DeadlineExceeded }
	h.pub.script = append(h.pub.script, timeout, func() (*paho.PublishResponse, error) { return nil, mqttpub.ErrNotConnected })
	if err := h.handle(h.record("VIN1", h.encode(c))); err != nil {
		t.Fatal(err)
	}
	if len(h.pub.sent) != 3 || fmt.Sprint(h.wait.waits) != "[100ms 200ms]" {
		t.Fatalf("%d publishes, waits %v", len(h.pub.sent), h.wait.waits)
	}
	if e1, e3 := *h.pub.sent[0].Properties.MessageExpiry, *h.pub.sent[2].Properties.MessageExpiry; e1 != 10 || e3 != 10 {
		// 9.7s left at the third attempt still rounds up to 10.
		t.Fatalf("message expiry %d then %d", e1, e3)
	}
	if got := h.statuses(); fmt.Sprint(got) != "[SENT]" {
		t.Fatalf("statuses %v", got)
	}
	if testutil.ToFloat64(h.m.PublishRetries) != 2 || h.outcome(metrics.OutcomeSent) != 1 {
		t.Fatal("retries or outcome not counted")
	}
}

func TestExpiresWhileRetryingIsFailed(t *testing.T) {
	h := newHarness(t)
	c := h.command("c-3", 1500*time.Millisecond)
	fail := func() (*paho.PublishResponse, error) { return nil, errors.New("connection lost") }
	h.pub.script = []func() (*paho.PublishResponse, error){fail, fail, fail, fail, fail}
	if err := h.handle(h.record("VIN1", h.encode(c))); err != nil {
		t.Fatal(err)
	}
	got := h.statuses()
	if len(got) != 2 || got[0] != "SENT" || !strings.HasPrefix(got[1], "FAILED: expired 0s while retrying") ||
		!strings.Contains(got[1], "after 4 publish attempt(s); last error: connection lost") {
		t.Fatalf("statuses %q", got)
	}
	// Backoff 100, 200, 400 then capped at what was left (800ms) so the expiry is seen at once.
	if fmt.Sprint(h.wait.waits) != "[100ms 200ms 400ms 800ms]" {
		t.Fatalf("waits %v", h.wait.waits)
	}
	if h.outcome(metrics.OutcomeFailed) != 1 {
		t.Fatal("failed not counted")
	}
}

func TestRefusedByBroker(t *testing.T) {
	h := newHarness(t)
	h.pub.script = append(h.pub.script, func() (*paho.PublishResponse, error) {
		return &paho.PublishResponse{ReasonCode: 0x97, Properties: &paho.PublishResponseProperties{ReasonString: "slow down"}}, errors.New("error publishing")
	})
	if err := h.handle(h.record("VIN1", h.encode(h.command("c-4", time.Minute)))); err != nil {
		t.Fatal(err)
	}
	if got := h.statuses(); len(got) != 2 || got[1] != "FAILED: broker refused the command: PUBACK reason code 0x97 (quota exceeded): slow down" {
		t.Fatalf("statuses %q", got)
	}
	if len(h.pub.sent) != 1 {
		t.Fatalf("a refused command was published %d times", len(h.pub.sent))
	}
}

func TestExpiredIsNeverPublished(t *testing.T) {
	h := newHarness(t)
	c := h.command("c-5", time.Second)
	h.clock.advance(3 * time.Second)
	if err := h.handle(h.record("VIN1", h.encode(c))); err != nil {
		t.Fatal(err)
	}
	if got := h.statuses(); len(got) != 1 || !strings.HasPrefix(got[0], "EXPIRED: expired 2s before it could be sent") {
		t.Fatalf("statuses %q", got)
	}
	// Exactly at expires_at counts as expired too.
	c = h.command("c-6", time.Second)
	h.clock.advance(time.Second)
	if err := h.handle(h.record("VIN1", h.encode(c))); err != nil {
		t.Fatal(err)
	}
	if len(h.pub.sent) != 0 || h.outcome(metrics.OutcomeExpired) != 2 {
		t.Fatalf("%d publishes, %v expired", len(h.pub.sent), h.outcome(metrics.OutcomeExpired))
	}
}

func TestExpiresWhileDisconnected(t *testing.T) {
	h := newHarness(t)
	h.pub.connected = func() bool { return false }
	if err := h.handle(h.record("VIN1", h.encode(h.command("c-7", 2500*time.Millisecond)))); err != nil {
		t.Fatal(err)
	}
	if got := h.statuses(); len(got) != 1 || !strings.HasPrefix(got[0], "EXPIRED: expired 0s while the MQTT connection to the broker was down") {
		t.Fatalf("statuses %q", got)
	}
	// Checks at most every second, and wakes up at the expiry.
	if fmt.Sprint(h.wait.waits) != "[100ms 200ms 400ms 800ms 1s]" {
		t.Fatalf("waits %v", h.wait.waits)
	}
}

func TestMalformedRecordsAreDeadLettered(t *testing.T) {
	h := newHarness(t)
	vm, err := serde.NewEncoder(serde.NewRegistry(h.reg.URL(), "", ""), "other-value", schemas.MustLatest(schemas.VehicleMessageName), true)
	if err != nil {
		t.Fatal(err)
	}
	otherType, err := vm.Encode(&schemas.VehicleMessage{MessageID: "m", VehicleID: "VIN1", PayloadFormat: schemas.PayloadJSON})
	if err != nil {
		t.Fatal(err)
	}
	good := h.encode(h.command("c-8", time.Minute))
	for _, tc := range []struct {
		name, key string
		value     []byte
		want      string
		failed    bool // a FAILED status is written too
	}{
		{name: "garbage", key: "VIN1", value: []byte("garbage!"), want: "unknown magic byte"},
		{name: "short", key: "VIN1", value: []byte{0, 1}, want: "shorter than the 5-byte header"},
		{name: "unknown schema id", key: "VIN1", value: []byte{0, 0, 0, 0x7f, 0x10, 2, 'x'}, want: "schema id 32528 is not in the registry"},
		{name: "other record type", key: "VIN1", value: otherType, want: "not readable with reader schema"},
		{name: "truncated body", key: "VIN1", value: good[:len(good)-3], want: "avro decode"},
		{name: "key mismatch", key: "VIN2", value: good, want: `record key "VIN2" differs`, failed: true},
		{name: "command id with slash", key: "VIN1", value: h.encode(h.command("a/b", time.Minute)), want: "level separator", failed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.prod.acked)
			m := h.record(tc.key, tc.value)
			m.Headers = []kafka.Header{{Key: "trace-id", Value: []byte("t1")}}
			if err := h.handle(m); err != nil {
				t.Fatal(err)
			}
			recs := h.prod.acked[before:]
			if want := map[bool]int{false: 1, true: 2}[tc.failed]; len(recs) != want {
				t.Fatalf("%d records written, want %d", len(recs), want)
			}
			dl := recs[0]
			hs := map[string]string{}
			for _, hd := range dl.Headers {
				hs[hd.Key] = string(hd.Value)
			}
			if dl.Topic != h.cfg.Kafka.DeadLetterTopic || string(dl.Value) != string(tc.value) || string(dl.Key) != tc.key ||
				!strings.Contains(hs[kafkagroup.HeaderError], tc.want) || hs[kafkagroup.HeaderTopic] != h.cfg.Kafka.CommandsTopic || hs[kafkagroup.HeaderPartition] != "2" ||
				hs[kafkagroup.HeaderOffset] != fmt.Sprint(h.offset) || hs["trace-id"] != "t1" || hs[kafkagroup.HeaderGroup] != "iov-downlink" {
				t.Fatalf("dead letter %s %q %v", dl.Topic, dl.Value, hs)
			}
			if tc.failed && recs[1].Topic != h.cfg.Kafka.StatusTopic {
				t.Fatalf("second record on %s", recs[1].Topic)
			}
		})
	}
	if len(h.pub.sent) != 0 || h.outcome(metrics.OutcomeDeadLettered) != 7 {
		t.Fatalf("%d publishes, %v dead-lettered", len(h.pub.sent), h.outcome(metrics.OutcomeDeadLettered))
	}
}

func TestRegistryOutageIsRetriedNotDeadLettered(t *testing.T) {
	h := newHarness(t)
	value := h.encode(h.command("c-9", time.Minute))
	down := true
	h.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if down {
			http.Error(w, `{"error_code":50001,"message":"backend down"}`, http.StatusInternalServerError)
			return true
		}
		return false
	})
	h.wait.fail = func(n int) error {
		if n == 3 {
			down = false
		}
		return nil
	}
	if err := h.handle(h.record("VIN1", value)); err != nil {
		t.Fatal(err)
	}
	if len(h.wait.waits) != 3 || fmt.Sprint(h.statuses()) != "[SENT]" || len(h.pub.sent) != 1 {
		t.Fatalf("waits %v statuses %v publishes %d", h.wait.waits, h.statuses(), len(h.pub.sent))
	}
}

func TestKafkaWriteRetried(t *testing.T) {
	h := newHarness(t)
	h.prod.failures = func(n int) error {
		if n <= 2 {
			return kafka.NewError(kafka.ErrMsgTimedOut, "timed out", false)
		}
		return nil
	}
	if err := h.handle(h.record("VIN1", h.encode(h.command("c-10", time.Minute)))); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(h.statuses()) != "[SENT]" || len(h.pub.sent) != 1 || h.prod.attempts != 3 {
		t.Fatalf("statuses %v, %d publishes, %d attempts", h.statuses(), len(h.pub.sent), h.prod.attempts)
	}
}

func TestAbandonedOnShutdownOrRevoke(t *testing.T) {
	for _, stop := range []error{context.Canceled, engine.ErrRevoked} {
		h := newHarness(t)
		h.pub.script = append(h.pub.script, func() (*paho.PublishResponse, error) { return nil, errors.New("connection lost") })
		h.wait.fail = func(int) error { return stop }
		err := h.handle(h.record("VIN1", h.encode(h.command("c-11", time.Minute))))
		if !errors.Is(err, stop) {
			t.Fatalf("Handle = %v, want %v", err, stop)
		}
		// SENT was written; nothing else: the record is not finished and will be handled again.
		if fmt.Sprint(h.statuses()) != "[SENT]" || h.outcome(metrics.OutcomeFailed) != 0 || h.outcome(metrics.OutcomeSent) != 0 {
			t.Fatalf("after %v: statuses %v", stop, h.statuses())
		}
	}
}
