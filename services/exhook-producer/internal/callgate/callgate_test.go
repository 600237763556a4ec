package callgate

import (
	"context"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// heldHealth's Check runs until the test lets it go (or its call ends), counting the
// handlers running at once.
type heldHealth struct {
	healthpb.UnimplementedHealthServer
	hold             chan struct{} // one receive lets one handler answer; nil: answer at once
	running, maxSeen atomic.Int64
	started          atomic.Int64
}

func (h *heldHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	n := h.running.Add(1)
	defer h.running.Add(-1)
	h.started.Add(1)
	for m := h.maxSeen.Load(); n > m && !h.maxSeen.CompareAndSwap(m, n); m = h.maxSeen.Load() {
	}
	if h.hold != nil {
		select {
		case <-h.hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// Watch sends SERVING, then stays open until the client ends it.
func (h *heldHealth) Watch(_ *healthpb.HealthCheckRequest, w grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	if err := w.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}); err != nil {
		return err
	}
	<-w.Context().Done()
	return nil
}

// serve runs a grpc-go server with g on a loopback listener, as the producer does, and a
// client connection to it, with connWindow as the connection's flow-control window.
func serve(t *testing.T, g *Gate, h *heldHealth, connWindow int32) (*grpc.Server, healthpb.HealthClient) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := []grpc.ServerOption{grpc.Creds(Credentials(insecure.NewCredentials(), g)), grpc.ReadBufferSize(0), grpc.InTapHandle(g.Tap(nil)),
		grpc.ChainUnaryInterceptor(g.UnaryInterceptor()), grpc.ChainStreamInterceptor(g.StreamInterceptor())}
	opts = append(opts, grpc.StaticConnWindowSize(connWindow))
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, h)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return srv, healthpb.NewHealthClient(cc)
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// With a limit of N, N handlers run on the connection; the calls over it are not refused:
// each starts once one of the running ones returns, and every call succeeds.
func TestGateRunsLimitAndQueuesTheRest(t *testing.T) {
	const limit, calls = 3, 8
	g := New(limit, nil)
	h := &heldHealth{hold: make(chan struct{})}
	_, client := serve(t, g, h, math.MaxInt32)

	errs := make(chan error, calls)
	for i := range calls {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
			errs <- err
		}()
		// One at a time, so that each call's data follows its headers on the wire (a
		// client that sends headers ahead of data: the next test).
		if i < limit {
			waitFor(t, "the handler", func() bool { return h.running.Load() == int64(i+1) })
		} else {
			time.Sleep(5 * time.Millisecond)
		}
	}
	for answered := 0; answered < calls; answered++ {
		// The others wait in the connection: no handler beyond the limit starts, none fails.
		time.Sleep(20 * time.Millisecond)
		if n := h.running.Load(); n != int64(min(limit, calls-answered)) {
			t.Fatalf("%d answered: %d handlers running, want %d", answered, n, min(limit, calls-answered))
		}
		select {
		case err := <-errs:
			t.Fatalf("%d answered: a call ended before its handler answered: %v", answered, err)
		default:
		}
		h.hold <- struct{}{}
		if err := <-errs; err != nil {
			t.Fatalf("call %d: %v", answered, err)
		}
		want := int64(min(limit, calls-answered-1))
		waitFor(t, "the next handler", func() bool { return h.running.Load() == want })
	}
	if m := h.maxSeen.Load(); m != limit {
		t.Fatalf("at most %d handlers ran at once, want %d", m, limit)
	}
	if h.started.Load() != calls {
		t.Fatalf("%d handlers ran, want %d", h.started.Load(), calls)
	}
	waitFor(t, "every slot freed", func() bool { return g.Running() == 0 })
}

// A call whose data is behind a later call's headers needs the reader: when none of the
// running calls has started (grpc-go's client holds data, but not headers, once it has used
// the connection's window), the gate lets the next call in over the limit instead of
// waiting for ever. 200 calls of 8 KiB exceed a 64 KiB connection window (grpc-go's
// default, before its BDP estimate grows it; the producer's is 2 GiB).
func TestGateDoesNotWaitForCallsThatNeedTheReader(t *testing.T) {
	var past atomic.Int64
	g := New(1, func() { past.Add(1) })
	h := &heldHealth{}
	_, client := serve(t, g, h, 64<<10)
	req := &healthpb.HealthCheckRequest{Service: strings.Repeat("x", 8<<10)}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 200 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := client.Check(ctx, req); err != nil {
				failed.Add(1)
				t.Log(err)
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of 200 calls failed", failed.Load())
	}
	if past.Load() == 0 {
		t.Fatal("no call was let in over the limit: the case was not exercised")
	}
}

