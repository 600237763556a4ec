// Package hook implements EMQX's emqx.exhook.v2.HookProvider (and, through the thin adapter
// in v3.go, emqx.exhook.v3.HookProvider): message.publish is encoded as Avro and produced to
// Kafka by route; client.connected/disconnected become status events.
package hook

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/iov-platform/iov/kit/kafkasink"
	"github.com/iov-platform/iov/kit/logging"
	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/services/exhook-producer/internal/metrics"
	"github.com/iov-platform/iov/services/exhook-producer/internal/route"
	"github.com/iov-platform/iov/services/exhook-producer/internal/spool"
)

// Producer is the part of the Kafka sink the hooks use.
type Producer interface {
	Produce(ctx context.Context, rec kafkasink.Record, wait bool) error
	// ProduceCallback queues rec and calls done (which must not block) with its delivery
	// report.
	ProduceCallback(ctx context.Context, rec kafkasink.Record, done func(error)) error
}

// Spooler is the durable spool of delivery: spool routes.
type Spooler interface {
	Append(ctx context.Context, e *spool.Entry) error
}

// Encoder frames a value as a Confluent Avro record.
type Encoder interface {
	Encode(v any) ([]byte, error)
}

// Dead-letter record headers.
const (
	HeaderError     = "iov.error"
	HeaderRoute     = "iov.route"
	HeaderTopic     = "iov.mqtt.topic"
	HeaderClientID  = "iov.mqtt.clientid"
	HeaderMessageID = "iov.mqtt.message_id"
	HeaderNode      = "iov.emqx.node"
	HeaderQoS       = "iov.mqtt.qos"
	HeaderSize      = "iov.payload.size"
	// HeaderTimestampInvalid is on a message record whose EMQX timestamp was not plausible
	// (earliestTimestamp .. now+timestampSkew): the value is EMQX's timestamp as sent, and
	// the envelope's published_at holds the ingestion time instead.
	HeaderTimestampInvalid = "iov.mqtt.timestamp.invalid"
)

// Plausible EMQX timestamps (unix millis, when the broker received the message): from
// 2000-01-01 to an hour ahead of this host's clock. Others (0, year 292278994) are replaced.
var earliestTimestamp = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

const timestampSkew = time.Hour

// Hook names as EMQX spells them in HookSpec.
const (
	HookMessagePublish     = "message.publish"
	HookClientConnected    = "client.connected"
	HookClientDisconnected = "client.disconnected"
)

// Options wires a Server.
type Options struct {
	Router      *route.Router
	Producer    Producer
	Spool       Spooler            // required when a route uses delivery: spool
	Messages    map[string]Encoder // per Kafka topic of each route
	Status      Encoder
	StatusTopic string
	DeadLetter  string
	Commands    *Commands // nil: no downlink tracking
	// HookScope is the topic filters registered for message.publish; empty: the route
	// filters (and the command response filter).
	HookScope   []string
	SyncTimeout time.Duration // used when EMQX sent no deadline
	// MaxPayloadBytes is the largest MQTT payload forwarded; 0 = no limit. The whole record
	// must fit the record limits too.
	MaxPayloadBytes int
	// MaxRecordBytes is the largest record (kafkasink.RecordSize: value, key, headers and
	// overhead) the producer takes: its message.max.bytes; 0 = no limit.
	MaxRecordBytes int
	// TopicRecordBytes are the largest records topics take (their max.message.bytes minus
	// the batch overhead), where known.
	TopicRecordBytes map[string]int
	Metrics          *metrics.Metrics
	Log              *slog.Logger
	Now              func() time.Time
}

// Server is the HookProvider.
type Server struct {
	exhookv2.UnimplementedHookProviderServer
	o      Options
	series map[*route.Route]*routeSeries
}

// routeSeries are the series every forwarded message of a route touches, each resolved at
// its first use: it appears in /metrics when it first counts, as with WithLabelValues on
// every call, and the message path skips the label hashing and look-up.
type routeSeries struct {
	queued, produced, spooled func() prometheus.Counter
	duration                  func() prometheus.Observer
}

