package emqxapi

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/iov-platform/iov/services/exhook-producer/internal/emqxapi/emqxapitest"
)

// A changed hook scope reaches EMQX only through a reload: the client's PUT makes the
// broker call OnProviderLoaded again and register the new scope.
func TestReloadRegistersNewScope(t *testing.T) {
	p := &emqxapitest.Provider{}
	p.SetScope("vehicles/+/telemetry")
	node := emqxapitest.StartNode(t, p, "key", "secret")
	b := node.Broker
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitLoaded(ctx); err != nil {
		t.Fatal(err)
	}

	p.SetScope("vehicles/#") // the producer redeployed with a new scope
	if got := b.Hooks(); !slices.Contains(got, "message.publish[vehicles/+/telemetry]") {
		t.Fatalf("hooks before the reload %q", got)
	}
	c := &Client{BaseURL: node.APIURL, APIKey: "key", APISecret: "secret"}
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
			c := &Client{BaseURL: node.APIURL, APIKey: "key", APISecret: tc.secret}
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

func TestParseBootstrap(t *testing.T) {
	for _, tc := range []struct {
		name, file, key, secret string
		ok                      bool
	}{
		{"key secret role", "reload:s3cret:administrator\n", "reload", "s3cret", true},
		{"key secret", "reload:s3cret", "reload", "s3cret", true},
		{"blank lines first, first key wins", "\n  \nk1:s1:administrator\nk2:s2:viewer\n", "k1", "s1", true},
		{"no secret", "reload\n", "", "", false},
		{"empty secret", "reload::administrator\n", "", "", false},
		{"empty key", ":s3cret\n", "", "", false},
		{"empty file", "\n\n", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, s, err := ParseBootstrap([]byte(tc.file))
			if (err == nil) != tc.ok || k != tc.key || s != tc.secret {
				t.Fatalf("ParseBootstrap = %q, %q, %v", k, s, err)
			}
		})
	}
}

// The collector reports what EMQX's GET says at each scrape: a node that cannot load the
// server (the producer unreachable while the node starts) exports loaded 0 until the
// node's next auto_reconnect attempt succeeds; a scope other than the expected one and an
// API that refuses the key are exported too.
func TestCollector(t *testing.T) {
	p := &emqxapitest.Provider{}
	p.SetScope("vehicles/#")
	p.SetRefuse(true)
	node := emqxapitest.StartNode(t, p, "key", "secret")
	b := node.Broker
	good := &Client{BaseURL: node.APIURL, APIKey: "key", APISecret: "secret"}

	col := NewCollector(good, "iov", []string{"vehicles/#"}, 5*time.Second, nil)
	want := func(loaded, scope string) string {
		out := `# HELP exhook_emqx_api_up 1 when EMQX's REST API answered the last status read of the ExHook server, else 0.
# TYPE exhook_emqx_api_up gauge
exhook_emqx_api_up{server="iov"} 1
# HELP exhook_emqx_server_loaded 1 when the EMQX node reports the ExHook server connected (loaded), else 0.
# TYPE exhook_emqx_server_loaded gauge
exhook_emqx_server_loaded{node="emqx@n1",server="iov"} ` + loaded + "\n"
		if scope != "" {
			out += `# HELP exhook_emqx_server_scope_matches 1 when EMQX has message.publish registered for exactly the expected hook scope, else 0.
# TYPE exhook_emqx_server_scope_matches gauge
exhook_emqx_server_scope_matches{server="iov"} ` + scope + "\n"
		}
		return out
	}
	if err := testutil.CollectAndCompare(col, strings.NewReader(want("0", "0"))); err != nil {
		t.Fatalf("while the producer refuses to load: %v", err)
	}
	p.SetRefuse(false) // the producer is ready: the node loads it at its next attempt
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitLoaded(ctx); err != nil {
		t.Fatal(err)
	}
	if err := testutil.CollectAndCompare(col, strings.NewReader(want("1", "1"))); err != nil {
		t.Fatalf("after the load: %v", err)
	}
	other := NewCollector(good, "iov", []string{"fleet/#"}, 5*time.Second, nil)
	if err := testutil.CollectAndCompare(other, strings.NewReader(want("1", "0"))); err != nil {
		t.Fatalf("another scope expected: %v", err)
	}
	noScope := NewCollector(good, "iov", nil, 5*time.Second, nil)
	if err := testutil.CollectAndCompare(noScope, strings.NewReader(want("1", ""))); err != nil {
		t.Fatalf("no scope expected: %v", err)
	}
	dead := httptest.NewServer(nil)
	dead.Close() // nothing listens there any more
	for _, c := range []*Client{
		{BaseURL: node.APIURL, APIKey: "key", APISecret: "wrong"},
		{BaseURL: dead.URL, APIKey: "key", APISecret: "secret"},
	} {
		down := NewCollector(c, "iov", []string{"vehicles/#"}, 5*time.Second, nil)
		if err := testutil.CollectAndCompare(down, strings.NewReader(`# HELP exhook_emqx_api_up 1 when EMQX's REST API answered the last status read of the ExHook server, else 0.
# TYPE exhook_emqx_api_up gauge
exhook_emqx_api_up{server="iov"} 0
`)); err != nil {
			t.Fatalf("%s with secret %q: %v", c.BaseURL, c.APISecret, err)
		}
	}
}

