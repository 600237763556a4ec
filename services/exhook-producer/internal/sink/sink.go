// Package sink holds the exhook producer's Kafka producer settings: a kafkasink (idempotent,
// acks=all) with murmur2 partitioning on the vehicle key (the same partition a Java client
// picks), so records of one vehicle stay in order on one partition.
package sink

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iov-platform/iov/kit/kafkalog"
	"github.com/iov-platform/iov/kit/kafkasink"
	"github.com/iov-platform/iov/services/exhook-producer/internal/metrics"
)

// Config is what the sink needs from the service config.
type Config struct {
	// Name labels the producer's metrics: main | spool.
	Name             string
	BootstrapServers string
	ClientID         string
	Properties       map[string]string
	// UnreachableAfter: see kafkasink.Options.
	UnreachableAfter time.Duration
	// OnState, if set, is told each new producer state.
	OnState func(kafkasink.State)
}

// DefaultMaxQueued is librdkafka's queue.buffering.max.messages unless kafka.properties
// sets it: the records a producer holds unacknowledged (ConfigMap).
const DefaultMaxQueued = 50000

// ConfigMap is the librdkafka configuration of the producer: the service's defaults, then
// kafka.properties, then, whatever the properties say, what the delivery semantics rely on
// (config validation refuses weaker values; this pins them again): murmur2 partitioning on
// the key, in produce order (librdkafka's fifo default), a report for every record, retries until message.timeout.ms,
// no transactions, and the bootstrap servers and client id from their fields (aliases
// removed, so that which name wins is never undefined). kafkasink pins idempotence and
// acks=all.
func ConfigMap(cfg Config) kafka.ConfigMap {
	// queue.buffering.max.messages 50 000 (librdkafka's default 100 000): the records
	// answered and not yet acknowledged, the async backlog while Kafka is away. Each costs
	// ~2.2 KiB of resident memory (Go's copy for a re-send and its GC headroom, librdkafka's
	// copy); at 100 000 a Kafka outage took the producer to 268 MiB, past the chart's 256 MiB
	// limit (README, "Async backlog while Kafka is away"). Past the bound, calls wait for
	// room until their deadline.
	cm := kafka.ConfigMap{"compression.type": "lz4", "queue.buffering.max.messages": DefaultMaxQueued}
	// linger.ms 20: fuller and fewer ProduceRequests, less CPU per message; a sync call
	// waits up to that much longer (the producer's README, "Fourth round").
	if _, ok := cfg.Properties["queue.buffering.max.ms"]; !ok { // linger.ms' alias
		cm["linger.ms"] = 20
	}
	for k, v := range cfg.Properties {
		cm[k] = v
	}
	// queuing.strategy is removed rather than pinned: fifo is librdkafka's default, and
	// setting the deprecated property at all logs a CONFWARN at every start.
	for _, k := range []string{"metadata.broker.list", "retries", "message.send.max.retries", "transactional.id", "queuing.strategy"} {
		delete(cm, k)
	}
	cm["bootstrap.servers"] = cfg.BootstrapServers
	cm["client.id"] = cfg.ClientID
	cm["partitioner"] = "murmur2_random"
	cm["delivery.report.only.error"] = false
	return cm
}

// New creates the producer and starts its event loop.
func New(cfg Config, log *slog.Logger, m *metrics.Metrics) (*kafkasink.Sink, error) {
	cm := ConfigMap(cfg)
	limit, err := strconv.Atoi(fmt.Sprint(cm["queue.buffering.max.messages"]))
	if err != nil {
		return nil, fmt.Errorf("kafka.properties queue.buffering.max.messages: %w", err)
	}
	s, err := kafkasink.New(cm, kafkasink.Options{
		Log: log,
		Metrics: kafkasink.Metrics{Deliveries: m.Deliveries, Errors: m.ProducerErrors,
			State:             m.ProducerState.MustCurryWith(prometheus.Labels{"producer": cfg.Name}),
			Recoveries:        m.ProducerRecoveries.WithLabelValues(cfg.Name),
			IdempotenceResets: m.ProducerResets.WithLabelValues(cfg.Name)},
		Logs:             kafkalog.Options{Verbose: true},
		UnreachableAfter: cfg.UnreachableAfter,
		OnState:          cfg.OnState,
	})
	if err != nil {
		return nil, err
	}
	m.ProducerQueue.Watch(cfg.Name, s.Queued, limit)
	return s, nil
}
