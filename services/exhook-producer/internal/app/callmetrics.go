package app

import (
	"context"
	"slices"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	exhookv3 "github.com/iov-platform/iov/proto/emqx/exhook/v3"
	"github.com/iov-platform/iov/services/exhook-producer/internal/metrics"
)

// publishMethod is the method name of message.publish in both ExHook services.
const publishMethod = "OnMessagePublish"

// isPublish reports whether service/method is message.publish of ExHook v2 or v3.
func isPublish(service, method string) bool {
	return method == publishMethod &&
		(service == exhookv2.HookProvider_ServiceDesc.ServiceName || service == exhookv3.HookProvider_ServiceDesc.ServiceName)
}

func publishCall(_ context.Context, c interceptors.CallMeta) bool {
	return isPublish(c.Service, c.Method)
}

func otherCall(ctx context.Context, c interceptors.CallMeta) bool { return !publishCall(ctx, c) }

// hookInterceptors are the HookProvider server's unary interceptors, outermost first:
//
//   - grpcprom's counters (grpc_server_started_total, _handled_total, _msg_received_total,
//     _msg_sent_total) on every method but message.publish (go-grpc-middleware's selector);
//   - exhook_publish_calls_total{grpc_code} on message.publish (v2 and v3): the same count
//     as grpcprom's grpc_server_handled_total, taken from the same place and with grpcprom's
//     own code conversion (FromError), with one pre-resolved counter per code instead of
//     four label look-ups, a reporter and its label slices per call;
//   - recovery on every method: a handler's panic becomes onPanic's error, which the two
//     counters above see (Internal), as grpcprom did.
//
// The dashboards and alerts read message.publish from exhook_publish_calls_total (README,
// "Fourth round").
func hookInterceptors(grpcMetrics *grpcprom.ServerMetrics, publish *metrics.PublishCalls, onPanic func(p any) error) []grpc.UnaryServerInterceptor {
	countPublish := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		publish.Inc(grpcprom.FromError(err).Code())
		return resp, err
	}
	return []grpc.UnaryServerInterceptor{
		selector.UnaryServerInterceptor(grpcMetrics.UnaryServerInterceptor(), selector.MatchFunc(otherCall)),
		selector.UnaryServerInterceptor(countPublish, selector.MatchFunc(publishCall)),
		recovery.UnaryServerInterceptor(recovery.WithRecoveryHandler(onPanic)),
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
		si.Methods = slices.DeleteFunc(slices.Clone(si.Methods), func(m grpc.MethodInfo) bool { return isPublish(name, m.Name) })
		info[name] = si
	}
	return info
}
