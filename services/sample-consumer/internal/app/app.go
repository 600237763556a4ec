// Package app wires the sample consumer: config -> registry decoder -> Kafka engine running
// the application's handler, plus the ops HTTP server, and runs it until its context ends.
package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riferrei/srclient"

	"github.com/iov-platform/iov/kit/ops"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/services/sample-consumer/internal/config"
	"github.com/iov-platform/iov/services/sample-consumer/internal/consume"
	"github.com/iov-platform/iov/services/sample-consumer/internal/engine"
	"github.com/iov-platform/iov/services/sample-consumer/internal/metrics"
)

// App is a wired consumer with its ops listener bound.
type App struct {
	cfg    *config.Config
	log    *slog.Logger
	state  *ops.State
	ops    *ops.Server
	engine *engine.Engine
}

// New binds the ops listener and creates the Kafka clients; nothing is consumed until Run.
// The registry is first asked when the first record arrives.
func New(cfg *config.Config, log *slog.Logger, h consume.Handler) (*App, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)
	a := &App{cfg: cfg, log: log, state: ops.NewState(m.Ready, ops.CondStarting)}

	registryHTTP, err := cfg.Registry.HTTPClient()
	if err != nil {
		return nil, err
	}
	dec, err := consume.NewDecoder(serde.NewRegistry(cfg.Registry.URL, cfg.Registry.Username, cfg.Registry.Password, srclient.WithClient(registryHTTP)))
	if err != nil {
		return nil, err
	}
	if a.ops, err = ops.Listen(cfg.HTTP.ListenAddress, a.state, reg); err != nil {
		return nil, err
	}
	a.engine, err = engine.New(engine.Options{
		Kafka:   cfg.Kafka,
		Retry:   cfg.Handler,
		Decoder: dec,
		Handler: h,
		Log:     log,
		Metrics: m,
	})
	if err != nil {
		_ = a.ops.Shutdown(context.Background())
		return nil, err
	}
	return a, nil
}

// HTTPAddr is the bound ops address.
func (a *App) HTTPAddr() string { return a.ops.Addr() }

// Run consumes until ctx ends (nil after a clean drain) or a record cannot be finished (an
// error naming the record). Readiness turns 503 as soon as ctx ends, while the record in hand
// is finished and the offsets are committed.
func (a *App) Run(ctx context.Context) error {
	start := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		if err := a.ops.Serve(); err != nil {
			cancel(err)
		}
	}()
	stopWatch := context.AfterFunc(ctx, func() { a.state.Set(ops.CondDraining, true) })
	defer stopWatch()

	a.state.Set(ops.CondStarting, false)
	a.log.Info("sample consumer running", "http", a.HTTPAddr(), "group", a.cfg.Kafka.GroupID, "max_attempts", a.cfg.Handler.MaxAttempts)
	err := a.engine.Run(ctx)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = errors.Join(cause, err)
	}
	if err != nil {
		a.state.Set("stopped: "+err.Error(), true)
	} else {
		a.state.Set("stopped", true)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	_ = a.ops.Shutdown(sctx)
	a.log.Info("stopped", "uptime", time.Since(start).Round(time.Millisecond), "clean", err == nil)
	return err
}