func newRouteSeries(m *metrics.Metrics, r *route.Route) *routeSeries {
	counter := func(outcome string) func() prometheus.Counter {
		return sync.OnceValue(func() prometheus.Counter { return m.Messages.WithLabelValues(r.Name, outcome) })
	}
	return &routeSeries{
		queued: counter(metrics.OutcomeQueued), produced: counter(metrics.OutcomeProduced), spooled: counter(metrics.OutcomeSpooled),
		duration: sync.OnceValue(func() prometheus.Observer {
			return m.HookDuration.WithLabelValues(HookMessagePublish, string(r.Delivery))
		}),
	}
}

// New checks that every route has an encoder.
func New(o Options) (*Server, error) {
	for _, r := range o.Router.Routes() {
		if o.Messages[r.KafkaTopic] == nil {
			return nil, fmt.Errorf("route %s: no encoder for topic %s", r.Name, r.KafkaTopic)
		}
		if r.Delivery == route.Spool && o.Spool == nil {
			return nil, fmt.Errorf("route %s: delivery spool without a spool", r.Name)
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	series := map[*route.Route]*routeSeries{}
	for _, r := range o.Router.Routes() {
		series[r] = newRouteSeries(o.Metrics, r)
	}
	return &Server{o: o, series: series}, nil
}

// OnProviderLoaded tells EMQX which hooks to call: message.publish for the hook scope (a
// stable filter such as vehicles/#, so routes can change without an EMQX reload: EMQX asks
// only when it loads the server, not when the producer restarts), or else only for the
// routes' filters, so EMQX never spends a round trip on topics we do not forward.
func (s *Server) OnProviderLoaded(_ context.Context, req *exhookv2.ProviderLoadedRequest) (*exhookv2.LoadedResponse, error) {
	filters := slices.Clone(s.o.HookScope)
	if len(filters) == 0 {
		filters = s.o.Router.Filters()
		if c := s.o.Commands; c != nil {
			filters = append([]string{c.ResponseFilter}, filters...)
		}
	}
	s.o.Log.Info("provider loaded by broker",
		"node", req.GetMeta().GetNode(), "cluster", req.GetMeta().GetClusterName(), "emqx_version", req.GetBroker().GetVersion(),
		"publish_topics", filters)
	hooks := []*exhookv2.HookSpec{{Name: HookClientConnected}, {Name: HookClientDisconnected}}
	if c := s.o.Commands; c != nil {
		hooks = append(hooks,
			&exhookv2.HookSpec{Name: HookMessageDelivered, Topics: []string{c.TopicFilter}},
			&exhookv2.HookSpec{Name: HookMessageDropped, Topics: []string{c.TopicFilter}})
	}
	hooks = append(hooks, &exhookv2.HookSpec{Name: HookMessagePublish, Topics: filters})
	return &exhookv2.LoadedResponse{Hooks: hooks}, nil
}

// OnProviderUnloaded is logged.
func (s *Server) OnProviderUnloaded(_ context.Context, req *exhookv2.ProviderUnloadedRequest) (*exhookv2.EmptySuccess, error) {
	s.o.Log.Info("provider unloaded by broker", "node", req.GetMeta().GetNode())
	return &exhookv2.EmptySuccess{}, nil
}

var ignore = &exhookv2.ValuedResponse{Type: exhookv2.ValuedResponse_IGNORE}

// Client-supplied fields (client id, topic, message id, ...) are cut to this many bytes in
// log lines and in oversize notes: a client id may be megabytes long.
const clipBytes = 256

func clip(s string) string { return logging.Clip(s, clipBytes) }

func clipErr(err error) string { return logging.Clip(fmt.Sprint(err), 4*clipBytes) }

// fits reports why rec is too large for Kafka, or nil.
func (s *Server) fits(rec kafkasink.Record) error {
	limit := s.o.MaxRecordBytes
	if t, ok := s.o.TopicRecordBytes[rec.Topic]; ok && (limit == 0 || t < limit) {
		limit = t
	}
	if n := kafkasink.RecordSize(rec); limit > 0 && n > limit {
		return fmt.Errorf("record of %d bytes (key, value, headers) exceeds the %d-byte record limit of %s", n, limit, rec.Topic)
	}
	return nil
}

// OnMessagePublish forwards one PUBLISH to Kafka and lets EMQX deliver it unchanged.
func (s *Server) OnMessagePublish(ctx context.Context, req *exhookv2.MessagePublishRequest) (*exhookv2.ValuedResponse, error) {
	start := time.Now()
	msg := req.GetMessage()
	if msg == nil {
		return nil, status.Error(codes.InvalidArgument, "message.publish without message")
	}
	if s.isCommandResponse(msg.GetTopic()) {
		return s.commandResponse(ctx, msg)
	}
	r := s.o.Router.Match(msg.GetTopic())
	if r == nil {
		s.o.Metrics.Messages.WithLabelValues("", metrics.OutcomeUnrouted).Inc()
		return ignore, nil
	}
	series := s.series[r]
	defer func() { series.duration().Observe(time.Since(start).Seconds()) }()
	ctx, cancel := s.deadline(ctx)
	defer cancel()

	vehicle, err := r.VehicleID(msg.GetTopic(), msg.GetFrom())
	if n := len(msg.GetPayload()); s.o.MaxPayloadBytes > 0 && n > s.o.MaxPayloadBytes {
		return s.oversize(ctx, r, msg, vehicle, fmt.Errorf("payload of %d bytes exceeds the %d-byte payload limit", n, s.o.MaxPayloadBytes))
	}
	if err == nil && msg.GetQos() > 2 {
		err = fmt.Errorf("qos %d outside 0..2", msg.GetQos())
	}
	if err == nil {
		err = r.CheckPayload(msg.GetPayload())
	}
	if err != nil {
		return s.deadLetter(ctx, r, msg, vehicle, err)
	}

	props := publishProperties(ctx) // MQTT 5 properties: ExHook v3 only
	value, err := s.o.Messages[r.KafkaTopic].Encode(props.fill(s.envelope(r, msg, vehicle)))
	if err != nil {
		return s.deadLetter(ctx, r, msg, vehicle, fmt.Errorf("encode envelope: %w", err))
	}
	rec := kafkasink.Record{Topic: r.KafkaTopic, Key: []byte(vehicle), Value: value, Headers: props.headers()}
	if _, ok := s.publishedAt(msg); !ok {
		rec.Headers = append(rec.Headers, kafka.Header{Key: HeaderTimestampInvalid, Value: fmt.Append(nil, msg.GetTimestamp())})
		s.o.Metrics.FieldsReplaced.WithLabelValues(r.Name, "timestamp").Inc()
	}
	if err := s.fits(rec); err != nil {
		return s.oversize(ctx, r, msg, vehicle, err)
	}
	outcome := series.produced
	switch r.Delivery {
	case route.Async:
		outcome = series.queued
		err = s.o.Producer.ProduceCallback(ctx, rec, s.asyncReport(r, msg, vehicle))
	case route.Spool:
		outcome = series.spooled
		err = s.deliver(ctx, r.Delivery, rec)
	default:
		err = s.deliver(ctx, r.Delivery, rec)
	}
	if err != nil {
		s.o.Metrics.Messages.WithLabelValues(r.Name, metrics.OutcomeFailed).Inc()
		s.o.Log.Warn("message not forwarded", "route", r.Name, "vehicle", clip(vehicle), "mqtt_topic", clip(msg.GetTopic()), "message_id", clip(msg.GetId()), "err", clipErr(err))
		return nil, toStatus(err)
	}
	outcome().Inc()
	return ignore, nil
}

// asyncReport counts an async message produced or lost when Kafka settles it: EMQX was
// answered when it was queued.
func (s *Server) asyncReport(r *route.Route, msg *exhookv2.Message, vehicle string) func(error) {
	id, topic, produced := msg.GetId(), msg.GetTopic(), s.series[r].produced
	return func(err error) {
		if err == nil {
			produced().Inc()
			return
		}
		s.o.Metrics.Messages.WithLabelValues(r.Name, metrics.OutcomeLost).Inc()
		s.o.Log.Error("async message lost: kafka failed it after EMQX was answered", "route", r.Name, "vehicle", clip(vehicle),
			"mqtt_topic", clip(topic), "message_id", clip(id), "err", clipErr(err))
	}
}

// publishedAt is when EMQX received msg, or, if its timestamp is not plausible, the
// ingestion time and false.
func (s *Server) publishedAt(msg *exhookv2.Message) (time.Time, bool) {
	now := s.o.Now()
	ts := msg.GetTimestamp()
	if ts < uint64(earliestTimestamp.UnixMilli()) || ts > uint64(now.Add(timestampSkew).UnixMilli()) {
		return now, false
	}
	return time.UnixMilli(int64(ts)), true
}

func (s *Server) envelope(r *route.Route, msg *exhookv2.Message, vehicle string) *schemas.VehicleMessage {
	published, _ := s.publishedAt(msg)
	format := schemas.PayloadBytes
	if r.Payload == route.PayloadJSON {
		format = schemas.PayloadJSON
	}
	var username *string
	if u := msg.GetHeaders()["username"]; u != "" {
		username = &u
	}
	return &schemas.VehicleMessage{
		MessageID:     msg.GetId(),
		VehicleID:     vehicle,
		ClientID:      msg.GetFrom(),
		Username:      username,
		MQTTTopic:     msg.GetTopic(),
		QoS:           int32(msg.GetQos()),
		Payload:       msg.GetPayload(),
		PayloadFormat: format,
		PublishedAt:   published,
		IngestedAt:    s.o.Now(),
		Node:          msg.GetNode(),
		Route:         r.Name,
		Headers:       msg.GetHeaders(),
	}
}

// deadLetter sends the raw payload to the dead-letter topic with the reason in headers. EMQX
// still gets IGNORE: the message was accepted and kept, just not where its route points.
func (s *Server) deadLetter(ctx context.Context, r *route.Route, msg *exhookv2.Message, vehicle string, cause error) (*exhookv2.ValuedResponse, error) {
	rec := s.deadLetterRecord(r, msg, vehicle, cause, msg.GetPayload(), HeaderQoS, fmt.Sprint(msg.GetQos()))
	rec.Headers = append(rec.Headers, publishProperties(ctx).headers()...) // MQTT 5 properties too
	if err := s.fits(rec); err != nil {
		return s.oversize(ctx, r, msg, vehicle, fmt.Errorf("dead letter (%w): %w", cause, err))
	}
	if err := s.deliver(ctx, r.Delivery, rec); err != nil {
		s.o.Metrics.Messages.WithLabelValues(r.Name, metrics.OutcomeFailed).Inc()
		s.o.Log.Error("dead-letter not written", "route", r.Name, "mqtt_topic", clip(msg.GetTopic()), "message_id", clip(msg.GetId()), "cause", clipErr(cause), "err", clipErr(err))
		return nil, toStatus(err)
	}
	s.o.Metrics.Messages.WithLabelValues(r.Name, metrics.OutcomeDeadLettered).Inc()
	s.o.Log.Info("message dead-lettered", "route", r.Name, "mqtt_topic", clip(msg.GetTopic()), "message_id", clip(msg.GetId()), "err", clipErr(cause))
	return ignore, nil
}

// deadLetterRecord is the dead-letter record for msg on route r: keyed by the vehicle (the
// client id when there is none), with value, and the cause and the message's identity in
// headers, plus one more header extraKey=extraValue.
func (s *Server) deadLetterRecord(r *route.Route, msg *exhookv2.Message, vehicle string, cause error, value []byte, extraKey, extraValue string) kafkasink.Record {
	return kafkasink.Record{
		Topic: s.o.DeadLetter,
		Key:   []byte(cmp.Or(vehicle, msg.GetFrom())),
		Value: value,
		Headers: kafkasink.Headers(map[string]string{
			HeaderError:     cause.Error(),
			HeaderRoute:     r.Name,
			HeaderTopic:     msg.GetTopic(),
			HeaderClientID:  msg.GetFrom(),
			HeaderMessageID: msg.GetId(),
			HeaderNode:      msg.GetNode(),
			extraKey:        extraValue,
		}),
	}
}

// oversize records, on the dead-letter topic, that a message too large for Kafka was seen
// (headers only, identifiers cut to clipBytes: the message cannot fit a record) and tells
// EMQX with InvalidArgument.
func (s *Server) oversize(ctx context.Context, r *route.Route, msg *exhookv2.Message, vehicle string, cause error) (*exhookv2.ValuedResponse, error) {
	n := len(msg.GetPayload())
	rec := s.deadLetterRecord(r, msg, vehicle, cause, nil, HeaderSize, fmt.Sprint(n))
	rec.Key = []byte(clip(string(rec.Key)))
	for i, h := range rec.Headers {
		rec.Headers[i].Value = []byte(clip(string(h.Value)))
	}
	if err := s.deliver(ctx, r.Delivery, rec); err != nil {
		s.o.Log.Error("oversize note not written", "route", r.Name, "message_id", clip(msg.GetId()), "err", clipErr(err))
	}
	s.o.Metrics.Messages.WithLabelValues(r.Name, metrics.OutcomeOversize).Inc()
	s.o.Log.Warn("message too large for kafka", "route", r.Name, "mqtt_topic", clip(msg.GetTopic()), "message_id", clip(msg.GetId()),
		"clientid", clip(msg.GetFrom()), "payload_bytes", n, "err", clipErr(cause))
	return nil, status.Error(codes.InvalidArgument, clipErr(cause))
}

// deliver hands rec to Kafka the way the route's mode says: queued (async), acknowledged by
// Kafka (sync) or durable in the spool (spool).
func (s *Server) deliver(ctx context.Context, mode route.Mode, rec kafkasink.Record) error {
	switch mode {
	case route.Spool:
		return s.o.Spool.Append(ctx, spool.NewEntry(rec, s.o.Now().UnixMilli()))
	case route.Sync:
		return s.o.Producer.Produce(ctx, rec, true)
	default:
		return s.o.Producer.Produce(ctx, rec, false)
	}
}

// OnClientConnected writes a CONNECTED status event.
func (s *Server) OnClientConnected(ctx context.Context, req *exhookv2.ClientConnectedRequest) (*exhookv2.EmptySuccess, error) {
	return s.clientEvent(ctx, HookClientConnected, schemas.ClientConnected, req.GetClientinfo(), "")
}

// OnClientDisconnected writes a DISCONNECTED status event with the reason.
func (s *Server) OnClientDisconnected(ctx context.Context, req *exhookv2.ClientDisconnectedRequest) (*exhookv2.EmptySuccess, error) {
	return s.clientEvent(ctx, HookClientDisconnected, schemas.ClientDisconnected, req.GetClientinfo(), req.GetReason())
}

func (s *Server) clientEvent(ctx context.Context, hook, event string, ci *exhookv2.ClientInfo, reason string) (*exhookv2.EmptySuccess, error) {
	start := time.Now()
	defer func() {
		s.o.Metrics.HookDuration.WithLabelValues(hook, string(route.Async)).Observe(time.Since(start).Seconds())
	}()
	if ci.GetClientid() == "" {
		s.o.Metrics.ClientEvents.WithLabelValues(event, metrics.OutcomeFailed).Inc()
		return nil, status.Errorf(codes.InvalidArgument, "%s without clientid", hook)
	}
	ev := &schemas.ClientEvent{
		Event:      event,
		VehicleID:  ci.GetClientid(),
		ClientID:   ci.GetClientid(),
		Peerhost:   ci.GetPeerhost(),
		Protocol:   ci.GetProtocol(),
		OccurredAt: s.o.Now(),
		Node:       ci.GetNode(),
	}
	if u := ci.GetUsername(); u != "" {
		ev.Username = &u
	}
	if reason != "" {
		ev.Reason = &reason
	}
	value, err := s.o.Status.Encode(ev)
	rec := kafkasink.Record{Topic: s.o.StatusTopic, Key: []byte(ev.VehicleID), Value: value}
	if err == nil {
		if err = s.fits(rec); err != nil {
			err = status.Error(codes.InvalidArgument, clipErr(err))
		}
	}
	if err == nil {
		ctx, cancel := s.deadline(ctx)
		defer cancel()
		err = s.o.Producer.Produce(ctx, rec, false)
	}
	if err != nil {
		s.o.Metrics.ClientEvents.WithLabelValues(event, metrics.OutcomeFailed).Inc()
		s.o.Log.Warn("client event not forwarded", "event", event, "clientid", clip(ci.GetClientid()), "err", clipErr(err))
		return nil, toStatus(err)
	}
	s.o.Metrics.ClientEvents.WithLabelValues(event, metrics.OutcomeProduced).Inc()
	return &exhookv2.EmptySuccess{}, nil
}

// deadline bounds waits when EMQX sent no deadline of its own.
func (s *Server) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.o.SyncTimeout)
}

func toStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, spool.ErrFull):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, kafkasink.ErrFatal):
		return status.Error(codes.Internal, err.Error())
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) && kerr.Code() == kafka.ErrMsgSizeTooLarge {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Error(codes.Unavailable, err.Error())
}
