package exhookv2_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
)

// These tests pin the wire contract with EMQX 5.0-5.8 (exhook proto v2).
// EMQX encodes requests with its own copy of the schema, so any change to a
// field number, wire type, package, service or method name below breaks the
// integration silently. If one of these tests fails, fix the .proto, not the
// test (unless upstream v2 itself changed).

// field is one decoded top-level protobuf field.
type field struct {
	num  protowire.Number
	typ  protowire.Type
	raw  []byte // payload for BytesType
	uval uint64 // value for VarintType
}

// decodeFields splits b into its top-level fields using only protowire, i.e.
// without consulting the generated code.
func decodeFields(t *testing.T, b []byte) []field {
	t.Helper()
	var out []field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				t.Fatalf("field %d: bad varint: %v", num, protowire.ParseError(m))
			}
			f.uval, n = v, m
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				t.Fatalf("field %d: bad bytes: %v", num, protowire.ParseError(m))
			}
			f.raw, n = v, m
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				t.Fatalf("field %d: bad value: %v", num, protowire.ParseError(m))
			}
			n = m
		}
		b = b[n:]
		out = append(out, f)
	}
	return out
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatalf("marshal %T: %v", m, err)
	}
	return b
}

func fieldsByNum(fs []field) map[protowire.Number][]field {
	m := make(map[protowire.Number][]field)
	for _, f := range fs {
		m[f.num] = append(m[f.num], f)
	}
	return m
}

func TestMessageWireFieldNumbers(t *testing.T) {
	msg := &exhookv2.Message{
		Node:      "emqx@10.0.0.1",
		Id:        "0006163A5D4C1B6CF4410000C4D10000",
		Qos:       2,
		From:      "vehicle-42",
		Topic:     "v1/vehicles/42/telemetry",
		Payload:   []byte{0x00, 0x01, 0xfe, 0xff},
		Timestamp: 1735689600123,
		Headers:   map[string]string{"username": "alice"},
	}
	got := fieldsByNum(decodeFields(t, marshal(t, msg)))

	tests := []struct {
		name string
		num  protowire.Number
		typ  protowire.Type
		str  string // expected bytes payload (BytesType, non-map)
		u    uint64 // expected varint (VarintType)
	}{
		{name: "node", num: 1, typ: protowire.BytesType, str: "emqx@10.0.0.1"},
		{name: "id", num: 2, typ: protowire.BytesType, str: "0006163A5D4C1B6CF4410000C4D10000"},
		{name: "qos", num: 3, typ: protowire.VarintType, u: 2},
		{name: "from", num: 4, typ: protowire.BytesType, str: "vehicle-42"},
		{name: "topic", num: 5, typ: protowire.BytesType, str: "v1/vehicles/42/telemetry"},
		{name: "payload", num: 6, typ: protowire.BytesType, str: "\x00\x01\xfe\xff"},
		{name: "timestamp", num: 7, typ: protowire.VarintType, u: 1735689600123},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := got[tc.num]
			if len(fs) != 1 {
				t.Fatalf("field %d (%s): got %d occurrences, want 1", tc.num, tc.name, len(fs))
			}
			f := fs[0]
			if f.typ != tc.typ {
				t.Fatalf("field %d (%s): wire type %d, want %d", tc.num, tc.name, f.typ, tc.typ)
			}
			switch tc.typ {
			case protowire.BytesType:
				if !bytes.Equal(f.raw, []byte(tc.str)) {
					t.Errorf("field %d (%s): got %q, want %q", tc.num, tc.name, f.raw, tc.str)
				}
			case protowire.VarintType:
				if f.uval != tc.u {
					t.Errorf("field %d (%s): got %d, want %d", tc.num, tc.name, f.uval, tc.u)
				}
			}
		})
	}

	t.Run("headers", func(t *testing.T) {
		// map<string,string> headers = 8: each entry is a nested message
		// with key = 1 and value = 2.
		fs := got[8]
		if len(fs) != 1 || fs[0].typ != protowire.BytesType {
			t.Fatalf("headers: want one length-delimited field 8, got %+v", fs)
		}
		entry := fieldsByNum(decodeFields(t, fs[0].raw))
		if k := entry[1]; len(k) != 1 || string(k[0].raw) != "username" {
			t.Errorf("headers entry key (1): got %+v", k)
		}
		if v := entry[2]; len(v) != 1 || string(v[0].raw) != "alice" {
			t.Errorf("headers entry value (2): got %+v", v)
		}
	})

	t.Run("no unexpected fields", func(t *testing.T) {
		for num := range got {
			if num < 1 || num > 8 {
				t.Errorf("unexpected field number %d in Message", num)
			}
		}
	})
}

