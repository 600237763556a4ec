package emqxsim

import (
	"net"
	"testing"

	"google.golang.org/grpc"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
)

// ServeProvider serves an ExHook v2 HookProvider on a free loopback port until the test
// ends and returns its address, for a Broker's HookAddr or Options.Addr.
func ServeProvider(t testing.TB, p exhookv2.HookProviderServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	exhookv2.RegisterHookProviderServer(srv, p)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}
