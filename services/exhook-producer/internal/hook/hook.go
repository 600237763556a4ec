// Package hook implements EMQX's emqx.exhook.v2.HookProvider: message.publish is encoded as
// Avro and produced to Kafka by route; client.connected/disconnected become status events.
package hook

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/iov-platform/iov/kit/kafkasink"
	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/services/exhook-producer/internal/metrics"
	"github.com/iov-platform/iov/services/exhook-producer/internal/route"
	"github.com/iov-platform/iov/services/exhook-producer/internal/spool"
)

// Producer is the part of the Kafka sink the hooks use.
type Producer interface {
	Produce(ctx context.Context, rec kafkasink.Record, wait bool) error
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
)

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
	// MaxPayloadBytes is the largest MQTT payload that fits a Kafka record; 0 = no limit.
	MaxPayloadBytes int
	Metrics         *metrics.Metrics
	Log             *slog.Logger
	Now             func() time.Time
}

// Server is the HookProvider.
type Server struct {
	exhookv2.UnimplementedHookProviderServer
	o Options
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
	return &Server{o: o}, nil
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
			&exhookv2.HookSpec{Name: HookMessageAcked, Topics: []string{c.TopicFilter}},
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
	defer func() {
		s.o.Metrics.HookDuration.WithLabelValues(HookMessagePublish, string(r.Delivery)).Observe(time.Since(start).Seconds())
	}()
	ctx, cancel := s.deadline(ctx)
	defer cancel()

	vehicle, err := r.VehicleID(msg.GetTopic(), msg.GetFrom())
	if n := len(msg.GetPayload()); s.o.MaxPayloadBytes > 0 && n > s.o.MaxPayloadBytes {
		return s.oversize(ctx, r, msg, vehicle, n)
	}
	if err == nil {
		err = r.CheckPayload(msg.GetPayload())
	}
	if err != nil {
		return s.deadLetter(ctx, r, msg, vehicle, err)
	}

	value, err := s.o.Messages[r.KafkaTopic].Encode(s.envelope(r, msg, vehicle))
	if err != nil {
		return s.deadLetter(ctx, r, msg, vehicle, fmt.Errorf("encode envelope: %w", err))
	}
	err = s.deliver(ctx, r.Delivery, kafkasink.Record{Topic: r.KafkaTopic, Key: []byte(vehicle), Value: value})
	if err != nil {
		s.o.Metrics.Messages.WithLabelValues(r.Name, metrics.OutcomeFailed).Inc()
		s.o.Log.Warn("message not forwarded", "route", r.Name, "vehicle", vehicle, "mqtt_topic", msg.GetTopic(), "message_id", msg.GetId(), "err", err)
		return nil, toStatus(err)
	}
	s.o.Metrics.Messages.WithLabelValues(r.Name, metrics.OutcomeProduced).Inc()
	return ignore, nil
}

func (s *Server) envelope(r *route.Route, msg *exhookv2.Message, vehicle string) *schemas.VehicleMessage {
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
		PublishedAt:   time.UnixMilli(int64(msg.GetTimestamp())),
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
	if err := s.deliver(ctx, r.Delivery, rec); err != nil {
		s.o.Metrics.Messages.WithLabelValues(r.Name, metrics.OutcomeFailed).Inc()
		s.o.Log.Error("dead-letter not written", "route", r.Name, "mqtt_topic", msg.GetTopic(), "message_id", msg.GetId(), "cause", cause, "err", err)
		return nil, toStatus(err)
	}
	s.o.Metrics.Messages.WithLabelValues(r.Name, metrics.OutcomeDeadLettered).Inc()
	s.o.Log.Info("message dead-lettered", "route", r.Name, "mqtt_topic", msg.GetTopic(), "message_id", msg.GetId(), "err", cause)
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

// oversize records, on the dead-letter topic, that a payload too large for Kafka was seen
// (headers only: the payload cannot fit a record) and tells EMQX with InvalidArgument.
func (s *Server) oversize(ctx context.Context, r *route.Route, msg *exhookv2.Message, vehicle string, n int) (*exhookv2.ValuedResponse, error) {
	cause := fmt.Errorf("payload of %d bytes exceeds the %d-byte record limit", n, s.o.MaxPayloadBytes)
	rec := s.deadLetterRecord(r, msg, vehicle, cause, nil, HeaderSize, fmt.Sprint(n))
	if err := s.deliver(ctx, r.Delivery, rec); err != nil {
		s.o.Log.Error("oversize note not written", "route", r.Name, "message_id", msg.GetId(), "err", err)
	}
	s.o.Metrics.Messages.WithLabelValues(r.Name, metrics.OutcomeOversize).Inc()
	s.o.Log.Warn("payload too large for kafka", "route", r.Name, "mqtt_topic", msg.GetTopic(), "message_id", msg.GetId(), "bytes", n)
	return nil, status.Error(codes.InvalidArgument, cause.Error())
}

// deliver hands rec to Kafka the way the route's mode says: queued (async), acknowledged by
// Kafka (sync) or durable in the spool (spool).
func (s *Server) deliver(ctx context.Context, mode route.Mode, rec kafkasink.Record) error {
	switch mode {
	case route.Spool:
		e := &spool.Entry{Topic: rec.Topic, Key: rec.Key, Value: rec.Value, AcceptedAt: s.o.Now().UnixMilli(),
			Headers: make([]spool.Header, len(rec.Headers))}
		for i, h := range rec.Headers {
			e.Headers[i] = spool.Header{Key: h.Key, Value: h.Value}
		}
		return s.o.Spool.Append(ctx, e)
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
	if err == nil {
		ctx, cancel := s.deadline(ctx)
		defer cancel()
		err = s.o.Producer.Produce(ctx, kafkasink.Record{Topic: s.o.StatusTopic, Key: []byte(ev.VehicleID), Value: value}, false)
	}
	if err != nil {
		s.o.Metrics.ClientEvents.WithLabelValues(event, metrics.OutcomeFailed).Inc()
		s.o.Log.Warn("client event not forwarded", "event", event, "clientid", ci.GetClientid(), "err", err)
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
