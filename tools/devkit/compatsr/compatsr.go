// Package compatsr makes franz-go's srfake refuse what a Confluent schema registry refuses.
//
// srfake accepts every schema and answers every compatibility check with true. Confluent's
// Schema Registry (docs: "Schema Registry API Reference") instead answers POST
// /compatibility/subjects/{s}/versions/{v} with {"is_compatible": false} and refuses POST
// /subjects/{s}/versions with HTTP 409, error_code 409 ("Schema being registered is
// incompatible with an earlier schema for subject ..."). Handler models exactly that, for the
// levels NONE, BACKWARD, FORWARD and FULL against the subject's latest version (the transitive
// levels answer HTTP 500: not modelled), deciding with Avro schema resolution
// (schemas.CheckBackward). Everything else is srfake's. For tests and the dev stack only: it
// shows what this model says, not what a real registry does.
package compatsr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/iov-platform/iov/schemas"
)

// Handler serves an srfake registry with compatibility enforced.
type Handler struct {
	fake *srfake.Registry
	// RegisterOnly keeps the compatibility endpoint srfake's always-true stub, so that only
	// registration refuses, as when the registry changed between a CI check and the register
	// step.
	RegisterOnly bool
}

// New wraps fake.
func New(fake *srfake.Registry) *Handler { return &Handler{fake: fake} }

func (s *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	var subject string
	var register bool
	switch {
	case req.Method == http.MethodPost && len(parts) == 3 && parts[0] == "subjects" && parts[2] == "versions":
		subject, register = parts[1], true
	case req.Method == http.MethodPost && len(parts) >= 4 && parts[0] == "compatibility" && parts[1] == "subjects" && !s.RegisterOnly:
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
func (s *Handler) compatible(subject, proposed string) (bool, error) {
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
	return false, fmt.Errorf("compatibility level %s is not modelled", cfg.Level)
}

func (s *Handler) get(path string, v any) int {
	rec := httptest.NewRecorder()
	s.fake.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
			return http.StatusInternalServerError
		}
	}
	return rec.Code
}
