package emqxsim

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	exhookv3 "github.com/iov-platform/iov/proto/emqx/exhook/v3"
)

// v3Provider is a provider that speaks only emqx.exhook.v3 and keeps what it was sent.
type v3Provider struct {
	exhookv3.UnimplementedHookProviderServer
	mu        sync.Mutex
	loads     []*exhookv3.ProviderLoadedRequest
	publishes []*exhookv3.MessagePublishRequest
	connected []*exhookv3.ClientConnectedRequest
	deadlines []time.Duration
}

func (p *v3Provider) OnClientConnected(_ context.Context, r *exhookv3.ClientConnectedRequest) (*exhookv3.EmptySuccess, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.connected = append(p.connected, r)
	return &exhookv3.EmptySuccess{}, nil
}

func (p *v3Provider) OnProviderLoaded(_ context.Context, r *exhookv3.ProviderLoadedRequest) (*exhookv3.LoadedResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loads = append(p.loads, r)
	return &exhookv3.LoadedResponse{Hooks: []*exhookv3.HookSpec{{Name: HookMessagePublish, Topics: []string{"vehicles/#"}}, {Name: HookClientConnected}}}, nil
}

func (p *v3Provider) OnMessagePublish(ctx context.Context, r *exhookv3.MessagePublishRequest) (*exhookv3.ValuedResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.publishes = append(p.publishes, r)
	if d, ok := ctx.Deadline(); ok {
		p.deadlines = append(p.deadlines, time.Until(d))
	}
	return &exhookv3.ValuedResponse{Type: exhookv3.ValuedResponse_IGNORE}, nil
}

