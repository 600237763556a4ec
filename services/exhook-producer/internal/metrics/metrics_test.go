package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
)

// TestPreinitialisedSeries: before anything happens, the shutdown counter exports each
// result at 0 (the alert on lost records needs that first sample to see an increase).
func TestPreinitialisedSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg)
	tests := []struct {
		metric string
		series int
	}{
		{"exhook_shutdown_unacknowledged_records_total", 2},
		{"exhook_grpc_calls_past_limit_total", 1},
		{"exhook_publish_calls_total", 17}, // every gRPC code, OK to Unauthenticated
	}
	for _, tt := range tests {
		t.Run(tt.metric, func(t *testing.T) {
			n, err := testutil.GatherAndCount(reg, tt.metric)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.series {
				t.Errorf("%d series exported, want %d", n, tt.series)
			}
		})
	}
	m := New(prometheus.NewRegistry())
	for _, r := range []string{ShutdownSpilled, ShutdownLost} {
		if v := testutil.ToFloat64(m.ShutdownRecords.WithLabelValues(r)); v != 0 {
			t.Errorf("result=%s starts at %v, want 0", r, v)
		}
	}
}

// TestPublishCallsByCode: each code counts under its own name (grpc-go's spelling, as in
// grpcprom's grpc_code), and a code outside gRPC's list gets a series of its own.
func TestPublishCallsByCode(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.PublishCalls.Inc(codes.OK)
	m.PublishCalls.Inc(codes.OK)
	m.PublishCalls.Inc(codes.DeadlineExceeded)
	m.PublishCalls.Inc(codes.Unauthenticated)
	m.PublishCalls.Inc(codes.Code(99))
	want := `
# HELP exhook_publish_calls_total message.publish calls (ExHook v2 and v3) by the gRPC code of the answer: OK, or the error EMQX got (a handler's panic is Internal); every code exported from the start.
# TYPE exhook_publish_calls_total counter
exhook_publish_calls_total{grpc_code="Aborted"} 0
exhook_publish_calls_total{grpc_code="AlreadyExists"} 0
exhook_publish_calls_total{grpc_code="Canceled"} 0
exhook_publish_calls_total{grpc_code="Code(99)"} 1
exhook_publish_calls_total{grpc_code="DataLoss"} 0
exhook_publish_calls_total{grpc_code="DeadlineExceeded"} 1
exhook_publish_calls_total{grpc_code="FailedPrecondition"} 0
exhook_publish_calls_total{grpc_code="Internal"} 0
exhook_publish_calls_total{grpc_code="InvalidArgument"} 0
exhook_publish_calls_total{grpc_code="NotFound"} 0
exhook_publish_calls_total{grpc_code="OK"} 2
exhook_publish_calls_total{grpc_code="OutOfRange"} 0
exhook_publish_calls_total{grpc_code="PermissionDenied"} 0
exhook_publish_calls_total{grpc_code="ResourceExhausted"} 0
exhook_publish_calls_total{grpc_code="Unauthenticated"} 1
exhook_publish_calls_total{grpc_code="Unavailable"} 0
exhook_publish_calls_total{grpc_code="Unimplemented"} 0
exhook_publish_calls_total{grpc_code="Unknown"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "exhook_publish_calls_total"); err != nil {
		t.Fatal(err)
	}
}
