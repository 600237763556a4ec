package sink

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/iov-platform/iov/kit/kafkasink"
	"github.com/iov-platform/iov/services/exhook-producer/internal/metrics"
)

func TestConfigMapPinsTheDeliverySemantics(t *testing.T) {
	base := Config{BootstrapServers: "k:9092", ClientID: "exhook"}
	tests := []struct {
		name  string
		props map[string]string
		want  kafka.ConfigMap // settings that must hold
		gone  []string        // settings that must not be there
	}{
		{"defaults", nil,
			kafka.ConfigMap{"bootstrap.servers": "k:9092", "client.id": "exhook", "partitioner": "murmur2_random",
				"linger.ms": 20, "compression.type": "lz4", "delivery.report.only.error": false,
				"queue.buffering.max.messages": DefaultMaxQueued}, []string{"queuing.strategy"}},
		{"tuning kept", map[string]string{"linger.ms": "5", "compression.type": "zstd", "security.protocol": "SASL_SSL",
			"queue.buffering.max.messages": "200000"},
			kafka.ConfigMap{"linger.ms": "5", "compression.type": "zstd", "security.protocol": "SASL_SSL",
				"queue.buffering.max.messages": "200000"}, nil},
		{"linger alias replaces the default", map[string]string{"queue.buffering.max.ms": "50"},
			kafka.ConfigMap{"queue.buffering.max.ms": "50"}, []string{"linger.ms"}},
		{"partitioner pinned", map[string]string{"partitioner": "random"}, kafka.ConfigMap{"partitioner": "murmur2_random"}, nil},
		{"queuing strategy left to the fifo default", map[string]string{"queuing.strategy": "lifo"}, nil, []string{"queuing.strategy"}},
		{"success reports pinned", map[string]string{"delivery.report.only.error": "true"}, kafka.ConfigMap{"delivery.report.only.error": false}, nil},
		{"addresses from their fields", map[string]string{"bootstrap.servers": "x:1", "metadata.broker.list": "y:1", "client.id": "other"},
			kafka.ConfigMap{"bootstrap.servers": "k:9092", "client.id": "exhook"}, []string{"metadata.broker.list"}},
		{"retries and transactions removed", map[string]string{"retries": "0", "message.send.max.retries": "1", "transactional.id": "t"},
			nil, []string{"retries", "message.send.max.retries", "transactional.id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			cfg.Properties = tt.props
			cm := ConfigMap(cfg)
			for k, v := range tt.want {
				if cm[k] != v {
					t.Errorf("%s = %v, want %v", k, cm[k], v)
				}
			}
			for _, k := range tt.gone {
				if _, ok := cm[k]; ok {
					t.Errorf("%s is set: %v", k, cm[k])
				}
			}
		})
	}
}

// TestNewAcceptsItsOwnSettings: librdkafka takes every pinned setting (an unknown name or
// a bad value would fail here, not in production).
func TestNewAcceptsItsOwnSettings(t *testing.T) {
	s, err := New(Config{Name: "main", BootstrapServers: "127.0.0.1:1", ClientID: "exhook",
		Properties: map[string]string{"partitioner": "random", "queuing.strategy": "lifo", "retries": "0"}},
		slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestQueueExported: each producer's unacknowledged records and their bound are exported,
// the bound from kafka.properties or the default; a bound that is not a number is refused.
func TestQueueExported(t *testing.T) {
	for _, tc := range []struct {
		props map[string]string
		limit float64
	}{
		{nil, DefaultMaxQueued},
		{map[string]string{"queue.buffering.max.messages": "7"}, 7},
	} {
		reg := prometheus.NewRegistry()
		s, err := New(Config{Name: "main", BootstrapServers: "127.0.0.1:1", ClientID: "exhook", Properties: tc.props},
			slog.New(slog.DiscardHandler), metrics.New(reg))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ProduceCallback(t.Context(), kafkasink.Record{Topic: "t", Key: []byte("VIN1"), Value: []byte("v")}, func(error) {}); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(`
# HELP exhook_kafka_producer_queue_limit_records The bound on exhook_kafka_producer_queued_records (librdkafka's queue.buffering.max.messages): at it, calls wait for room until their deadline.
# TYPE exhook_kafka_producer_queue_limit_records gauge
exhook_kafka_producer_queue_limit_records{producer="main"} %v
# HELP exhook_kafka_producer_queued_records Records a Kafka producer holds that Kafka has not acknowledged or failed yet (async: answered to EMQX), by producer; read at each scrape.
# TYPE exhook_kafka_producer_queued_records gauge
exhook_kafka_producer_queued_records{producer="main"} 1
`, tc.limit)
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "exhook_kafka_producer_queued_records", "exhook_kafka_producer_queue_limit_records"); err != nil {
			t.Errorf("properties %v: %v", tc.props, err)
		}
		s.Close()
	}
	_, err := New(Config{Name: "main", BootstrapServers: "127.0.0.1:1", ClientID: "exhook",
		Properties: map[string]string{"queue.buffering.max.messages": "many"}}, slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()))
	if err == nil || !strings.Contains(err.Error(), "queue.buffering.max.messages") {
		t.Fatalf("a bound that is not a number: %v", err)
	}
}
