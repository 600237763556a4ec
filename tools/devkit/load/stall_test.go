package load

import (
	"context"
	"testing"
	"time"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
)

// stallProvider answers at once, except that its stallOn-th call waits stall first.
type stallProvider struct {
	rawProvider
	stallOn int64
	stall   time.Duration
}

func (p *stallProvider) OnMessagePublish(context.Context, *exhookv2.MessagePublishRequest) (*exhookv2.ValuedResponse, error) {
	if p.n.Add(1) == p.stallOn {
		time.Sleep(p.stall)
	}
	return &exhookv2.ValuedResponse{Type: exhookv2.ValuedResponse_IGNORE}, nil
}

// TestIntervalAndLongestStall: Interval paces each vehicle's messages, and LongestStall is
// at least the longest wait a vehicle had between two acknowledgements.
func TestIntervalAndLongestStall(t *testing.T) {
	const interval, stall, messages = 20 * time.Millisecond, 400 * time.Millisecond, 6
	p := &stallProvider{stallOn: 3, stall: stall}
	rep, err := Run(context.Background(), Options{Addr: serve(t, p), Vehicles: 1, Messages: messages,
		Interval: interval, Pool: 1, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Acked != messages {
		t.Fatalf("acked %d of %d", rep.Acked, messages)
	}
	if min := (messages-1)*interval + stall; rep.Elapsed < min {
		t.Fatalf("run took %s; %d messages %s apart with one %s stall take at least %s", rep.Elapsed, messages, interval, stall, min)
	}
	if rep.LongestStall < stall+interval || rep.LongestStall > rep.Elapsed {
		t.Fatalf("longest stall %s, want between %s and the run's %s", rep.LongestStall, stall+interval, rep.Elapsed)
	}
	if rep.SentP99 != 0 || rep.SendLagP99 != 0 {
		t.Fatalf("closed loop: from-send p99 %s, send lag p99 %s; want them only at a fixed rate", rep.SentP99, rep.SendLagP99)
	}
}

// TestRateIsOpenLoop: with Rate the messages follow a fixed schedule over all vehicles, and a
// slow answer also counts against the messages that wait behind it (latency from the
// scheduled send time), which a closed loop would hide.
func TestRateIsOpenLoop(t *testing.T) {
	const vehicles, messages, rate = 2, 6, 100.0 // each vehicle every 20ms; the last message at 110ms
	last := time.Duration((vehicles*messages - 1) / rate * float64(time.Second))
	paced, err := Run(context.Background(), Options{Addr: serve(t, &stallProvider{}), Vehicles: vehicles, Messages: messages,
		Rate: rate, Pool: 1, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if paced.Acked != vehicles*messages || paced.Elapsed < last {
		t.Fatalf("acked %d of %d in %s; the schedule's last message is at %s", paced.Acked, vehicles*messages, paced.Elapsed, last)
	}

	const stall = 400 * time.Millisecond
	rep, err := Run(context.Background(), Options{Addr: serve(t, &stallProvider{stallOn: 3, stall: stall}), Vehicles: vehicles, Messages: messages,
		Rate: rate, Pool: 1, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The stalled call and the ones its vehicle sends late behind it (at least three, each
	// scheduled at most 100ms after it) all wait more than half the stall.
	if rep.Max < stall || rep.P90 < stall/2 {
		t.Fatalf("max %s, p90 %s: want max >= %s and p90 >= %s (latency from the schedule)", rep.Max, rep.P90, stall, stall/2)
	}
	// Counted from the actual send instead, most answers are quick again, and the late sends
	// show as the load's send lag.
	if rep.SendLagP99 < stall/2 || rep.SentP50 >= stall/4 || rep.SentP99 < stall {
		t.Fatalf("send lag p99 %s, from-send p50 %s and p99 %s: want >= %s, < %s and >= %s", rep.SendLagP99, rep.SentP50, rep.SentP99, stall/2, stall/4, stall)
	}
	if paced.SentP50 <= 0 || paced.SentP99 < paced.SentP50 {
		t.Fatalf("paced run: from-send p50 %s, p99 %s", paced.SentP50, paced.SentP99)
	}
}
