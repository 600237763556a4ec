package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	exhookv3 "github.com/iov-platform/iov/proto/emqx/exhook/v3"
	"github.com/iov-platform/iov/services/exhook-producer/internal/callgate"
	"github.com/iov-platform/iov/services/exhook-producer/internal/h2streams"
	"github.com/iov-platform/iov/services/exhook-producer/internal/metrics"
)

// outcomeHooks answers message.publish (v2 and v3) as its topic says: "code/N" with gRPC
// code N (0: OK), "panic" by panicking, "plain" with an error that is no status, "wait"
// once its context ends (EMQX's deadline passed, or EMQX cancelled the call) with the
// context's error, as the hook does (toStatus). client.connected fails with Unavailable.
type outcomeHooks struct {
	exhookv2.UnimplementedHookProviderServer
	waiting chan struct{} // a "wait" call has started
}

func (h outcomeHooks) answer(ctx context.Context, topic string) error {
	switch {
	case topic == "panic":
		panic("handler bug")
	case topic == "plain":
		return errors.New("not a status")
	case topic == "wait":
		h.waiting <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	case strings.HasPrefix(topic, "code/"):
		n, err := strconv.Atoi(strings.TrimPrefix(topic, "code/"))
		if err != nil {
			panic(err)
		}
		if n == 0 {
			return nil
		}
		return status.Error(codes.Code(n), "as asked")
	}
	panic("unknown topic " + topic)
}

func (h outcomeHooks) OnMessagePublish(ctx context.Context, req *exhookv2.MessagePublishRequest) (*exhookv2.ValuedResponse, error) {
	if err := h.answer(ctx, req.GetMessage().GetTopic()); err != nil {
		return nil, err
	}
	return &exhookv2.ValuedResponse{Type: exhookv2.ValuedResponse_IGNORE}, nil
}

func (h outcomeHooks) OnProviderLoaded(context.Context, *exhookv2.ProviderLoadedRequest) (*exhookv2.LoadedResponse, error) {
	return &exhookv2.LoadedResponse{}, nil
}

func (h outcomeHooks) OnClientConnected(context.Context, *exhookv2.ClientConnectedRequest) (*exhookv2.EmptySuccess, error) {
	return nil, status.Error(codes.Unavailable, "kafka down")
}

type outcomeHooksV3 struct {
	exhookv3.UnimplementedHookProviderServer
	h outcomeHooks
}

func (h outcomeHooksV3) OnMessagePublish(ctx context.Context, req *exhookv3.MessagePublishRequest) (*exhookv3.ValuedResponse, error) {
	if err := h.h.answer(ctx, req.GetMessage().GetTopic()); err != nil {
		return nil, err
	}
	return &exhookv3.ValuedResponse{Type: exhookv3.ValuedResponse_IGNORE}, nil
}

// serveWithInterceptors serves outcomeHooks (v2 and v3) on loopback, one server per
// connection as in the app, with the unary interceptors ints (outermost first) after the
// connection's own options.
func serveWithInterceptors(tb testing.TB, h outcomeHooks, init func(*grpc.Server), ints ...grpc.UnaryServerInterceptor) *grpc.ClientConn {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	newServer := func(n *h2streams.Counter, gate *callgate.Gate) *grpc.Server {
		srv := grpc.NewServer(append(connServerOptions(nil, insecure.NewCredentials(), n, nil, gate, true), grpc.ChainUnaryInterceptor(ints...))...)
		exhookv2.RegisterHookProviderServer(srv, h)
		exhookv3.RegisterHookProviderServer(srv, outcomeHooksV3{h: h})
		return srv
	}
	if init != nil {
		proto := newServer(new(h2streams.Counter), nil)
		init(proto)
		proto.Stop()
	}
	cs := newConnServers(64, newServer)
	go func() { _ = cs.Serve(ln) }()
	tb.Cleanup(func() { _ = ln.Close(); cs.Stop() })
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

// counts gathers reg's counter family name as {label values joined by ","} -> value, with
// the labels in the given order.
func counts(t *testing.T, reg *prometheus.Registry, name string, labels ...string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[labelValues(m, labels)] = m.GetCounter().GetValue()
		}
	}
	return out
}

