package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/iov-platform/iov/kit/kafkagroup"
	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/services/downlink/internal/command"
	"github.com/iov-platform/iov/services/downlink/internal/process"
	"github.com/iov-platform/iov/tools/devkit/commands"
	"github.com/iov-platform/iov/tools/devkit/e2e"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
	"github.com/iov-platform/iov/tools/devkit/producerproc"
	"github.com/iov-platform/iov/tools/devkit/vehicle"
)

// startProducer builds ../exhook-producer and runs it with command tracking enabled; it
// returns the HookProvider's gRPC address.
func startProducer(t *testing.T, e *env) string {
	t.Helper()
	return producerproc.Start(t, "../../../exhook-producer", e.stack.KafkaBootstrap(), e.stack.RegistryURL(), fmt.Sprintf(`
topics: {status: iov.vehicle.status, deadLetter: %s}
routes:
  - {name: telemetry, filter: "vehicles/+/telemetry", kafkaTopic: iov.vehicle.telemetry, key: {from: topic-segment, segment: 1}, payload: json, delivery: async}
commands:
  enabled: true
  topicFilter: "vehicles/+/commands/+"
  responseFilter: "vehicles/+/commands/+/response"
  vehicleSegment: 1
  commandSegment: 3
  statusTopic: %s
`, deadTopic, statusTopic))
}

// hookLog records the broker's hook calls.
type hookLog struct {
	mu    sync.Mutex
	calls []emqxsim.HookCall
}

func (h *hookLog) add(c emqxsim.HookCall) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, c)
}

func (h *hookLog) seen(hook, topic string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.ContainsFunc(h.calls, func(c emqxsim.HookCall) bool { return c.Hook == hook && c.Topic == topic && c.Err == nil })
}

// TestCommandRoundTrip runs the whole downlink against stand-ins: kfake + srfake, the real
// exhook-producer binary, the emqxsim test-double broker calling it over ExHook gRPC, a
// simulated vehicle on MQTT 5, and the downlink in-process.
//
// A valid command reaches the vehicle exactly once with its MQTT 5 properties, and its
// status events arrive in order on the vehicle's partition: SENT (downlink), DELIVERED
// (broker), RESPONDED (vehicle, with the response payload); no ACKED, since EMQX's
// message.acked does not tell a negative PUBACK from a positive one. An expired command gets
// one EXPIRED and never reaches the vehicle. An undecodable record and an invalid command
// land on the dead-letter topic with the error headers (the invalid one also gets FAILED).
// Offsets are committed: a second instance in the same group does not send anything again.
func TestCommandRoundTrip(t *testing.T) { e2e.Run(t, commandRoundTrip) }

