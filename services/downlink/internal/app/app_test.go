package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iov-platform/iov/tools/devkit/commands"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
)

// TestBrokerOutage: with EMQX unreachable the downlink is not ready, a command that expires
// meanwhile gets EXPIRED (never SENT), and a command with time left waits, without leaving
// its consumer group, until the broker is back and is then sent.
func TestBrokerOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tap := e.logs       // the log is the only outside sign that a command waits inside the downlink
	addr := freePort(t) // nothing listens here until the broker starts
	dl := e.startDownlink(t, e.downlinkConfig(t, "mqtt://"+addr, "g-outage", "iov-downlink-outage"))

	waitFor(t, 20*time.Second, func() bool {
		return httpBody(dl.app.HTTPAddr(), "/ready") == "not ready: mqtt not connected\n"
	}, func() string { return "ready body: " + httpBody(dl.app.HTTPAddr(), "/ready") })
	if code := httpStatus(dl.app.HTTPAddr(), "/ready"); code != http.StatusServiceUnavailable {
		t.Fatalf("/ready = %d while the broker is down", code)
	}

	now := time.Now()
	e.produce(t,
		e.commandRecord(t, "VIN5", newCommand("cmd-short", "VIN5", "horn", now, now.Add(1500*time.Millisecond))),
		e.commandRecord(t, "VIN5", newCommand("cmd-long", "VIN5", "door.lock", now, now.Add(time.Minute))),
	)
	var evs []commands.Status
	waitFor(t, 20*time.Second, func() bool { evs = e.statuses(t); return len(commands.Of(evs, "cmd-short")) > 0 },
		func() string { return "no event for cmd-short" })
	short := commands.Of(evs, "cmd-short")
	if commands.States(short) != "EXPIRED" || !strings.Contains(*short[0].Reason, "while the MQTT connection to the broker was down") {
		t.Fatalf("cmd-short: %s %v", commands.States(short), *short[0].Reason)
	}
	waitFor(t, 20*time.Second, func() bool {
		return strings.Count(tap.String(), "waiting for the MQTT connection before sending") >= 2
	}, func() string { return "cmd-long is not waiting for the connection" })
	if got := commands.Of(e.statuses(t), "cmd-long"); len(got) != 0 {
		t.Fatalf("cmd-long has events %s before the broker is up", commands.States(got))
	}

	broker, err := emqxsim.StartBroker(emqxsim.BrokerOptions{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Close() })
	car := startVehicle(t, broker.URL(), "VIN5")
	dl.waitReady(t)
	select {
	case got := <-car.Commands():
		if got.Topic != "vehicles/VIN5/commands/cmd-long" {
			t.Fatalf("vehicle got %s", got.Topic)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("cmd-long was not sent after the broker came back")
	}
	waitFor(t, 20*time.Second, func() bool { return commands.States(commands.Of(e.statuses(t), "cmd-long")) == "SENT" },
		func() string { return "cmd-long events: " + commands.States(commands.Of(e.statuses(t), "cmd-long")) })
	if m := httpBody(dl.app.HTTPAddr(), "/metrics"); !strings.Contains(m, `downlink_commands_total{outcome="expired"} 1`) ||
		!strings.Contains(m, `downlink_commands_total{outcome="sent"} 1`) || strings.Contains(m, `downlink_rebalance_events_total{event="lost"}`) {
		t.Fatalf("metrics:\n%s", grep(m, "downlink_"))
	}
}

// TestBrokerRefusal: a PUBACK with an error reason code ends the command with FAILED (after
// SENT) and names the code; a PUBACK saying nobody subscribed (0x10, the vehicle is offline
// without a session) is a successful send.
func TestBrokerRefusal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	broker, err := emqxsim.StartBroker(emqxsim.BrokerOptions{
		Authorize: func(_, topic string, write bool) bool { return !(write && strings.HasPrefix(topic, "vehicles/VIN9/")) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Close() })
	dl := e.startDownlink(t, e.downlinkConfig(t, broker.URL(), "g-refusal", "iov-downlink-refusal"))
	dl.waitReady(t)

	now := time.Now()
	e.produce(t,
		e.commandRecord(t, "VIN9", newCommand("cmd-denied", "VIN9", "door.lock", now, now.Add(time.Minute))),
		e.commandRecord(t, "VIN7", newCommand("cmd-offline", "VIN7", "door.lock", now, now.Add(time.Minute))),
	)
	var evs []commands.Status
	waitFor(t, 20*time.Second, func() bool {
		evs = e.statuses(t)
		return commands.States(commands.Of(evs, "cmd-denied")) == "SENT,FAILED" && commands.States(commands.Of(evs, "cmd-offline")) == "SENT"
	}, func() string {
		return fmt.Sprintf("denied %s, offline %s", commands.States(commands.Of(evs, "cmd-denied")), commands.States(commands.Of(evs, "cmd-offline")))
	})
	if r := *commands.Of(evs, "cmd-denied")[1].Reason; !strings.Contains(r, "PUBACK reason code 0x87 (not authorized)") {
		t.Fatalf("FAILED reason %q", r)
	}
	m := httpBody(dl.app.HTTPAddr(), "/metrics")
	for _, want := range []string{`downlink_commands_total{outcome="failed"} 1`, `downlink_commands_total{outcome="sent"} 1`,
		`downlink_publish_duration_seconds_count{result="refused"} 1`,
		"downlink_kafka_producer_idempotence_resets_total 0"} { // exported from the start; no reset here
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
