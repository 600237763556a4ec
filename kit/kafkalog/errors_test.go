package kafkalog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

func TestErrorLogRateLimits(t *testing.T) {
	refused := kafka.NewError(kafka.ErrTransport, "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)", false)
	allDown1 := kafka.NewError(kafka.ErrAllBrokersDown, "1/1 brokers are down", false)
	allDown0 := kafka.NewError(kafka.ErrAllBrokersDown, "0/1 brokers are down", false)
	timedOut := kafka.NewError(kafka.ErrTimedOut, "request timed out", false)
	type ev struct {
		at  time.Duration
		err kafka.Error
	}
	for _, tc := range []struct {
		name   string
		events []ev
		want   []string // log lines without time
	}{
		{"first unreachable event logs at once, with its reason", []ev{{0, refused}}, []string{
			`level=WARN msg="kafka not reachable" client=producer reason="127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)" suppressed=0 every=30s`,
		}},
		{"all brokers down alone: no broker count in the line", []ev{{0, allDown0}}, []string{
			`level=WARN msg="kafka not reachable" client=producer reason="all broker connections are down" suppressed=0 every=30s`,
		}},
		{"a minute of outage: two lines, not hundreds", func() []ev {
			var evs []ev
			for ms := 0; ms < 60000; ms += 500 { // librdkafka's pace: a few events a second
				evs = append(evs, ev{time.Duration(ms) * time.Millisecond, []kafka.Error{refused, allDown1, allDown0}[ms/500%3]})
			}
			return evs
		}(), []string{
			`level=WARN msg="kafka not reachable" client=producer reason="127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)" suppressed=0 every=30s`,
			`level=WARN msg="kafka not reachable" client=producer reason="127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)" suppressed=59 every=30s`,
		}},
		{"other errors are limited per code, apart from unreachable", []ev{{0, timedOut}, {time.Second, timedOut}, {2 * time.Second, allDown1}, {31 * time.Second, timedOut}}, []string{
			`level=WARN msg="kafka client error" client=producer code="Local: Timed out" err="request timed out" suppressed=0 every=30s`,
			`level=WARN msg="kafka not reachable" client=producer reason="all broker connections are down" suppressed=0 every=30s`,
			`level=WARN msg="kafka client error" client=producer code="Local: Timed out" err="request timed out" suppressed=1 every=30s`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}}))
			l := NewErrorLog(log, "producer", 0)
			start := time.Unix(1000, 0)
			for _, e := range tc.events {
				l.now = func() time.Time { return start.Add(e.at) }
				l.Log(e.err)
			}
			if got := strings.Split(strings.TrimSpace(buf.String()), "\n"); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("log:\n%s\nwant:\n%s", buf.String(), strings.Join(tc.want, "\n"))
			}
		})
	}
}
