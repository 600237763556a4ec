// Package app wires the exhook producer: config -> registry encoders -> Kafka sink -> gRPC
// HookProvider + ops HTTP, and runs it until its context ends, then drains.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riferrei/srclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/iov-platform/iov/kit/calltime"
	"github.com/iov-platform/iov/kit/kafkasink"
	"github.com/iov-platform/iov/kit/ops"
	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	exhookv3 "github.com/iov-platform/iov/proto/emqx/exhook/v3"
	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/services/exhook-producer/internal/callgate"
	"github.com/iov-platform/iov/services/exhook-producer/internal/config"
	"github.com/iov-platform/iov/services/exhook-producer/internal/h2streams"
	"github.com/iov-platform/iov/services/exhook-producer/internal/hook"
	"github.com/iov-platform/iov/services/exhook-producer/internal/hooktls"
	"github.com/iov-platform/iov/services/exhook-producer/internal/metrics"
	"github.com/iov-platform/iov/services/exhook-producer/internal/route"
	"github.com/iov-platform/iov/services/exhook-producer/internal/sink"
	"github.com/iov-platform/iov/services/exhook-producer/internal/spool"
	"github.com/iov-platform/iov/services/exhook-producer/internal/stackshrink"
)

// App is a wired, listening producer.
type App struct {
	cfg     *config.Config
	log     *slog.Logger
	state   *ops.State
	ops     *ops.Server
	grpc    *connServers // one grpc.Server per EMQX connection (connserve.go)
	grpcLn  net.Listener
	hookTLS *hooktls.Server // nil when the hook listener is plaintext
	health  *health.Server
	sink    *kafkasink.Sink
	metrics *metrics.Metrics
	schemas *schemaGate

	healthMu sync.Mutex // orders readiness changes with their gRPC health mirror

	// The spool, nil unless a route uses it or spool.dir is set (then async records Kafka
	// has not acknowledged at shutdown are kept in it).
	spool     *spool.Spool
	spoolSink *kafkasink.Sink
	shipper   *spool.Shipper
}

