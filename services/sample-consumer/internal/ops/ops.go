// Package ops serves the operational HTTP endpoints: /metrics, /healthz (liveness) and
// /ready (readiness, 503 while starting, draining or broken).
package ops

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// State is the readiness state shared with the rest of the service.
type State struct {
	mu     sync.Mutex
	reason string // why not ready; "" when ready
	gauge  prometheus.Gauge
}

// NewState starts not ready ("starting").
func NewState(g prometheus.Gauge) *State {
	s := &State{gauge: g}
	s.NotReady("starting")
	return s
}

// Ready marks the service ready.
func (s *State) Ready() { s.set("") }

// NotReady marks the service not ready for reason.
func (s *State) NotReady(reason string) { s.set(reason) }

func (s *State) set(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reason = reason
	if s.gauge != nil {
		if reason == "" {
			s.gauge.Set(1)
		} else {
			s.gauge.Set(0)
		}
	}
}

// Reason returns "" when ready.
func (s *State) Reason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

// Server is the ops HTTP server.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen binds addr and prepares the handlers; Serve starts it.
func Listen(addr string, state *State, gatherer prometheus.Gatherer) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen http %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if reason := state.Reason(); reason != "" {
			http.Error(w, "not ready: "+reason, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve blocks until Shutdown.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// Shutdown stops the server.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }
