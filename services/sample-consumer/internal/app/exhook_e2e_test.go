package app_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	exhookv3 "github.com/iov-platform/iov/proto/emqx/exhook/v3"
	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/services/sample-consumer/internal/consume"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
	"github.com/iov-platform/iov/tools/devkit/producerproc"
	"github.com/iov-platform/iov/tools/devkit/vehicle"
)

// TestExHookV2AndV3EndToEnd runs the real exhook-producer binary against kfake + srfake and
// drives it from the EMQX simulator twice: as EMQX 5.8 (ExHook v2) and as EMQX 6.0 (ExHook
// v3, with MQTT 5 properties). The sample consumer then reads the telemetry topic, where a
// record written earlier with vehicle_message v2 (by a producer before v3) also waits:
//   - the v3 message arrives with iov.mqtt.prop.* / iov.mqtt.user.* headers and in the
//     latest vehicle_message version (v3) with its properties;
//   - the v2 message arrives in the same version, without properties;
//   - the consumer decodes the old v2 record and both new ones into the latest Go type.
//
// startProducer runs the exhook-producer binary with a sync telemetry route and returns its
// gRPC address.
func startProducer(t *testing.T, e *env) string {
	t.Helper()
	return producerproc.Start(t, "../../../exhook-producer", e.stack.KafkaBootstrap(), e.stack.RegistryURL(), fmt.Sprintf(`
topics: {status: %s, deadLetter: %s}
routes:
  - {name: telemetry, filter: "vehicles/+/telemetry", kafkaTopic: %s, key: {from: topic-segment, segment: 1}, payload: json, delivery: sync}
`, statusTopic, deadTopic, telemetryTopic))
}

// propHeaders are r's iov.mqtt.* headers as name=value, in record order.
func propHeaders(r consume.Record) []string {
	var hs []string
	for _, h := range r.Headers {
		if strings.HasPrefix(h.Key, "iov.mqtt.") {
			hs = append(hs, h.Key+"="+string(h.Value))
		}
	}
	return hs
}

func TestExHookV2AndV3EndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	latest := schemas.MustLatest(schemas.VehicleMessageName)
	if latest.Version != 3 {
		t.Fatalf("latest vehicle_message is v%d; this test checks v3", latest.Version)
	}
	defs, err := schemas.Versions(schemas.VehicleMessageName)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := serde.NewEncoder(serde.NewRegistry(e.stack.RegistryURL(), "", ""), serde.TopicSubject(telemetryTopic), defs[1], true)
	if err != nil {
		t.Fatal(err)
	}
	old := vehicleMessage("VIN-OLD", "telemetry", 0)
	e.produce(t, record(t, telemetryTopic, v2, "VIN-OLD", old))

	sim, err := emqxsim.Dial(emqxsim.Options{Addr: startProducer(t, e), PoolSize: 2, RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	ctx := context.Background()

	// EMQX 5.8: ExHook v2.
	if _, err := sim.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Publish(ctx, sim.NewMessage("VIN2", "vehicles/VIN2/telemetry", 1, []byte(`{"seq":2}`))); err != nil {
		t.Fatal(err)
	}
	// EMQX 6.0: ExHook v3 on the same port, with MQTT 5 properties.
	v3 := sim.V3()
	loaded, err := v3.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fmt.Sprint(loaded.GetHooks()), "vehicles/+/telemetry") {
		t.Fatalf("v3 load answered hooks %v", loaded.GetHooks())
	}
	props := []*exhookv3.Property{{Name: "Content-Type", Value: "application/json"}, {Name: "Message-Expiry-Interval", Value: "30"}}
	user := []*exhookv3.Property{{Name: "trace", Value: "b"}, {Name: "fw", Value: "1.2"}, {Name: "trace", Value: "a"}}
	if _, err := v3.Publish(ctx, v3.NewMessage("VIN3", "vehicles/VIN3/telemetry", 1, []byte(`{"seq":3}`)), props, user); err != nil {
		t.Fatal(err)
	}

	h := &recorder{}
	e.start(t, e.config(t, "g-exhook-v3", "", 3), h)
	byVehicle := map[string]consume.Record{}
	for _, r := range h.waitCalls(t, 3) {
		byVehicle[r.Key] = r
	}
	message := func(vin string) *schemas.VehicleMessage {
		t.Helper()
		m, ok := byVehicle[vin].Value.(*schemas.VehicleMessage)
		if !ok {
			t.Fatalf("%s: record %+v, want a VehicleMessage", vin, byVehicle[vin])
		}
		return m
	}
	propHeaders := func(vin string) []string { return propHeaders(byVehicle[vin]) }

	// The old v2 record: its own schema id, the later fields at their defaults.
	if got := message("VIN-OLD"); byVehicle["VIN-OLD"].SchemaID != v2.ID() || got.MessageID != old.MessageID ||
		len(got.MQTTProperties) != 0 || len(got.UserProperties) != 0 {
		t.Fatalf("old v2 record (schema id %d, v2 is %d): %+v", byVehicle["VIN-OLD"].SchemaID, v2.ID(), got)
	}
	// Both new records: the latest version, registered by the producer (e.telemetry holds
	// the id of the latest definition under the same subject).
	for _, vin := range []string{"VIN2", "VIN3"} {
		if id := byVehicle[vin].SchemaID; id != e.telemetry.ID() || id == v2.ID() {
			t.Fatalf("%s written with schema id %d, want the v3 id %d", vin, id, e.telemetry.ID())
		}
	}
	if m := message("VIN2"); len(m.MQTTProperties) != 0 || len(m.UserProperties) != 0 || len(propHeaders("VIN2")) != 0 ||
		string(m.Payload) != `{"seq":2}` {
		t.Fatalf("v2 message: %+v, headers %q", m, propHeaders("VIN2"))
	}
	m := message("VIN3")
	wantHeaders := []string{
		"iov.mqtt.prop.Content-Type=application/json", "iov.mqtt.prop.Message-Expiry-Interval=30",
		"iov.mqtt.user.trace=b", "iov.mqtt.user.fw=1.2", "iov.mqtt.user.trace=a",
	}
	if got := propHeaders("VIN3"); !reflect.DeepEqual(got, wantHeaders) {
		t.Fatalf("v3 record headers\n got  %q\n want %q", got, wantHeaders)
	}
	wantUser := []schemas.UserProperty{{Name: "trace", Value: "b"}, {Name: "fw", Value: "1.2"}, {Name: "trace", Value: "a"}}
	if !reflect.DeepEqual(m.MQTTProperties, map[string]string{"Content-Type": "application/json", "Message-Expiry-Interval": "30"}) ||
		!reflect.DeepEqual(m.UserProperties, wantUser) || string(m.Payload) != `{"seq":3}` || m.VehicleID != "VIN3" {
		t.Fatalf("v3 message: %+v", m)
	}
}