// A call whose deadline passes while it waits unread in the connection ends
// DEADLINE_EXCEEDED at the client without a handler, and leaves no slot taken once the
// server reads it (and its reset).
func TestGateCallTimesOutWhileWaiting(t *testing.T) {
	g := New(1, nil)
	h := &heldHealth{hold: make(chan struct{})}
	_, client := serve(t, g, h, math.MaxInt32)
	timeOutBehindHeldCall(t, client, h, func() {
		if h.started.Load() != 1 || g.Running() != 1 {
			t.Fatalf("%d handlers started, %d slots taken; want 1 and 1", h.started.Load(), g.Running())
		}
	})
	waitFor(t, "the slot freed", func() bool { return g.Running() == 0 })
}

// timeOutBehindHeldCall holds one call in its handler (a gate limit of 1), lets a second
// call time out unread behind it, runs whileHeld, then lets the first call answer.
func timeOutBehindHeldCall(t *testing.T, client healthpb.HealthClient, h *heldHealth, whileHeld func()) {
	t.Helper()
	first := make(chan error, 1)
	go func() {
		_, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
		first <- err
	}()
	waitFor(t, "the held handler", func() bool { return h.running.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("waiting call: %v, want DEADLINE_EXCEEDED", err)
	}
	whileHeld()
	h.hold <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

// A call whose handler runs frees its slot as the handler returns and stops the release
// registered on its stream's end (which would otherwise run in a goroutine of its own when
// grpc-go cancels the stream's context); a call that ends without a handler is freed by
// that release.
func TestHandledCallStopsItsStreamEndRelease(t *testing.T) {
	var stopped, ran atomic.Int64
	afterFunc = func(ctx context.Context, f func()) func() bool {
		stop := context.AfterFunc(ctx, func() { ran.Add(1); f() })
		return func() bool {
			ok := stop()
			if ok {
				stopped.Add(1)
			}
			return ok
		}
	}
	t.Cleanup(func() { afterFunc = context.AfterFunc })

	g := New(1, nil)
	h := &heldHealth{hold: make(chan struct{})}
	_, client := serve(t, g, h, math.MaxInt32)
	const handled = 20
	for range handled {
		go func() { h.hold <- struct{}{} }()
		if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := stopped.Load(); n != handled {
		t.Fatalf("%d stream-end releases stopped after %d handled calls, want %d", n, handled, handled)
	}

	// A call that times out unread behind a held one never reaches its handler.
	timeOutBehindHeldCall(t, client, h, func() {})
	waitFor(t, "the unhandled call's slot freed by its stream's end", func() bool { return g.Running() == 0 && ran.Load() == 1 })
	if n := stopped.Load(); n != handled+1 {
		t.Fatalf("%d stream-end releases stopped, want %d", n, handled+1)
	}
}

// Stop does not hang on a call waiting for a slot (the waiting tap holds the transport's
// mutex, which Close needs): Close opens the gate first.
func TestGateCloseLetsStopEnd(t *testing.T) {
	g := New(1, nil)
	h := &heldHealth{hold: make(chan struct{})}
	srv, client := serve(t, g, h, math.MaxInt32)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
			errs <- err
		}()
		waitFor(t, "a handler", func() bool { return h.running.Load() == 1 })
	}
	time.Sleep(20 * time.Millisecond) // the second call's headers reach the gate
	stopped := make(chan struct{})
	go func() {
		g.Close()
		srv.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop hung")
	}
	for range 2 {
		if err := <-errs; err == nil {
			t.Fatal("a call succeeded although the server stopped before answering it")
		}
	}
	waitFor(t, "every slot freed", func() bool { return g.Running() == 0 })
}

// Streaming calls (reflection, health watches) may need the reader for as long as they
// last: they free their slot as they start, so a limit of 1 still serves unary calls while
// a stream is open.
func TestGateDoesNotBoundStreams(t *testing.T) {
	g := New(1, nil)
	h := &heldHealth{}
	_, client := serve(t, g, h, math.MaxInt32)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatalf("watch: %v", err)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if _, err := client.Check(cctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("unary call with a stream open: %v", err)
	}
}

// BenchmarkGateCall is the gate's own cost per unary call: the tap on the stream's
// context, the interceptor around the handler, and the stream's end (its context
// cancelled, as grpc-go does once the answer is written).
func BenchmarkGateCall(b *testing.B) {
	g := New(64, nil)
	tapIn, intercept := g.Tap(nil), g.UnaryInterceptor()
	info := &tap.Info{FullMethodName: "/emqx.exhook.v2.HookProvider/OnMessagePublish"}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	b.ReportAllocs()
	for b.Loop() {
		stream, end := context.WithCancel(context.Background())
		ctx, err := tapIn(stream, info)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := intercept(ctx, nil, nil, handler); err != nil {
			b.Fatal(err)
		}
		end()
	}
	b.StopTimer()
	waitFor(b, "every slot freed", func() bool { return g.Running() == 0 })
}