func commandRoundTrip(t *testing.T, b e2e.Backend) {
	t.Parallel()
	e := newEnvOn(t, b, "iov.vehicle.telemetry", "iov.vehicle.status")
	hookAddr := startProducer(t, e)
	hooks := &hookLog{}
	broker, err := emqxsim.StartBroker(emqxsim.BrokerOptions{HookAddr: hookAddr, OnHook: hooks.add, LoadTimeout: 30 * time.Second, AutoReconnect: 250 * time.Millisecond, Log: e.log.With("component", "emqxsim")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Close() })
	for _, want := range []string{"message.dropped[vehicles/+/commands/+]", "message.delivered[vehicles/+/commands/+]"} {
		if !slices.Contains(broker.Hooks(), want) {
			t.Fatalf("broker hooks %v lack %s", broker.Hooks(), want)
		}
	}

	car := startVehicle(t, broker.URL(), "VIN1")
	responses := make(chan error, 4)
	go func() { // the vehicle executes each command and responds once EMQX reported the delivery
		for cmd := range car.Commands() {
			deadline := time.Now().Add(20 * time.Second)
			for !hooks.seen(emqxsim.HookMessageDelivered, cmd.Topic) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			var p command.Payload
			_ = json.Unmarshal(cmd.Payload, &p)
			responses <- car.Respond(context.Background(), cmd, fmt.Appendf(nil, `{"command_id":%q,"result":"done"}`, p.CommandID))
		}
	}()

	dl := e.startDownlink(t, e.downlinkConfig(t, broker.URL(), "iov-downlink", "iov-downlink-a"))
	dl.waitReady(t)

	now := time.Now()
	valid := newCommand("cmd-1", "VIN1", "door.lock", now, now.Add(time.Minute))
	expired := newCommand("cmd-expired", "VIN1", "door.unlock", now.Add(-2*time.Minute), now.Add(-time.Minute))
	invalid := newCommand("cmd-invalid", "VIN1", "", now, now.Add(time.Minute))
	offline := newCommand("cmd-offline", "VIN2", "door.lock", now, now.Add(time.Minute)) // nobody subscribed
	garbage := &kgo.Record{Topic: commandsTopic, Key: []byte("VIN1"), Value: []byte("definitely not avro"), Headers: []kgo.RecordHeader{{Key: "trace-id", Value: []byte("t-garbage")}}}
	recs := e.produce(t,
		e.commandRecord(t, "VIN1", valid),
		e.commandRecord(t, "VIN1", expired),
		garbage,
		e.commandRecord(t, "VIN1", invalid),
		e.commandRecord(t, "VIN2", offline),
	)

	// The vehicle gets the valid command and responds.
	var got vehicle.Command
	select {
	case err := <-responses:
		if err != nil {
			t.Fatal(err)
		}
		got = car.Received()[0]
	case <-time.After(30 * time.Second):
		t.Fatal("the vehicle received no command within 30s")
	}
	if got.Topic != "vehicles/VIN1/commands/cmd-1" || got.QoS != 1 {
		t.Fatalf("command at %q QoS %d", got.Topic, got.QoS)
	}
	if string(got.Props.CorrelationData) != "cmd-1" || got.Props.ResponseTopic != "vehicles/VIN1/commands/cmd-1/response" ||
		got.Props.ContentType != "application/json" || got.Props.User.Get("command") != "door.lock" {
		t.Fatalf("MQTT 5 properties %+v", got.Props)
	}
	if got.Props.MessageExpiry == nil || *got.Props.MessageExpiry < 1 || *got.Props.MessageExpiry > 60 {
		t.Fatalf("message expiry %v, want 1..60s", got.Props.MessageExpiry)
	}
	var payload command.Payload
	if err := json.Unmarshal(got.Payload, &payload); err != nil {
		t.Fatalf("payload %s: %v", got.Payload, err)
	}
	if payload.CommandID != "cmd-1" || payload.Name != "door.lock" || payload.Params["door"] != "all" ||
		payload.ExpiresAt != valid.ExpiresAt.Format(command.TimeFormat) {
		t.Fatalf("payload %s", got.Payload)
	}
	for _, u := range got.Props.User {
		if strings.HasPrefix(u.Key, "x-emqxsim") {
			t.Fatalf("broker-internal user property leaked: %v", u)
		}
	}

	// Status events: the full life of cmd-1 in order, one EXPIRED, one FAILED.
	var evs []commands.Status
	waitFor(t, 30*time.Second, func() bool {
		evs = e.statuses(t)
		return len(commands.Of(evs, "cmd-1")) >= 3 && len(commands.Of(evs, "cmd-expired")) >= 1 && len(commands.Of(evs, "cmd-invalid")) >= 1 &&
			len(commands.Of(evs, "cmd-offline")) >= 2
	}, func() string { return fmt.Sprintf("status events so far: %+v", evs) })
	life := commands.Of(evs, "cmd-1")
	if commands.States(life) != "SENT,DELIVERED,RESPONDED" {
		t.Fatalf("cmd-1 status events %s, want SENT,DELIVERED,RESPONDED", commands.States(life))
	}
	for i, ev := range life {
		want := []string{schemas.SourceDownlink, schemas.SourceBroker, schemas.SourceVehicle}[i]
		if ev.Source != want || ev.VehicleID != "VIN1" || ev.Partition != life[0].Partition {
			t.Fatalf("cmd-1 %s: source %q vehicle %q partition %d (SENT on %d)", ev.Status, ev.Source, ev.VehicleID, ev.Partition, life[0].Partition)
		}
		if i > 0 && ev.Offset <= life[i-1].Offset {
			t.Fatalf("cmd-1 %s at offset %d after %s at %d", ev.Status, ev.Offset, life[i-1].Status, life[i-1].Offset)
		}
	}
	if resp := string(life[2].Response); resp != `{"command_id":"cmd-1","result":"done"}` {
		t.Fatalf("RESPONDED carries %q", resp)
	}
	if exp := commands.Of(evs, "cmd-expired"); commands.States(exp) != "EXPIRED" || exp[0].Reason == nil ||
		!strings.Contains(*exp[0].Reason, "before it could be sent") || exp[0].Source != schemas.SourceDownlink {
		t.Fatalf("cmd-expired events %+v", exp)
	}
	// A command to a vehicle without a subscription: sent by the downlink, dropped by the
	// broker (message.dropped, no_subscribers), reported as FAILED by the producer.
	if off := commands.Of(evs, "cmd-offline"); commands.States(off) != "SENT,FAILED" || off[1].Source != schemas.SourceBroker ||
		off[1].Reason == nil || !strings.Contains(*off[1].Reason, "no_subscribers") {
		t.Fatalf("cmd-offline events %+v", off)
	}
	if bad := commands.Of(evs, "cmd-invalid"); commands.States(bad) != "FAILED" || bad[0].Reason == nil || !strings.Contains(*bad[0].Reason, "name is empty") {
		t.Fatalf("cmd-invalid events %+v", bad)
	}

	// Dead letters: the garbage record and the invalid command, as written, with the headers.
	var dead []map[string]string
	waitFor(t, 20*time.Second, func() bool {
		dead = dead[:0]
		for _, r := range e.records(t, deadTopic) {
			dead = append(dead, r.Headers)
			if r.Headers[kafkagroup.HeaderOffset] == strconv.FormatInt(recs[2].Offset, 10) && string(r.Value) != "definitely not avro" {
				t.Fatalf("dead letter of the garbage record holds %q", r.Value)
			}
		}
		return len(dead) >= 2
	}, func() string { return fmt.Sprintf("dead letters so far: %v", dead) })
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want 2: %v", len(dead), dead)
	}
	for i, src := range []*kgo.Record{recs[2], recs[3]} {
		h := dead[i]
		if h[kafkagroup.HeaderTopic] != commandsTopic || h[kafkagroup.HeaderPartition] != strconv.Itoa(int(src.Partition)) ||
			h[kafkagroup.HeaderOffset] != strconv.FormatInt(src.Offset, 10) || h["trace-id"] == "" || h[kafkagroup.HeaderError] == "" {
			t.Fatalf("dead letter %d headers %v (source %d@%d)", i, h, src.Partition, src.Offset)
		}
	}
	if !strings.Contains(dead[0][kafkagroup.HeaderError], "magic") || dead[0][kafkagroup.HeaderStage] != process.StageDecode {
		t.Fatalf("garbage dead letter error %q stage %q", dead[0][kafkagroup.HeaderError], dead[0][kafkagroup.HeaderStage])
	}
	if !strings.Contains(dead[1][kafkagroup.HeaderError], "name is empty") || dead[1][kafkagroup.HeaderStage] != process.StageValidate {
		t.Fatalf("invalid dead letter error %q stage %q", dead[1][kafkagroup.HeaderError], dead[1][kafkagroup.HeaderStage])
	}

	metrics := httpBody(dl.app.HTTPAddr(), "/metrics")
	for _, want := range []string{
		`downlink_commands_total{outcome="sent"} 2`, // cmd-1 and cmd-offline
		`downlink_commands_total{outcome="expired"} 1`,
		`downlink_commands_total{outcome="dead_lettered"} 2`,
		`downlink_publish_duration_seconds_count{result="ok"} 2`,
		"downlink_mqtt_connected 1",
		"downlink_ready 1",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Offsets are committed: a second instance in the same group starts after them. A new
	// command on the same partition proves it consumes; nothing before it comes again.
	if err := dl.stop(t); err != nil {
		t.Fatalf("clean stop returned %v", err)
	}
	dl2 := e.startDownlink(t, e.downlinkConfig(t, broker.URL(), "iov-downlink", "iov-downlink-b"))
	dl2.waitReady(t)
	now = time.Now()
	e.produce(t, e.commandRecord(t, "VIN1", newCommand("cmd-2", "VIN1", "climate.start", now, now.Add(time.Minute))))
	select {
	case err := <-responses:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the second instance did not send cmd-2")
	}
	var topics []string
	for _, r := range car.Received() {
		topics = append(topics, r.Topic)
	}
	if !slices.Equal(topics, []string{"vehicles/VIN1/commands/cmd-1", "vehicles/VIN1/commands/cmd-2"}) {
		t.Fatalf("the vehicle received %v, want cmd-1 then cmd-2 once each", topics)
	}
	waitFor(t, 30*time.Second, func() bool {
		evs = e.statuses(t)
		return commands.States(commands.Of(evs, "cmd-2")) == "SENT,DELIVERED,RESPONDED"
	}, func() string { return "cmd-2 events: " + commands.States(commands.Of(evs, "cmd-2")) })
	if s := commands.States(commands.Of(evs, "cmd-1")); s != "SENT,DELIVERED,RESPONDED" {
		t.Fatalf("cmd-1 events after the restart: %s", s)
	}
	if s := commands.States(commands.Of(evs, "cmd-expired")) + "|" + commands.States(commands.Of(evs, "cmd-invalid")); s != "EXPIRED|FAILED" {
		t.Fatalf("expired|invalid events after the restart: %s", s)
	}
	if n := len(e.records(t, deadTopic)); n != 2 {
		t.Fatalf("%d dead letters after the restart, want 2", n)
	}
}