// New connects to the registry (registering or looking up every schema), creates the Kafka
// producer, and binds both listeners. Nothing is served until Run.
func New(cfg *config.Config, log *slog.Logger) (_ *App, err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)
	a := &App{cfg: cfg, log: log, metrics: m, state: ops.NewState(m.Ready, ops.CondStarting), health: health.NewServer()}
	defer func() {
		if err != nil {
			a.closeListeners()
		}
	}()

	router, err := route.New(cfg.Routes)
	if err != nil {
		return nil, err
	}
	registryHTTP, err := cfg.Registry.HTTPClient()
	if err != nil {
		return nil, err
	}
	registry := serde.NewRegistry(cfg.Registry.URL, cfg.Registry.Username, cfg.Registry.Password, srclient.WithClient(registryHTTP))
	a.schemas = newSchemaGate(registry, cfg.Registry.AutoRegister, a.state, log)
	messageDef, err := schemas.Latest(schemas.VehicleMessageName)
	if err != nil {
		return nil, err
	}
	statusDef, err := schemas.Latest(schemas.ClientEventName)
	if err != nil {
		return nil, err
	}
	encoders := map[string]hook.Encoder{}
	for _, r := range router.Routes() {
		if encoders[r.KafkaTopic] != nil {
			continue
		}
		enc, err := a.schemas.encoder(serde.TopicSubject(r.KafkaTopic), messageDef)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", r.Name, err)
		}
		encoders[r.KafkaTopic] = enc
	}
	statusEnc, err := a.schemas.encoder(serde.TopicSubject(cfg.Topics.Status), statusDef)
	if err != nil {
		return nil, fmt.Errorf("status topic: %w", err)
	}
	var commands *hook.Commands
	if c := cfg.Commands; c.Enabled {
		def, err := schemas.Latest(schemas.CommandStatusName)
		if err != nil {
			return nil, err
		}
		enc, err := a.schemas.encoder(serde.TopicSubject(c.StatusTopic), def)
		if err != nil {
			return nil, fmt.Errorf("command status topic: %w", err)
		}
		commands = &hook.Commands{TopicFilter: c.TopicFilter, ResponseFilter: c.ResponseFilter,
			VehicleSegment: c.VehicleSegment, CommandSegment: c.CommandSegment, Topic: c.StatusTopic, Encoder: enc}
	}

	if a.ops, err = ops.Listen(cfg.HTTP.ListenAddress, a.state, reg); err != nil {
		return nil, err
	}
	if err = a.listenHook(); err != nil {
		return nil, err
	}

	a.sink, err = sink.New(sink.Config{
		Name:             "main",
		BootstrapServers: cfg.Kafka.BootstrapServers,
		ClientID:         cfg.Kafka.ClientID,
		Properties:       cfg.Kafka.Properties,
		UnreachableAfter: cfg.Kafka.UnreachableAfter,
		OnState:          a.producerState(router.Uses(route.Async) || router.Uses(route.Sync)),
	}, log, m)
	if err != nil {
		return nil, err
	}
	if router.Uses(route.Spool) || cfg.Spool.Dir != "" { // also where async records are kept at shutdown
		if err := a.openSpool(cfg, m, reg); err != nil {
			a.sink.Close()
			return nil, err
		}
	}
	maxRecord, err := cfg.Kafka.MessageMaxBytes()
	if err != nil {
		a.closeSinks()
		return nil, err
	}
	topics := []string{cfg.Topics.DeadLetter, cfg.Topics.Status}
	for _, r := range router.Routes() {
		topics = append(topics, r.KafkaTopic)
	}
	if commands != nil {
		topics = append(topics, commands.Topic)
	}
	var spooler hook.Spooler
	if a.spool != nil {
		spooler = a.spool
	}
	hooks, err := hook.New(hook.Options{
		Router:           router,
		Producer:         a.sink,
		Spool:            spooler,
		Messages:         encoders,
		Status:           statusEnc,
		StatusTopic:      cfg.Topics.Status,
		DeadLetter:       cfg.Topics.DeadLetter,
		Commands:         commands,
		SyncTimeout:      cfg.Kafka.SyncTimeout,
		MaxPayloadBytes:  cfg.Kafka.MaxPayloadBytes,
		MaxRecordBytes:   maxRecord,
		TopicRecordBytes: a.topicRecordBytes(topics),
		HookScope:        cfg.Hooks.Scope,
		Metrics:          m,
		Log:              log,
	})
	if err != nil {
		a.closeSinks()
		return nil, err
	}

	// grpcprom's counters only, on every method but message.publish (hookInterceptors): its
	// handling-time histogram (a fourth label look-up and an observation per call) is left out,
	// as grpc_server_call_seconds (kit/calltime) measures a call's time in the server.
	srvMetrics := grpcprom.NewServerMetrics()
	reg.MustRegister(srvMetrics)
	panics := prometheus.NewCounter(prometheus.CounterOpts{Name: "exhook_grpc_panics_total", Help: "Recovered panics in gRPC handlers."})
	reg.MustRegister(panics)
	serverOpts, creds, err := a.hookServerOptions()
	if err != nil {
		a.closeSinks()
		return nil, err
	}
	calls := calltime.New(reg)               // grpc_server_call_seconds
	workers, perConn := stackshrink.Off(), 0 // one per call a connection runs (connServerOptions)
	if workers {
		perConn = cfg.GRPC.MaxRunningCalls
	}
	log.Info("grpc stream workers", "per_connection", perConn, "stack_shrinking_off", workers)
	newServer := func(count *h2streams.Counter, gate *callgate.Gate) *grpc.Server {
		srv := grpc.NewServer(append(connServerOptions(serverOpts, creds, count, calls, gate, workers),
			grpc.ChainUnaryInterceptor(hookInterceptors(srvMetrics, m.PublishCalls, func(p any) error {
				panics.Inc()
				log.Error("panic in hook handler", "panic", p)
				return status.Error(codes.Internal, "internal error")
			})...),
		)...)
		exhookv2.RegisterHookProviderServer(srv, hooks)      // EMQX 5.0-5.8
		exhookv3.RegisterHookProviderServer(srv, hooks.V3()) // EMQX 5.9+
		healthpb.RegisterHealthServer(srv, a.health)
		reflection.Register(srv)
		return srv
	}
	proto := newServer(new(h2streams.Counter), nil) // never serves: names the methods for the metrics
	srvMetrics.InitializeMetrics(withoutPublish{proto})
	proto.Stop()
	a.grpc = newConnServers(cfg.GRPC.MaxRunningCalls, newServer)
	a.grpc.pastLimit = m.CallsPastLimit.Inc
	return a, nil
}

// openSpool opens the durable spool and its shipper. The shipper has its own producer that
// retries transient failures forever (message.timeout.ms=0): the spool, not a timeout,
// decides how long a record may wait.
func (a *App) openSpool(cfg *config.Config, m *metrics.Metrics, reg prometheus.Registerer) error {
	sp, err := spool.Open(spool.Options{
		Dir: cfg.Spool.Dir, MaxBytes: cfg.Spool.MaxBytes, WhenFull: cfg.Spool.WhenFull, SyncWait: cfg.Spool.SyncWait,
		Metrics: spool.NewMetrics(reg), Log: a.log.With("component", "spool"),
	})
	if err != nil {
		return err
	}
	props := map[string]string{}
	for k, v := range cfg.Kafka.Properties {
		props[k] = v
	}
	props["message.timeout.ms"] = "0"
	ss, err := sink.New(sink.Config{Name: "spool", BootstrapServers: cfg.Kafka.BootstrapServers, ClientID: cfg.Kafka.ClientID + "-spool",
		Properties: props, UnreachableAfter: cfg.Kafka.UnreachableAfter}, a.log.With("component", "spool-producer"), m)
	if err != nil {
		_ = sp.Close()
		return err
	}
	sh, err := spool.NewShipper(sp, ss, cfg.Topics.DeadLetter, a.log.With("component", "spool-shipper"))
	if err != nil {
		ss.Close()
		_ = sp.Close()
		return err
	}
	a.spool, a.spoolSink, a.shipper = sp, ss, sh
	return nil
}

