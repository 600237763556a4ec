package kafkalog

import (
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// DefaultEvery is how often ErrorLog repeats a line for the same condition.
const DefaultEvery = 30 * time.Second

// ErrorLog logs a client's error events (the kafka.Error values of Events() or Poll())
// without flooding the log. While no broker can be reached, librdkafka reports
// ERR__TRANSPORT, ERR__RESOLVE and ERR__ALL_BROKERS_DOWN several times a second, the last
// with a broker count that races its own state changes ("0/1 brokers are down" right after
// "All broker connections are down"). ErrorLog turns all of these into one warning,
// "kafka not reachable", with the last concrete reason (which names the broker address),
// at most once per Every. Any other error is logged as "kafka client error", at most once
// per code per Every. A repeated line carries suppressed=N, the events it stands for.
// Count events in metrics, not in the log. Safe for concurrent use.
type ErrorLog struct {
	log    *slog.Logger
	client string
	every  time.Duration
	now    func() time.Time

	mu     sync.Mutex
	last   map[string]time.Time // by condition: "unreachable" or the error code
	count  map[string]int       // events since the condition's last line
	reason string               // the last transport or resolve error: names the broker
}

// NewErrorLog logs the errors of the client named client (producer, consumer, ...; "" for
// none) to log, repeating a condition at most once per every (DefaultEvery when 0).
func NewErrorLog(log *slog.Logger, client string, every time.Duration) *ErrorLog {
	if every <= 0 {
		every = DefaultEvery
	}
	return &ErrorLog{log: log, client: client, every: every, now: time.Now, last: map[string]time.Time{}, count: map[string]int{}}
}

// Unreachable tells whether err means no broker could be reached.
func Unreachable(err kafka.Error) bool {
	switch err.Code() {
	case kafka.ErrTransport, kafka.ErrResolve, kafka.ErrAllBrokersDown:
		return true
	}
	return false
}

// Log logs err, or counts it when its condition was logged less than Every ago.
func (l *ErrorLog) Log(err kafka.Error) {
	l.mu.Lock()
	key := err.Code().String()
	if Unreachable(err) {
		key = "unreachable"
		if err.Code() != kafka.ErrAllBrokersDown { // its text is only a broker count
			l.reason = strings.TrimSpace(err.Error())
		}
	}
	l.count[key]++
	now := l.now()
	if last, ok := l.last[key]; ok && now.Sub(last) < l.every {
		l.mu.Unlock()
		return
	}
	suppressed := l.count[key] - 1
	l.last[key], l.count[key] = now, 0
	reason := l.reason
	l.mu.Unlock()

	attrs := []any{}
	if l.client != "" {
		attrs = append(attrs, "client", l.client)
	}
	if key == "unreachable" {
		if reason == "" {
			reason = "all broker connections are down"
		}
		attrs = append(attrs, "reason", reason, "suppressed", suppressed, "every", l.every)
		l.log.Warn("kafka not reachable", attrs...)
		return
	}
	attrs = append(attrs, "code", key, "err", err.Error(), "suppressed", suppressed, "every", l.every)
	l.log.Warn("kafka client error", attrs...)
}