// TestMQTT5ThroughBrokerDoubleOverV3 is the MQTT side of ExHook v3: a vehicle's MQTT 5
// PUBLISH with user properties goes through the EMQX broker double speaking emqx.exhook.v3
// (as EMQX 5.9+ does) to the real producer binary; the record carries the properties as
// iov.mqtt.* headers and in vehicle_message v3, and the sample consumer decodes it.
func TestMQTT5ThroughBrokerDoubleOverV3(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	broker, err := emqxsim.StartBroker(emqxsim.BrokerOptions{HookAddr: startProducer(t, e), Protocol: emqxsim.V3Protocol,
		PoolSize: 2, RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Close() })
	v, err := vehicle.Connect(broker.URL(), "VIN5", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	props := &paho.PublishProperties{ContentType: "application/json",
		User: []paho.UserProperty{{Key: "trace", Value: "b"}, {Key: "fw", Value: "1.2"}, {Key: "trace", Value: "a"}}}
	if err := v.Publish(context.Background(), "vehicles/VIN5/telemetry", []byte(`{"seq":5}`), props); err != nil {
		t.Fatal(err)
	}

	h := &recorder{}
	e.start(t, e.config(t, "g-broker-v3", "", 3), h)
	// The vehicle's connection also writes a CONNECTED event to the status topic.
	var r consume.Record
	waitFor(t, 30*time.Second, func() bool {
		for _, rec := range h.snapshot() {
			if rec.Topic == telemetryTopic {
				r = rec
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("no telemetry record among %+v", h.snapshot()) })
	m, ok := r.Value.(*schemas.VehicleMessage)
	if !ok || r.Key != "VIN5" {
		t.Fatalf("record %+v, want VIN5's VehicleMessage", r)
	}
	if r.SchemaID != e.telemetry.ID() || schemas.MustLatest(schemas.VehicleMessageName).Version != 3 {
		t.Fatalf("written with schema id %d, want vehicle_message v3's %d", r.SchemaID, e.telemetry.ID())
	}
	wantHeaders := []string{"iov.mqtt.prop.Content-Type=application/json", "iov.mqtt.user.trace=b", "iov.mqtt.user.fw=1.2", "iov.mqtt.user.trace=a"}
	if got := propHeaders(r); !reflect.DeepEqual(got, wantHeaders) {
		t.Fatalf("record headers\n got  %q\n want %q", got, wantHeaders)
	}
	wantUser := []schemas.UserProperty{{Name: "trace", Value: "b"}, {Name: "fw", Value: "1.2"}, {Name: "trace", Value: "a"}}
	if !reflect.DeepEqual(m.UserProperties, wantUser) || !reflect.DeepEqual(m.MQTTProperties, map[string]string{"Content-Type": "application/json"}) ||
		string(m.Payload) != `{"seq":5}` || m.VehicleID != "VIN5" || m.MQTTTopic != "vehicles/VIN5/telemetry" {
		t.Fatalf("message %+v", m)
	}
}