// TestDecodeBrokerEncodedRequests hand-encodes requests the way EMQX puts
// them on the wire and checks the generated types read them back.
func TestDecodeBrokerEncodedRequests(t *testing.T) {
	str := func(b []byte, num protowire.Number, s string) []byte {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendString(b, s)
	}
	uvarint := func(b []byte, num protowire.Number, v uint64) []byte {
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, v)
	}
	sub := func(b []byte, num protowire.Number, inner []byte) []byte {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendBytes(b, inner)
	}

	meta := str(str(str(str(nil, 1, "emqx@n1"), 2, "5.8.6"), 3, "EMQX"), 4, "iov-prod")
	clientinfo := str(nil, 1, "emqx@n1")
	clientinfo = str(clientinfo, 2, "vehicle-42")
	clientinfo = str(clientinfo, 3, "alice")
	clientinfo = str(clientinfo, 5, "192.0.2.7")
	clientinfo = uvarint(clientinfo, 6, 8883)
	clientinfo = str(clientinfo, 7, "mqtt")
	clientinfo = uvarint(clientinfo, 9, 1)
	clientinfo = str(clientinfo, 11, "vehicle-42.iov")
	clientinfo = uvarint(clientinfo, 13, 50123) // peerport, sent since EMQX 5.4
	message := str(str(nil, 5, "v1/vehicles/42/telemetry"), 6, "\x01\x02")
	message = uvarint(message, 3, 1)
	message = uvarint(message, 7, 1735689600123)

	tests := []struct {
		name  string
		wire  []byte
		into  proto.Message
		check func(t *testing.T, m proto.Message)
	}{
		{
			name: "ProviderLoadedRequest",
			wire: sub(sub(nil, 1, uvarint(str(nil, 1, "5.8.6"), 3, 3600000)), 2, meta),
			into: &exhookv2.ProviderLoadedRequest{},
			check: func(t *testing.T, m proto.Message) {
				r := m.(*exhookv2.ProviderLoadedRequest)
				if r.GetBroker().GetVersion() != "5.8.6" || r.GetBroker().GetUptime() != 3600000 {
					t.Errorf("broker = %v", r.GetBroker())
				}
				if r.GetMeta().GetClusterName() != "iov-prod" || r.GetMeta().GetNode() != "emqx@n1" {
					t.Errorf("meta = %v", r.GetMeta())
				}
			},
		},
		{
			name: "ClientConnectedRequest",
			wire: sub(sub(nil, 1, clientinfo), 2, meta),
			into: &exhookv2.ClientConnectedRequest{},
			check: func(t *testing.T, m proto.Message) {
				ci := m.(*exhookv2.ClientConnectedRequest).GetClientinfo()
				if ci.GetClientid() != "vehicle-42" || ci.GetUsername() != "alice" ||
					ci.GetPeerhost() != "192.0.2.7" || ci.GetSockport() != 8883 ||
					ci.GetProtocol() != "mqtt" || !ci.GetIsSuperuser() || ci.GetCn() != "vehicle-42.iov" ||
					ci.GetPeerport() != 50123 {
					t.Errorf("clientinfo = %v", ci)
				}
			},
		},
		{
			name: "ClientDisconnectedRequest",
			wire: sub(str(sub(nil, 1, clientinfo), 2, "normal"), 3, meta),
			into: &exhookv2.ClientDisconnectedRequest{},
			check: func(t *testing.T, m proto.Message) {
				r := m.(*exhookv2.ClientDisconnectedRequest)
				if r.GetReason() != "normal" || r.GetClientinfo().GetClientid() != "vehicle-42" ||
					r.GetMeta().GetVersion() != "5.8.6" {
					t.Errorf("request = %v", r)
				}
			},
		},
		{
			name: "MessagePublishRequest",
			wire: sub(sub(nil, 1, message), 2, meta),
			into: &exhookv2.MessagePublishRequest{},
			check: func(t *testing.T, m proto.Message) {
				msg := m.(*exhookv2.MessagePublishRequest).GetMessage()
				if msg.GetTopic() != "v1/vehicles/42/telemetry" || string(msg.GetPayload()) != "\x01\x02" ||
					msg.GetQos() != 1 || msg.GetTimestamp() != 1735689600123 {
					t.Errorf("message = %v", msg)
				}
			},
		},
		{
			name: "MessageDeliveredRequest",
			wire: sub(sub(sub(nil, 1, clientinfo), 2, message), 3, meta),
			into: &exhookv2.MessageDeliveredRequest{},
			check: func(t *testing.T, m proto.Message) {
				r := m.(*exhookv2.MessageDeliveredRequest)
				if r.GetClientinfo().GetClientid() != "vehicle-42" || r.GetMessage().GetQos() != 1 ||
					r.GetMeta().GetSysdescr() != "EMQX" {
					t.Errorf("request = %v", r)
				}
			},
		},
		{
			name: "MessageAckedRequest",
			wire: sub(sub(sub(nil, 1, clientinfo), 2, message), 3, meta),
			into: &exhookv2.MessageAckedRequest{},
			check: func(t *testing.T, m proto.Message) {
				r := m.(*exhookv2.MessageAckedRequest)
				if r.GetClientinfo().GetUsername() != "alice" || r.GetMessage().GetTopic() != "v1/vehicles/42/telemetry" {
					t.Errorf("request = %v", r)
				}
			},
		},
		{
			// EMQX 5.0-5.3: TopicFilter{name=1, qos=2}, SubOpts.share=2.
			name: "ClientSubscribeRequest/5.0-5.3",
			wire: sub(sub(nil, 1, clientinfo), 3, uvarint(str(nil, 1, "v1/+/cmd"), 2, 1)),
			into: &exhookv2.ClientSubscribeRequest{},
			check: func(t *testing.T, m proto.Message) {
				tf := m.(*exhookv2.ClientSubscribeRequest).GetTopicFilters()
				if len(tf) != 1 || tf[0].GetName() != "v1/+/cmd" || tf[0].GetQos() != 1 { //nolint:staticcheck // deprecated field on purpose
					t.Errorf("topic_filters = %v", tf)
				}
			},
		},
		{
			// EMQX 5.4-5.8: TopicFilter{name=1, subopts=3}.
			name: "ClientSubscribeRequest/5.4-5.8",
			wire: sub(sub(sub(nil, 1, clientinfo), 3,
				sub(str(nil, 1, "$share/g/v1/+/cmd"), 3, uvarint(uvarint(nil, 1, 2), 5, 1))), 4, meta),
			into: &exhookv2.ClientSubscribeRequest{},
			check: func(t *testing.T, m proto.Message) {
				tf := m.(*exhookv2.ClientSubscribeRequest).GetTopicFilters()
				if len(tf) != 1 || tf[0].GetName() != "$share/g/v1/+/cmd" ||
					tf[0].GetSubopts().GetQos() != 2 || tf[0].GetSubopts().GetNl() != 1 {
					t.Errorf("topic_filters = %v", tf)
				}
			},
		},
		{
			name: "SessionSubscribedRequest",
			wire: sub(str(sub(nil, 1, clientinfo), 2, "v1/42/cmd"), 3,
				uvarint(uvarint(uvarint(str(uvarint(nil, 1, 1), 2, "grp"), 3, 2), 4, 1), 5, 1)),
			into: &exhookv2.SessionSubscribedRequest{},
			check: func(t *testing.T, m proto.Message) {
				r := m.(*exhookv2.SessionSubscribedRequest)
				so := r.GetSubopts()
				if r.GetTopic() != "v1/42/cmd" || so.GetQos() != 1 || so.GetShare() != "grp" || //nolint:staticcheck // deprecated field on purpose
					so.GetRh() != 2 || so.GetRap() != 1 || so.GetNl() != 1 {
					t.Errorf("request = %v", r)
				}
			},
		},
		{
			name: "ClientAuthorizeRequest",
			wire: uvarint(str(uvarint(sub(nil, 1, clientinfo), 2, 1), 3, "v1/42/cmd"), 4, 1),
			into: &exhookv2.ClientAuthorizeRequest{},
			check: func(t *testing.T, m proto.Message) {
				r := m.(*exhookv2.ClientAuthorizeRequest)
				if r.GetType() != exhookv2.ClientAuthorizeRequest_SUBSCRIBE || r.GetTopic() != "v1/42/cmd" || !r.GetResult() {
					t.Errorf("request = %v", r)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := proto.Unmarshal(tc.wire, tc.into); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if unk := tc.into.ProtoReflect().GetUnknown(); len(unk) != 0 {
				t.Fatalf("fields not recognised by the schema: %x", unk)
			}
			tc.check(t, tc.into)
		})
	}
}

