// Package metrics defines the producer's Prometheus collectors. Every collector is created
// on a caller-supplied registry, so tests can run several producers in one process.
package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc/codes"
)

// Outcomes of a message.publish call, the `outcome` label of Messages.
const (
	OutcomeQueued       = "queued"        // async: queued in the producer, EMQX answered; then produced or lost
	OutcomeProduced     = "produced"      // acknowledged by Kafka (sync: before EMQX's answer; async: later)
	OutcomeLost         = "lost"          // async: queued and answered, then Kafka failed it (e.g. message.timeout.ms)
	OutcomeSpooled      = "spooled"       // spool: appended and fsynced; the shipper delivers it
	OutcomeDeadLettered = "dead_lettered" // payload or key failed; raw payload went to the DLQ
	OutcomeFailed       = "failed"        // could not be queued or acknowledged; EMQX got an error
	OutcomeUnrouted     = "unrouted"      // no route matched; passed through untouched
	OutcomeOversize     = "oversize"      // payload larger than a Kafka record may be; EMQX got InvalidArgument
)

// Metrics holds every collector.
type Metrics struct {
	Messages       *prometheus.CounterVec   // route, outcome
	HookDuration   *prometheus.HistogramVec // hook, mode
	ClientEvents   *prometheus.CounterVec   // event, outcome
	Commands       *prometheus.CounterVec   // status, outcome
	Deliveries     *prometheus.CounterVec   // topic, result
	ProducerErrors *prometheus.CounterVec   // code
	FieldsReplaced *prometheus.CounterVec   // route, field: messages forwarded with a field replaced
	// ProducerState is 1 for the state each Kafka producer is in, 0 for the others:
	// delivering | unreachable | recovering | failed (kafkasink.States), by producer (main |
	// spool).
	ProducerState      *prometheus.GaugeVec   // producer, state
	ProducerRecoveries *prometheus.CounterVec // producer
	ProducerResets     *prometheus.CounterVec // producer
	// ProducerQueue is each producer's records held unacknowledged and their bound.
	ProducerQueue *ProducerQueue
	// ShutdownRecords counts async records Kafka had not acknowledged at shutdown, by
	// result: spilled (to the spool, shipped after the restart) | lost.
	ShutdownRecords *prometheus.CounterVec
	// CallsPastLimit counts the calls a connection's gate let in while it already ran
	// grpc.maxRunningCalls, because none of the running calls had its request read yet
	// (a client that sends calls' headers ahead of their data gets past the bound so).
	CallsPastLimit prometheus.Counter
	// PublishCalls counts message.publish calls (ExHook v2 and v3) by the gRPC code EMQX
	// was answered with.
	PublishCalls *PublishCalls
	Ready        prometheus.Gauge
}

// PublishCalls is exhook_publish_calls_total{grpc_code}: every message.publish call that
// reached the server's interceptors, by the gRPC status code of its answer, as grpcprom's
// grpc_server_handled_total counts a method. Each code's series is resolved once, in New,
// so counting a call is one atomic add, with no label hashing.
type PublishCalls struct {
	vec    *prometheus.CounterVec
	byCode [codes.Unauthenticated + 1]prometheus.Counter
}

// Inc counts one call answered with code c.
func (p *PublishCalls) Inc(c codes.Code) {
	if int(c) < len(p.byCode) {
		p.byCode[c].Inc()
		return
	}
	p.vec.WithLabelValues(c.String()).Inc() // not one of gRPC's codes; grpc-go sends it as is
}

// Results of ShutdownRecords, the `result` label.
const (
	ShutdownSpilled = "spilled"
	ShutdownLost    = "lost"
)