func labelValues(m *dto.Metric, names []string) string {
	vals := make([]string, len(names))
	for i, n := range names {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == n {
				vals[i] = lp.GetValue()
			}
		}
	}
	return strings.Join(vals, ",")
}

// TestPublishCallsCountWhatGrpcpromCounted: exhook_publish_calls_total, which the alerts
// and the uplink dashboard read for message.publish since grpcprom no longer runs on it,
// counts every outcome grpcprom's grpc_server_handled_total counted for the method, code for
// code: OK, each error code, an error that is no status (Unknown), a panic the recovery
// interceptor answers (Internal), EMQX's deadline passing and EMQX cancelling the call (the
// handler returns the context's error). A reference grpcprom on every method runs outside
// the app's interceptors (hookInterceptors) and must agree with the new counter; the app's
// grpcprom must count the other methods as the reference does and have no
// message.publish series at all.
func TestPublishCallsCountWhatGrpcpromCounted(t *testing.T) {
	refReg, reg := prometheus.NewRegistry(), prometheus.NewRegistry()
	ref, grpcMetrics := grpcprom.NewServerMetrics(), grpcprom.NewServerMetrics()
	refReg.MustRegister(ref)
	reg.MustRegister(grpcMetrics)
	m := metrics.New(reg)
	var panics atomic.Int64
	h := outcomeHooks{waiting: make(chan struct{}, 1)}
	conn := serveWithInterceptors(t, h, func(s *grpc.Server) { ref.InitializeMetrics(s); grpcMetrics.InitializeMetrics(withoutPublish{s}) },
		append([]grpc.UnaryServerInterceptor{ref.UnaryServerInterceptor()}, hookInterceptors(grpcMetrics, m.PublishCalls, func(any) error {
			panics.Add(1)
			return status.Error(codes.Internal, "internal error")
		})...)...)
	v2, v3 := exhookv2.NewHookProviderClient(conn), exhookv3.NewHookProviderClient(conn)
	publish := func(ctx context.Context, version int, topic string) error {
		if version == 3 {
			_, err := v3.OnMessagePublish(ctx, &exhookv3.MessagePublishRequest{Message: &exhookv3.Message{Topic: topic}})
			return err
		}
		_, err := v2.OnMessagePublish(ctx, &exhookv2.MessagePublishRequest{Message: &exhookv2.Message{Topic: topic}})
		return err
	}

	want := map[string]float64{} // grpc_code -> message.publish calls
	expect := func(err error, c codes.Code) {
		t.Helper()
		if got := status.Code(err); got != c {
			t.Fatalf("client got %v (%v), want %v", got, err, c)
		}
		want[c.String()]++
	}
	ctx := context.Background()
	for _, version := range []int{2, 3} {
		for c := codes.OK; c <= codes.Unauthenticated; c++ {
			expect(publish(ctx, version, fmt.Sprintf("code/%d", c)), c)
		}
		expect(publish(ctx, version, "plain"), codes.Unknown)
		expect(publish(ctx, version, "panic"), codes.Internal)

		dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		expect(publish(dctx, version, "wait"), codes.DeadlineExceeded)
		cancel()
		<-h.waiting

		cctx, cancel := context.WithCancel(ctx)
		go func() { <-h.waiting; cancel() }()
		expect(publish(cctx, version, "wait"), codes.Canceled)
	}
	if _, err := v2.OnProviderLoaded(ctx, &exhookv2.ProviderLoadedRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := v2.OnClientConnected(ctx, &exhookv2.ClientConnectedRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("client.connected: %v, want Unavailable", err)
	}

	// The server counts after the client has its answer (a cancelled call's handler may
	// even return later): wait until the reference has counted every call.
	var total float64
	for _, n := range want {
		total += n
	}
	handled := func(r *prometheus.Registry) map[string]float64 {
		return counts(t, r, "grpc_server_handled_total", "grpc_service", "grpc_method", "grpc_code")
	}
	refPublish := func() map[string]float64 {
		out := map[string]float64{}
		for k, n := range handled(refReg) {
			if f := strings.Split(k, ","); f[1] == publishMethod {
				out[f[2]] += n
			}
		}
		return out
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var sum float64
		for _, n := range refPublish() {
			sum += n
		}
		if sum == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reference grpcprom counted %v message.publish calls, want %v", sum, total)
		}
	}

	ours := counts(t, reg, "exhook_publish_calls_total", "grpc_code")
	refp := refPublish()
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		k := c.String()
		if ours[k] != refp[k] {
			t.Errorf("grpc_code=%s: exhook_publish_calls_total %v, grpcprom %v", k, ours[k], refp[k])
		}
		// When EMQX's deadline passes, its RST_STREAM may end the handler's context before
		// the server's own timer does: the server answers either DeadlineExceeded or
		// Canceled, whatever the client saw.
		if c != codes.DeadlineExceeded && c != codes.Canceled && ours[k] != want[k] {
			t.Errorf("grpc_code=%s: exhook_publish_calls_total %v, calls %v", k, ours[k], want[k])
		}
	}
	ended := func(n map[string]float64) float64 {
		return n[codes.DeadlineExceeded.String()] + n[codes.Canceled.String()]
	}
	if ended(ours) != ended(want) {
		t.Errorf("DeadlineExceeded + Canceled: exhook_publish_calls_total %v, calls %v", ended(ours), ended(want))
	}
	if len(ours) != 17 {
		t.Errorf("exhook_publish_calls_total has %d series, want the 17 codes: %v", len(ours), ours)
	}
	if panics.Load() != 2 {
		t.Errorf("recovery handler ran %d times, want 2", panics.Load())
	}

	refAll, got := handled(refReg), handled(reg)
	for k, n := range got {
		if strings.Split(k, ",")[1] == publishMethod {
			t.Errorf("grpcprom has a message.publish series: %s = %v", k, n)
		} else if refAll[k] != n {
			t.Errorf("grpc_server_handled_total{%s} = %v, reference %v", k, n, refAll[k])
		}
	}
	for _, k := range []string{"emqx.exhook.v2.HookProvider,OnProviderLoaded,OK", "emqx.exhook.v2.HookProvider,OnClientConnected,Unavailable"} {
		if got[k] != 1 {
			t.Errorf("grpc_server_handled_total{%s} = %v, want 1", k, got[k])
		}
	}
	if n := len(refAll) - len(got); n != 2*17 {
		t.Errorf("the reference has %d more handled series than the app's grpcprom, want 34 (message.publish of v2 and v3, every code)", n)
	}
}

