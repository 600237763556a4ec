package evolve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/iov-platform/iov/schemas"
)

// strictRegistry is srfake made to refuse what a Confluent registry refuses. srfake accepts
// every schema and answers every compatibility check with true; Confluent's Schema Registry
// (docs: "Schema Registry API Reference") instead answers POST
// /compatibility/subjects/{s}/versions/latest with {"is_compatible": false} and refuses POST
// /subjects/{s}/versions with HTTP 409, error_code 409 ("Schema being registered is
// incompatible with an earlier schema for subject ..."). This wrapper models exactly that, for
// NONE, BACKWARD, FORWARD and FULL against the latest version (the transitive levels are not
// modelled), deciding with Avro schema resolution (schemas.CheckBackward). With check false
// the compatibility endpoint stays srfake's always-true stub, so that only registration
// refuses, as when the registry changed between a CI check and the register step.
type strictRegistry struct {
	fake  *srfake.Registry
	check bool
	url   string
}

func newStrictRegistry(t *testing.T, check bool) *strictRegistry {
	t.Helper()
	s := &strictRegistry{fake: srfake.New(), check: check}
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		srv.Close()
		s.fake.Close()
	})
	s.url = srv.URL
	return s
}

func (s *strictRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	var subject string
	var register bool
	switch {
	case req.Method == http.MethodPost && len(parts) == 3 && parts[0] == "subjects" && parts[2] == "versions":
		subject, register = parts[1], true
	case req.Method == http.MethodPost && len(parts) == 5 && parts[0] == "compatibility" && s.check:
		subject = parts[2]
	default:
		s.fake.Handler().ServeHTTP(w, req)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	var proposed struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(body, &proposed); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	compatible, err := s.compatible(subject, proposed.Schema)
	switch {
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	case register && !compatible:
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		w.WriteHeader(http.StatusConflict)
		_ = json.NewEncoder(w).Encode(map[string]any{"error_code": 409,
			"message": fmt.Sprintf("Schema being registered is incompatible with an earlier schema for subject %q", subject)})
	case register:
		s.fake.Handler().ServeHTTP(w, req)
	default:
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		_ = json.NewEncoder(w).Encode(map[string]bool{"is_compatible": compatible})
	}
}

// compatible decides like the registry: the subject's level against its latest version; a
// subject without versions accepts anything.
func (s *strictRegistry) compatible(subject, proposed string) (bool, error) {
	var latest struct {
		Schema string `json:"schema"`
	}
	if code := s.get("/subjects/"+subject+"/versions/latest", &latest); code == http.StatusNotFound {
		return true, nil
	} else if code != http.StatusOK {
		return false, fmt.Errorf("latest of %s: HTTP %d", subject, code)
	}
	var cfg struct {
		Level string `json:"compatibilityLevel"`
	}
	if code := s.get("/config/"+subject+"?defaultToGlobal=true", &cfg); code != http.StatusOK {
		return false, fmt.Errorf("config of %s: HTTP %d", subject, code)
	}
	next := schemas.Definition{Name: "proposed", Version: 2, Text: proposed}
	prev := schemas.Definition{Name: "latest", Version: 1, Text: latest.Schema}
	switch cfg.Level {
	case "NONE":
		return true, nil
	case "BACKWARD":
		return schemas.CheckBackward(next, prev) == nil, nil
	case "FORWARD":
		return schemas.CheckBackward(prev, next) == nil, nil
	case "FULL":
		return schemas.CheckBackward(next, prev) == nil && schemas.CheckBackward(prev, next) == nil, nil
	}
	return false, fmt.Errorf("level %s not modelled", cfg.Level)
}

func (s *strictRegistry) get(path string, v any) int {
	rec := httptest.NewRecorder()
	s.fake.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
			return http.StatusInternalServerError
		}
	}
	return rec.Code
}
