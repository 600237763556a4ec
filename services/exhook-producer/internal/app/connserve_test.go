package app

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
)

// slowHooks answers message.publish after delay.
type slowHooks struct {
	exhookv2.UnimplementedHookProviderServer
	delay time.Duration
}

func (h slowHooks) OnMessagePublish(context.Context, *exhookv2.MessagePublishRequest) (*exhookv2.ValuedResponse, error) {
	time.Sleep(h.delay)
	return &exhookv2.ValuedResponse{Type: exhookv2.ValuedResponse_IGNORE}, nil
}

// Drain sends a connection its GOAWAY only once nothing is in flight on it, so EMQX <= 5.8.8
// (gun 1.3, which fails every call in flight at a GOAWAY; emqxsim ModeGun1) gets every
// answer; a connection still busy at idleBy gets its GOAWAY then.
func TestDrainWaitsForIdleConnection(t *testing.T) {
	for _, tc := range []struct {
		name       string
		idleBy     time.Duration // after the drain starts
		wantFailed bool
	}{
		{"idle before the GOAWAY", 5 * time.Second, false},
		{"GOAWAY at idleBy while busy", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cs := newConnServers(func(n *atomic.Int64) *grpc.Server {
				srv := grpc.NewServer(countInflight(n))
				exhookv2.RegisterHookProviderServer(srv, slowHooks{delay: 300 * time.Millisecond})
				return srv
			})
			served := make(chan error, 1)
			go func() { served <- cs.Serve(ln) }()
			sim, err := emqxsim.Dial(emqxsim.Options{Addr: ln.Addr().String(), PoolSize: 2, RequestTimeout: 3 * time.Second, Mode: emqxsim.ModeGun1, RetryInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			defer sim.Close()
			const calls = 6
			errs := make(chan error, calls)
			for i := range calls {
				go func() {
					_, err := sim.Publish(context.Background(), sim.NewMessage(string(rune('A'+i)), "t", 1, nil))
					errs <- err
				}()
			}
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
				var n int64
				for _, c := range cs.servers0() {
					n += c.inflight.Load()
				}
				if n == calls {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d calls in flight", n, calls)
				}
			}
			_ = ln.Close()
			start := time.Now()
			if !cs.Drain(start.Add(tc.idleBy), start.Add(10*time.Second)) {
				t.Fatal("drain timed out")
			}
			if err := <-served; err != nil {
				t.Fatalf("Serve: %v", err)
			}
			failed := 0
			for range calls {
				if err := <-errs; err != nil {
					failed++
				}
			}
			if (failed > 0) != tc.wantFailed {
				t.Fatalf("%d of %d calls in flight failed at the drain", failed, calls)
			}
		})
	}
}

// A connection that ends (EMQX closes it, or it never completes its handshake) takes its
// grpc.Server and the server's stream workers with it; before, each one stayed forever.
func TestConnectionEndStopsItsServer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		connect func(t *testing.T, addr string)
	}{
		{"closed after a call", func(t *testing.T, addr string) {
			sim, err := emqxsim.Dial(emqxsim.Options{Addr: addr, PoolSize: 1, RequestTimeout: 3 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sim.Publish(context.Background(), sim.NewMessage("A", "t", 1, nil)); err != nil {
				t.Fatal(err)
			}
			sim.Close()
		}},
		{"handshake never completed", func(t *testing.T, addr string) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = c.Write([]byte("not HTTP/2\r\n\r\n"))
			_ = c.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var started atomic.Int64
			cs := newConnServers(func(n *atomic.Int64) *grpc.Server {
				started.Add(1)
				srv := grpc.NewServer(countInflight(n), grpc.NumStreamWorkers(4), grpc.ConnectionTimeout(time.Second))
				exhookv2.RegisterHookProviderServer(srv, slowHooks{})
				return srv
			})
			served := make(chan error, 1)
			go func() { served <- cs.Serve(ln) }()
			tc.connect(t, ln.Addr().String())
			for deadline := time.Now().Add(10 * time.Second); started.Load() == 0 || len(cs.servers0()) > 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d servers started, %d still serving after their connection ended", started.Load(), len(cs.servers0()))
				}
			}
			_ = ln.Close()
			if !cs.Drain(time.Now(), time.Now().Add(5*time.Second)) {
				t.Fatal("drain timed out")
			}
			if err := <-served; err != nil {
				t.Fatalf("Serve: %v", err)
			}
		})
	}
}