// serveV3 serves p as the only service: a v2 call would be Unimplemented.
func serveV3(t *testing.T, p *v3Provider) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	exhookv3.RegisterHookProviderServer(srv, p)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func TestV3ModeCallsTheV3ServiceWithProperties(t *testing.T) {
	p := &v3Provider{}
	c, err := Dial(Options{Addr: serveV3(t, p), PoolSize: 2, RequestTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	v3 := c.V3()
	loaded, err := v3.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if hs := loaded.GetHooks(); len(hs) != 2 || hs[0].GetName() != HookMessagePublish {
		t.Fatalf("loaded hooks %v", hs)
	}
	msg := v3.NewMessage("VIN1", "vehicles/VIN1/telemetry", 1, []byte(`{}`))
	props := []*exhookv3.Property{{Name: "Content-Type", Value: "application/json"}}
	user := []*exhookv3.Property{{Name: "trace", Value: "b"}, {Name: "trace", Value: "a"}}
	if _, err := v3.Publish(context.Background(), msg, props, user); err != nil {
		t.Fatal(err)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.loads) != 1 || p.loads[0].GetBroker().GetVersion() != V3Version || p.loads[0].GetMeta().GetVersion() != V3Version {
		t.Fatalf("loads %v", p.loads)
	}
	if len(p.publishes) != 1 {
		t.Fatalf("%d publishes", len(p.publishes))
	}
	got := p.publishes[0]
	want := &exhookv3.MessagePublishRequest{Message: msg, Meta: v3.meta(), Props: props, UserProps: user}
	if !proto.Equal(got, want) {
		t.Fatalf("publish request\n got  %v\n want %v", got, want)
	}
	if m := got.GetMessage(); m.GetFrom() != "VIN1" || m.GetId() == "" || m.GetHeaders()["peerhost"] == "" || m.GetTimestamp() == 0 {
		t.Fatalf("message %v lacks what EMQX sends", m)
	}
	if len(p.deadlines) != 1 || p.deadlines[0] <= 0 || p.deadlines[0] > 3*time.Second {
		t.Fatalf("deadlines %v, want the request timeout", p.deadlines)
	}
}

// The broker double over V3Protocol: an MQTT 5 PUBLISH reaches the provider on
// emqx.exhook.v3 with its user properties in order and its other properties under EMQX's
// names; every hook (client.connected here) goes to the v3 service, and the load reports the
// v3 EMQX version.
func TestBrokerOverV3SendsMQTT5Properties(t *testing.T) {
	p := &v3Provider{}
	var failed []HookCall
	var mu sync.Mutex
	b, err := StartBroker(BrokerOptions{HookAddr: serveV3(t, p), Protocol: V3Protocol, RequestTimeout: 3 * time.Second,
		OnHook: func(c HookCall) {
			if c.Err != nil {
				mu.Lock()
				failed = append(failed, c)
				mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	sub := connect(t, b, "sub", "vehicles/#")
	pub := connect(t, b, "VIN5")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	props := &paho.PublishProperties{ContentType: "application/json", ResponseTopic: "vehicles/VIN5/replies",
		CorrelationData: []byte("c-1"), MessageExpiry: ptr(uint32(30)), PayloadFormat: ptr(byte(1)),
		User: []paho.UserProperty{{Key: "trace", Value: "b"}, {Key: "fw", Value: "1.2"}, {Key: "trace", Value: "a"}}}
	if _, err := pub.c.Publish(ctx, &paho.Publish{QoS: 1, Topic: "vehicles/VIN5/telemetry", Payload: []byte(`{"v":1}`), Properties: props}); err != nil {
		t.Fatal(err)
	}
	pub.publish(t, "vehicles/VIN5/telemetry", `{"v":2}`) // no properties
	for _, want := range []string{`{"v":1}`, `{"v":2}`} {
		if m := sub.next(t); string(m.Payload) != want {
			t.Fatalf("subscriber got %s, want %s", m.Payload, want)
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if len(failed) != 0 {
		t.Fatalf("failed hook calls: %+v", failed)
	}
	if len(p.loads) != 1 || p.loads[0].GetBroker().GetVersion() != V3Version || p.loads[0].GetMeta().GetVersion() != V3Version {
		t.Fatalf("loads %v", p.loads)
	}
	var connected []string
	for _, r := range p.connected {
		connected = append(connected, r.GetClientinfo().GetClientid())
	}
	if !slices.Equal(connected, []string{"sub", "VIN5"}) {
		t.Fatalf("client.connected over v3 for %v", connected)
	}
	if len(p.publishes) != 2 {
		t.Fatalf("%d publishes over v3, want 2", len(p.publishes))
	}
	kv := func(ps []*exhookv3.Property) (out []string) {
		for _, p := range ps {
			out = append(out, p.GetName()+"="+p.GetValue())
		}
		return out
	}
	first, second := p.publishes[0], p.publishes[1]
	wantProps := []string{"Content-Type=application/json", "Correlation-Data=c-1", "Message-Expiry-Interval=30",
		"Payload-Format-Indicator=1", "Response-Topic=vehicles/VIN5/replies"}
	if got := kv(first.GetProps()); !slices.Equal(got, wantProps) {
		t.Fatalf("props %q, want %q", got, wantProps)
	}
	if got, want := kv(first.GetUserProps()), []string{"trace=b", "fw=1.2", "trace=a"}; !slices.Equal(got, want) {
		t.Fatalf("user props %q, want %q", got, want)
	}
	if m := first.GetMessage(); m.GetFrom() != "VIN5" || m.GetTopic() != "vehicles/VIN5/telemetry" || string(m.GetPayload()) != `{"v":1}` ||
		m.GetQos() != 1 || m.GetId() == "" || m.GetNode() == "" || first.GetMeta().GetVersion() != V3Version {
		t.Fatalf("message %v, meta %v", m, first.GetMeta())
	}
	if len(second.GetProps())+len(second.GetUserProps()) != 0 {
		t.Fatalf("a publish without properties sent props %v, user props %v", second.GetProps(), second.GetUserProps())
	}
}

func ptr[T any](v T) *T { return &v }
