// Package sink holds the settings of the downlink's Kafka producer (CommandStatus events and
// dead letters): a kafkasink (idempotent, acks=all) with murmur2_random partitioning on the
// vehicle key — the partitioner of the exhook producer and of Java clients — so that every
// status event of a vehicle lands on the same partition as the broker's DELIVERED/ACKED
// events.
package sink

import (
	"log/slog"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iov-platform/iov/kit/kafkalog"
	"github.com/iov-platform/iov/kit/kafkasink"
	"github.com/iov-platform/iov/services/downlink/internal/config"
	"github.com/iov-platform/iov/services/downlink/internal/metrics"
)

// consumerOnly are librdkafka consumer settings that kafka.properties may carry for the
// consumer; the producer is not given them.
var consumerOnly = []string{
	"enable.auto.commit", "enable.auto.offset.store", "auto.offset.reset", "auto.commit.interval.ms",
	"partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms",
	"group.instance.id", "group.protocol", "isolation.level", "fetch.wait.max.ms", "fetch.min.bytes",
	"fetch.max.bytes", "max.partition.fetch.bytes", "queued.min.messages", "queued.max.messages.kbytes",
	"enable.partition.eof", "check.crcs",
}

// New creates the producer and starts its event loop.
func New(k config.Kafka, log *slog.Logger, m *metrics.Metrics) (*kafkasink.Sink, error) {
	cm := kafka.ConfigMap{
		"client.id":          "iov-downlink",
		"linger.ms":          1,
		"compression.type":   "lz4",
		"message.timeout.ms": 30000,
	}
	for key, v := range k.Properties {
		cm[key] = v
	}
	for _, key := range consumerOnly {
		delete(cm, key)
	}
	for key, v := range config.ProducerProtected {
		cm[key] = v
	}
	cm["bootstrap.servers"] = k.BootstrapServers
	return kafkasink.New(cm, kafkasink.Options{
		Log: log,
		Metrics: kafkasink.Metrics{Errors: m.ClientErrors.MustCurryWith(prometheus.Labels{"client": "producer"}),
			IdempotenceResets: m.ProducerResets},
		Logs: kafkalog.Options{Client: "producer", QuietTags: []string{"CONFWARN"}},
	})
}
