package consume_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/schematest"
	"github.com/iov-platform/iov/services/sample-consumer/internal/consume"
)

func logLines(t *testing.T, level slog.Level, recs ...consume.Record) []map[string]any {
	t.Helper()
	var buf bytes.Buffer
	h := consume.NewLogHandler(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level})))
	for _, r := range recs {
		if err := h.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestLogHandlerOneLinePerRecord(t *testing.T) {
	msg := schematest.VehicleMessage()
	msg.Payload = []byte(`{"speed":42,"note":"` + strings.Repeat("x", 300) + `"}`)
	reason := "normal"
	recs := []consume.Record{
		{Topic: "iov.vehicle.telemetry", Key: "VIN123", Value: &msg},
		{Topic: "iov.vehicle.status", Key: "VIN9", Value: &schemas.ClientEvent{Event: schemas.ClientDisconnected, VehicleID: "VIN9", Reason: &reason, OccurredAt: time.Now()}},
		{Topic: "other", Key: "VIN7", SchemaID: 12, Value: map[string]any{"km": 1.5}},
	}
	info := logLines(t, slog.LevelInfo, recs...)
	if len(info) != 3 {
		t.Fatalf("%d lines for 3 records", len(info))
	}
	if m := info[0]; m["msg"] != "vehicle message" || m["vehicle"] != "VIN123" || m["topic"] != "iov.vehicle.telemetry" ||
		m["route"] != "telemetry" || m["bytes"] != float64(len(msg.Payload)) || m["payload"] != nil {
		t.Fatalf("info line %v", m)
	}
	if m := info[1]; m["msg"] != "client event" || m["vehicle"] != "VIN9" || m["event"] != "DISCONNECTED" || m["reason"] != "normal" {
		t.Fatalf("info line %v", m)
	}
	if m := info[2]; m["vehicle"] != "VIN7" || m["schema_id"] != float64(12) {
		t.Fatalf("info line %v", m)
	}

	debug := logLines(t, slog.LevelDebug, recs[0])
	p, _ := debug[0]["payload"].(string)
	if len(debug) != 1 || !strings.HasPrefix(p, `{"speed":42`) || !strings.HasSuffix(p, "…") || len(p) > 200 {
		t.Fatalf("debug line %v", debug[0])
	}
}
