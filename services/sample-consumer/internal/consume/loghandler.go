package consume

import (
	"context"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/iov-platform/iov/schemas"
)

// ============================================================================================
// LogHandler is the sample's stand-in for real work: REPLACE IT WITH YOUR APPLICATION LOGIC.
// Write your own Handler (any type with a Handle method, or a HandlerFunc) and pass it to
// app.New in main.go instead of NewLogHandler.
// ============================================================================================

// LogHandler logs one line per record: at info level a summary (vehicle, topic, route,
// payload size), at debug level also the payload (JSON shortened), headers, MQTT 5
// properties and the end-to-end latency.
type LogHandler struct {
	log *slog.Logger
}

// NewLogHandler returns a LogHandler writing to log.
func NewLogHandler(log *slog.Logger) *LogHandler { return &LogHandler{log: log} }

// previewLen bounds the payload shown at debug level.
const previewLen = 160

// Handle logs r and never fails.
func (h *LogHandler) Handle(ctx context.Context, r Record) error {
	debug := h.log.Enabled(ctx, slog.LevelDebug)
	attrs := make([]slog.Attr, 0, 12)
	msg := "record"
	switch v := r.Value.(type) {
	case *schemas.VehicleMessage:
		msg = "vehicle message"
		attrs = append(attrs,
			slog.String("vehicle", v.VehicleID),
			slog.String("topic", r.Topic),
			slog.String("route", v.Route),
			slog.String("mqtt_topic", v.MQTTTopic),
			slog.Int("bytes", len(v.Payload)),
		)
		if debug {
			attrs = append(attrs,
				slog.String("payload", preview(v.Payload, v.PayloadFormat)),
				slog.Any("headers", v.Headers),
				slog.Any("mqtt_properties", v.MQTTProperties),
				slog.Any("user_properties", v.UserProperties),
				slog.Int("qos", int(v.QoS)),
				slog.Duration("latency", time.Since(v.PublishedAt).Round(time.Millisecond)),
			)
		}
	case *schemas.ClientEvent:
		msg = "client event"
		attrs = append(attrs,
			slog.String("vehicle", v.VehicleID),
			slog.String("topic", r.Topic),
			slog.String("event", v.Event),
		)
		if v.Reason != nil {
			attrs = append(attrs, slog.String("reason", *v.Reason))
		}
		if debug {
			attrs = append(attrs,
				slog.String("peerhost", v.Peerhost),
				slog.String("node", v.Node),
				slog.Duration("latency", time.Since(v.OccurredAt).Round(time.Millisecond)),
			)
		}
	default:
		attrs = append(attrs,
			slog.String("vehicle", r.Key),
			slog.String("topic", r.Topic),
			slog.Int("schema_id", r.SchemaID),
			slog.String("type", fmt.Sprintf("%T", v)),
		)
		if debug {
			attrs = append(attrs, slog.Any("value", v))
		}
	}
	if debug {
		attrs = append(attrs, slog.Int("partition", int(r.Partition)), slog.Int64("offset", r.Offset))
	}
	h.log.LogAttrs(ctx, slog.LevelInfo, msg, attrs...)
	return nil
}

// preview renders a payload for a log line: JSON as (shortened) text, anything else as its
// size only.
func preview(p []byte, format string) string {
	if format != schemas.PayloadJSON || !utf8.Valid(p) {
		return fmt.Sprintf("(%d bytes)", len(p))
	}
	if len(p) <= previewLen {
		return string(p)
	}
	cut := previewLen
	for cut > 0 && !utf8.RuneStart(p[cut]) {
		cut--
	}
	return string(p[:cut]) + "…"
}