func TestValuedResponseWire(t *testing.T) {
	tests := []struct {
		name     string
		resp     *exhookv2.ValuedResponse
		wantType uint64
		oneofNum protowire.Number
		oneofTyp protowire.Type
	}{
		{
			name: "bool_result",
			resp: &exhookv2.ValuedResponse{
				Type:  exhookv2.ValuedResponse_STOP_AND_RETURN,
				Value: &exhookv2.ValuedResponse_BoolResult{BoolResult: true},
			},
			wantType: 2, oneofNum: 3, oneofTyp: protowire.VarintType,
		},
		{
			name: "message",
			resp: &exhookv2.ValuedResponse{
				Type:  exhookv2.ValuedResponse_IGNORE,
				Value: &exhookv2.ValuedResponse_Message{Message: &exhookv2.Message{Topic: "t"}},
			},
			wantType: 1, oneofNum: 4, oneofTyp: protowire.BytesType,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := fieldsByNum(decodeFields(t, marshal(t, tc.resp)))
			if f := got[1]; len(f) != 1 || f[0].typ != protowire.VarintType || f[0].uval != tc.wantType {
				t.Errorf("type (field 1): got %+v, want varint %d", f, tc.wantType)
			}
			if f := got[tc.oneofNum]; len(f) != 1 || f[0].typ != tc.oneofTyp {
				t.Errorf("oneof value: want field %d wire type %d, got %+v", tc.oneofNum, tc.oneofTyp, got)
			}
			if len(got) != 2 {
				t.Errorf("want exactly fields 1 and %d, got %+v", tc.oneofNum, got)
			}
		})
	}

	t.Run("oneof descriptor", func(t *testing.T) {
		od := (&exhookv2.ValuedResponse{}).ProtoReflect().Descriptor().Oneofs().ByName("value")
		if od == nil {
			t.Fatal("oneof value missing")
		}
		var got []string
		for i := range od.Fields().Len() {
			fd := od.Fields().Get(i)
			got = append(got, fmt.Sprintf("%d %s %s", fd.Number(), fd.Name(), fd.Kind()))
		}
		want := []string{"3 bool_result bool", "4 message message"}
		if !slices.Equal(got, want) {
			t.Errorf("oneof value fields = %q, want %q", got, want)
		}
	})
}

