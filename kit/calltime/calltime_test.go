package calltime

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// slowHealth answers Check after delay, with err; with untilDone, once the call's context
// ends instead.
type slowHealth struct {
	*health.Server
	delay     time.Duration
	err       error
	untilDone bool
}

func (h slowHealth) Check(ctx context.Context, r *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if h.untilDone {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	time.Sleep(h.delay)
	if h.err != nil {
		return nil, h.err
	}
	return h.Server.Check(ctx, r)
}

// Every call, answered or failed, is observed once, and for at least as long as its
// handler held it; the call's deadline still reaches the handler through the arrival
// context.
func TestRecordsEveryCallsTimeInTheServer(t *testing.T) {
	for _, tc := range []struct {
		name      string
		calls     int
		delay     time.Duration
		err       error
		untilDone bool // the handler waits for the deadline (delay) to end its context
	}{
		{"answered", 3, 20 * time.Millisecond, nil, false},
		{"failed", 2, 10 * time.Millisecond, status.Error(codes.Unavailable, "no"), false},
		{"quick", 5, 0, nil, false},
		{"deadline", 2, 30 * time.Millisecond, status.Error(codes.DeadlineExceeded, "context deadline exceeded"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			rec := New(reg)
			srv := grpc.NewServer(rec.ServerOptions()...)
			healthpb.RegisterHealthServer(srv, slowHealth{Server: health.NewServer(), delay: tc.delay, err: tc.err, untilDone: tc.untilDone})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = srv.Serve(ln) }()
			defer srv.Stop()
			cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			for range tc.calls {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if tc.untilDone {
					ctx, cancel = context.WithTimeout(context.Background(), tc.delay)
				}
				_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
				cancel()
				if !errors.Is(err, tc.err) && status.Code(err) != status.Code(tc.err) {
					t.Fatalf("call: %v, want %v", err, tc.err)
				}
			}
			// Observed before the answer is written: counted by the time the client has it,
			// except a call the client gave up on, whose answer may still be on its way.
			h := histogram(t, reg)
			for deadline := time.Now().Add(5 * time.Second); tc.untilDone && h.GetSampleCount() < uint64(tc.calls) && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				h = histogram(t, reg)
			}
			if got := h.GetSampleCount(); got != uint64(tc.calls) {
				t.Fatalf("%d calls observed, want %d", got, tc.calls)
			}
			min := tc.delay.Seconds() * float64(tc.calls)
			if tc.untilDone { // the server's deadline is the client's less the time in transit
				min /= 2
			}
			if h.GetSampleSum() < min {
				t.Fatalf("observed %.4fs in all, want at least the handlers' %.4fs", h.GetSampleSum(), min)
			}
			if len(h.GetBucket()) != len(Buckets) {
				t.Fatalf("%d buckets, want %d", len(h.GetBucket()), len(Buckets))
			}
		})
	}
}

func histogram(t *testing.T, g prometheus.Gatherer) *dto.Histogram {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == MetricName {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("no %s", MetricName)
	return nil
}

// The measure's cost per call: the arrival context (one allocation) and the observation.
func BenchmarkArrivedAnswered(b *testing.B) {
	r := New(prometheus.NewRegistry())
	handler := func(context.Context, any) (any, error) { return nil, nil }
	b.ReportAllocs()
	for b.Loop() {
		ctx, _ := arrived(context.Background(), nil)
		_, _ = r.answered(ctx, nil, nil, handler)
	}
}
