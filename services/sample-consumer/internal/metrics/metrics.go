// Package metrics defines the consumer's Prometheus collectors. Every collector is created
// on a caller-supplied registry, so tests can run several consumers in one process.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Results of a record, the `result` label of Records.
const (
	ResultHandled      = "handled"       // the handler succeeded; the offset is stored
	ResultDeadLettered = "dead_lettered" // undecodable or rejected; copied to the dead-letter topic
	ResultFailed       = "failed"        // undecodable or rejected without a dead-letter topic; the consumer stopped
)

// Kinds of decode error, the `kind` label of DecodeErrors.
const (
	DecodePoison   = "poison"   // the record itself is bad (not framed, unknown schema, corrupt body)
	DecodeRegistry = "registry" // the schema registry could not be asked; retried
)

// Metrics holds every collector.
type Metrics struct {
	Records         *prometheus.CounterVec   // topic, result
	DecodeErrors    *prometheus.CounterVec   // topic, kind
	HandlerDuration *prometheus.HistogramVec // topic, outcome (ok|error)
	Retries         *prometheus.CounterVec   // topic, stage (decode|handler)
	Rebalances      *prometheus.CounterVec   // event (assigned|revoked|lost)
	Partitions      prometheus.Gauge
	ClientErrors    *prometheus.CounterVec // code
	Ready           prometheus.Gauge
}

// New registers the collectors on reg.
func New(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		Records: f.NewCounterVec(prometheus.CounterOpts{
			Name: "consumer_records_total",
			Help: "Records finished, by topic and result (handled|dead_lettered|failed).",
		}, []string{"topic", "result"}),
		DecodeErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "consumer_decode_errors_total",
			Help: "Records that did not decode, by topic and kind (poison|registry).",
		}, []string{"topic", "kind"}),
		HandlerDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "consumer_handler_duration_seconds",
			Help:    "Time of one handler attempt, by topic and outcome (ok|error).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"topic", "outcome"}),
		Retries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "consumer_retries_total",
			Help: "Attempts after a failed one, by topic and stage (decode: registry unavailable; handler).",
		}, []string{"topic", "stage"}),
		Rebalances: f.NewCounterVec(prometheus.CounterOpts{
			Name: "consumer_rebalance_events_total",
			Help: "Partition assignment changes, by event (assigned|revoked|lost).",
		}, []string{"event"}),
		Partitions: f.NewGauge(prometheus.GaugeOpts{
			Name: "consumer_assigned_partitions",
			Help: "Partitions currently assigned to this consumer.",
		}),
		ClientErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "consumer_kafka_client_errors_total",
			Help: "Errors reported by the Kafka client, by error code.",
		}, []string{"code"}),
		Ready: f.NewGauge(prometheus.GaugeOpts{
			Name: "consumer_ready",
			Help: "1 while the consumer is consuming, 0 while starting, draining or stopped.",
		}),
	}
}
