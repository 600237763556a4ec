package emqxsim

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	"github.com/iov-platform/iov/tools/devkit/testpki"
)

// mtlsServer serves p with mutual TLS on a fresh loopback address and returns the address
// and a client config EMQX would dial with (its certificate when withCert).
func mtlsServer(t *testing.T, p *provider) (addr string, srv *grpc.Server, client func(withCert bool) *tls.Config) {
	t.Helper()
	ca, err := testpki.NewCA("hook CA")
	if err != nil {
		t.Fatal(err)
	}
	serverCert, err := ca.IssueValid("127.0.0.1", testpki.Server)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := ca.IssueValid("emqx", testpki.Client)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert.TLS}, ClientCAs: ca.Pool(),
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	})))
	exhookv2.RegisterHookProviderServer(srv, p)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), srv, func(withCert bool) *tls.Config {
		c := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12} // server name from Addr
		if withCert {
			c.Certificates = []tls.Certificate{clientCert.TLS}
		}
		return c
	}
}

// Both modes dial over TLS: with the client certificate the provider is loaded; without
// it, or in plaintext, the handshake refuses the connection.
func TestDialTLS(t *testing.T) {
	for _, mode := range []Mode{ModeGun2, ModeGun1} {
		t.Run(string(mode), func(t *testing.T) {
			p := &provider{hooks: publishAll}
			addr, _, client := mtlsServer(t, p)
			for _, c := range []struct {
				name string
				conf *tls.Config
				ok   bool
			}{
				{"client certificate", client(true), true},
				{"no client certificate", client(false), false},
				{"plaintext", nil, false},
			} {
				t.Run(c.name, func(t *testing.T) {
					sim, err := Dial(Options{Addr: addr, PoolSize: 1, RequestTimeout: 2 * time.Second,
						Mode: mode, RetryInterval: time.Hour, Retries: 1, TLS: c.conf})
					if err != nil {
						t.Fatal(err)
					}
					defer sim.Close()
					before := p.count("provider.loaded")
					_, err = sim.Load(context.Background())
					if c.ok != (err == nil) {
						t.Fatalf("Load: %v, want success %v", err, c.ok)
					}
					if got := p.count("provider.loaded") - before; got != map[bool]int{true: 1}[c.ok] {
						t.Fatalf("provider loaded %d times", got)
					}
				})
			}
		})
	}
}

// In gun1 mode over TLS the GOAWAY is still seen (the frames are scanned under TLS, in
// plaintext) and fails the calls in flight, as gun 1.3 does.
func TestGun1GoAwayOverTLS(t *testing.T) {
	release := make(chan struct{})
	p := slowProvider(release)
	addr, srv, client := mtlsServer(t, p)
	c, err := Dial(Options{Addr: addr, PoolSize: 1, RequestTimeout: 3 * time.Second,
		Mode: ModeGun1, RetryInterval: time.Hour, TLS: client(true)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	errs := inflight(t, c, p, 2)
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }() // GOAWAY, then waits for the calls
	for _, err := range collect(t, errs, 2, 2*time.Second) {
		if err == nil {
			t.Fatal("a call in flight at GOAWAY succeeded")
		}
	}
	close(release)
	<-stopped
}
