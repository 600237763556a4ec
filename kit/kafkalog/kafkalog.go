// Package kafkalog forwards the log lines of a confluent-kafka-go (librdkafka) client, read
// from its Logs() channel (go.logs.channel.enable=true), to slog.
package kafkalog

import (
	"context"
	"log/slog"
	"slices"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Options say how one client's lines are logged.
type Options struct {
	// Client, when set, is logged as the "client" attribute (consumer, producer, ...).
	Client string
	// QuietTags are logged at debug whatever their level: e.g. CONFWARN for a client that is
	// handed, on purpose, properties meant for another kind of client.
	QuietTags []string
	// Verbose logs librdkafka's informational lines (syslog level 6) at info, not debug.
	Verbose bool
}

// Level maps the syslog level of a librdkafka line to slog's: 0-3 error, 4 warn, 5 (and 6
// when Verbose) info, the rest debug; QuietTags are debug.
func (o Options) Level(l kafka.LogEvent) slog.Level {
	info := 5
	if o.Verbose {
		info = 6
	}
	switch {
	case slices.Contains(o.QuietTags, l.Tag):
		return slog.LevelDebug
	case l.Level <= 3:
		return slog.LevelError
	case l.Level == 4:
		return slog.LevelWarn
	case l.Level <= info:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// Forward logs every line from logs to log, with component=librdkafka, the client (if set)
// and librdkafka's tag, until logs is closed: the client's Close closes it.
func Forward(log *slog.Logger, logs <-chan kafka.LogEvent, o Options) {
	for l := range logs {
		attrs := []any{"component", "librdkafka"}
		if o.Client != "" {
			attrs = append(attrs, "client", o.Client)
		}
		log.Log(context.Background(), o.Level(l), l.Message, append(attrs, "tag", l.Tag)...)
	}
}
