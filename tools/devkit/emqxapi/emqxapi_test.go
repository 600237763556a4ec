package emqxapi

import (
	"context"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
)

// provider registers message.publish for its current scope.
type provider struct {
	exhookv2.UnimplementedHookProviderServer
	mu    sync.Mutex
	scope []string
}

func (p *provider) setScope(s ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.scope = s
}

func (p *provider) OnProviderLoaded(context.Context, *exhookv2.ProviderLoadedRequest) (*exhookv2.LoadedResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return &exhookv2.LoadedResponse{Hooks: []*exhookv2.HookSpec{{Name: "client.connected"}, {Name: "message.publish", Topics: p.scope}}}, nil
}

func (p *provider) OnProviderUnloaded(context.Context, *exhookv2.ProviderUnloadedRequest) (*exhookv2.EmptySuccess, error) {
	return &exhookv2.EmptySuccess{}, nil
}

// A changed hook scope reaches EMQX only through a reload: the client's PUT makes the
// broker call OnProviderLoaded again and register the new scope.
func TestReloadRegistersNewScope(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &provider{}
	p.setScope("vehicles/+/telemetry")
	srv := grpc.NewServer()
	exhookv2.RegisterHookProviderServer(srv, p)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	b, err := emqxsim.StartBroker(emqxsim.BrokerOptions{HookAddr: ln.Addr().String(), Node: "emqx@n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	api := httptest.NewServer(b.APIHandler("iov", "key", "secret"))
	defer api.Close()

	p.setScope("vehicles/#") // the producer redeployed with a new scope
	if got := b.Hooks(); !slices.Contains(got, "message.publish[vehicles/+/telemetry]") {
		t.Fatalf("hooks before the reload %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &Client{BaseURL: api.URL, APIKey: "key", APISecret: "secret"}
	s, err := c.Reload(ctx, "iov")
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(s, []string{"vehicles/#"}); err != nil {
		t.Fatal(err)
	}
	if got := b.Hooks(); !slices.Contains(got, "message.publish[vehicles/#]") || b.Loads() != 2 {
		t.Fatalf("hooks after the reload %q, loads %d", got, b.Loads())
	}
	if st, err := c.Status(ctx, "iov"); err != nil || Check(st, []string{"vehicles/#"}) != nil || st.NodeStatus[0].Node != "emqx@n1" {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if err := Check(s, []string{"vehicles/+/telemetry"}); err == nil || !strings.Contains(err.Error(), "want") {
		t.Fatalf("Check with the old scope: %v", err)
	}

	for _, tc := range []struct {
		name, secret, server, want string
	}{
		{"wrong secret", "nope", "iov", "401"},
		{"unknown server", "secret", "other", "404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Client{BaseURL: api.URL, APIKey: "key", APISecret: tc.secret}
			if _, err := c.Reload(ctx, tc.server); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Reload = %v, want %s", err, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	pub := Hook{Name: "message.publish", Params: map[string]any{"topics": []any{"vehicles/#"}}}
	for _, tc := range []struct {
		name  string
		s     Server
		scope []string
		ok    bool
	}{
		{"connected with scope", Server{NodeStatus: []NodeStatus{{"n1", "connected"}, {"n2", "connected"}}, Hooks: []Hook{pub}}, []string{"vehicles/#"}, true},
		{"no scope asked", Server{NodeStatus: []NodeStatus{{"n1", "connected"}}}, nil, true},
		{"one node connecting", Server{NodeStatus: []NodeStatus{{"n1", "connected"}, {"n2", "connecting"}}, Hooks: []Hook{pub}}, []string{"vehicles/#"}, false},
		{"no nodes", Server{}, nil, false},
		{"other scope", Server{NodeStatus: []NodeStatus{{"n1", "connected"}}, Hooks: []Hook{pub}}, []string{"fleet/#"}, false},
		{"publish not registered", Server{NodeStatus: []NodeStatus{{"n1", "connected"}}}, []string{"vehicles/#"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Check(tc.s, tc.scope); (err == nil) != tc.ok {
				t.Fatalf("Check = %v", err)
			}
		})
	}
}
