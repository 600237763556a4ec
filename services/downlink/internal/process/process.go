// Package process takes one command record from the commands topic to its end: dead-lettered
// (undecodable or invalid), EXPIRED, or SENT and published to the vehicle's MQTT command
// topic (then acknowledged by EMQX, or FAILED). Every end is recorded; nothing is skipped
// silently.
//
// Order of effects for a command that is sent:
//
//  1. SENT is written to the status topic and acknowledged by Kafka (acks=all);
//  2. the command is published with QoS 1 and EMQX's PUBACK is awaited.
//
// Because (1) completes before (2) starts, SENT precedes on the vehicle's partition every
// DELIVERED / ACKED / RESPONDED event that EMQX and the exhook producer derive from (2).
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/eclipse/paho.golang/paho"
	"github.com/hamba/avro/v2"
	"github.com/riferrei/srclient"

	"github.com/iov-platform/iov/kit/kafkagroup"
	"github.com/iov-platform/iov/kit/kafkasink"
	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/schemas/wire"
	"github.com/iov-platform/iov/services/downlink/internal/command"
	"github.com/iov-platform/iov/services/downlink/internal/config"
	"github.com/iov-platform/iov/services/downlink/internal/engine"
	"github.com/iov-platform/iov/services/downlink/internal/metrics"
	"github.com/iov-platform/iov/services/downlink/internal/mqttpub"
)

// Stages at which a record is rejected (kafkagroup.HeaderStage of its dead letter).
const (
	StageDecode   = "decode"
	StageValidate = "validate"
)

// MQTT properties of a command message.
const (
	ContentType = "application/json"
	UserCommand = "command" // user property carrying the command name
)

// Producer writes a record; the processor always has it wait for Kafka's acknowledgement.
type Producer interface {
	Produce(ctx context.Context, rec kafkasink.Record, wait bool) error
}

// Publisher publishes to EMQX.
type Publisher interface {
	Connected() bool
	Publish(ctx context.Context, msg *paho.Publish) (*paho.PublishResponse, error)
}

// Encoder frames a CommandStatus.
type Encoder interface {
	Encode(v any) ([]byte, error)
}

// Options wires a Processor.
type Options struct {
	Registry      serde.Registry
	StatusEncoder Encoder
	Producer      Producer
	Publisher     Publisher
	Kafka         config.Kafka
	MQTT          config.MQTT
	Log           *slog.Logger
	Metrics       *metrics.Metrics
	Now           func() time.Time // default time.Now
}

// Processor is the engine's handler.
type Processor struct {
	o        Options
	reg      serde.Registry
	dec      *serde.Decoder
	reader   avro.Schema
	cmdTopic command.Template
	resTopic command.Template
	log      *slog.Logger
	m        *metrics.Metrics
	now      func() time.Time
}

// New checks the options and parses the reader schema.
func New(o Options) (*Processor, error) {
	reader, err := schemas.MustLatest(schemas.VehicleCommandName).Parse()
	if err != nil {
		return nil, err
	}
	ct, err := command.ParseTemplate(o.MQTT.CommandTopic)
	if err != nil {
		return nil, fmt.Errorf("mqtt.commandTopic: %w", err)
	}
	rt, err := command.ParseTemplate(o.MQTT.ResponseTopic)
	if err != nil {
		return nil, fmt.Errorf("mqtt.responseTopic: %w", err)
	}
	p := &Processor{o: o, reg: o.Registry, dec: serde.NewDecoder(o.Registry), reader: reader, cmdTopic: ct, resTopic: rt,
		log: o.Log, m: o.Metrics, now: o.Now}
	if p.now == nil {
		p.now = time.Now
	}
	return p, nil
}

// errRegistry marks a registry that cannot be asked right now: the record may be fine.
var errRegistry = errors.New("schema registry unavailable")

