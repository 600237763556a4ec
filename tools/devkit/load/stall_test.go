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
}
