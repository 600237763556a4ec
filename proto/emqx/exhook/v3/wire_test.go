package exhookv3_test

import (
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	exhookv3 "github.com/iov-platform/iov/proto/emqx/exhook/v3"
)

// These tests pin the wire contract with EMQX 5.9+ (exhook proto v3) as a delta from v2, whose
// own tests pin every v2 field: v3 must be v2 plus exactly the fields upstream added (e6.0.1),
// minus the two fields upstream reserved. If one fails, fix the .proto, not the test.

// v3Added lists, per message, the fields v3 has and v2 does not ("number name type").
var v3Added = map[string][]string{
	"ClientConnectRequest":     {"4 user_props repeated Property"},
	"ClientConnackRequest":     {"5 user_props repeated Property"},
	"ClientSubscribeRequest":   {"5 user_props repeated Property"},
	"ClientUnsubscribeRequest": {"5 user_props repeated Property"},
	"MessagePublishRequest":    {"3 props repeated Property", "4 user_props repeated Property"},
}

// v3Reserved lists the v2 fields (deprecated since EMQX 5.4) that v3 reserves.
var v3Reserved = map[string]protowire.Number{"TopicFilter": 2, "SubOpts": 2}

func fieldSet(md protoreflect.MessageDescriptor) []string {
	var out []string
	fs := md.Fields()
	for i := range fs.Len() {
		fd := fs.Get(i)
		var typ string
		switch {
		case fd.IsMap():
			typ = fmt.Sprintf("map<%s, %s>", fd.MapKey().Kind(), fd.MapValue().Kind())
		case fd.Message() != nil:
			typ = string(fd.Message().Name())
		case fd.Enum() != nil:
			typ = string(fd.Enum().Name())
		default:
			typ = fd.Kind().String()
		}
		if fd.IsList() {
			typ = "repeated " + typ
		}
		if od := fd.ContainingOneof(); od != nil {
			typ = "oneof " + string(od.Name()) + " " + typ
		}
		out = append(out, fmt.Sprintf("%d %s %s", fd.Number(), fd.Name(), typ))
	}
	slices.Sort(out)
	return out
}

func TestV3IsV2PlusUpstreamAdditions(t *testing.T) {
	v2 := exhookv2.File_emqx_exhook_v2_exhook_proto.Messages()
	v3 := exhookv3.File_emqx_exhook_v3_exhook_proto.Messages()
	if v2.Len() != v3.Len() {
		t.Fatalf("v3 has %d messages, v2 %d", v3.Len(), v2.Len())
	}
	for i := range v2.Len() {
		old := v2.Get(i)
		name := string(old.Name())
		t.Run(name, func(t *testing.T) {
			md := v3.ByName(old.Name())
			if md == nil {
				t.Fatalf("v3 lacks message %s", name)
			}
			var want []string
			for _, f := range fieldSet(old) {
				var num protowire.Number
				fmt.Sscan(f, &num)
				if r, ok := v3Reserved[name]; ok && r == num {
					continue
				}
				want = append(want, f)
			}
			want = append(want, v3Added[name]...)
			slices.Sort(want)
			if got := fieldSet(md); !slices.Equal(got, want) {
				t.Errorf("fields of v3 %s:\n got  %q\n want %q", name, got, want)
			}
			if r, ok := v3Reserved[name]; ok && !md.ReservedRanges().Has(r) {
				t.Errorf("v3 %s must reserve field %d", name, r)
			}
		})
	}
}

func TestServiceDescriptor(t *testing.T) {
	fd := exhookv3.File_emqx_exhook_v3_exhook_proto
	if got := fd.Package(); got != "emqx.exhook.v3" {
		t.Fatalf("package = %q, want emqx.exhook.v3", got)
	}
	if exhookv3.HookProvider_ServiceDesc.ServiceName != "emqx.exhook.v3.HookProvider" {
		t.Errorf("grpc ServiceName = %q", exhookv3.HookProvider_ServiceDesc.ServiceName)
	}
	methods := func(sd protoreflect.ServiceDescriptor) []string {
		var out []string
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			if md.IsStreamingClient() || md.IsStreamingServer() {
				t.Errorf("%s must be unary", md.Name())
			}
			out = append(out, fmt.Sprintf("%s %s %s", md.Name(), md.Input().Name(), md.Output().Name()))
		}
		return out
	}
	want := methods(exhookv2.File_emqx_exhook_v2_exhook_proto.Services().ByName("HookProvider"))
	got := methods(fd.Services().ByName("HookProvider"))
	if len(want) != 21 || !slices.Equal(got, want) {
		t.Errorf("v3 HookProvider methods:\n got  %q\n want (v2's 21) %q", got, want)
	}
	if got := exhookv3.HookProvider_OnMessagePublish_FullMethodName; got != "/emqx.exhook.v3.HookProvider/OnMessagePublish" {
		t.Errorf("full method name %q", got)
	}
}

// TestDecodeBrokerEncodedPublish hand-encodes a v3 message.publish request the way EMQX does
// (props and user_props as repeated {name = 1, value = 2}) and checks both that v3 reads the
// properties and that the same bytes still read as a v2 request (v3 only added fields).
func TestDecodeBrokerEncodedPublish(t *testing.T) {
	str := func(b []byte, num protowire.Number, s string) []byte {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendString(b, s)
	}
	sub := func(b []byte, num protowire.Number, inner []byte) []byte {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendBytes(b, inner)
	}
	prop := func(name, value string) []byte { return str(str(nil, 1, name), 2, value) }

	message := str(str(str(nil, 2, "0006163A5D4C1B6CF4410000C4D10000"), 4, "VIN1"), 5, "vehicles/VIN1/telemetry")
	wire := sub(nil, 1, message)
	wire = sub(wire, 2, str(nil, 2, "6.0.1"))
	wire = sub(wire, 3, prop("Content-Type", "application/json"))
	wire = sub(wire, 3, prop("Message-Expiry-Interval", "30"))
	wire = sub(wire, 4, prop("fw", "1.2"))
	wire = sub(wire, 4, prop("trace", "a"))
	wire = sub(wire, 4, prop("trace", "b"))

	var v3 exhookv3.MessagePublishRequest
	if err := proto.Unmarshal(wire, &v3); err != nil {
		t.Fatal(err)
	}
	pairs := func(ps []*exhookv3.Property) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.GetName()+"="+p.GetValue())
		}
		return out
	}
	if got := pairs(v3.GetProps()); !slices.Equal(got, []string{"Content-Type=application/json", "Message-Expiry-Interval=30"}) {
		t.Errorf("props %q", got)
	}
	if got := pairs(v3.GetUserProps()); !slices.Equal(got, []string{"fw=1.2", "trace=a", "trace=b"}) {
		t.Errorf("user props %q (order and repeats must survive)", got)
	}
	if v3.GetMessage().GetTopic() != "vehicles/VIN1/telemetry" || v3.GetMeta().GetVersion() != "6.0.1" {
		t.Errorf("request %v", &v3)
	}

	var v2 exhookv2.MessagePublishRequest
	if err := proto.Unmarshal(wire, &v2); err != nil {
		t.Fatal(err)
	}
	if v2.GetMessage().GetFrom() != "VIN1" || v2.GetMessage().GetId() != v3.GetMessage().GetId() {
		t.Errorf("v2 view of a v3 request: %v", &v2)
	}
}