// topicRecordBytes learns, within a few seconds, the largest record each topic takes (its
// max.message.bytes minus the batch header). Topics it cannot learn (Kafka unreachable,
// not created yet) are checked against message.max.bytes alone.
func (a *App) topicRecordBytes(topics []string) map[string]int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	limits, err := a.sink.TopicMaxMessageBytes(ctx, slices.Compact(slices.Sorted(slices.Values(topics))))
	if err != nil {
		a.log.Warn("topic record limits not known; checking records against message.max.bytes only", "err", err)
	}
	out := make(map[string]int, len(limits))
	for t, n := range limits {
		out[t] = n - kafkasink.BatchOverhead
	}
	return out
}

// Readiness conditions for the main Kafka producer's states.
const (
	condKafkaUnreachable = "kafka unreachable"
	condKafkaRecovering  = "kafka producer recovering from a fatal error"
	condKafkaFailed      = "kafka producer failed"
)

// producerState returns the main producer's state callback: it keeps readiness (and the
// gRPC health that mirrors it) false while the producer cannot deliver: while it replaces a
// fatal producer, after it failed to, and, with withReach, while no broker answers.
func (a *App) producerState(withReach bool) func(kafkasink.State) {
	return func(st kafkasink.State) {
		a.setConditions(map[string]bool{
			condKafkaUnreachable: withReach && st == kafkasink.StateUnreachable,
			condKafkaRecovering:  st == kafkasink.StateRecovering,
			condKafkaFailed:      st == kafkasink.StateFailed,
		})
	}
}

