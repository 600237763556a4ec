package emqxsim

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
)

// slowProvider answers message.publish on topic "slow" only once release is closed.
func slowProvider(release <-chan struct{}) *provider {
	return &provider{hooks: publishAll, publish: func(m *exhookv2.Message) (*exhookv2.ValuedResponse, error) {
		if m.GetTopic() == "slow" {
			<-release
		}
		return &exhookv2.ValuedResponse{Type: exhookv2.ValuedResponse_IGNORE}, nil
	}}
}

// serveAt serves p on ln and returns the server (not stopped at cleanup).
func serveAt(ln net.Listener, p *provider) *grpc.Server {
	srv := grpc.NewServer()
	exhookv2.RegisterHookProviderServer(srv, p)
	go func() { _ = srv.Serve(ln) }()
	return srv
}

// gun1Client serves p on a fresh address and dials it in gun1 mode with one connection.
func gun1Client(t *testing.T, p *provider, o Options) (addr string, srv *grpc.Server, c *Client) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv = serveAt(ln, p)
	o.Addr, o.PoolSize, o.Mode = ln.Addr().String(), 1, ModeGun1
	if c, err = Dial(o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return ln.Addr().String(), srv, c
}

// inflight starts n calls on topic slow and waits until the provider has them all.
func inflight(t *testing.T, c *Client, p *provider, n int) <-chan error {
	t.Helper()
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := c.Publish(context.Background(), c.NewMessage("VIN"+string(rune('A'+i)), "slow", 1, nil))
			errs <- err
		}()
	}
	waitCalls(t, p, func(cs []call) bool { return len(cs) >= n })
	return errs
}

func collect(t *testing.T, errs <-chan error, n int, within time.Duration) []error {
	t.Helper()
	var out []error
	timeout := time.After(within)
	for range n {
		select {
		case err := <-errs:
			out = append(out, err)
		case <-timeout:
			t.Fatalf("%d of %d calls returned within %s", len(out), n, within)
		}
	}
	return out
}

// gun 1.3 (EMQX <= 5.8.8): the first GOAWAY ends the connection and fails every call in
// flight on it, although the server would have answered them; calls made while gun waits
// to reconnect queue and go to the provider once the connection is back.
func TestGun1GoAwayFailsInFlightAndQueuesNewCalls(t *testing.T) {
	const retry = 300 * time.Millisecond
	release := make(chan struct{})
	old := slowProvider(release)
	addr, srvOld, c := gun1Client(t, old, Options{RequestTimeout: 3 * time.Second, RetryInterval: retry})
	errs := inflight(t, c, old, 3)

	stopped := make(chan struct{})
	go func() { srvOld.GracefulStop(); close(stopped) }() // GOAWAY, then waits for the 3 calls
	for _, err := range collect(t, errs, 3, 2*time.Second) {
		if err == nil {
			t.Fatal("a call in flight at GOAWAY succeeded")
		}
	}
	close(release)
	<-stopped

	next := &provider{hooks: publishAll}
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("address %s taken again: %v", addr, err)
	}
	srvNext := serveAt(ln2, next)
	defer srvNext.Stop()
	start := time.Now()
	if _, err := c.Publish(context.Background(), c.NewMessage("VINA", "fast", 1, nil)); err != nil {
		t.Fatalf("call queued during the reconnect: %v", err)
	}
	if waited := time.Since(start); waited < retry-50*time.Millisecond {
		t.Fatalf("call answered after %s, before gun's reconnect interval %s", waited, retry)
	}
	if next.count(HookMessagePublish) != 1 {
		t.Fatal("queued call did not reach the new provider")
	}
}

