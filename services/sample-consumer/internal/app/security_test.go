package app_test

import (
	"maps"
	"testing"

	"github.com/iov-platform/iov/tools/devkit/e2e"
	"github.com/iov-platform/iov/tools/devkit/kafkacluster/kafkatest"
)

// TestSASLSCRAMOverTLS: the consumer configured with security.protocol / sasl.* /
// ssl.ca.location joins its group on a real broker's SASL_SSL (SCRAM-SHA-512) listener and
// handles every record once, in order.
func TestSASLSCRAMOverTLS(t *testing.T) {
	kafkatest.Skip(t)
	st, sc := e2e.StartSecure(t, map[string]string{"iov-consumer": "consumer-secret"}, envStackOptions())
	e := newEnvWith(t, st)
	recs := e.oneVehicle(t, "VIN1", 20)
	cfg := e.config(t, "g-sasl", "", 3)
	cfg.Kafka.BootstrapServers = sc.SecureBootstrap()
	maps.Copy(cfg.Kafka.Properties, sc.ClientProperties("iov-consumer", "consumer-secret"))
	h := &recorder{}
	c := e.start(t, cfg, h)
	h.waitCalls(t, len(recs))
	calls := h.settle()
	if len(calls) != len(recs) {
		t.Fatalf("handler called %d times for %d records", len(calls), len(recs))
	}
	for i, got := range calls {
		if posOfRec(got) != posOf(recs[i]) {
			t.Fatalf("call %d handled %v, want %v", i, posOfRec(got), posOf(recs[i]))
		}
	}
	if err := c.stop(t); err != nil {
		t.Fatalf("clean stop returned %v", err)
	}
}