// Handle finishes one command record. It returns an error only when the record is not
// finished: shutdown (ctx), a revoked partition (engine.ErrRevoked) or a broken producer.
func (p *Processor) Handle(ctx context.Context, m *kafka.Message, w engine.Waiter) error {
	cmd, err := p.decode(ctx, m, w)
	switch {
	case errors.Is(err, errRegistry):
		return err // only when ctx ended or the partition was revoked while retrying
	case err != nil:
		return p.reject(ctx, w, m, nil, StageDecode, err)
	}
	if err := command.Validate(cmd, m.Key); err != nil {
		return p.reject(ctx, w, m, cmd, StageValidate, err)
	}
	return p.deliver(ctx, w, cmd, m)
}

// decode reads the record into the latest VehicleCommand, resolving older writer versions.
// Every error except errRegistry means the record itself is bad; errRegistry (the registry
// could not be asked) is retried here until ctx ends.
func (p *Processor) decode(ctx context.Context, m *kafka.Message, w engine.Waiter) (*schemas.VehicleCommand, error) {
	id, _, err := wire.Split(m.Value)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		err = p.checkWriter(id)
		if !errors.Is(err, errRegistry) {
			break
		}
		wait := p.o.MQTT.Retry.Backoff(attempt)
		p.log.Warn("schema registry unavailable; retrying", append(kafkagroup.LogAttrs(m), "attempt", attempt, "retry_in", wait, "err", err)...)
		if werr := w.Wait(ctx, wait); werr != nil {
			return nil, fmt.Errorf("%w: %w (gave up: %w)", errRegistry, err, werr)
		}
	}
	if err != nil {
		return nil, err
	}
	var cmd schemas.VehicleCommand
	if _, err := p.dec.Decode(m.Value, p.reader, &cmd); err != nil {
		return nil, err
	}
	return &cmd, nil
}

// checkWriter tells a record that names an unknown or non-Avro schema (the record is bad)
// from a registry that cannot be asked now. Only the registry's own "schema not found"
// (error code 40403) condemns a record: a bare 404 can come from a proxy or a wrong URL.
func (p *Processor) checkWriter(id int) error {
	s, err := p.reg.GetSchema(id)
	if err != nil {
		var srErr srclient.Error
		if errors.As(err, &srErr) && srErr.Code == 40403 {
			return fmt.Errorf("schema id %d is not in the registry", id)
		}
		return fmt.Errorf("%w: fetch schema id %d: %w", errRegistry, id, err)
	}
	if st := s.SchemaType(); st != nil && !strings.EqualFold(string(*st), string(srclient.Avro)) {
		return fmt.Errorf("schema id %d is %s, not AVRO", id, *st)
	}
	return nil
}

// reject copies the record to the dead-letter topic and, when the command and vehicle ids
// are known, writes FAILED with the reason.
func (p *Processor) reject(ctx context.Context, w engine.Waiter, m *kafka.Message, cmd *schemas.VehicleCommand, stage string, cause error) error {
	headers := kafkagroup.DeadLetterHeaders(m, p.o.Kafka.GroupID, stage, 0, cause)
	rec := kafkasink.Record{Topic: p.o.Kafka.DeadLetterTopic, Key: m.Key, Value: m.Value, Headers: headers}
	if err := p.produce(ctx, w, rec, "dead letter"); err != nil {
		return err
	}
	if cmd != nil && cmd.CommandID != "" && cmd.VehicleID != "" {
		if err := p.status(ctx, w, cmd, schemas.CommandFailed, cause.Error()); err != nil {
			return err
		}
	}
	p.m.Commands.WithLabelValues(metrics.OutcomeDeadLettered).Inc()
	attrs := append(kafkagroup.LogAttrs(m), "stage", stage, "dead_letter_topic", p.o.Kafka.DeadLetterTopic, "err", cause)
	if cmd != nil {
		attrs = append(attrs, "command_id", cmd.CommandID, "vehicle", cmd.VehicleID)
	}
	p.log.Warn("command dead-lettered", attrs...)
	return nil
}

