// Package ops serves every service's operational HTTP endpoints: /metrics (Prometheus),
// /healthz (liveness: 200 while the process runs) and /ready (readiness: 200 only while no
// readiness condition is pending, 503 with the pending conditions otherwise).
package ops

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Conditions every service uses.
const (
	CondStarting = "starting"
	CondDraining = "draining"
)

// State is ready when none of its conditions is pending.
type State struct {
	mu      sync.Mutex
	order   []string // conditions in the order first seen, for stable messages
	pending map[string]bool
	gauge   prometheus.Gauge
}

// NewState starts with conds pending; g (optional) mirrors readiness as 1 or 0.
func NewState(g prometheus.Gauge, conds ...string) *State {
	s := &State{gauge: g, pending: map[string]bool{}}
	for _, c := range conds {
		s.set(c, true)
	}
	s.update()
	return s
}

// Set marks cond pending (true) or cleared (false).
func (s *State) Set(cond string, pending bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set(cond, pending)
	s.update()
}

func (s *State) set(cond string, pending bool) {
	if _, seen := s.pending[cond]; !seen {
		s.order = append(s.order, cond)
	}
	s.pending[cond] = pending
}

func (s *State) update() {
	if s.gauge == nil {
		return
	}
	if s.reasonLocked() == "" {
		s.gauge.Set(1)
	} else {
		s.gauge.Set(0)
	}
}

// Reason returns "" when ready, else the pending conditions.
func (s *State) Reason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reasonLocked()
}

func (s *State) reasonLocked() string {
	var out []string
	for _, c := range s.order {
		if s.pending[c] {
			out = append(out, c)
		}
	}
	return strings.Join(out, ", ")
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