// FuzzParseBootstrap: whatever the file, a key is either refused or non-empty, free of the
// separator and of surrounding blanks, and so is its secret.
func FuzzParseBootstrap(f *testing.F) {
	for _, s := range []string{"k:s:administrator\n", "k:s", "\n\nk:s:viewer\nx:y", ":", "k::r", " k : s "} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, s, err := ParseBootstrap(b)
		if err != nil {
			return
		}
		for _, v := range []string{k, s} {
			if v == "" || strings.Contains(v, ":") || strings.Contains(v, "\n") {
				t.Fatalf("ParseBootstrap(%q) = %q, %q", b, k, s)
			}
		}
	})
}

// Ensure reloads only a server loaded with another scope, and waits for nodes that load
// the server on their own.
func TestEnsure(t *testing.T) {
	for _, tc := range []struct {
		name          string
		loadedScope   string        // the scope the node loads first
		producerScope string        // the producer's scope when Ensure runs
		refuseFor     time.Duration // the producer refuses to load this long (-1: always)
		reloaded      bool
		loads         int
		errText       string
	}{
		{"scope unchanged: no reload", "vehicles/#", "vehicles/#", 0, false, 1, ""},
		{"scope changed: reload", "vehicles/+/telemetry", "vehicles/#", 0, true, 2, ""},
		{"node loading: wait, no reload", "vehicles/#", "vehicles/#", 300 * time.Millisecond, false, 1, ""},
		{"node never loads: error at the deadline", "vehicles/#", "vehicles/#", -1, false, 0, "emqx@n1=connecting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			p := &emqxapitest.Provider{}
			p.SetScope(tc.loadedScope)
			p.SetRefuse(tc.refuseFor != 0)
			node := emqxapitest.StartNode(t, p, "key", "secret")
			c := &Client{BaseURL: node.APIURL, APIKey: "key", APISecret: "secret"}
			switch {
			case tc.refuseFor == 0:
				if err := node.Broker.WaitLoaded(ctx); err != nil {
					t.Fatal(err)
				}
			case tc.refuseFor > 0:
				time.AfterFunc(tc.refuseFor, func() { p.SetRefuse(false) })
			default:
				var short context.CancelFunc
				ctx, short = context.WithTimeout(ctx, 300*time.Millisecond)
				defer short()
			}
			p.SetScope(tc.producerScope) // the producer redeployed
			s, reloaded, err := c.Ensure(ctx, "iov", []string{tc.producerScope}, 20*time.Millisecond)
			if tc.errText != "" {
				if !errors.Is(err, ErrNotLoaded) || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("Ensure = %v, want %v naming %s", err, ErrNotLoaded, tc.errText)
				}
				return
			}
			if err != nil || reloaded != tc.reloaded || node.Broker.Loads() != tc.loads || !s.Registered("message.publish", []string{tc.producerScope}) {
				t.Fatalf("Ensure = %+v, reloaded %v, %v; loads %d, want reloaded %v, loads %d", s, reloaded, err, node.Broker.Loads(), tc.reloaded, tc.loads)
			}
		})
	}
}
