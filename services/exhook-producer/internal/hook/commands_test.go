package hook

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	"github.com/iov-platform/iov/schemas"
)

func withCommands(t *testing.T) (*fixture, *fakeEncoder) {
	t.Helper()
	f := newFixture(t)
	enc := &fakeEncoder{}
	f.srv.o.Commands = &Commands{TopicFilter: "vehicles/+/commands/+", ResponseFilter: "vehicles/+/commands/+/response",
		VehicleSegment: 1, CommandSegment: 3, Topic: "cmd-status", Encoder: enc}
	return f, enc
}

func TestCommandTrackingHooksAreRegistered(t *testing.T) {
	f, _ := withCommands(t)
	resp, err := f.srv.OnProviderLoaded(context.Background(), &exhookv2.ProviderLoadedRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, h := range resp.GetHooks() {
		got[h.GetName()] = h.GetTopics()
	}
	if got[HookMessageDelivered][0] != "vehicles/+/commands/+" || got[HookMessageDropped][0] != "vehicles/+/commands/+" {
		t.Fatalf("delivered/dropped hooks: %v", got)
	}
	// EMQX gives message.acked no reason code: a negative PUBACK would look like a positive one.
	if _, ok := got["message.acked"]; ok {
		t.Fatalf("message.acked registered: %v", got)
	}
	if got[HookMessagePublish][0] != "vehicles/+/commands/+/response" {
		t.Fatalf("publish filters %v lack the response filter", got[HookMessagePublish])
	}
}

func TestCommandStatusEvents(t *testing.T) {
	tests := []struct {
		name   string
		call   func(*Server) error
		status string
		source string
	}{
		{"delivered", func(s *Server) error {
			_, err := s.OnMessageDelivered(context.Background(), &exhookv2.MessageDeliveredRequest{Message: &exhookv2.Message{Topic: "vehicles/V1/commands/C9", Node: "n1"}})
			return err
		}, schemas.CommandDelivered, schemas.SourceBroker},
		{"dropped without subscribers", func(s *Server) error {
			_, err := s.OnMessageDropped(context.Background(), &exhookv2.MessageDroppedRequest{Message: &exhookv2.Message{Topic: "vehicles/V1/commands/C9"}, Reason: "no_subscribers"})
			return err
		}, schemas.CommandFailed, schemas.SourceBroker},
		{"qos 2 refused by the session", func(s *Server) error {
			_, err := s.OnMessageDropped(context.Background(), &exhookv2.MessageDroppedRequest{Message: &exhookv2.Message{Topic: "vehicles/V1/commands/C9"}, Reason: "receive_maximum_exceeded"})
			return err
		}, schemas.CommandFailed, schemas.SourceBroker},
		{"any reason is FAILED, never EXPIRED", func(s *Server) error {
			_, err := s.OnMessageDropped(context.Background(), &exhookv2.MessageDroppedRequest{Message: &exhookv2.Message{Topic: "vehicles/V1/commands/C9"}, Reason: "expired"})
			return err
		}, schemas.CommandFailed, schemas.SourceBroker},
		{"response", func(s *Server) error {
			resp, err := s.OnMessagePublish(context.Background(), publish("vehicles/V1/commands/C9/response", "V1", []byte(`{"ok":true}`)))
			if err == nil && resp.GetType() != exhookv2.ValuedResponse_IGNORE {
				t.Fatalf("reply %v", resp)
			}
			return err
		}, schemas.CommandResponded, schemas.SourceVehicle},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, enc := withCommands(t)
			if err := tt.call(f.srv); err != nil {
				t.Fatal(err)
			}
			st := enc.last.(*schemas.CommandStatus)
			if st.Status != tt.status || st.Source != tt.source || st.CommandID != "C9" || st.VehicleID != "V1" {
				t.Fatalf("status event %+v", st)
			}
			if (tt.status == schemas.CommandFailed || tt.status == schemas.CommandExpired) && (st.Reason == nil || !strings.Contains(*st.Reason, "dropped by the broker")) {
				t.Fatalf("dropped event reason %v", st.Reason)
			}
			if tt.status == schemas.CommandResponded && string(st.Response) != `{"ok":true}` {
				t.Fatalf("response payload %q", st.Response)
			}
			if len(f.prod.recs) != 1 || f.prod.recs[0].Topic != "cmd-status" || string(f.prod.recs[0].Key) != "V1" {
				t.Fatalf("records %+v", f.prod.recs)
			}
		})
	}
}

func TestCommandEventsForOtherTopicsAreIgnored(t *testing.T) {
	f, enc := withCommands(t)
	if _, err := f.srv.OnMessageDelivered(context.Background(), &exhookv2.MessageDeliveredRequest{Message: &exhookv2.Message{Topic: "vehicles/V1/telemetry"}}); err != nil {
		t.Fatal(err)
	}
	if enc.last != nil || len(f.prod.recs) != 0 {
		t.Fatal("a non-command delivery produced a status event")
	}
	// Without tracking configured, delivered is a no-op.
	g := newFixture(t)
	if _, err := g.srv.OnMessageDelivered(context.Background(), &exhookv2.MessageDeliveredRequest{Message: &exhookv2.Message{Topic: "vehicles/V1/commands/C"}}); err != nil || len(g.prod.recs) != 0 {
		t.Fatalf("delivered without tracking: %v, %d records", err, len(g.prod.recs))
	}
	// A response topic whose command level is empty is refused.
	_, err := f.srv.OnMessagePublish(context.Background(), publish("vehicles/V1/commands//response", "V1", nil))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("response without command id: %v", err)
	}
}
