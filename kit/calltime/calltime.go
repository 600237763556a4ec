// Package calltime measures how long a gRPC server holds each unary call: from the moment
// its transport parsed the call's headers (before a goroutine is found for it) to its
// handler's answer, past every interceptor. That is the latency the server adds, free of
// whatever delays the client's own process adds on its side; make bench reads it from our
// producer and from the do-nothing floor server to compare them at a fixed offered rate.
//
// It misses what happens outside those two points: bytes waiting in the socket before the
// transport's reader reads them, and the answer's encoding and wait for the transport's
// writer. No stats handler: with one, grpc-go builds seven stats events per call (15-17% of
// the producer's CPU per message); this costs one allocation and two clock reads.
package calltime

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
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
		Help:    "Time a unary gRPC call spends in the server: from its headers parsed by the transport to its handler's answer.",
		Buckets: Buckets,
	})}
	reg.MustRegister(r.hist)
	return r
}

// ServerOptions are the options that measure a server's unary calls: the tap handle (it
// takes the server's only grpc.InTapHandle slot) and an interceptor, which goes outside the
// server's other interceptors when these options come first.
func (r *Recorder) ServerOptions() []grpc.ServerOption {
	return r.ServerOptionsWrapped(func(h tap.ServerInHandle) tap.ServerInHandle { return h })
}

// ServerOptionsWrapped is ServerOptions with the tap handle replaced by wrap(its own), so that
// another tap (a server has one slot) can run around the arrival's.
func (r *Recorder) ServerOptionsWrapped(wrap func(tap.ServerInHandle) tap.ServerInHandle) []grpc.ServerOption {
	return []grpc.ServerOption{grpc.InTapHandle(wrap(arrived)), grpc.ChainUnaryInterceptor(r.answered)}
}

type arrivalKey struct{}

// arrival is the call's context with its arrival time: one allocation, where
// context.WithValue would take two (the value boxed besides the context).
type arrival struct {
	context.Context
	at time.Time
}

func (a *arrival) Value(key any) any {
	if key == (arrivalKey{}) {
		return a
	}
	return a.Context.Value(key)
}

// arrived runs on the transport's reader goroutine, as the call's headers are parsed.
func arrived(ctx context.Context, _ *tap.Info) (context.Context, error) {
	return &arrival{Context: ctx, at: time.Now()}, nil
}

func (r *Recorder) answered(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if a, ok := ctx.Value(arrivalKey{}).(*arrival); ok {
		r.hist.Observe(time.Since(a.at).Seconds())
	}
	return resp, err
}
