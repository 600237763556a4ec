package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
