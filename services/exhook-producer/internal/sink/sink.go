// Package sink holds the exhook producer's Kafka producer settings: a kafkasink (idempotent,
// acks=all) with murmur2 partitioning on the vehicle key (the same partition a Java client
// picks), so records of one vehicle stay in order on one partition.
package sink

import (
	"log/slog"
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

// New creates the producer and starts its event loop. kafka.properties may change the
// defaults here, not the delivery semantics (config validation rejects weaker values, and
// kafkasink enforces them).
func New(cfg Config, log *slog.Logger, m *metrics.Metrics) (*kafkasink.Sink, error) {
	cm := kafka.ConfigMap{
		"bootstrap.servers": cfg.BootstrapServers,
		"client.id":         cfg.ClientID,
		"linger.ms":         5,
		"compression.type":  "lz4",
		"partitioner":       "murmur2_random",
	}
	for k, v := range cfg.Properties {
		cm[k] = v
	}
	cm["go.delivery.report.fields"] = "key"
	return kafkasink.New(cm, kafkasink.Options{
		Log: log,
		Metrics: kafkasink.Metrics{Deliveries: m.Deliveries, Errors: m.ProducerErrors,
			State:      m.ProducerState.MustCurryWith(prometheus.Labels{"producer": cfg.Name}),
			Recoveries: m.ProducerRecoveries.WithLabelValues(cfg.Name)},
		Logs:             kafkalog.Options{Verbose: true},
		UnreachableAfter: cfg.UnreachableAfter,
		OnState:          cfg.OnState,
	})
}
