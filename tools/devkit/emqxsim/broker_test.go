package emqxsim

import (
	"context"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"google.golang.org/grpc/peer"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
)

// provider is a HookProvider that records every call.
type provider struct {
	exhookv2.UnimplementedHookProviderServer
	hooks   []*exhookv2.HookSpec
	publish func(*exhookv2.Message) (*exhookv2.ValuedResponse, error) // nil: IGNORE
	// loadErr, when set, decides whether OnProviderLoaded fails (n counts its calls from 1).
	loadErr func(n int) error
	// connectedDelay is how long OnClientConnected takes before it records the call.
	connectedDelay time.Duration

	mu    sync.Mutex
	calls []call
}

type call struct {
	hook, client, reason string
	msg                  *exhookv2.Message
	peer                 string        // the client's address: which pooled connection
	deadline             time.Duration // time left until the call's deadline when it arrived
	at                   time.Time
}

func (p *provider) add(c call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, c)
}

// addCtx records a call with what its context says about the connection and deadline.
func (p *provider) addCtx(ctx context.Context, c call) {
	if pr, ok := peer.FromContext(ctx); ok {
		c.peer = pr.Addr.String()
	}
	if d, ok := ctx.Deadline(); ok {
		c.deadline = time.Until(d)
	}
	c.at = time.Now()
	p.add(c)
}

func (p *provider) count(hook string) int {
	n := 0
	for _, c := range p.snapshot() {
		if c.hook == hook {
			n++
		}
	}
	return n
}

func (p *provider) snapshot() []call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

func (p *provider) OnProviderLoaded(ctx context.Context, _ *exhookv2.ProviderLoadedRequest) (*exhookv2.LoadedResponse, error) {
	p.addCtx(ctx, call{hook: "provider.loaded"})
	if p.loadErr != nil {
		if err := p.loadErr(p.count("provider.loaded")); err != nil {
			return nil, err
		}
	}
	return &exhookv2.LoadedResponse{Hooks: p.hooks}, nil
}

func (p *provider) OnProviderUnloaded(context.Context, *exhookv2.ProviderUnloadedRequest) (*exhookv2.EmptySuccess, error) {
	p.add(call{hook: "provider.unloaded"})
	return &exhookv2.EmptySuccess{}, nil
}

func (p *provider) OnClientConnected(ctx context.Context, r *exhookv2.ClientConnectedRequest) (*exhookv2.EmptySuccess, error) {
	time.Sleep(p.connectedDelay)
	p.addCtx(ctx, call{hook: HookClientConnected, client: r.GetClientinfo().GetClientid()})
	return &exhookv2.EmptySuccess{}, nil
}

func (p *provider) OnClientDisconnected(_ context.Context, r *exhookv2.ClientDisconnectedRequest) (*exhookv2.EmptySuccess, error) {
	p.add(call{hook: HookClientDisconnected, client: r.GetClientinfo().GetClientid(), reason: r.GetReason()})
	return &exhookv2.EmptySuccess{}, nil
}

func (p *provider) OnMessagePublish(ctx context.Context, r *exhookv2.MessagePublishRequest) (*exhookv2.ValuedResponse, error) {
	p.addCtx(ctx, call{hook: HookMessagePublish, client: r.GetMessage().GetFrom(), msg: r.GetMessage()})
	if p.publish != nil {
		return p.publish(r.GetMessage())
	}
	return &exhookv2.ValuedResponse{Type: exhookv2.ValuedResponse_IGNORE}, nil
}

func (p *provider) OnMessageDelivered(_ context.Context, r *exhookv2.MessageDeliveredRequest) (*exhookv2.EmptySuccess, error) {
	p.add(call{hook: HookMessageDelivered, client: r.GetClientinfo().GetClientid(), msg: r.GetMessage()})
	return &exhookv2.EmptySuccess{}, nil
}

func (p *provider) OnMessageAcked(_ context.Context, r *exhookv2.MessageAckedRequest) (*exhookv2.EmptySuccess, error) {
	p.add(call{hook: HookMessageAcked, client: r.GetClientinfo().GetClientid(), msg: r.GetMessage()})
	return &exhookv2.EmptySuccess{}, nil
}