// setConditions updates readiness and mirrors it in gRPC health (ignored once draining
// called health.Shutdown).
func (a *App) setConditions(conds map[string]bool) {
	a.healthMu.Lock()
	defer a.healthMu.Unlock()
	for _, c := range slices.Sorted(maps.Keys(conds)) { // a stable order in /ready's reason
		a.state.Set(c, conds[c])
	}
	st := healthpb.HealthCheckResponse_SERVING
	if a.state.Reason() != "" {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	a.health.SetServingStatus("", st)
	a.health.SetServingStatus(exhookv2.HookProvider_ServiceDesc.ServiceName, st)
	a.health.SetServingStatus(exhookv3.HookProvider_ServiceDesc.ServiceName, st)
}

func (a *App) closeSinks() {
	a.sink.Close()
	if a.spool != nil {
		a.spoolSink.Close()
		_ = a.spool.Close()
	}
}

func (a *App) closeListeners() {
	a.closeHookTLS()
	if a.grpcLn != nil {
		_ = a.grpcLn.Close()
	}
	if a.ops != nil {
		_ = a.ops.Shutdown(context.Background())
	}
}

// KafkaState is the main Kafka producer's state (also in exhook_kafka_producer_state).
func (a *App) KafkaState() kafkasink.State { return a.sink.State() }

// GRPCAddr is the bound HookProvider address.
func (a *App) GRPCAddr() string { return a.grpcLn.Addr().String() }

// HTTPAddr is the bound ops address.
func (a *App) HTTPAddr() string { return a.ops.Addr() }

// Run serves until ctx ends, then drains: readiness 503 and gRPC health NOT_SERVING first,
// GracefulStop (bounded by the drain timeout) so in-flight hook calls finish, then Flush so
// every record EMQX was answered for reaches Kafka, then Close.
func (a *App) Run(ctx context.Context) error {
	errc := make(chan error, 3)
	shipCtx, stopShipper := context.WithCancel(context.Background())
	shipperDone := make(chan struct{})
	if a.shipper != nil {
		go func() {
			defer close(shipperDone)
			if err := a.shipper.Run(shipCtx); err != nil {
				errc <- err
			}
		}()
	} else {
		close(shipperDone)
	}
	go func() { errc <- a.ops.Serve() }()
	// Without autoRegister, wait (not ready, saying why) until every schema is registered.
	if err := a.schemas.wait(ctx); err != nil {
		a.log.Info("stopped before every schema was registered")
		_ = a.grpcLn.Close() // never served, so GracefulStop does not close it
		return a.drain(stopShipper, shipperDone)
	}
	go func() {
		if err := a.grpc.Serve(a.grpcLn); err != nil {
			errc <- fmt.Errorf("serve grpc: %w", err)
		}
	}()

	go func() {
		// Only a hint in the log: librdkafka keeps reconnecting and queues meanwhile, and
		// sync routes report failures to EMQX themselves.
		if err := a.sink.Ping(5 * time.Second); err != nil {
			a.log.Warn("kafka not reachable yet", "err", err)
		}
	}()
	a.setConditions(map[string]bool{ops.CondStarting: false})
	a.log.Info("exhook producer serving", "grpc", a.GRPCAddr(), "http", a.HTTPAddr(), "routes", len(a.cfg.Routes))

	var spoolFailed <-chan struct{}
	if a.spoolSink != nil {
		spoolFailed = a.spoolSink.Failed()
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		a.log.Error("server failed", "err", runErr)
	case <-a.sink.Failed():
		runErr = a.sink.Fatal()
		a.log.Error("kafka producer failed; stopping so that the process is restarted", "err", runErr)
	case <-spoolFailed:
		runErr = a.spoolSink.Fatal()
		a.log.Error("spool kafka producer failed; stopping so that the process is restarted", "err", runErr)
	}
	return errors.Join(runErr, a.drain(stopShipper, shipperDone))
}

// keepUnacknowledged closes the main producer, which still holds left records Kafka has not
// acknowledged: with a spool, the async ones (EMQX was told they were accepted) are appended
// to it, in order, and shipped after the restart; without one they are lost, and said so.
func (a *App) keepUnacknowledged(left int) error {
	if a.spool == nil {
		a.sink.Close()
		a.metrics.ShutdownRecords.WithLabelValues("lost").Add(float64(left))
		a.log.Error("records not acknowledged by kafka at shutdown are lost (set spool.dir to keep them)", "count", left)
		return fmt.Errorf("drain: %d records still unacknowledged by kafka at shutdown (lost; set spool.dir to keep them)", left)
	}
	recs, err := a.sink.Undelivered(5 * time.Second)
	if err != nil {
		a.log.Error("kafka producer did not hand back every record", "err", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	spilled := 0
	for _, rec := range recs {
		if aerr := a.spool.Append(ctx, spool.NewEntry(rec, time.Now().UnixMilli())); aerr != nil {
			err = errors.Join(err, fmt.Errorf("spill to spool: %w", aerr))
			break
		}
		spilled++
	}
	lost := len(recs) - spilled
	a.metrics.ShutdownRecords.WithLabelValues("spilled").Add(float64(spilled))
	a.metrics.ShutdownRecords.WithLabelValues("lost").Add(float64(lost))
	a.log.Warn("records not acknowledged by kafka at shutdown kept in the spool; shipped after the restart", "spilled", spilled, "lost", lost, "dir", a.cfg.Spool.Dir)
	if err != nil || lost > 0 {
		return fmt.Errorf("drain: %d of %d unacknowledged records not kept: %w", lost, len(recs), err)
	}
	return nil
}

func (a *App) drain(stopShipper context.CancelFunc, shipperDone <-chan struct{}) error {
	start := time.Now()
	deadline := start.Add(a.cfg.Shutdown.DrainTimeout)
	a.state.Set(ops.CondDraining, true)
	a.health.Shutdown()
	a.log.Info("draining", "timeout", a.cfg.Shutdown.DrainTimeout)

	// No new connections, then each EMQX connection gets its GOAWAY when no call is in
	// flight on it (EMQX <= 5.8.8 fails every call in flight at a GOAWAY), by half the
	// drain timeout at the latest; the calls finish, bounded by the drain timeout.
	_ = a.grpcLn.Close()
	if !a.grpc.Drain(start.Add(a.cfg.Shutdown.DrainTimeout/2), deadline) {
		a.log.Warn("grpc drain timed out; cancelling in-flight calls")
		a.grpc.Stop()
	}

	var err error
	if a.shipper != nil {
		// Hook calls are over: ship what the spool holds while there is time; whatever is
		// left stays on disk for the next start, so this is not an error.
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		if werr := a.shipper.WaitEmpty(ctx); werr != nil {
			a.log.Warn("spool not empty at shutdown; it will be shipped after restart", "err", werr)
		}
		cancel()
		stopShipper()
		<-shipperDone
		a.spoolSink.Flush(time.Second)
		a.spoolSink.Close()
	} else {
		stopShipper()
	}
	if left := a.sink.Flush(max(time.Until(deadline), time.Second)); left > 0 {
		err = errors.Join(err, a.keepUnacknowledged(left))
	} else {
		a.sink.Close()
	}
	if a.spool != nil {
		if cerr := a.spool.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close spool: %w", cerr))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = a.ops.Shutdown(ctx)
	a.closeHookTLS()
	a.log.Info("stopped", "drain", time.Since(start).Round(time.Millisecond))
	return err
}
