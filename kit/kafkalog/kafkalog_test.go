package kafkalog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

func TestLevel(t *testing.T) {
	quiet := Options{QuietTags: []string{"CONFWARN"}}
	verbose := Options{Verbose: true}
	for _, tc := range []struct {
		o     Options
		level int
		tag   string
		want  slog.Level
	}{
		{Options{}, 0, "X", slog.LevelError},
		{Options{}, 3, "X", slog.LevelError},
		{Options{}, 4, "X", slog.LevelWarn},
		{Options{}, 5, "X", slog.LevelInfo},
		{Options{}, 6, "X", slog.LevelDebug},
		{Options{}, 7, "X", slog.LevelDebug},
		{verbose, 5, "X", slog.LevelInfo},
		{verbose, 6, "X", slog.LevelInfo},
		{verbose, 7, "X", slog.LevelDebug},
		{quiet, 3, "CONFWARN", slog.LevelDebug},
		{quiet, 4, "CONFWARN", slog.LevelDebug},
		{quiet, 4, "FAIL", slog.LevelWarn},
		{Options{}, 4, "CONFWARN", slog.LevelWarn},
	} {
		if got := tc.o.Level(kafka.LogEvent{Level: tc.level, Tag: tc.tag}); got != tc.want {
			t.Errorf("%+v.Level(%d, %s) = %v, want %v", tc.o, tc.level, tc.tag, got, tc.want)
		}
	}
}

func TestForward(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
	logs := make(chan kafka.LogEvent, 2)
	logs <- kafka.LogEvent{Level: 3, Tag: "FAIL", Message: "broker down"}
	logs <- kafka.LogEvent{Level: 6, Tag: "INIT", Message: "hello"}
	close(logs)
	Forward(log, logs, Options{Client: "consumer"})

	logs = make(chan kafka.LogEvent, 1)
	logs <- kafka.LogEvent{Level: 4, Tag: "THROTTLE", Message: "slow"}
	close(logs)
	Forward(log, logs, Options{})

	want := []string{
		`level=ERROR msg="broker down" component=librdkafka client=consumer tag=FAIL`,
		`level=DEBUG msg=hello component=librdkafka client=consumer tag=INIT`,
		`level=WARN msg=slow component=librdkafka tag=THROTTLE`,
	}
	if got := strings.Split(strings.TrimSpace(buf.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("logged:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
