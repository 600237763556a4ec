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

// slowHealth answers Check after delay, with err.
type slowHealth struct {
	*health.Server
	delay time.Duration
	err   error
}

func (h slowHealth) Check(ctx context.Context, r *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	time.Sleep(h.delay)
	if h.err != nil {
		return nil, h.err
	}
	return h.Server.Check(ctx, r)
}

// Every call, answered or failed, is observed once, and for at least as long as its
// handler held it.
func TestRecordsEveryCallsTimeInTheServer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		calls int
		delay time.Duration
		err   error
	}{
		{"answered", 3, 20 * time.Millisecond, nil},
		{"failed", 2, 10 * time.Millisecond, status.Error(codes.Unavailable, "no")},
		{"quick", 5, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			rec := New(reg)
			srv := grpc.NewServer(rec.ServerOptions()...)
			healthpb.RegisterHealthServer(srv, slowHealth{Server: health.NewServer(), delay: tc.delay, err: tc.err})
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
				_, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{})
				if !errors.Is(err, tc.err) && status.Code(err) != status.Code(tc.err) {
					t.Fatalf("call: %v, want %v", err, tc.err)
				}
			}
			h := histogram(t, reg)
			// The End event can follow the client's answer by a moment.
			for deadline := time.Now().Add(5 * time.Second); h.GetSampleCount() < uint64(tc.calls) && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				h = histogram(t, reg)
			}
			if got := h.GetSampleCount(); got != uint64(tc.calls) {
				t.Fatalf("%d calls observed, want %d", got, tc.calls)
			}
			if min := tc.delay.Seconds() * float64(tc.calls); h.GetSampleSum() < min {
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
