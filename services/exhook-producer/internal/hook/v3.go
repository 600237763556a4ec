package hook

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	exhookv3 "github.com/iov-platform/iov/proto/emqx/exhook/v3"
	"github.com/iov-platform/iov/schemas"
)

// V3 serves emqx.exhook.v3.HookProvider, what EMQX 5.9 and later call, with the Server's v2
// handlers. On the wire a v3 request is a v2 request plus fields (proto/emqx/exhook/v3 pins
// that), so each call is re-read as its v2 request and the v2 reply re-read as the v3 one;
// the only v3 addition we use, the MQTT 5 properties of message.publish, reaches the
// handler through the context. Hooks the Server does not implement stay Unimplemented, as
// in v2 (EMQX calls only the hooks OnProviderLoaded returned).
type V3 struct {
	exhookv3.UnimplementedHookProviderServer
	s *Server
}

// V3 returns the v3 face of s.
func (s *Server) V3() *V3 { return &V3{s: s} }

// viaV2 serves the v3 request in with the v2 handler h: in is re-read as req, and h's reply
// as resp.
func viaV2[Req2, Resp2, Resp3 proto.Message](ctx context.Context, in proto.Message, req Req2,
	h func(context.Context, Req2) (Resp2, error), resp Resp3) (Resp3, error) {
	var none Resp3
	req, err := convert(in, req)
	if err != nil {
		return none, err
	}
	out, err := h(ctx, req)
	if err != nil {
		return none, err
	}
	return convert(out, resp)
}

// convert re-reads the wire form of in as a new message of out's type and returns it.
func convert[T proto.Message](in proto.Message, out T) (T, error) {
	b, err := proto.Marshal(in)
	if err == nil {
		err = proto.Unmarshal(b, out)
	}
	if err != nil {
		return out, status.Error(codes.Internal, fmt.Sprintf("convert %T to %T: %v", in, out, err))
	}
	return out, nil
}

// propertiesOf collects the MQTT 5 properties of a v3 publish; nil when there are none.
func propertiesOf(req *exhookv3.MessagePublishRequest) *properties {
	if len(req.GetProps())+len(req.GetUserProps()) == 0 {
		return nil
	}
	p := &properties{system: make(map[string]string, len(req.GetProps())), user: make([]schemas.UserProperty, 0, len(req.GetUserProps()))}
	for _, kv := range req.GetProps() {
		p.system[kv.GetName()] = kv.GetValue()
	}
	for _, kv := range req.GetUserProps() {
		p.user = append(p.user, schemas.UserProperty{Name: kv.GetName(), Value: kv.GetValue()})
	}
	return p
}

// OnProviderLoaded answers with the same hooks as v2.
func (v *V3) OnProviderLoaded(ctx context.Context, req *exhookv3.ProviderLoadedRequest) (*exhookv3.LoadedResponse, error) {
	return viaV2(ctx, req, &exhookv2.ProviderLoadedRequest{}, v.s.OnProviderLoaded, &exhookv3.LoadedResponse{})
}

// OnProviderUnloaded is logged.
func (v *V3) OnProviderUnloaded(ctx context.Context, req *exhookv3.ProviderUnloadedRequest) (*exhookv3.EmptySuccess, error) {
	return viaV2(ctx, req, &exhookv2.ProviderUnloadedRequest{}, v.s.OnProviderUnloaded, &exhookv3.EmptySuccess{})
}

// OnMessagePublish forwards the message as v2 does, with its MQTT 5 properties in the
// envelope and in record headers. It is the hot path, so the message is copied field by
// field (the handler reads nothing else of the request) instead of re-read from the wire:
// TestPublishMessageCopyIsComplete keeps the copy complete.
func (v *V3) OnMessagePublish(ctx context.Context, req *exhookv3.MessagePublishRequest) (*exhookv3.ValuedResponse, error) {
	ctx = withProperties(ctx, propertiesOf(req))
	resp, err := v.s.OnMessagePublish(ctx, &exhookv2.MessagePublishRequest{Message: messageV2(req.GetMessage())})
	if err != nil {
		return nil, err
	}
	if resp == ignore {
		return ignoreV3, nil
	}
	return convert(resp, &exhookv3.ValuedResponse{})
}

var ignoreV3 = &exhookv3.ValuedResponse{Type: exhookv3.ValuedResponse_IGNORE}

// messageV2 is m as a v2 Message (the two are the same message in both protocols).
func messageV2(m *exhookv3.Message) *exhookv2.Message {
	if m == nil {
		return nil
	}
	return &exhookv2.Message{Node: m.GetNode(), Id: m.GetId(), Qos: m.GetQos(), From: m.GetFrom(), Topic: m.GetTopic(),
		Payload: m.GetPayload(), Timestamp: m.GetTimestamp(), Headers: m.GetHeaders()}
}

// OnClientConnected writes a CONNECTED status event.
func (v *V3) OnClientConnected(ctx context.Context, req *exhookv3.ClientConnectedRequest) (*exhookv3.EmptySuccess, error) {
	return viaV2(ctx, req, &exhookv2.ClientConnectedRequest{}, v.s.OnClientConnected, &exhookv3.EmptySuccess{})
}

// OnClientDisconnected writes a DISCONNECTED status event.
func (v *V3) OnClientDisconnected(ctx context.Context, req *exhookv3.ClientDisconnectedRequest) (*exhookv3.EmptySuccess, error) {
	return viaV2(ctx, req, &exhookv2.ClientDisconnectedRequest{}, v.s.OnClientDisconnected, &exhookv3.EmptySuccess{})
}

// OnMessageDelivered tracks commands.
func (v *V3) OnMessageDelivered(ctx context.Context, req *exhookv3.MessageDeliveredRequest) (*exhookv3.EmptySuccess, error) {
	return viaV2(ctx, req, &exhookv2.MessageDeliveredRequest{}, v.s.OnMessageDelivered, &exhookv3.EmptySuccess{})
}

// OnMessageDropped tracks commands.
func (v *V3) OnMessageDropped(ctx context.Context, req *exhookv3.MessageDroppedRequest) (*exhookv3.EmptySuccess, error) {
	return viaV2(ctx, req, &exhookv2.MessageDroppedRequest{}, v.s.OnMessageDropped, &exhookv3.EmptySuccess{})
}
