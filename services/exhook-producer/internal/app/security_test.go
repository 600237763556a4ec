package app_test

import (
	"context"
	"maps"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/iov-platform/iov/tools/devkit/e2e"
	"github.com/iov-platform/iov/tools/devkit/kafkacluster/kafkatest"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

// TestSASLSCRAMOverTLS: against a real broker whose client listener is SASL_SSL with
// SCRAM-SHA-512 (CA and certificate generated here, user created at format time), the
// producer configured with security.protocol / sasl.* / ssl.ca.location writes what EMQX
// sends, and the same producer with a wrong password gets no acknowledgement and stays
// unready.
func TestSASLSCRAMOverTLS(t *testing.T) {
	kafkatest.Skip(t)
	st, sc := e2e.StartSecure(t, map[string]string{"iov-producer": "producer-secret"},
		stack.Options{Partitions: 2, Topics: []string{telemetryTopic, eventsTopic, statusTopic, deadTopic}})
	tests := []struct {
		name, password string
		wantCode       codes.Code
	}{
		{"right password", "producer-secret", codes.OK},
		{"wrong password", "not-the-secret", codes.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, sc.SecureBootstrap(), st.RegistryURL())
			maps.Copy(cfg.Kafka.Properties, sc.ClientProperties("iov-producer", tt.password))
			cfg.Shutdown.DrainTimeout = 2 * time.Second
			var h *harness
			if tt.wantCode == codes.OK {
				h = start(t, cfg, st)
			} else {
				h = launch(t, cfg, st) // it never becomes ready: the broker refuses it
			}
			ctx := context.Background()
			msg := h.sim.NewMessage("VIN1", "vehicles/VIN1/events/door", 1, []byte(`{"seq":1}`))
			_, err := h.sim.Publish(ctx, msg)
			if code := status.Code(err); code != tt.wantCode {
				t.Fatalf("sync publish: %v, want %v", err, tt.wantCode)
			}
			if tt.wantCode != codes.OK {
				if code, body := readiness(t, h.app.HTTPAddr()); code != http.StatusServiceUnavailable {
					t.Fatalf("/ready = %d %q with a wrong password, want 503", code, body)
				}
				return
			}
			ids := messageIDs(t, st, 1, eventsTopic)
			if ids[msg.GetId()] != 1 {
				t.Fatalf("events topic holds %v, want message %s once", ids, msg.GetId())
			}
		})
	}
}
