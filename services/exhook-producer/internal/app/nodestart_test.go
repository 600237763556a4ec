package app_test

// nodestart_test.go: the window an EMQX node opens when it starts while the producer is
// unreachable. What EMQX does, read in its source at v5.8.9 (apps/emqx_exhook/src/):
//
//   - emqx_exhook_server:load/2 starts the gRPC channel and calls OnProviderLoaded; when the
//     call fails it stops the channel and returns {load_error, Reason};
//   - emqx_exhook_mgr:do_load_server/1 then runs ensure_reload_timer/1:
//     erlang:start_timer(auto_reconnect, self(), {reload, Name}), status connecting (with
//     auto_reconnect = false the server stays disconnected and is never retried);
//   - handle_info({timeout, _, {reload, Name}}) runs do_reload_server/2, which loads again,
//     failing and re-arming the timer until a load succeeds. Nothing else retries: a producer
//     that becomes reachable waits for the next timer;
//   - only a loaded server is saved in the running list (save/2 into persistent_term,
//     running/0), which emqx_exhook:call_fold/3 and cast/2 walk on every hook. Until then the
//     list is empty: message.publish returns the message unchanged and EMQX routes and
//     acknowledges it (its MQTT listeners do not wait for ExHook).
//
// So every message published from the node's start until the first successful load is
// routed without reaching Kafka, and the load comes at most auto_reconnect after the
// producer is reachable. The broker double (emqxsim.StartBroker with LoadTimeout -1)
// reproduces this; the test measures it with the real producer and Kafka on a clock scaled
// 1:20 (auto_reconnect 60 s -> 3 s, 5 s -> 250 ms, the producer unreachable for 20 s -> 1 s).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/iov-platform/iov/tools/devkit/emqxsim"
	"github.com/iov-platform/iov/tools/devkit/service"
	"github.com/iov-platform/iov/tools/devkit/stack"
	"github.com/iov-platform/iov/tools/devkit/vehicle"
)

// nodeStartScale divides EMQX's times in this test.
const nodeStartScale = 20

// nodeStart is one measured node start.
type nodeStart struct {
	autoReconnect time.Duration // EMQX's value, unscaled
	acked         int           // messages published and acknowledged (PUBACK)
	missing       int           // of those, not in Kafka
	ackedBeforeUp int           // acknowledged before the producer was reachable
	missingAfter  int           // missing, acknowledged after the producer was reachable
	inWindow      int           // published after the producer was reachable, before the load
	window        time.Duration // from the producer reachable to the load, scaled back
}

