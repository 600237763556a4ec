package hook

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	exhookv3 "github.com/iov-platform/iov/proto/emqx/exhook/v3"
	"github.com/iov-platform/iov/schemas"
)

// publishV3 is publish(...) as EMQX 5.9+ sends it, with MQTT 5 properties.
func publishV3(topic, from string, payload []byte, props, user []*exhookv3.Property) *exhookv3.MessagePublishRequest {
	var req exhookv3.MessagePublishRequest
	b, err := proto.Marshal(publish(topic, from, payload))
	if err != nil {
		panic(err)
	}
	if err := proto.Unmarshal(b, &req); err != nil {
		panic(err)
	}
	req.Props, req.UserProps = props, user
	return &req
}

func prop(name, value string) *exhookv3.Property { return &exhookv3.Property{Name: name, Value: value} }

func headerPairs(t *testing.T, f *fixture) []string {
	t.Helper()
	if len(f.prod.recs) != 1 {
		t.Fatalf("%d records, want 1", len(f.prod.recs))
	}
	var out []string
	for _, h := range f.prod.recs[0].Headers {
		out = append(out, h.Key+"="+string(h.Value))
	}
	return out
}

func TestV3PublishCarriesMQTT5Properties(t *testing.T) {
	props := []*exhookv3.Property{prop("Response-Topic", "vehicles/V1/replies"), prop("Content-Type", "application/json"), prop("Message-Expiry-Interval", "30")}
	user := []*exhookv3.Property{prop("trace", "b"), prop("fw", "1.2"), prop("trace", "a"), prop("empty", "")}
	tests := []struct {
		name        string
		call        func(*Server) (proto.Message, error)
		wantHeaders []string
		wantProps   map[string]string
		wantUser    []schemas.UserProperty
	}{
		{
			name: "v3 with properties",
			call: func(s *Server) (proto.Message, error) {
				return s.V3().OnMessagePublish(context.Background(), publishV3("vehicles/V1/telemetry", "V1", []byte(`{}`), props, user))
			},
			wantHeaders: []string{
				"iov.mqtt.prop.Content-Type=application/json", "iov.mqtt.prop.Message-Expiry-Interval=30", "iov.mqtt.prop.Response-Topic=vehicles/V1/replies",
				"iov.mqtt.user.trace=b", "iov.mqtt.user.fw=1.2", "iov.mqtt.user.trace=a", "iov.mqtt.user.empty=",
			},
			wantProps: map[string]string{"Content-Type": "application/json", "Message-Expiry-Interval": "30", "Response-Topic": "vehicles/V1/replies"},
			wantUser:  []schemas.UserProperty{{Name: "trace", Value: "b"}, {Name: "fw", Value: "1.2"}, {Name: "trace", Value: "a"}, {Name: "empty", Value: ""}},
		},
		{
			name: "v3 from an MQTT 3.1.1 publisher",
			call: func(s *Server) (proto.Message, error) {
				return s.V3().OnMessagePublish(context.Background(), publishV3("vehicles/V1/telemetry", "V1", []byte(`{}`), nil, nil))
			},
		},
		{
			name: "v2",
			call: func(s *Server) (proto.Message, error) {
				return s.OnMessagePublish(context.Background(), publish("vehicles/V1/telemetry", "V1", []byte(`{}`)))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			resp, err := tt.call(f.srv)
			if err != nil {
				t.Fatal(err)
			}
			var reply exhookv2.ValuedResponse // both versions answer a bare IGNORE
			if _, err := convert(resp, &reply); err != nil || reply.GetType() != exhookv2.ValuedResponse_IGNORE || reply.GetMessage() != nil {
				t.Fatalf("reply %v (%v), want a bare IGNORE", resp, err)
			}
			if got := headerPairs(t, f); !reflect.DeepEqual(got, tt.wantHeaders) {
				t.Fatalf("record headers\n got  %q\n want %q", got, tt.wantHeaders)
			}
			env := f.enc.last.(*schemas.VehicleMessage)
			if !reflect.DeepEqual(env.MQTTProperties, tt.wantProps) || !reflect.DeepEqual(env.UserProperties, tt.wantUser) {
				t.Fatalf("envelope properties %v %v, want %v %v", env.MQTTProperties, env.UserProperties, tt.wantProps, tt.wantUser)
			}
			if env.VehicleID != "V1" || env.MessageID != "ID1" || env.QoS != 1 || env.Headers["peerhost"] != "10.0.0.9" {
				t.Fatalf("envelope %+v", env)
			}
		})
	}
}