// BenchmarkConnServerPublishMetrics: a message.publish call through a connection's server
// with the call metrics as before this change (grpcprom on every method, then recovery)
// and as now (hookInterceptors), client included, as BenchmarkConnServerPublish.
func BenchmarkConnServerPublishMetrics(b *testing.B) {
	onPanic := func(any) error { return status.Error(codes.Internal, "internal error") }
	for _, tc := range []struct {
		name string
		ints func(*grpcprom.ServerMetrics, *metrics.Metrics) []grpc.UnaryServerInterceptor
	}{
		{"grpcprom", func(g *grpcprom.ServerMetrics, _ *metrics.Metrics) []grpc.UnaryServerInterceptor {
			return []grpc.UnaryServerInterceptor{g.UnaryServerInterceptor(), recovery.UnaryServerInterceptor(recovery.WithRecoveryHandler(onPanic))}
		}},
		{"hookInterceptors", func(g *grpcprom.ServerMetrics, m *metrics.Metrics) []grpc.UnaryServerInterceptor {
			return hookInterceptors(g, m.PublishCalls, onPanic)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			reg := prometheus.NewRegistry()
			g := grpcprom.NewServerMetrics()
			reg.MustRegister(g)
			conn := serveWithInterceptors(b, outcomeHooks{}, nil, tc.ints(g, metrics.New(reg))...)
			client := exhookv2.NewHookProviderClient(conn)
			req := &exhookv2.MessagePublishRequest{Message: &exhookv2.Message{Topic: "code/0"}}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := client.OnMessagePublish(context.Background(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
