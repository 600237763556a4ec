package emqxsim

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

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
	deadlines []time.Duration
}

func (p *v3Provider) OnProviderLoaded(_ context.Context, r *exhookv3.ProviderLoadedRequest) (*exhookv3.LoadedResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loads = append(p.loads, r)
	return &exhookv3.LoadedResponse{Hooks: []*exhookv3.HookSpec{{Name: HookMessagePublish, Topics: []string{"vehicles/#"}}}}, nil
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

func TestV3ModeCallsTheV3ServiceWithProperties(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	p := &v3Provider{}
	exhookv3.RegisterHookProviderServer(srv, p) // no v2 service: a v2 call would be Unimplemented
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	c, err := Dial(Options{Addr: ln.Addr().String(), PoolSize: 2, RequestTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	v3 := c.V3()
	loaded, err := v3.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if hs := loaded.GetHooks(); len(hs) != 1 || hs[0].GetName() != HookMessagePublish {
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