// deliver handles a valid command: EXPIRED, or SENT then published (then done, or FAILED).
func (p *Processor) deliver(ctx context.Context, w engine.Waiter, cmd *schemas.VehicleCommand, m *kafka.Message) error {
	log := p.log.With("command_id", cmd.CommandID, "vehicle", cmd.VehicleID, "command", cmd.Name)
	// Wait for the connection before declaring SENT: a command that expires meanwhile was
	// never sent.
	for attempt := 1; !p.o.Publisher.Connected(); attempt++ {
		now := p.now()
		if command.Expired(cmd, now) {
			return p.expired(ctx, w, cmd, log, command.ExpiredReason(cmd, now, "while the MQTT connection to the broker was down"))
		}
		if attempt == 1 {
			log.Info("waiting for the MQTT connection before sending", "expires_at", cmd.ExpiresAt)
		}
		if err := w.Wait(ctx, min(p.o.MQTT.Retry.Backoff(attempt), time.Second, cmd.ExpiresAt.Sub(now))); err != nil {
			return err
		}
	}
	if now := p.now(); command.Expired(cmd, now) {
		return p.expired(ctx, w, cmd, log, command.ExpiredReason(cmd, now, ""))
	}

	payload, err := command.JSON(cmd)
	if err != nil {
		return p.failed(ctx, w, cmd, log, fmt.Sprintf("payload: %v", err))
	}
	topic := p.cmdTopic.Expand(cmd.VehicleID, cmd.CommandID)
	if err := p.status(ctx, w, cmd, schemas.CommandSent, ""); err != nil {
		return err
	}

	var lastErr error
	for attempt := 1; ; attempt++ {
		now := p.now()
		if command.Expired(cmd, now) {
			return p.failed(ctx, w, cmd, log, fmt.Sprintf("%s after %d publish attempt(s); last error: %v",
				command.ExpiredReason(cmd, now, "while retrying"), attempt-1, lastErr))
		}
		resp, err := p.publish(ctx, p.message(cmd, topic, payload, now))
		switch {
		case resp != nil && resp.ReasonCode >= 0x80:
			return p.failed(ctx, w, cmd, log, "broker refused the command: "+pubackReason(resp))
		case err == nil:
			p.m.Commands.WithLabelValues(metrics.OutcomeSent).Inc()
			attrs := []any{"mqtt_topic", topic, "attempts", attempt, "offset", int64(m.TopicPartition.Offset)}
			if resp != nil && resp.ReasonCode == 0x10 {
				// EMQX: no subscriber right now (the vehicle is offline with no session).
				attrs = append(attrs, "puback", "no matching subscribers")
			}
			log.Info("command sent", attrs...)
			return nil
		case errors.Is(err, paho.ErrInvalidArguments):
			return p.failed(ctx, w, cmd, log, fmt.Sprintf("cannot be published: %v", err))
		case ctx.Err() != nil:
			return ctx.Err()
		}
		lastErr = err
		wait := min(p.o.MQTT.Retry.Backoff(attempt), max(cmd.ExpiresAt.Sub(p.now()), 0))
		p.m.PublishRetries.Inc()
		log.Warn("publish failed; retrying while the command has not expired", "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "err", err)
		if err := w.Wait(ctx, wait); err != nil {
			return err
		}
	}
}

func (p *Processor) publish(ctx context.Context, msg *paho.Publish) (*paho.PublishResponse, error) {
	actx, cancel := context.WithTimeout(ctx, p.o.MQTT.PublishTimeout)
	defer cancel()
	start := time.Now()
	resp, err := p.o.Publisher.Publish(actx, msg)
	result := metrics.PublishOK
	switch {
	case resp != nil && resp.ReasonCode >= 0x80:
		result = metrics.PublishRefused
	case err != nil:
		result = metrics.PublishError
	}
	if !errors.Is(err, mqttpub.ErrNotConnected) {
		p.m.PublishDuration.WithLabelValues(result).Observe(time.Since(start).Seconds())
	}
	if err != nil && actx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("no PUBACK within %s: %w", p.o.MQTT.PublishTimeout, err)
	}
	return resp, err
}