// A call queued while gun reconnects is still sent when EMQX has given up on it: the
// provider gets it late (EMQX already routed the message after its deadline).
func TestGun1QueuedCallSentAfterDeadline(t *testing.T) {
	const retry = 600 * time.Millisecond
	addr, srvOld, c := gun1Client(t, &provider{hooks: publishAll}, Options{RequestTimeout: 200 * time.Millisecond, RetryInterval: retry})
	if _, err := c.Publish(context.Background(), c.NewMessage("VINA", "t", 1, nil)); err != nil {
		t.Fatal(err)
	}
	srvOld.GracefulStop()
	next := &provider{hooks: publishAll}
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("address %s taken again: %v", addr, err)
	}
	defer serveAt(ln2, next).Stop()
	// The GOAWAY reaches the client asynchronously: wait until a call finds it reconnecting.
	var err2 error
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		start := time.Now()
		_, err2 = c.Publish(context.Background(), c.NewMessage("VINA", "late", 1, nil))
		// A call that picked the connection as it was lost fails as in flight: try again.
		if code := status.Code(err2); code == codes.DeadlineExceeded || (code == codes.OK && time.Since(start) > 150*time.Millisecond) {
			break
		}
	}
	if status.Code(err2) != codes.DeadlineExceeded {
		t.Fatalf("call during the reconnect: %v, want EMQX's deadline", err2)
	}
	waitCalls(t, next, func(cs []call) bool { return len(cs) >= 1 })
}

// When gun's reconnects are exhausted the queued calls fail, later calls fail fast, and
// the first call after the provider is back connects at once.
func TestGun1RetriesExhausted(t *testing.T) {
	addr, srv, c := gun1Client(t, &provider{hooks: publishAll}, Options{RequestTimeout: 3 * time.Second, RetryInterval: 50 * time.Millisecond, Retries: 3})
	if _, err := c.Publish(context.Background(), c.NewMessage("VINA", "t", 1, nil)); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	start := time.Now()
	var err2 error
	for time.Since(start) < 2*time.Second {
		// A call that raced the loss fails as in flight (Canceled); the next ones queue.
		if _, err2 = c.Publish(context.Background(), c.NewMessage("VINA", "t", 1, nil)); status.Code(err2) == codes.Unavailable {
			break
		}
	}
	if status.Code(err2) != codes.Unavailable || time.Since(start) > 2*time.Second {
		t.Fatalf("calls with the provider gone: %v after %s, want Unavailable once 3 retries 50ms apart are spent", err2, time.Since(start))
	}
	fast := time.Now()
	if _, err := c.Publish(context.Background(), c.NewMessage("VINA", "t", 1, nil)); status.Code(err) != codes.Unavailable || time.Since(fast) > time.Second {
		t.Fatalf("call after gun gave up: %v after %s, want a fast Unavailable", err, time.Since(fast))
	}
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("address %s taken again: %v", addr, err)
	}
	back := &provider{hooks: publishAll}
	defer serveAt(ln2, back).Stop()
	if _, err := c.Publish(context.Background(), c.NewMessage("VINA", "t", 1, nil)); err != nil {
		t.Fatalf("first call with the provider back: %v", err)
	}
}

// gun 2 (EMQX >= 5.8.9): GOAWAY lets the calls in flight finish; with the provider gone a
// new call fails at once instead of queueing.
func TestGun2GoAwayFinishesInFlightAndFailsFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	p := slowProvider(release)
	srv := serveAt(ln, p)
	c, err := Dial(Options{Addr: ln.Addr().String(), PoolSize: 1, RequestTimeout: 3 * time.Second, Mode: ModeGun2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errs := inflight(t, c, p, 3)
	var wg sync.WaitGroup
	wg.Go(srv.GracefulStop)
	time.Sleep(100 * time.Millisecond) // let the GOAWAY reach the client
	close(release)
	for _, err := range collect(t, errs, 3, 2*time.Second) {
		if err != nil {
			t.Fatalf("call in flight at GOAWAY: %v", err)
		}
	}
	wg.Wait()
	start := time.Now()
	_, err = c.Publish(context.Background(), c.NewMessage("VINA", "t", 1, nil))
	if status.Code(err) != codes.Unavailable || time.Since(start) > time.Second {
		t.Fatalf("call with the provider gone: %v after %s, want a fast Unavailable", err, time.Since(start))
	}
}
