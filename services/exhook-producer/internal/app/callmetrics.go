package app

import (
	"context"
	"slices"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	"github.com/iov-platform/iov/kit/calltime"
	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	exhookv3 "github.com/iov-platform/iov/proto/emqx/exhook/v3"
	"github.com/iov-platform/iov/services/exhook-producer/internal/callgate"
	"github.com/iov-platform/iov/services/exhook-producer/internal/metrics"
)

// isPublish reports whether the full method name (/service/method) is message.publish of
// ExHook v2 or v3.
func isPublish(fullMethod string) bool {
	return fullMethod == exhookv2.HookProvider_OnMessagePublish_FullMethodName ||
		fullMethod == exhookv3.HookProvider_OnMessagePublish_FullMethodName
}

// callMetrics are the HookProvider server's call counters and its panic recovery:
//
//   - grpcprom's counters (grpc_server_started_total, _handled_total, _msg_received_total,
//     _msg_sent_total) on every method but message.publish;
//   - exhook_publish_calls_total{grpc_code} on message.publish (v2 and v3): the same count
//     as grpcprom's grpc_server_handled_total, taken from the same place and with grpcprom's
//     own code conversion (FromError), with one pre-resolved counter per code instead of
//     four label look-ups, a reporter and its label slices per call;
//   - recovery on every method, inside both counters: a handler's panic becomes onPanic's
//     error, which they see (Internal), as grpcprom did.
//
// The dashboards and alerts read message.publish from exhook_publish_calls_total (README,
// "Fourth round").
type callMetrics struct {
	grpc     grpc.UnaryServerInterceptor // grpcprom's
	publish  *metrics.PublishCalls
	recovery grpc.UnaryServerInterceptor
}

func newCallMetrics(grpcMetrics *grpcprom.ServerMetrics, publish *metrics.PublishCalls, onPanic func(p any) error) *callMetrics {
	return &callMetrics{grpc: grpcMetrics.UnaryServerInterceptor(), publish: publish,
		recovery: recovery.UnaryServerInterceptor(recovery.WithRecoveryHandler(onPanic))}
}

// hookInterceptor is a connection's server's one unary interceptor, in this order: the call
// starts its slot in the connection's gate (gated: callgate.Start); cm's counters and
// recovery (nil: none) run around the handler; the slot is released as the handler returns,
// before the answer is written; the call's time in the server is observed (calls, nil: not
// measured; grpc_server_call_seconds).
//
// One interceptor, not a chain: grpc-go's ChainUnaryInterceptor adds a frame and allocates
// a closure per link per call, and a sync call stays parked on its stack until Kafka
// acknowledges, so every GC cycle scans each of those frames of ~500 parked calls. Through
// here message.publish takes two frames (this one and recovery's) instead of twelve (README,
// "Sixth round").
func hookInterceptor(calls *calltime.Recorder, gated bool, cm *callMetrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		var slot *callgate.Slot
		if gated {
			slot = callgate.Start(ctx)
		}
		// cm's recovery is inside: no handler's panic gets past here (without cm, none is
		// caught anywhere and the process ends).
		switch {
		case cm == nil:
			resp, err = handler(ctx, req)
		case isPublish(info.FullMethod):
			resp, err = cm.recovery(ctx, req, info, handler)
			cm.publish.Inc(grpcprom.FromError(err).Code())
		default:
			resp, err = cm.grpc(ctx, req, info, func(ctx context.Context, req any) (any, error) {
				return cm.recovery(ctx, req, info, handler)
			})
		}
		slot.Release()
		if calls != nil {
			calls.Observe(ctx)
		}
		return resp, err
	}
}

// withoutPublish is a server's service list without message.publish, for grpcprom's
// InitializeMetrics: grpcprom does not count that method, and series it exports at 0
// forever would read as "no calls".
type withoutPublish struct {
	srv reflection.ServiceInfoProvider
}

func (w withoutPublish) GetServiceInfo() map[string]grpc.ServiceInfo {
	info := w.srv.GetServiceInfo()
	for name, si := range info {
		si.Methods = slices.DeleteFunc(slices.Clone(si.Methods), func(m grpc.MethodInfo) bool { return isPublish("/" + name + "/" + m.Name) })
		info[name] = si
	}
	return info
}
