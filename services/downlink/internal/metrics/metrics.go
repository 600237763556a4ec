// Package metrics defines the downlink's Prometheus collectors. Every collector is created on
// a caller-supplied registry, so tests can run several instances in one process.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Outcomes of a command record, the `outcome` label of Commands.
const (
	OutcomeSent         = "sent"          // published; EMQX acknowledged it (PUBACK)
	OutcomeExpired      = "expired"       // past expires_at before it could be sent; EXPIRED written
	OutcomeFailed       = "failed"        // could not be sent (EMQX refused it, or it expired while retrying); FAILED written
	OutcomeDeadLettered = "dead_lettered" // undecodable or invalid; copied to the dead-letter topic
)

// Results of one publish attempt, the `result` label of PublishDuration.
const (
	PublishOK      = "ok"      // PUBACK with a success reason code
	PublishRefused = "refused" // PUBACK with an error reason code
	PublishError   = "error"   // no PUBACK: timeout, connection lost
)

// Metrics holds every collector.
type Metrics struct {
	Commands        *prometheus.CounterVec   // outcome
	PublishDuration *prometheus.HistogramVec // result
	PublishRetries  prometheus.Counter
	StatusEvents    *prometheus.CounterVec // status, result (ok|error)
	MQTTConnected   prometheus.Gauge
	Partitions      prometheus.Gauge
	Rebalances      *prometheus.CounterVec // event
	ClientErrors    *prometheus.CounterVec // client, code
	ProducerResets  prometheus.Counter
	Ready           prometheus.Gauge
}

// New registers the collectors on reg.
func New(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		Commands: f.NewCounterVec(prometheus.CounterOpts{
			Name: "downlink_commands_total",
			Help: "Command records finished, by outcome (sent|expired|failed|dead_lettered).",
		}, []string{"outcome"}),
		PublishDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "downlink_publish_duration_seconds",
			Help:    "Time from MQTT PUBLISH to EMQX's PUBACK (or failure) of one attempt, by result (ok|refused|error).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"result"}),
		PublishRetries: f.NewCounter(prometheus.CounterOpts{
			Name: "downlink_publish_retries_total",
			Help: "Publish attempts after a failed one (no PUBACK, or no MQTT connection).",
		}),
		StatusEvents: f.NewCounterVec(prometheus.CounterOpts{
			Name: "downlink_status_events_total",
			Help: "CommandStatus events written by the downlink, by status and result (ok|error; errors are retried).",
		}, []string{"status", "result"}),
		MQTTConnected: f.NewGauge(prometheus.GaugeOpts{
			Name: "downlink_mqtt_connected",
			Help: "1 while the MQTT connection to EMQX is up.",
		}),
		Partitions: f.NewGauge(prometheus.GaugeOpts{
			Name: "downlink_assigned_partitions",
			Help: "Commands-topic partitions currently assigned to this instance.",
		}),
		Rebalances: f.NewCounterVec(prometheus.CounterOpts{
			Name: "downlink_rebalance_events_total",
			Help: "Partition assignment changes, by event (assigned|revoked|lost).",
		}, []string{"event"}),
		ClientErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "downlink_kafka_client_errors_total",
			Help: "Errors reported by the Kafka clients outside delivery reports, by client and error code.",
		}, []string{"client", "code"}),
		ProducerResets: f.NewCounter(prometheus.CounterOpts{
			Name: "downlink_kafka_producer_idempotence_resets_total",
			Help: "Times the status producer took a new producer id or epoch after a sequence error, an unknown producer id or a timed-out record; status events it had in flight may then be written twice (librdkafka issue #4953). Read from librdkafka's statistics, every 10s.",
		}),
		Ready: f.NewGauge(prometheus.GaugeOpts{
			Name: "downlink_ready",
			Help: "1 while the downlink is connected to EMQX and in its consumer group, 0 while starting, draining or disconnected.",
		}),
	}
}
