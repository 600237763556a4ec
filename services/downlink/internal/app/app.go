// Package app wires the downlink: config -> registry (CommandStatus encoder) -> Kafka
// producer, MQTT connection and consumer group -> processor, plus the ops HTTP server; and
// runs it until its context ends, then drains.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riferrei/srclient"

	"github.com/iov-platform/iov/kit/kafkasink"
	"github.com/iov-platform/iov/kit/ops"
	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/services/downlink/internal/config"
	"github.com/iov-platform/iov/services/downlink/internal/engine"
	"github.com/iov-platform/iov/services/downlink/internal/metrics"
	"github.com/iov-platform/iov/services/downlink/internal/mqttpub"
	"github.com/iov-platform/iov/services/downlink/internal/process"
	"github.com/iov-platform/iov/services/downlink/internal/sink"
)

// Readiness conditions of the downlink, besides ops.CondDraining.
const (
	condMQTT    = "mqtt not connected"
	condJoined  = "consumer has not joined its group"
	condStopped = "stopped"
)

// App is a wired downlink with its ops listener bound.
type App struct {
	cfg     *config.Config
	log     *slog.Logger
	state   *ops.State
	ops     *ops.Server
	sink    *kafkasink.Sink
	mqtt    *mqttpub.Publisher
	engine  *engine.Engine
	metrics *metrics.Metrics
}

// New registers (or looks up) the CommandStatus schema, binds the ops listener, creates the
// Kafka clients and starts connecting to EMQX. Nothing is consumed until Run.
func New(cfg *config.Config, log *slog.Logger) (_ *App, err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)
	a := &App{cfg: cfg, log: log, metrics: m, state: ops.NewState(m.Ready, condMQTT, condJoined)}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()

	registryHTTP, err := cfg.Registry.HTTPClient()
	if err != nil {
		return nil, err
	}
	registry := serde.NewRegistry(cfg.Registry.URL, cfg.Registry.Username, cfg.Registry.Password, srclient.WithClient(registryHTTP))
	statusEnc, err := serde.NewEncoder(registry, serde.TopicSubject(cfg.Kafka.StatusTopic),
		schemas.MustLatest(schemas.CommandStatusName), cfg.Registry.AutoRegister)
	if err != nil {
		return nil, fmt.Errorf("command status topic: %w", err)
	}

	if a.ops, err = ops.Listen(cfg.HTTP.ListenAddress, a.state, reg); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = a.ops.Shutdown(context.Background()) })

	if a.sink, err = sink.New(cfg.Kafka, log.With("component", "producer"), m); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, a.sink.Close)

	a.mqtt, err = mqttpub.Start(mqttpub.Options{
		Config:   cfg.MQTT,
		Log:      log,
		Metrics:  m,
		OnChange: func(up bool) { a.state.Set(condMQTT, !up) },
	})
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = a.mqtt.Disconnect(ctx)
	})

	proc, err := process.New(process.Options{
		Registry:      registry,
		StatusEncoder: statusEnc,
		Producer:      a.sink,
		Publisher:     a.mqtt,
		Kafka:         cfg.Kafka,
		MQTT:          cfg.MQTT,
		Log:           log,
		Metrics:       m,
	})
	if err != nil {
		return nil, err
	}
	a.engine, err = engine.New(engine.Options{
		Kafka:    cfg.Kafka,
		Handler:  proc,
		Log:      log,
		Metrics:  m,
		OnJoined: func() { a.state.Set(condJoined, false) },
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// HTTPAddr is the bound ops address.
func (a *App) HTTPAddr() string { return a.ops.Addr() }

// Run consumes until ctx ends (nil after a clean drain) or a command cannot be finished (an
// error naming the record). When ctx ends: readiness turns 503, no new record is taken, the
// command in hand is finished (bounded by shutdown.drainTimeout), the producer is flushed,
// offsets are committed, and the MQTT connection is closed with DISCONNECT.
func (a *App) Run(ctx context.Context) error {
	start := time.Now()
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		if err := a.ops.Serve(); err != nil {
			cancel(err)
		}
	}()
	// The command in hand may finish after ctx ends, until the drain deadline.
	handlerCtx, cancelHandler := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandler()
	var drainTimer atomic.Pointer[time.Timer]
	stopWatch := context.AfterFunc(runCtx, func() {
		a.state.Set(ops.CondDraining, true)
		a.log.Info("draining", "timeout", a.cfg.Shutdown.DrainTimeout)
		drainTimer.Store(time.AfterFunc(a.cfg.Shutdown.DrainTimeout, cancelHandler))
	})
	defer func() {
		stopWatch()
		if t := drainTimer.Load(); t != nil {
			t.Stop()
		}
	}()

	a.log.Info("downlink running", "http", a.HTTPAddr(), "group", a.cfg.Kafka.GroupID, "commands_topic", a.cfg.Kafka.CommandsTopic,
		"status_topic", a.cfg.Kafka.StatusTopic, "mqtt", a.cfg.MQTT.BrokerURL, "client_id", a.cfg.MQTT.ClientID)
	err := a.engine.Run(runCtx, handlerCtx) // commits and closes the consumer on return
	if cause := context.Cause(runCtx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = errors.Join(cause, err)
	}
	a.state.Set(condStopped, true)

	if left := a.sink.Flush(5 * time.Second); left > 0 {
		err = errors.Join(err, fmt.Errorf("drain: %d records still unacknowledged by kafka at shutdown", left))
	}
	a.sink.Close()
	dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
	if derr := a.mqtt.Disconnect(dctx); derr != nil {
		a.log.Warn("mqtt disconnect", "err", derr)
	}
	dcancel()
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	_ = a.ops.Shutdown(sctx)
	a.log.Info("stopped", "uptime", time.Since(start).Round(time.Millisecond), "clean", err == nil)
	return err
}
