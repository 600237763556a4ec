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
const (
	HookMessageDelivered = "message.delivered"
	HookMessageAcked     = "message.acked"
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

// OnMessageAcked: the vehicle acknowledged a command (QoS 1 PUBACK / QoS 2 PUBCOMP).
func (s *Server) OnMessageAcked(ctx context.Context, req *exhookv2.MessageAckedRequest) (*exhookv2.EmptySuccess, error) {
	return s.brokerCommandEvent(ctx, HookMessageAcked, schemas.CommandAcked, req.GetMessage(), "")
}

// OnMessageDropped: EMQX dropped a command, e.g. no_subscribers (the vehicle is offline
// without a persistent session). An expiry-related reason is EXPIRED, anything else FAILED.
func (s *Server) OnMessageDropped(ctx context.Context, req *exhookv2.MessageDroppedRequest) (*exhookv2.EmptySuccess, error) {
	state := schemas.CommandFailed
	if strings.Contains(req.GetReason(), "expire") {
		state = schemas.CommandExpired
	}
	reason := "dropped by the broker: " + req.GetReason()
	return s.brokerCommandEvent(ctx, HookMessageDropped, state, req.GetMessage(), reason)
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
