package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	var buf bytes.Buffer
	log, err := New("warn", "json", "svc", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON line: %q", buf.String())
	}
	if rec["msg"] != "shown" || rec["service"] != "svc" || rec["level"] != "WARN" {
		t.Fatalf("record %v", rec)
	}
	buf.Reset()
	text, err := New("debug", "text", "svc", &buf)
	if err != nil {
		t.Fatal(err)
	}
	text.Debug("hello")
	if !strings.Contains(buf.String(), "msg=hello") {
		t.Fatalf("text output %q", buf.String())
	}
	for _, bad := range [][2]string{{"loud", "json"}, {"info", "xml"}} {
		if _, err := New(bad[0], bad[1], "svc", &buf); err == nil {
			t.Errorf("New(%q, %q) accepted", bad[0], bad[1])
		}
	}
}