// message builds the MQTT 5 PUBLISH of a command sent at now.
func (p *Processor) message(cmd *schemas.VehicleCommand, topic string, payload []byte, now time.Time) *paho.Publish {
	utf8 := byte(1)
	expiry := command.MessageExpiry(cmd, now)
	return &paho.Publish{
		QoS:     1,
		Topic:   topic,
		Payload: payload,
		Properties: &paho.PublishProperties{
			CorrelationData: []byte(cmd.CommandID),
			ResponseTopic:   p.resTopic.Expand(cmd.VehicleID, cmd.CommandID),
			MessageExpiry:   &expiry,
			ContentType:     ContentType,
			PayloadFormat:   &utf8,
			User:            paho.UserProperties{{Key: UserCommand, Value: cmd.Name}},
		},
	}
}

func (p *Processor) expired(ctx context.Context, w engine.Waiter, cmd *schemas.VehicleCommand, log *slog.Logger, reason string) error {
	if err := p.status(ctx, w, cmd, schemas.CommandExpired, reason); err != nil {
		return err
	}
	p.m.Commands.WithLabelValues(metrics.OutcomeExpired).Inc()
	log.Info("command expired; not sent", "reason", reason)
	return nil
}

func (p *Processor) failed(ctx context.Context, w engine.Waiter, cmd *schemas.VehicleCommand, log *slog.Logger, reason string) error {
	if err := p.status(ctx, w, cmd, schemas.CommandFailed, reason); err != nil {
		return err
	}
	p.m.Commands.WithLabelValues(metrics.OutcomeFailed).Inc()
	log.Warn("command failed", "reason", reason)
	return nil
}

// status writes one CommandStatus event keyed by the vehicle id and waits for Kafka.
func (p *Processor) status(ctx context.Context, w engine.Waiter, cmd *schemas.VehicleCommand, state, reason string) error {
	st := &schemas.CommandStatus{
		CommandID:  cmd.CommandID,
		VehicleID:  cmd.VehicleID,
		Status:     state,
		Source:     schemas.SourceDownlink,
		OccurredAt: p.now().UTC().Truncate(time.Millisecond),
	}
	if reason != "" {
		st.Reason = &reason
	}
	value, err := p.o.StatusEncoder.Encode(st)
	if err != nil {
		return fmt.Errorf("encode %s status: %w", state, err)
	}
	err = p.produce(ctx, w, kafkasink.Record{Topic: p.o.Kafka.StatusTopic, Key: []byte(cmd.VehicleID), Value: value}, state+" status")
	result := "ok"
	if err != nil {
		result = "error"
	}
	p.m.StatusEvents.WithLabelValues(state, result).Inc()
	return err
}

// produce writes rec, retrying (without leaving the group) until Kafka acknowledges it.
func (p *Processor) produce(ctx context.Context, w engine.Waiter, rec kafkasink.Record, what string) error {
	for attempt := 1; ; attempt++ {
		err := p.o.Producer.Produce(ctx, rec, true)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, kafkasink.ErrFatal):
			return err
		case ctx.Err() != nil:
			return fmt.Errorf("%s: %w", what, err)
		}
		wait := p.o.MQTT.Retry.Backoff(attempt)
		p.log.Warn("kafka write failed; retrying", "what", what, "topic", rec.Topic, "key", string(rec.Key), "attempt", attempt, "retry_in", wait, "err", err)
		if werr := w.Wait(ctx, wait); werr != nil {
			return fmt.Errorf("%s: %w (last error: %w)", what, werr, err)
		}
	}
}

// pubackReasons names the PUBACK error reason codes (MQTT 5, 3.4.2.1).
var pubackReasons = map[byte]string{
	0x80: "unspecified error",
	0x83: "implementation specific error",
	0x87: "not authorized",
	0x90: "topic name invalid",
	0x91: "packet identifier in use",
	0x97: "quota exceeded",
	0x99: "payload format invalid",
}

func pubackReason(r *paho.PublishResponse) string {
	s := fmt.Sprintf("PUBACK reason code 0x%02x", r.ReasonCode)
	if name, ok := pubackReasons[r.ReasonCode]; ok {
		s += " (" + name + ")"
	}
	if r.Properties != nil && r.Properties.ReasonString != "" {
		s += ": " + r.Properties.ReasonString
	}
	return s
}