// TestV3DeadLetterKeepsProperties: a v3 message whose payload fails its route is
// dead-lettered with its MQTT 5 properties among the headers.
func TestV3DeadLetterKeepsProperties(t *testing.T) {
	f := newFixture(t)
	req := publishV3("vehicles/V1/telemetry", "V1", []byte(`{`), []*exhookv3.Property{prop("Content-Type", "application/json")},
		[]*exhookv3.Property{prop("fw", "1.2")})
	if _, err := f.srv.V3().OnMessagePublish(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	hs := headerPairs(t, f)
	if f.prod.recs[0].Topic != "dlq" || !slices.Contains(hs, "iov.mqtt.prop.Content-Type=application/json") ||
		!slices.Contains(hs, "iov.mqtt.user.fw=1.2") || !slices.ContainsFunc(hs, func(h string) bool { return strings.HasPrefix(h, HeaderError+"=") }) {
		t.Fatalf("dead letter on %s with headers %q", f.prod.recs[0].Topic, hs)
	}
}

// TestV3ServesTheV2Handlers: every hook the producer registers answers over v3 exactly as
// over v2, errors included.
func TestV3ServesTheV2Handlers(t *testing.T) {
	ci := &exhookv2.ClientInfo{Node: "n1", Clientid: "V1", Peerhost: "10.0.0.1", Peerport: 50123, Protocol: "mqtt"}
	cmd := &exhookv2.Message{Node: "n1", Topic: "vehicles/V1/commands/C9", Qos: 1}
	tests := []struct {
		name string
		v2   func(context.Context, *Server) (proto.Message, error)
		v3   func(context.Context, *V3, proto.Message) (proto.Message, error)
		req  proto.Message // the v2 request; converted for v3
	}{
		{"provider loaded",
			func(ctx context.Context, s *Server) (proto.Message, error) {
				return s.OnProviderLoaded(ctx, &exhookv2.ProviderLoadedRequest{})
			},
			func(ctx context.Context, v *V3, r proto.Message) (proto.Message, error) {
				return v.OnProviderLoaded(ctx, must(convert(r, &exhookv3.ProviderLoadedRequest{})))
			},
			&exhookv2.ProviderLoadedRequest{Broker: &exhookv2.BrokerInfo{Version: "6.0.1"}}},
		{"provider unloaded",
			func(ctx context.Context, s *Server) (proto.Message, error) {
				return s.OnProviderUnloaded(ctx, &exhookv2.ProviderUnloadedRequest{})
			},
			func(ctx context.Context, v *V3, r proto.Message) (proto.Message, error) {
				return v.OnProviderUnloaded(ctx, must(convert(r, &exhookv3.ProviderUnloadedRequest{})))
			},
			&exhookv2.ProviderUnloadedRequest{}},
		{"client connected",
			func(ctx context.Context, s *Server) (proto.Message, error) {
				return s.OnClientConnected(ctx, &exhookv2.ClientConnectedRequest{Clientinfo: ci})
			},
			func(ctx context.Context, v *V3, r proto.Message) (proto.Message, error) {
				return v.OnClientConnected(ctx, must(convert(r, &exhookv3.ClientConnectedRequest{})))
			},
			&exhookv2.ClientConnectedRequest{Clientinfo: ci}},
		{"client disconnected",
			func(ctx context.Context, s *Server) (proto.Message, error) {
				return s.OnClientDisconnected(ctx, &exhookv2.ClientDisconnectedRequest{Clientinfo: ci, Reason: "normal"})
			},
			func(ctx context.Context, v *V3, r proto.Message) (proto.Message, error) {
				return v.OnClientDisconnected(ctx, must(convert(r, &exhookv3.ClientDisconnectedRequest{})))
			},
			&exhookv2.ClientDisconnectedRequest{Clientinfo: ci, Reason: "normal"}},
		{"connected without clientid fails",
			func(ctx context.Context, s *Server) (proto.Message, error) {
				return s.OnClientConnected(ctx, &exhookv2.ClientConnectedRequest{})
			},
			func(ctx context.Context, v *V3, r proto.Message) (proto.Message, error) {
				return v.OnClientConnected(ctx, must(convert(r, &exhookv3.ClientConnectedRequest{})))
			},
			&exhookv2.ClientConnectedRequest{}},
		{"publish without message fails",
			func(ctx context.Context, s *Server) (proto.Message, error) {
				return s.OnMessagePublish(ctx, &exhookv2.MessagePublishRequest{})
			},
			func(ctx context.Context, v *V3, r proto.Message) (proto.Message, error) {
				return v.OnMessagePublish(ctx, must(convert(r, &exhookv3.MessagePublishRequest{})))
			},
			&exhookv2.MessagePublishRequest{}},
		{"command delivered",
			func(ctx context.Context, s *Server) (proto.Message, error) {
				return s.OnMessageDelivered(ctx, &exhookv2.MessageDeliveredRequest{Clientinfo: ci, Message: cmd})
			},
			func(ctx context.Context, v *V3, r proto.Message) (proto.Message, error) {
				return v.OnMessageDelivered(ctx, must(convert(r, &exhookv3.MessageDeliveredRequest{})))
			},
			&exhookv2.MessageDeliveredRequest{Clientinfo: ci, Message: cmd}},
		{"command dropped",
			func(ctx context.Context, s *Server) (proto.Message, error) {
				return s.OnMessageDropped(ctx, &exhookv2.MessageDroppedRequest{Message: cmd, Reason: "no_subscribers"})
			},
			func(ctx context.Context, v *V3, r proto.Message) (proto.Message, error) {
				return v.OnMessageDropped(ctx, must(convert(r, &exhookv3.MessageDroppedRequest{})))
			},
			&exhookv2.MessageDroppedRequest{Message: cmd, Reason: "no_subscribers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f2, _ := withCommands(t)
			f3, _ := withCommands(t)
			r2, err2 := tt.v2(context.Background(), f2.srv)
			r3, err3 := tt.v3(context.Background(), f3.srv.V3(), tt.req)
			if status.Code(err2) != status.Code(err3) {
				t.Fatalf("v2 error %v, v3 error %v", err2, err3)
			}
			if err2 == nil {
				b2, _ := proto.MarshalOptions{Deterministic: true}.Marshal(r2)
				b3, _ := proto.MarshalOptions{Deterministic: true}.Marshal(r3)
				if string(b2) != string(b3) || r3.ProtoReflect().Descriptor().ParentFile().Package() != "emqx.exhook.v3" {
					t.Fatalf("v3 reply %T %v differs from v2 reply %v", r3, r3, r2)
				}
			}
			if fmt.Sprint(f2.prod.recs) != fmt.Sprint(f3.prod.recs) {
				t.Fatalf("records over v3 %v, over v2 %v", f3.prod.recs, f2.prod.recs)
			}
		})
	}
	// The table covers every hook the producer implements: a v3 method left unadapted would
	// answer Unimplemented while v2 works.
	if _, err := (&V3{}).OnClientConnect(context.Background(), nil); status.Code(err) != codes.Unimplemented {
		t.Fatalf("an unregistered hook answers %v", err)
	}
}

// TestPublishMessageCopyIsComplete: the field-by-field copy of the v3 message equals the
// v2 message read from the same bytes, for a message with every field set.
func TestPublishMessageCopyIsComplete(t *testing.T) {
	full := &exhookv3.Message{Node: "n", Id: "id", Qos: 2, From: "c", Topic: "t", Payload: []byte{0, 1},
		Timestamp: 7, Headers: map[string]string{"username": "u", "peerhost": "10.0.0.1"}}
	fields := full.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if !full.ProtoReflect().Has(fields.Get(i)) {
			t.Fatalf("test message leaves %s unset: set every field", fields.Get(i).Name())
		}
	}
	want, err := convert(full, &exhookv2.Message{})
	if err != nil {
		t.Fatal(err)
	}
	if got := messageV2(full); !proto.Equal(got, want) {
		t.Fatalf("messageV2 = %v, want %v", got, want)
	}
	if messageV2(nil) != nil {
		t.Fatal("messageV2(nil) is not nil")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func BenchmarkOnMessagePublishV3(b *testing.B) {
	f := newBenchFixture(b)
	req := publishV3("vehicles/WVW1234567890/telemetry", "WVW1234567890", []byte(`{"speed":88,"soc":0.71,"lat":48.1,"lon":11.5}`),
		[]*exhookv3.Property{prop("Content-Type", "application/json")}, []*exhookv3.Property{prop("fw", "1.2")})
	v3 := f.srv.V3()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v3.OnMessagePublish(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzV3Publish: whatever bytes arrive as a v3 message.publish request, they also read as a
// v2 request, the field copy the adapter makes equals the v2 message read from the same
// bytes (unknown fields aside), so v2 and v3 callers are served the same message, and
// serving it never panics.
func FuzzV3Publish(f *testing.F) {
	seed := func(req proto.Message) {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(publishV3("vehicles/V1/telemetry", "V1", []byte(`{"a":1}`), []*exhookv3.Property{prop("Content-Type", "application/json")}, []*exhookv3.Property{prop("fw", "1")}))
	seed(publishV3("vehicles/V1/telemetry", "V1", []byte(`{`), nil, nil))
	seed(publishV3("vehicles/V1/commands/C1/response", "V1", nil, nil, []*exhookv3.Property{prop("x", "")}))
	fx := newFixture(f)
	v3 := fx.srv.V3()
	f.Fuzz(func(t *testing.T, b []byte) {
		var req3 exhookv3.MessagePublishRequest
		var req2 exhookv2.MessagePublishRequest
		if proto.Unmarshal(b, &req3) != nil {
			return // v2 may still read it: fields 3 and 4 are unknown, so unchecked, there
		}
		if err := proto.Unmarshal(b, &req2); err != nil {
			t.Fatalf("a valid v3 request is not a valid v2 request: %v", err)
		}
		if m := req2.GetMessage(); m != nil {
			m.ProtoReflect().SetUnknown(nil) // fields EMQX never sends; the copy drops them
		}
		if got := messageV2(req3.GetMessage()); !proto.Equal(got, req2.GetMessage()) {
			t.Fatalf("messageV2 = %v, v2 reads %v", got, req2.GetMessage())
		}
		_, _ = v3.OnMessagePublish(context.Background(), &req3)
	})
}