// New registers the collectors on reg. Counters whose label values are known up front are
// exported at 0 from the start: an alert's increase() needs a sample before the first
// event, and the dashboards' and rules' metric names exist before anything happens.
func New(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		Messages: f.NewCounterVec(prometheus.CounterOpts{
			Name: "exhook_messages_total",
			Help: "MQTT messages seen on message.publish, by route and outcome.",
		}, []string{"route", "outcome"}),
		HookDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "exhook_hook_duration_seconds",
			Help:    "Time from hook request to reply, by hook and delivery mode.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"hook", "mode"}),
		ClientEvents: f.NewCounterVec(prometheus.CounterOpts{
			Name: "exhook_client_events_total",
			Help: "client.connected/disconnected events, by event and outcome.",
		}, []string{"event", "outcome"}),
		Commands: f.NewCounterVec(prometheus.CounterOpts{
			Name: "exhook_command_events_total",
			Help: "Command status events from broker hooks and vehicle responses, by status and outcome.",
		}, []string{"status", "outcome"}),
		Deliveries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "exhook_kafka_deliveries_total",
			Help: "Kafka delivery reports, by topic and result (delivered|failed).",
		}, []string{"topic", "result"}),
		FieldsReplaced: f.NewCounterVec(prometheus.CounterOpts{
			Name: "exhook_message_fields_replaced_total",
			Help: "Messages forwarded with an implausible field replaced (field=timestamp: EMQX's timestamp, kept in the iov.mqtt.timestamp.invalid header), by route and field.",
		}, []string{"route", "field"}),
		ProducerErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "exhook_kafka_client_errors_total",
			Help: "Errors reported by the Kafka client outside delivery reports, by error code.",
		}, []string{"code"}),
		ProducerState: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "exhook_kafka_producer_state",
			Help: "1 for the state each Kafka producer is in, 0 for the others: delivering (a broker answered lately), unreachable (no broker answered for kafka.unreachableAfter), recovering (replacing a producer after a fatal error), failed (could not replace it; the process exits).",
		}, []string{"producer", "state"}),
		ProducerRecoveries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "exhook_kafka_producer_recoveries_total",
			Help: "Kafka producers replaced after a fatal error (e.g. idempotence sequence desynchronisation), by producer.",
		}, []string{"producer"}),
		ProducerResets: f.NewCounterVec(prometheus.CounterOpts{
			Name: "exhook_kafka_producer_idempotence_resets_total",
			Help: "Times a Kafka producer took a new producer id or epoch after a sequence error, an unknown producer id or a timed-out record, by producer. Records it had in flight on other partitions may then be written twice (librdkafka issue #4953). Read from librdkafka's statistics, every 10s.",
		}, []string{"producer"}),
		ShutdownRecords: f.NewCounterVec(prometheus.CounterOpts{
			Name: "exhook_shutdown_unacknowledged_records_total",
			Help: "Records EMQX was answered for (async) that Kafka had not acknowledged at shutdown, by result: spilled (kept in the spool, shipped after the restart) or lost (no spool.dir).",
		}, []string{"result"}),
		CallsPastLimit: f.NewCounter(prometheus.CounterOpts{
			Name: "exhook_grpc_calls_past_limit_total",
			Help: "Calls a connection read while it already ran grpc.maxRunningCalls, because none of the running calls had its request yet; in a burst, more than the limit ran at once.",
		}),
		PublishCalls: &PublishCalls{vec: f.NewCounterVec(prometheus.CounterOpts{
			Name: "exhook_publish_calls_total",
			Help: "message.publish calls (ExHook v2 and v3) by the gRPC code of the answer: OK, or the error EMQX got (a handler's panic is Internal); every code exported from the start.",
		}, []string{"grpc_code"})},
		Ready: f.NewGauge(prometheus.GaugeOpts{
			Name: "exhook_ready",
			Help: "1 while ready (the /ready endpoint answers 200), 0 while starting, draining, or while Kafka cannot take records (see exhook_kafka_producer_state).",
		}),
	}
	for _, r := range []string{ShutdownSpilled, ShutdownLost} {
		m.ShutdownRecords.WithLabelValues(r)
	}
	for c := range m.PublishCalls.byCode {
		m.PublishCalls.byCode[c] = m.PublishCalls.vec.WithLabelValues(codes.Code(c).String())
	}
	m.ProducerQueue = &ProducerQueue{
		queued: prometheus.NewDesc("exhook_kafka_producer_queued_records",
			"Records a Kafka producer holds that Kafka has not acknowledged or failed yet (async: answered to EMQX), by producer; read at each scrape.",
			[]string{"producer"}, nil),
		limit: prometheus.NewDesc("exhook_kafka_producer_queue_limit_records",
			"The bound on exhook_kafka_producer_queued_records (librdkafka's queue.buffering.max.messages): at it, calls wait for room until their deadline.",
			[]string{"producer"}, nil),
		producers: map[string]queueSource{},
	}
	reg.MustRegister(m.ProducerQueue)
	return m
}

// ProducerQueue is a collector of exhook_kafka_producer_queued_records and
// exhook_kafka_producer_queue_limit_records: each watched producer's count, read when
// scraped (nothing on the publish path), and its bound.
type ProducerQueue struct {
	queued, limit *prometheus.Desc

	mu        sync.Mutex
	producers map[string]queueSource
}

type queueSource struct {
	queued func() int
	limit  int
}

// Watch exports producer's queue: queued is read at each scrape; limit is its bound.
func (q *ProducerQueue) Watch(producer string, queued func() int, limit int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.producers[producer] = queueSource{queued: queued, limit: limit}
}

// Describe implements prometheus.Collector.
func (q *ProducerQueue) Describe(ch chan<- *prometheus.Desc) {
	ch <- q.queued
	ch <- q.limit
}

// Collect implements prometheus.Collector.
func (q *ProducerQueue) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for name, src := range q.producers {
		ch <- prometheus.MustNewConstMetric(q.queued, prometheus.GaugeValue, float64(src.queued()), name)
		ch <- prometheus.MustNewConstMetric(q.limit, prometheus.GaugeValue, float64(src.limit), name)
	}
}
