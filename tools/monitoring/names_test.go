package monitoring

import (
	"slices"
	"strings"
	"testing"
)

// TestUnknownNames: the name check accepts exported families (with a histogram's series)
// and documented external metrics, and reports everything else.
func TestUnknownNames(t *testing.T) {
	exposition := `# HELP exhook_messages_total Messages.
# TYPE exhook_messages_total counter
exhook_messages_total{route="telemetry",outcome="queued"} 3
# HELP exhook_hook_duration_seconds Latency.
# TYPE exhook_hook_duration_seconds histogram
exhook_hook_duration_seconds_bucket{le="0.1"} 1
exhook_hook_duration_seconds_bucket{le="+Inf"} 1
exhook_hook_duration_seconds_sum 0.05
exhook_hook_duration_seconds_count 1
# HELP exhook_ready Ready.
# TYPE exhook_ready gauge
exhook_ready 1
`
	exported, err := exportedNames(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	external := readNameList(t, "testdata/external-metrics.txt")
	for _, tc := range []struct {
		name    string
		unknown bool
	}{
		{"exhook_messages_total", false},
		{"exhook_hook_duration_seconds_bucket", false},
		{"exhook_hook_duration_seconds_count", false},
		{"exhook_ready", false},
		{"emqx_messages_received", false},  // EMQX 5.8.9
		{"kafka_consumergroup_lag", false}, // Kafka Exporter
		{"exhook_message_total", true},     // typo
		{"exhook_ready_bucket", true},      // a gauge has no buckets
		{"emqx_exhook_failed", true},       // EMQX 5.8 exports no ExHook metric
	} {
		got := unknownNames(map[string][]string{tc.name: {"test"}}, exported, external)
		if slices.Contains(got, tc.name) != tc.unknown {
			t.Errorf("%s: unknown=%v, want %v", tc.name, !tc.unknown, tc.unknown)
		}
	}
}
