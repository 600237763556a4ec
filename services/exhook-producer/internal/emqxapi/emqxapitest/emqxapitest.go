// Package emqxapitest serves a minimal ExHook provider for tests of the EMQX REST client
// against the EMQX simulator (tools/devkit/emqxsim), whose APIHandler is the REST side.
package emqxapitest

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
)

// Provider registers client.connected and message.publish for its current scope.
type Provider struct {
	exhookv2.UnimplementedHookProviderServer
	mu     sync.Mutex
	scope  []string
	refuse bool
}

// SetScope sets the topics message.publish is registered for at the next load.
func (p *Provider) SetScope(s ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.scope = s
}

// SetRefuse makes OnProviderLoaded fail (true), as a producer that is not ready yet.
func (p *Provider) SetRefuse(r bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = r
}

// OnProviderLoaded answers the hooks, or Unavailable while refusing.
func (p *Provider) OnProviderLoaded(context.Context, *exhookv2.ProviderLoadedRequest) (*exhookv2.LoadedResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refuse {
		return nil, status.Error(codes.Unavailable, "not ready")
	}
	return &exhookv2.LoadedResponse{Hooks: []*exhookv2.HookSpec{{Name: "client.connected"}, {Name: "message.publish", Topics: p.scope}}}, nil
}

// OnProviderUnloaded succeeds.
func (p *Provider) OnProviderUnloaded(context.Context, *exhookv2.ProviderUnloadedRequest) (*exhookv2.EmptySuccess, error) {
	return &exhookv2.EmptySuccess{}, nil
}

// Serve serves p on a free loopback port until the test ends and returns its address.
func Serve(t testing.TB, p *Provider) string { return emqxsim.ServeProvider(t, p) }

// Node is one simulated EMQX node ("emqx@n1") loading an ExHook server named "iov" from
// a Provider, with EMQX's REST API for it.
type Node struct {
	Broker *emqxsim.Broker
	APIURL string // base URL of the REST API, for emqxapi.Client.BaseURL
}

// StartNode serves p and starts a node that loads it in the background (retrying every
// 100ms, EMQX's auto_reconnect scaled down), with the REST API behind key:secret; both
// stop when the test ends.
func StartNode(t testing.TB, p *Provider, key, secret string) Node {
	t.Helper()
	b, err := emqxsim.StartBroker(emqxsim.BrokerOptions{HookAddr: Serve(t, p), Node: "emqx@n1",
		AutoReconnect: 100 * time.Millisecond, LoadTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	api := httptest.NewServer(b.APIHandler("iov", key, secret))
	t.Cleanup(api.Close)
	return Node{Broker: b, APIURL: api.URL}
}
