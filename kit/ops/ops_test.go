package ops

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestReadinessFollowsConditions(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "ready"})
	reg.MustRegister(g)
	st := NewState(g, CondStarting, "mqtt not connected")
	srv, err := Listen("127.0.0.1:0", st, reg)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Shutdown(t.Context())

	check := func(path string, wantCode int, wantBody string) {
		t.Helper()
		resp, err := http.Get("http://" + srv.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantCode || !strings.Contains(string(body), wantBody) {
			t.Fatalf("GET %s = %d %q, want %d containing %q", path, resp.StatusCode, body, wantCode, wantBody)
		}
	}
	check("/ready", 503, "starting, mqtt not connected")
	check("/healthz", 200, "ok")
	if testutil.ToFloat64(g) != 0 {
		t.Fatal("gauge 1 while starting")
	}
	st.Set(CondStarting, false)
	check("/ready", 503, "not ready: mqtt not connected")
	st.Set("mqtt not connected", false)
	check("/ready", 200, "ready")
	check("/metrics", 200, "ready 1")
	st.Set(CondDraining, true)
	check("/ready", 503, "draining")
	check("/healthz", 200, "ok")
	if testutil.ToFloat64(g) != 0 {
		t.Fatal("gauge 1 while draining")
	}
}
