// Package calltime measures how long a gRPC server holds each call: from the moment its
// transport parsed the call's headers (before a goroutine is found for it) to its status
// queued for writing. That is the latency the server adds, free of whatever delays the
// client's own process adds on its side; make bench reads it from our producer and from
// the do-nothing floor server to compare them at a fixed offered rate.
//
// It misses what happens outside those two points: bytes waiting in the socket before the
// transport's reader reads them, and the status waiting for the transport's writer.
package calltime

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/tap"
)

// MetricName is the histogram's name.
const MetricName = "grpc_server_call_seconds"

// Buckets are the histogram's upper bounds: 20 µs to ~2.6 s, each 15% above the last, so a
// quantile interpolated inside a bucket is within 15% of the true one.
var Buckets = prometheus.ExponentialBuckets(20e-6, 1.15, 85)

// Recorder observes every call's time in the server into a histogram.
type Recorder struct {
	hist prometheus.Histogram
}

// New registers the histogram with reg.
func New(reg prometheus.Registerer) *Recorder {
	r := &Recorder{hist: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    MetricName,
		Help:    "Time a gRPC call spends in the server: from its headers parsed by the transport to its status queued for writing.",
		Buckets: Buckets,
	})}
	reg.MustRegister(r.hist)
	return r
}

// ServerOptions are the options that measure a server's calls. The tap handle takes the
// server's only grpc.InTapHandle slot.
func (r *Recorder) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.InTapHandle(arrived), grpc.StatsHandler(ended{r.hist})}
}

type arrivalKey struct{}

// arrived runs on the transport's reader goroutine, as the call's headers are parsed.
func arrived(ctx context.Context, _ *tap.Info) (context.Context, error) {
	return context.WithValue(ctx, arrivalKey{}, time.Now()), nil
}

type ended struct{ hist prometheus.Histogram }

func (ended) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (ended) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (ended) HandleConn(context.Context, stats.ConnStats)                       {}

func (e ended) HandleRPC(ctx context.Context, s stats.RPCStats) {
	end, ok := s.(*stats.End)
	if !ok {
		return
	}
	if t0, ok := ctx.Value(arrivalKey{}).(time.Time); ok {
		e.hist.Observe(end.EndTime.Sub(t0).Seconds())
	}
}