func serveProvider(t *testing.T, p *provider) string { return ServeProvider(t, p) }

// client is a raw paho MQTT 5 client.
type client struct {
	c    *paho.Client
	msgs chan *paho.Publish
}

func connect(t *testing.T, b *Broker, id string, subscribe ...string) *client {
	t.Helper()
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	cl := &client{msgs: make(chan *paho.Publish, 16)}
	cl.c = paho.NewClient(paho.ClientConfig{ClientID: id, Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) { cl.msgs <- pr.Packet; return true, nil },
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cl.c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatalf("%s connect: %v", id, err)
	}
	for _, f := range subscribe {
		if _, err := cl.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: f, QoS: 1}}}); err != nil {
			t.Fatalf("%s subscribe: %v", id, err)
		}
	}
	t.Cleanup(func() { _ = cl.c.Disconnect(&paho.Disconnect{}) })
	return cl
}

func (cl *client) publish(t *testing.T, topic string, payload string, user ...paho.UserProperty) *paho.PublishResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cl.c.Publish(ctx, &paho.Publish{QoS: 1, Topic: topic, Payload: []byte(payload), Properties: &paho.PublishProperties{User: user}})
	if err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	return resp
}

func (cl *client) next(t *testing.T) *paho.Publish {
	t.Helper()
	select {
	case m := <-cl.msgs:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
		return nil
	}
}