func TestEnumNumbers(t *testing.T) {
	tests := []struct {
		name string
		got  protoreflect.EnumNumber
		want protoreflect.EnumNumber
	}{
		{"ValuedResponse.CONTINUE", exhookv2.ValuedResponse_CONTINUE.Number(), 0},
		{"ValuedResponse.IGNORE", exhookv2.ValuedResponse_IGNORE.Number(), 1},
		{"ValuedResponse.STOP_AND_RETURN", exhookv2.ValuedResponse_STOP_AND_RETURN.Number(), 2},
		{"ClientAuthorizeRequest.PUBLISH", exhookv2.ClientAuthorizeRequest_PUBLISH.Number(), 0},
		{"ClientAuthorizeRequest.SUBSCRIBE", exhookv2.ClientAuthorizeRequest_SUBSCRIBE.Number(), 1},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
	for _, ed := range []protoreflect.EnumDescriptor{
		exhookv2.ValuedResponse_CONTINUE.Descriptor(),
		exhookv2.ClientAuthorizeRequest_PUBLISH.Descriptor(),
	} {
		if n := ed.Values().Len(); (ed.Name() == "ResponsedType" && n != 3) || (ed.Name() == "AuthorizeReqType" && n != 2) {
			t.Errorf("enum %s has %d values", ed.FullName(), n)
		}
	}
}

func TestServiceDescriptor(t *testing.T) {
	fd := exhookv2.File_emqx_exhook_v2_exhook_proto
	if got := fd.Package(); got != "emqx.exhook.v2" {
		t.Fatalf("package = %q, want emqx.exhook.v2", got)
	}
	sd := fd.Services().ByName("HookProvider")
	if sd == nil || fd.Services().Len() != 1 {
		t.Fatalf("want exactly one service HookProvider, got %d services", fd.Services().Len())
	}
	if exhookv2.HookProvider_ServiceDesc.ServiceName != "emqx.exhook.v2.HookProvider" {
		t.Errorf("grpc ServiceName = %q", exhookv2.HookProvider_ServiceDesc.ServiceName)
	}

	// Method name, request type, response type: in upstream order.
	want := []string{
		"OnProviderLoaded ProviderLoadedRequest LoadedResponse",
		"OnProviderUnloaded ProviderUnloadedRequest EmptySuccess",
		"OnClientConnect ClientConnectRequest EmptySuccess",
		"OnClientConnack ClientConnackRequest EmptySuccess",
		"OnClientConnected ClientConnectedRequest EmptySuccess",
		"OnClientDisconnected ClientDisconnectedRequest EmptySuccess",
		"OnClientAuthenticate ClientAuthenticateRequest ValuedResponse",
		"OnClientAuthorize ClientAuthorizeRequest ValuedResponse",
		"OnClientSubscribe ClientSubscribeRequest EmptySuccess",
		"OnClientUnsubscribe ClientUnsubscribeRequest EmptySuccess",
		"OnSessionCreated SessionCreatedRequest EmptySuccess",
		"OnSessionSubscribed SessionSubscribedRequest EmptySuccess",
		"OnSessionUnsubscribed SessionUnsubscribedRequest EmptySuccess",
		"OnSessionResumed SessionResumedRequest EmptySuccess",
		"OnSessionDiscarded SessionDiscardedRequest EmptySuccess",
		"OnSessionTakenover SessionTakenoverRequest EmptySuccess",
		"OnSessionTerminated SessionTerminatedRequest EmptySuccess",
		"OnMessagePublish MessagePublishRequest ValuedResponse",
		"OnMessageDelivered MessageDeliveredRequest EmptySuccess",
		"OnMessageDropped MessageDroppedRequest EmptySuccess",
		"OnMessageAcked MessageAckedRequest EmptySuccess",
	}
	if len(want) != 21 {
		t.Fatalf("test table must list 21 methods, has %d", len(want))
	}
	var got []string
	for i := range sd.Methods().Len() {
		md := sd.Methods().Get(i)
		if md.IsStreamingClient() || md.IsStreamingServer() {
			t.Errorf("%s must be unary", md.Name())
		}
		got = append(got, fmt.Sprintf("%s %s %s", md.Name(), md.Input().Name(), md.Output().Name()))
	}
	if !slices.Equal(got, want) {
		t.Errorf("HookProvider methods:\n got  %q\n want %q", got, want)
	}

	var grpcMethods []string
	for _, m := range exhookv2.HookProvider_ServiceDesc.Methods {
		grpcMethods = append(grpcMethods, m.MethodName)
	}
	if len(exhookv2.HookProvider_ServiceDesc.Streams) != 0 || len(grpcMethods) != 21 {
		t.Errorf("grpc ServiceDesc: %d methods, %d streams", len(grpcMethods), len(exhookv2.HookProvider_ServiceDesc.Streams))
	}

	// Full method paths are what EMQX actually dials.
	paths := map[string]string{
		exhookv2.HookProvider_OnProviderLoaded_FullMethodName:     "/emqx.exhook.v2.HookProvider/OnProviderLoaded",
		exhookv2.HookProvider_OnClientConnected_FullMethodName:    "/emqx.exhook.v2.HookProvider/OnClientConnected",
		exhookv2.HookProvider_OnClientDisconnected_FullMethodName: "/emqx.exhook.v2.HookProvider/OnClientDisconnected",
		exhookv2.HookProvider_OnMessagePublish_FullMethodName:     "/emqx.exhook.v2.HookProvider/OnMessagePublish",
		exhookv2.HookProvider_OnMessageDelivered_FullMethodName:   "/emqx.exhook.v2.HookProvider/OnMessageDelivered",
		exhookv2.HookProvider_OnMessageAcked_FullMethodName:       "/emqx.exhook.v2.HookProvider/OnMessageAcked",
	}
	for got, want := range paths {
		if got != want {
			t.Errorf("full method name %q, want %q", got, want)
		}
	}
}

// schema is the complete v2 field layout: "number name type" per field, in
// field-number order. Types use proto syntax; "oneof value" marks oneof
// members.
var schema = map[string][]string{
	"ProviderLoadedRequest":   {"1 broker BrokerInfo", "2 meta RequestMeta"},
	"ProviderUnloadedRequest": {"1 meta RequestMeta"},
	"ClientConnectRequest": {
		"1 conninfo ConnInfo", "2 props repeated Property", "3 meta RequestMeta",
	},
	"ClientConnackRequest": {
		"1 conninfo ConnInfo", "2 result_code string", "3 props repeated Property", "4 meta RequestMeta",
	},
	"ClientConnectedRequest": {"1 clientinfo ClientInfo", "2 meta RequestMeta"},
	"ClientDisconnectedRequest": {
		"1 clientinfo ClientInfo", "2 reason string", "3 meta RequestMeta",
	},
	"ClientAuthenticateRequest": {
		"1 clientinfo ClientInfo", "2 result bool", "3 meta RequestMeta",
	},
	"ClientAuthorizeRequest": {
		"1 clientinfo ClientInfo", "2 type AuthorizeReqType", "3 topic string", "4 result bool", "5 meta RequestMeta",
	},
	"ClientSubscribeRequest": {
		"1 clientinfo ClientInfo", "2 props repeated Property", "3 topic_filters repeated TopicFilter", "4 meta RequestMeta",
	},
	"ClientUnsubscribeRequest": {
		"1 clientinfo ClientInfo", "2 props repeated Property", "3 topic_filters repeated TopicFilter", "4 meta RequestMeta",
	},
	"SessionCreatedRequest": {"1 clientinfo ClientInfo", "2 meta RequestMeta"},
	"SessionSubscribedRequest": {
		"1 clientinfo ClientInfo", "2 topic string", "3 subopts SubOpts", "4 meta RequestMeta",
	},
	"SessionUnsubscribedRequest": {
		"1 clientinfo ClientInfo", "2 topic string", "3 meta RequestMeta",
	},
	"SessionResumedRequest":   {"1 clientinfo ClientInfo", "2 meta RequestMeta"},
	"SessionDiscardedRequest": {"1 clientinfo ClientInfo", "2 meta RequestMeta"},
	"SessionTakenoverRequest": {"1 clientinfo ClientInfo", "2 meta RequestMeta"},
	"SessionTerminatedRequest": {
		"1 clientinfo ClientInfo", "2 reason string", "3 meta RequestMeta",
	},
	"MessagePublishRequest": {"1 message Message", "2 meta RequestMeta"},
	"MessageDeliveredRequest": {
		"1 clientinfo ClientInfo", "2 message Message", "3 meta RequestMeta",
	},
	"MessageDroppedRequest": {
		"1 message Message", "2 reason string", "3 meta RequestMeta",
	},
	"MessageAckedRequest": {
		"1 clientinfo ClientInfo", "2 message Message", "3 meta RequestMeta",
	},
	"LoadedResponse": {"1 hooks repeated HookSpec"},
	"ValuedResponse": {
		"1 type ResponsedType", "3 bool_result oneof value bool", "4 message oneof value Message",
	},
	"EmptySuccess": {},
	"BrokerInfo": {
		"1 version string", "2 sysdescr string", "3 uptime int64", "4 datetime string",
	},
	"HookSpec": {"1 name string", "2 topics repeated string"},
	"ConnInfo": {
		"1 node string", "2 clientid string", "3 username string", "4 peerhost string",
		"5 sockport uint32", "6 proto_name string", "7 proto_ver string", "8 keepalive uint32",
		"9 peerport uint32",
	},
	"ClientInfo": {
		"1 node string", "2 clientid string", "3 username string", "4 password string",
		"5 peerhost string", "6 sockport uint32", "7 protocol string", "8 mountpoint string",
		"9 is_superuser bool", "10 anonymous bool", "11 cn string", "12 dn string",
		"13 peerport uint32",
	},
	"Message": {
		"1 node string", "2 id string", "3 qos uint32", "4 from string", "5 topic string",
		"6 payload bytes", "7 timestamp uint64", "8 headers map<string, string>",
	},
	"Property":    {"1 name string", "2 value string"},
	"TopicFilter": {"1 name string", "2 qos uint32", "3 subopts SubOpts"},
	"SubOpts": {
		"1 qos uint32", "2 share string", "3 rh uint32", "4 rap uint32", "5 nl uint32",
	},
	"RequestMeta": {
		"1 node string", "2 version string", "3 sysdescr string", "4 cluster_name string",
	},
}

func describeField(fd protoreflect.FieldDescriptor) string {
	var typ string
	switch {
	case fd.IsMap():
		typ = fmt.Sprintf("map<%s, %s>", fd.MapKey().Kind(), fd.MapValue().Kind())
	case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
		typ = string(fd.Message().Name())
	case fd.Kind() == protoreflect.EnumKind:
		typ = string(fd.Enum().Name())
	default:
		typ = fd.Kind().String()
	}
	if fd.IsList() {
		typ = "repeated " + typ
	}
	if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
		typ = "oneof " + string(od.Name()) + " " + typ
	}
	if fd.HasPresence() && fd.ContainingOneof() == nil && fd.Kind() != protoreflect.MessageKind {
		typ = "optional " + typ // proto3 `optional` would change presence semantics
	}
	return fmt.Sprintf("%d %s %s", fd.Number(), fd.Name(), typ)
}

