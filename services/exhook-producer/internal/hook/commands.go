package hook

import (
	"context"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/iov-platform/iov/kit/kafkasink"
	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/services/exhook-producer/internal/metrics"
	"github.com/iov-platform/iov/services/exhook-producer/internal/route"
)

// Hook names of the downlink tracking.
//
// message.acked is not among them: EMQX runs it for the vehicle's PUBACK (QoS 1) or PUBREC
// (QoS 2) whatever its reason code, and passes no reason code to the hook in ExHook v2 or v3
// (emqx_channel:process_puback/process_pubrec call after_message_acked with the client info
// and the message only, up to EMQX 6.0; the exhook message headers carry username, protocol,
// peerhost and allow_publish only). An ACKED event from it would also be written for a
// negative acknowledgement (reason code >= 0x80), so the producer writes none: a vehicle's
// verdict on a command is its response (RESPONDED).
const (
	HookMessageDelivered = "message.delivered"
	HookMessageDropped   = "message.dropped"
)

// Commands configures command tracking; nil disables it.
type Commands struct {
	TopicFilter    string // command topics the downlink publishes to
	ResponseFilter string // response topics vehicles publish to
	VehicleSegment int
	CommandSegment int
	Topic          string // Kafka command-status topic
	Encoder        Encoder
}

func (c *Commands) levels(f string) []string { return strings.Split(f, "/") }

// commandStatus writes one CommandStatus event, keyed by vehicle so a vehicle's command
// events stay in order.
func (s *Server) commandStatus(ctx context.Context, hook, topic string, st *schemas.CommandStatus) error {
	start := time.Now()
	defer func() {
		s.o.Metrics.HookDuration.WithLabelValues(hook, string(route.Async)).Observe(time.Since(start).Seconds())
	}()
	c := s.o.Commands
	st.VehicleID = route.Level(topic, c.VehicleSegment)
	st.CommandID = route.Level(topic, c.CommandSegment)
	st.OccurredAt = s.o.Now()
	if st.VehicleID == "" || st.CommandID == "" {
		s.o.Metrics.Commands.WithLabelValues(st.Status, metrics.OutcomeFailed).Inc()
		return status.Errorf(codes.InvalidArgument, "%s: topic %q has no vehicle or command id", hook, topic)
	}
	value, err := c.Encoder.Encode(st)
	if err == nil {
		ctx, cancel := s.deadline(ctx)
		defer cancel()
		err = s.o.Producer.Produce(ctx, kafkasink.Record{Topic: c.Topic, Key: []byte(st.VehicleID), Value: value}, false)
	}
	if err != nil {
		s.o.Metrics.Commands.WithLabelValues(st.Status, metrics.OutcomeFailed).Inc()
		s.o.Log.Warn("command status not forwarded", "status", st.Status, "command_id", clip(st.CommandID), "vehicle", clip(st.VehicleID), "err", clipErr(err))
		return toStatus(err)
	}
	s.o.Metrics.Commands.WithLabelValues(st.Status, metrics.OutcomeProduced).Inc()
	return nil
}

// OnMessageDelivered: EMQX handed a command to the vehicle's session.
func (s *Server) OnMessageDelivered(ctx context.Context, req *exhookv2.MessageDeliveredRequest) (*exhookv2.EmptySuccess, error) {
	return s.brokerCommandEvent(ctx, HookMessageDelivered, schemas.CommandDelivered, req.GetMessage(), "")
}

// OnMessageDropped: EMQX dropped a command, which is FAILED with EMQX's reason. EMQX (5.x,
// 6.0) runs message.dropped with reason no_subscribers (the vehicle is offline without a
// persistent session) or, for a QoS 2 message its session refuses, the name of the MQTT
// reason code (e.g. receive_maximum_exceeded). A message that expires in a session queue
// goes to delivery.dropped, a hook ExHook does not offer: the broker never reports an
// expired command, so no EXPIRED comes from here (the downlink writes EXPIRED for commands
// it does not publish in time).
func (s *Server) OnMessageDropped(ctx context.Context, req *exhookv2.MessageDroppedRequest) (*exhookv2.EmptySuccess, error) {
	reason := "dropped by the broker: " + req.GetReason()
	return s.brokerCommandEvent(ctx, HookMessageDropped, schemas.CommandFailed, req.GetMessage(), reason)
}

func (s *Server) brokerCommandEvent(ctx context.Context, hook, state string, msg *exhookv2.Message, reason string) (*exhookv2.EmptySuccess, error) {
	c := s.o.Commands
	if c == nil || msg == nil || !route.MatchFilter(c.levels(c.TopicFilter), msg.GetTopic()) {
		// Not ours (EMQX only calls for registered topics, but stay strict).
		return &exhookv2.EmptySuccess{}, nil
	}
	st := &schemas.CommandStatus{Status: state, Source: schemas.SourceBroker, Node: msg.GetNode()}
	if reason != "" {
		st.Reason = &reason
	}
	if err := s.commandStatus(ctx, hook, msg.GetTopic(), st); err != nil {
		return nil, err
	}
	return &exhookv2.EmptySuccess{}, nil
}

// commandResponse turns a vehicle's response PUBLISH into a RESPONDED event.
func (s *Server) commandResponse(ctx context.Context, msg *exhookv2.Message) (*exhookv2.ValuedResponse, error) {
	st := &schemas.CommandStatus{Status: schemas.CommandResponded, Source: schemas.SourceVehicle, Node: msg.GetNode(), Response: msg.GetPayload()}
	if err := s.commandStatus(ctx, HookMessagePublish, msg.GetTopic(), st); err != nil {
		return nil, err
	}
	return ignore, nil
}

func (s *Server) isCommandResponse(topic string) bool {
	c := s.o.Commands
	return c != nil && route.MatchFilter(c.levels(c.ResponseFilter), topic)
}