// TestNodeStartWindow starts the broker double with the producer unreachable (a running pod
// not yet behind the Service), vehicles publishing QoS 1 on a sync route, makes the
// producer reachable after 20 s (scaled), and counts the acknowledged messages missing from
// Kafka, for EMQX's default auto_reconnect (60 s) and the chart's (5 s).
func TestNodeStartWindow(t *testing.T) {
	st, err := stack.Start(stack.Options{Partitions: 4, Topics: []string{eventsTopic, spoolTopic, telemetryTopic, statusTopic, deadTopic}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	var runs []nodeStart
	for i, ar := range []time.Duration{60 * time.Second, 5 * time.Second} {
		t.Run(fmt.Sprintf("auto_reconnect=%s", ar), func(t *testing.T) {
			r := measureNodeStart(t, st, fmt.Sprintf("NS%d", i), ar)
			t.Logf("auto_reconnect %s: acked=%d missing=%d (before the producer was reachable: acked %d, all missing; after: %d missing of %d published before the load) window=%s",
				ar, r.acked, r.missing, r.ackedBeforeUp, r.missingAfter, r.inWindow, r.window.Round(100*time.Millisecond))
			if os.Getenv("LOSSWINDOW_REPORT") != "" {
				fmt.Printf("NODESTART auto_reconnect=%s down=20s acked=%d missing=%d missing_after_reachable=%d window=%s\n",
					ar, r.acked, r.missing, r.missingAfter, r.window.Round(100*time.Millisecond))
			}
			runs = append(runs, r)
		})
	}
	if len(runs) == 2 && runs[1].missingAfter >= runs[0].missingAfter {
		t.Errorf("auto_reconnect %s lost %d after the producer was reachable, %s lost %d: a shorter auto_reconnect should shrink it",
			runs[1].autoReconnect, runs[1].missingAfter, runs[0].autoReconnect, runs[0].missingAfter)
	}
}

func measureNodeStart(t *testing.T, st *stack.Stack, prefix string, autoReconnect time.Duration) nodeStart {
	const (
		vehicles = 5
		interval = 20 * time.Millisecond // per vehicle: about 250 msg/s in all
		down     = 20 * time.Second / nodeStartScale
		after    = 300 * time.Millisecond // publishing on after the load
	)
	ar := autoReconnect / nodeStartScale
	svc, err := service.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	pod := startReplica(t, st, t.TempDir())
	defer pod.terminate(t)
	b, err := emqxsim.StartBroker(emqxsim.BrokerOptions{HookAddr: svc.Addr(), AutoReconnect: ar, LoadTimeout: -1, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()

	f := startFleet(t, b, prefix, vehicles, interval, "events")
	time.Sleep(down)
	svc.SetEndpoints(pod.app.GRPCAddr())
	up := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*ar+10*time.Second)
	defer cancel()
	if err := b.WaitLoaded(ctx); err != nil {
		t.Fatal(err)
	}
	loaded := time.Now()
	time.Sleep(after)
	sent := f.halt(t)
	// The route is sync: a message that went through the hook was in Kafka before its PUBACK.
	inKafka := readMessages(t, st, eventsTopic)

	r := nodeStart{autoReconnect: autoReconnect, window: loaded.Sub(up) * nodeStartScale}
	for _, m := range sent {
		r.acked++
		missing := !inKafka[m.id()]
		if missing {
			r.missing++
		}
		switch {
		case m.ack.Before(up):
			// Acknowledged while nothing could load the provider: routed without the hook.
			r.ackedBeforeUp++
			if !missing {
				t.Errorf("%s acknowledged before the producer was reachable, yet in Kafka", m.id())
			}
		case m.start.After(loaded):
			// Published once loaded: through the hook, in Kafka.
			if missing {
				t.Errorf("%s published after the load, missing from Kafka", m.id())
			}
		default:
			r.inWindow++
			if missing {
				r.missingAfter++
			}
		}
	}
	if r.ackedBeforeUp == 0 || r.acked == r.ackedBeforeUp+r.inWindow {
		t.Fatalf("%d acknowledged before the producer was reachable, %d in all, %d in the window: the load did not span the start", r.ackedBeforeUp, r.acked, r.inWindow)
	}
	// The load comes with the first auto_reconnect timer after the producer is reachable
	// (plus the failed attempt before it and scheduling on a shared machine).
	if limit := autoReconnect + 20*time.Second; r.window > limit {
		t.Errorf("loaded %s (scaled back) after the producer was reachable, more than auto_reconnect %s and slack", r.window, autoReconnect)
	}
	return r
}

// fleet is vehicles publishing QoS 1 through a broker, each on its topics in turn
// (vehicles/{vin}/{topic}), one message every interval, until halted.
type fleet struct {
	stop     chan struct{}
	vehicles []*vehicle.Vehicle
	wg       sync.WaitGroup
	mu       sync.Mutex
	sent     []published
	err      error
}

// published is one message a vehicle published and the broker acknowledged.
type published struct {
	vin, topic string
	seq        int       // per vehicle, over all its topics
	start, ack time.Time // Publish called, PUBACK received
}

func (m published) id() string { return fmt.Sprintf("%s/%d", m.vin, m.seq) }

// messagePayload is what a fleet's message carries.
type messagePayload struct {
	Vin string `json:"vin"`
	Seq int    `json:"seq"`
}

func startFleet(t *testing.T, b *emqxsim.Broker, prefix string, vehicles int, interval time.Duration, topics ...string) *fleet {
	t.Helper()
	f := &fleet{stop: make(chan struct{})}
	for i := range vehicles {
		vin := fmt.Sprintf("%s-%02d", prefix, i)
		v, err := vehicle.Connect(b.URL(), vin, 5*time.Second)
		if err != nil {
			f.halt(t)
			t.Fatal(err)
		}
		f.vehicles = append(f.vehicles, v)
		f.wg.Go(func() {
			for seq := 0; ; seq++ {
				select {
				case <-f.stop:
					return
				case <-time.After(interval):
				}
				topic := topics[seq%len(topics)]
				body, _ := json.Marshal(messagePayload{Vin: vin, Seq: seq})
				start := time.Now()
				err := v.Publish(context.Background(), "vehicles/"+vin+"/"+topic, body, nil)
				f.mu.Lock()
				if err != nil {
					f.err = err
				} else {
					f.sent = append(f.sent, published{vin: vin, topic: topic, seq: seq, start: start, ack: time.Now()})
				}
				f.mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	return f
}

// halt stops the fleet, disconnects its vehicles and returns every acknowledged message.
func (f *fleet) halt(t *testing.T) []published {
	t.Helper()
	close(f.stop)
	f.wg.Wait()
	for _, v := range f.vehicles {
		v.Close()
	}
	if f.err != nil {
		t.Fatal(f.err)
	}
	return f.sent
}

// readMessages reads the fleet's messages in the Kafka topics, by id.
func readMessages(t *testing.T, st *stack.Stack, topics ...string) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recs, err := stack.ReadAll(ctx, st.KafkaBootstrap(), 0, topics...)
	if err != nil {
		t.Fatal(err)
	}
	dec := decoder(t, st)
	found := map[string]bool{}
	for _, rec := range recs {
		var p messagePayload
		if err := json.Unmarshal(decodeMessage(t, dec, rec.Value).Payload, &p); err != nil {
			t.Fatal(err)
		}
		found[published{vin: p.Vin, seq: p.Seq}.id()] = true
	}
	return found
}
