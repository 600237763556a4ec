package compatsr

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/twmb/franz-go/pkg/sr/srfake"
)

const (
	v1      = `{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}`
	withDef = `{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}`
	noDef   = `{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}`
	dropped = `{"type":"record","name":"R","fields":[]}`
	retyped = `{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`
)

func post(t *testing.T, h http.Handler, path, schema string) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"schema": schema})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)))
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s: %d %q: %v", path, rec.Code, rec.Body.String(), err)
	}
	return rec.Code, out
}

func put(t *testing.T, h http.Handler, path, body string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, path, bytes.NewReader([]byte(body))))
	if rec.Code != http.StatusOK {
		t.Fatalf("PUT %s: %d %s", path, rec.Code, rec.Body.String())
	}
}

func TestEnforcesTheSubjectLevel(t *testing.T) {
	tests := []struct {
		level, next string
		ok          bool
	}{
		{"BACKWARD", withDef, true},
		{"BACKWARD", noDef, false}, // new reader cannot read old data: b has no default
		{"BACKWARD", dropped, true},
		{"FORWARD", noDef, true},
		{"FORWARD", dropped, false}, // old reader cannot read new data: a is gone
		{"FULL", withDef, true},
		{"FULL", noDef, false},
		{"NONE", noDef, true},
	}
	for _, tt := range tests {
		t.Run(tt.level+" "+tt.next, func(t *testing.T) {
			fake := srfake.New()
			defer fake.Close()
			h := New(fake)
			if code, out := post(t, h, "/subjects/s-value/versions", v1); code != http.StatusOK {
				t.Fatalf("first version refused: %d %v", code, out)
			}
			put(t, h, "/config/s-value", `{"compatibility":"`+tt.level+`"}`)
			code, out := post(t, h, "/compatibility/subjects/s-value/versions/latest", tt.next)
			if code != http.StatusOK || out["is_compatible"] != tt.ok {
				t.Fatalf("check: %d %v, want is_compatible %v", code, out, tt.ok)
			}
			code, out = post(t, h, "/subjects/s-value/versions", tt.next)
			if tt.ok && code != http.StatusOK || !tt.ok && (code != http.StatusConflict || out["error_code"] != float64(409)) {
				t.Fatalf("register: %d %v, want accepted %v", code, out, tt.ok)
			}
		})
	}
}

func TestFirstVersionAndRegisterOnly(t *testing.T) {
	fake := srfake.New()
	defer fake.Close()
	h := New(fake)
	h.RegisterOnly = true
	if code, _ := post(t, h, "/subjects/s-value/versions", noDef); code != http.StatusOK {
		t.Fatalf("a subject without versions must accept anything, got %d", code)
	}
	if _, out := post(t, h, "/compatibility/subjects/s-value/versions/latest", dropped+" "); out["is_compatible"] != true {
		t.Fatalf("RegisterOnly check = %v, want srfake's stub true", out)
	}
	if code, _ := post(t, h, "/subjects/s-value/versions", retyped); code != http.StatusConflict {
		t.Fatalf("RegisterOnly registration of an incompatible version = %d, want 409", code)
	}
}