func waitCalls(t *testing.T, p *provider, cond func([]call) bool) []call {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		calls := p.snapshot()
		if cond(calls) {
			return calls
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls so far: %+v", calls)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func names(calls []call, filter func(call) bool) []string {
	var out []string
	for _, c := range calls {
		if filter(c) {
			s := c.hook + " " + c.client
			if c.msg != nil {
				s += " " + c.msg.GetTopic()
			}
			if c.reason != "" {
				s += " " + c.reason
			}
			out = append(out, s)
		}
	}
	return out
}

// TestBrokerCallsRegisteredHooks: the hooks of a delivery arrive in order with one message
// id (publish if registered for the topic, delivered before the subscriber can see the
// message, acked after its PUBACK); unregistered topics and hooks are never called.
func TestBrokerCallsRegisteredHooks(t *testing.T) {
	p := &provider{hooks: []*exhookv2.HookSpec{
		{Name: HookClientConnected}, {Name: HookClientDisconnected},
		{Name: HookMessagePublish, Topics: []string{"vehicles/+/commands/+/response", "vehicles/+/commands/+"}},
		{Name: HookMessageDelivered, Topics: []string{"vehicles/+/commands/+"}},
		{Name: HookMessageAcked, Topics: []string{"vehicles/+/commands/+"}},
	}}
	var events []HookCall
	var evMu sync.Mutex
	b, err := StartBroker(BrokerOptions{HookAddr: serveProvider(t, p), OnHook: func(c HookCall) { evMu.Lock(); events = append(events, c); evMu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if u, err := url.Parse(b.URL()); err != nil || u.Scheme != "mqtt" || u.Host != b.Addr() {
		t.Fatalf("URL %q", b.URL())
	}

	car := connect(t, b, "VIN1", "vehicles/VIN1/commands/+")
	app := connect(t, b, "downlink")
	if r := app.publish(t, "vehicles/VIN1/commands/c1", `{"n":1}`, paho.UserProperty{Key: "command", Value: "door.lock"}); r.ReasonCode >= 0x80 || r.ReasonCode == 0x10 {
		t.Fatalf("PUBACK 0x%02x for a routed publish", r.ReasonCode)
	}
	got := car.next(t)
	if string(got.Payload) != `{"n":1}` || len(got.Properties.User) != 1 || got.Properties.User.Get("command") != "door.lock" {
		t.Fatalf("delivered %+v user %v", got, got.Properties.User)
	}
	calls := waitCalls(t, p, func(cs []call) bool {
		return slices.ContainsFunc(cs, func(c call) bool { return c.hook == HookMessageAcked })
	})
	msgCalls := names(calls, func(c call) bool { return c.msg != nil })
	want := []string{
		"message.publish downlink vehicles/VIN1/commands/c1",
		"message.delivered VIN1 vehicles/VIN1/commands/c1",
		"message.acked VIN1 vehicles/VIN1/commands/c1",
	}
	if !slices.Equal(msgCalls, want) {
		t.Fatalf("message hooks %q, want %q", msgCalls, want)
	}
	var ids []string
	for _, c := range calls {
		if c.msg != nil {
			ids = append(ids, c.msg.GetId())
			if c.msg.GetFrom() != "downlink" || c.msg.GetQos() != 1 || c.msg.GetNode() != "emqx@127.0.0.1" || string(c.msg.GetPayload()) != `{"n":1}` {
				t.Fatalf("%s message %+v", c.hook, c.msg)
			}
		}
	}
	if ids[0] == "" || ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("message ids %v, want one id across publish, delivered and acked", ids)
	}

	// The vehicle's response goes through message.publish; an unregistered topic does not.
	car.publish(t, "vehicles/VIN1/commands/c1/response", `{"ok":true}`)
	car.publish(t, "vehicles/VIN1/telemetry", `{}`)
	calls = waitCalls(t, p, func(cs []call) bool { return len(names(cs, func(c call) bool { return c.msg != nil })) >= 4 })
	if got := names(calls, func(c call) bool { return c.msg != nil })[3:]; !slices.Equal(got, []string{"message.publish VIN1 vehicles/VIN1/commands/c1/response"}) {
		t.Fatalf("after the response: %q", got)
	}
	if c := calls[len(calls)-1]; c.msg.GetHeaders()["username"] != "VIN1" || c.msg.GetHeaders()["peerhost"] != "127.0.0.1" {
		t.Fatalf("publish headers %v", c.msg.GetHeaders())
	}

	_ = car.c.Disconnect(&paho.Disconnect{})
	// OnHook reports a call after it returned, so wait for the report of the last call (not
	// for the provider's record of it, which comes first): then every report is in.
	deadline := time.Now().Add(5 * time.Second)
	for {
		evMu.Lock()
		done := slices.ContainsFunc(events, func(c HookCall) bool { return c.Hook == HookClientDisconnected && c.ClientID == "VIN1" })
		evMu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no OnHook report of client.disconnected VIN1 within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	calls = p.snapshot()
	lifecycle := names(calls, func(c call) bool { return strings.HasPrefix(c.hook, "client.") })
	if !slices.Equal(lifecycle, []string{"client.connected VIN1", "client.connected downlink", "client.disconnected VIN1 normal"}) {
		t.Fatalf("client hooks %q", lifecycle)
	}
	if names(calls, func(c call) bool { return c.hook == "provider.loaded" }) == nil {
		t.Fatal("OnProviderLoaded not called")
	}
	evMu.Lock()
	n := len(events)
	evMu.Unlock()
	if n != len(calls)-1 { // every call but OnProviderLoaded is reported
		t.Fatalf("%d OnHook events for %d hook calls", n, len(calls)-1)
	}
	_ = b.Close()
	waitCalls(t, p, func(cs []call) bool { return cs[len(cs)-1].hook == "provider.unloaded" })
}

// TestMessagePublishVerdicts: the provider's reply rewrites or drops a message; a failed
// call routes the message unchanged with failed_action deny as with ignore (EMQX's
// deny_action_result for message.publish is the message itself), acknowledged with 0x00;
// unrouted and dropped QoS 1 publishes get PUBACK 0x10.
func TestMessagePublishVerdicts(t *testing.T) {
	for _, action := range []string{FailedDeny, FailedIgnore} {
		t.Run(action, func(t *testing.T) {
			p := &provider{hooks: []*exhookv2.HookSpec{{Name: HookMessagePublish}}, publish: func(m *exhookv2.Message) (*exhookv2.ValuedResponse, error) {
				switch m.GetTopic() {
				case "t/drop":
					return &exhookv2.ValuedResponse{Type: exhookv2.ValuedResponse_STOP_AND_RETURN, Value: &exhookv2.ValuedResponse_Message{
						Message: &exhookv2.Message{Topic: m.GetTopic(), Payload: m.GetPayload(), Headers: map[string]string{"allow_publish": "false"}}}}, nil
				case "t/rewrite":
					return &exhookv2.ValuedResponse{Type: exhookv2.ValuedResponse_CONTINUE, Value: &exhookv2.ValuedResponse_Message{
						Message: &exhookv2.Message{Topic: "t/rewritten", Payload: []byte("new")}}}, nil
				case "t/fail":
					return nil, errors.New("provider broken")
				}
				return &exhookv2.ValuedResponse{Type: exhookv2.ValuedResponse_IGNORE}, nil
			}}
			b, err := StartBroker(BrokerOptions{HookAddr: serveProvider(t, p), FailedAction: action})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			sub := connect(t, b, "sub", "t/#")
			pub := connect(t, b, "pub")

			if r := pub.publish(t, "t/drop", "x"); r.ReasonCode != 0x10 {
				t.Fatalf("dropped publish PUBACK 0x%02x, want 0x10", r.ReasonCode)
			}
			pub.publish(t, "t/rewrite", "old")
			if m := sub.next(t); m.Topic != "t/rewritten" || string(m.Payload) != "new" {
				t.Fatalf("rewritten message %s %q", m.Topic, m.Payload)
			}
			if r := pub.publish(t, "t/fail", "f"); r.ReasonCode != 0x00 {
				t.Fatalf("failed hook call: PUBACK 0x%02x, want 0x00", r.ReasonCode)
			}
			pub.publish(t, "t/plain", "p")
			var got []string
			for m := sub.next(t); ; m = sub.next(t) {
				got = append(got, m.Topic)
				if m.Topic == "t/plain" {
					break
				}
			}
			if want := []string{"t/fail", "t/plain"}; !slices.Equal(got, want) {
				t.Fatalf("subscriber got %v, want %v", got, want)
			}
			if r := pub.publish(t, "nobody/listens", "n"); r.ReasonCode != 0x10 {
				t.Fatalf("unrouted publish PUBACK 0x%02x, want 0x10", r.ReasonCode)
			}
		})
	}
}

func TestAuthorize(t *testing.T) {
	b, err := StartBroker(BrokerOptions{Authorize: func(id, topic string, write bool) bool { return !write || !strings.HasPrefix(topic, "deny/") }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pub := connect(t, b, "pub")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := pub.c.Publish(ctx, &paho.Publish{QoS: 1, Topic: "deny/x", Payload: []byte("x")})
	if err == nil || resp == nil || resp.ReasonCode != 0x87 {
		t.Fatalf("denied publish: %+v, %v", resp, err)
	}
}

func TestStartBrokerWithoutProvider(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	_, err = StartBroker(BrokerOptions{HookAddr: addr, LoadTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "not loaded") || time.Since(start) > 5*time.Second {
		t.Fatalf("StartBroker = %v after %s", err, time.Since(start))
	}
	if _, err := StartBroker(BrokerOptions{FailedAction: "retry"}); err == nil {
		t.Fatal("bad FailedAction accepted")
	}
}

func TestTopicMatch(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"vehicles/+/commands/+", "vehicles/VIN1/commands/c1", true},
		{"vehicles/+/commands/+", "vehicles/VIN1/commands/c1/response", false},
		{"vehicles/+/commands/+", "vehicles/VIN1/commands", false},
		{"vehicles/+/commands/+/response", "vehicles/VIN1/commands/c1/response", true},
		{"vehicles/#", "vehicles", true},
		{"vehicles/#", "vehicles/a/b", true},
		{"#", "a/b", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/+", "a/", true},
		{"a/+", "a", false},
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/#/b", "a/x/b", false},
	} {
		if got := TopicMatch(tc.filter, tc.topic); got != tc.want {
			t.Errorf("TopicMatch(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}