func TestSchemaFieldNumbers(t *testing.T) {
	msgs := exhookv2.File_emqx_exhook_v2_exhook_proto.Messages()
	var names []string
	for i := range msgs.Len() {
		names = append(names, string(msgs.Get(i).Name()))
	}
	var wantNames []string
	for n := range schema {
		wantNames = append(wantNames, n)
	}
	slices.Sort(names)
	slices.Sort(wantNames)
	if !slices.Equal(names, wantNames) {
		t.Errorf("top-level messages:\n got  %v\n want %v", names, wantNames)
	}

	for _, name := range wantNames {
		t.Run(name, func(t *testing.T) {
			md := msgs.ByName(protoreflect.Name(name))
			if md == nil {
				t.Fatalf("message %s missing", name)
			}
			var got []string
			fields := md.Fields()
			for i := range fields.Len() {
				got = append(got, describeField(fields.Get(i)))
			}
			slices.SortFunc(got, func(a, b string) int {
				var x, y int
				fmt.Sscan(a, &x)
				fmt.Sscan(b, &y)
				return x - y
			})
			want := schema[name]
			if !slices.Equal(got, want) {
				t.Errorf("fields of %s:\n got  %s\n want %s", name,
					strings.Join(got, "; "), strings.Join(want, "; "))
			}
		})
	}
}
