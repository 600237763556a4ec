package app

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	"github.com/iov-platform/iov/services/exhook-producer/internal/callgate"
	"github.com/iov-platform/iov/services/exhook-producer/internal/h2streams"
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

// serveSlowHooks serves slowHooks{delay} on a loopback listener, one server per connection
// with the options every EMQX connection gets (maxRunning: grpc.maxRunningCalls); served
// receives Serve's result.
func serveSlowHooks(tb testing.TB, delay time.Duration, maxRunning int) (cs *connServers, ln net.Listener, served <-chan error) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	cs = newConnServers(maxRunning, func(n *h2streams.Counter, gate *callgate.Gate) *grpc.Server {
		srv := grpc.NewServer(connServerOptions(nil, insecure.NewCredentials(), n, nil, gate, true)...)
		exhookv2.RegisterHookProviderServer(srv, slowHooks{delay: delay})
		return srv
	})
	errc := make(chan error, 1)
	go func() { errc <- cs.Serve(ln) }()
	return cs, ln, errc
}

// Drain sends a connection its GOAWAY only once nothing is in flight on it, so EMQX <= 5.8.8
// (gun 1.3, which fails every call in flight at a GOAWAY; emqxsim ModeGun1) gets every
// answer; a connection still busy at idleBy gets its GOAWAY then. With a gate
// (grpc.maxRunningCalls) below the calls a connection has, the calls waiting in it count as
// in flight too: the drain waits for their answers.
func TestDrainWaitsForIdleConnection(t *testing.T) {
	for _, tc := range []struct {
		name       string
		idleBy     time.Duration // after the drain starts
		gated      bool
		wantFailed bool
	}{
		{"idle before the GOAWAY", 5 * time.Second, false, false},
		{"GOAWAY at idleBy while busy", 0, false, true},
		{"gated, idle before the GOAWAY", 5 * time.Second, true, false},
		{"gated, GOAWAY at idleBy while busy", 0, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const calls = 6
			maxRunning := 0
			if tc.gated {
				// One call less than the busiest connection has: one waits in the gate.
				probe, err := emqxsim.Dial(emqxsim.Options{Addr: "127.0.0.1:1", PoolSize: 2})
				if err != nil {
					t.Fatal(err)
				}
				perConn := map[int]int{}
				for i := range calls {
					perConn[probe.SlotFor(string(rune('A'+i)))]++
				}
				probe.Close()
				maxRunning = max(perConn[0], perConn[1]) - 1
			}
			cs, ln, served := serveSlowHooks(t, 300*time.Millisecond, maxRunning)
			sim, err := emqxsim.Dial(emqxsim.Options{Addr: ln.Addr().String(), PoolSize: 2, RequestTimeout: 3 * time.Second, Mode: emqxsim.ModeGun1, RetryInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			defer sim.Close()
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
					n += c.count.Open()
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

// A connection that died with a call in flight has nothing in flight any more: the drain
// does not wait for it until idleBy.
func TestDrainSkipsDeadConnection(t *testing.T) {
	cs, ln, served := serveSlowHooks(t, time.Second, 0)
	sim, err := emqxsim.Dial(emqxsim.Options{Addr: ln.Addr().String(), PoolSize: 1, RequestTimeout: 3 * time.Second, RetryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = sim.Publish(context.Background(), sim.NewMessage("A", "t", 1, nil)) }()
	open := func() (n int64) {
		for _, c := range cs.servers0() {
			n += c.count.Open()
		}
		return n
	}
	for deadline := time.Now().Add(5 * time.Second); open() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls in flight, want 1", open())
		}
	}
	sim.Close() // the connection ends while the call is in flight
	for deadline := time.Now().Add(5 * time.Second); open() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls in flight on a closed connection", open())
		}
	}
	_ = ln.Close()
	start := time.Now()
	if !cs.Drain(start.Add(time.Minute), start.Add(2*time.Minute)) {
		t.Fatal("drain timed out")
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("drain took %s: it waited for the dead connection", took)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// BenchmarkConnServerPublish is one message.publish call through a per-connection server
// with the options every EMQX connection gets (connServerOptions) and a handler that only
// answers, client side included: what serving costs besides the hook (allocs/op shows a
// regression in the server options).
func BenchmarkConnServerPublish(b *testing.B) {
	cs, ln, _ := serveSlowHooks(b, 0, 64)
	defer func() { _ = ln.Close(); cs.Stop() }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := exhookv2.NewHookProviderClient(conn)
	req := &exhookv2.MessagePublishRequest{Message: &exhookv2.Message{Node: "emqx@127.0.0.1", Id: "0006", Qos: 1,
		From: "WVW1234567890", Topic: "vehicles/WVW1234567890/telemetry", Payload: []byte(`{"speed":88,"soc":0.71}`),
		Timestamp: uint64(time.Now().UnixMilli()), Headers: map[string]string{"username": "fleet", "peerhost": "10.0.0.7", "protocol": "mqtt"}}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.OnMessagePublish(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// A connection that ends (EMQX closes it, or it never completes its handshake) takes its
// grpc.Server with it; before, each one stayed forever (with its stream workers, while the
// servers had them).
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
			cs := newConnServers(0, func(n *h2streams.Counter, gate *callgate.Gate) *grpc.Server {
				started.Add(1)
				srv := grpc.NewServer(append(connServerOptions(nil, insecure.NewCredentials(), n, nil, gate, true), grpc.ConnectionTimeout(time.Second))...)
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
