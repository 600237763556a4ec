package emqxsim

// v2.go: the emqx.exhook.v2 protocol (EMQX 5.0–5.8) for the broker double (V2) and the
// Client that load tools and tests drive directly.

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
)

// V2 is emqx.exhook.v2.
var V2 Protocol = v2Protocol{}

type v2Protocol struct{}

// v2Version is the EMQX version the broker double reports over v2.
const v2Version = "5.8.6"

func (v2Protocol) Name() string { return exhookv2.HookProvider_ServiceDesc.ServiceName }

func (v2Protocol) Version() string { return v2Version }

func (v2Protocol) Stub(cc grpc.ClientConnInterface) Stub {
	return v2Stub{c: exhookv2.NewHookProviderClient(cc), cc: cc}
}

type v2Stub struct {
	c  exhookv2.HookProviderClient
	cc grpc.ClientConnInterface
}

func v2Meta(m Meta) *exhookv2.RequestMeta {
	return &exhookv2.RequestMeta{Node: m.Node, Version: m.Version, Sysdescr: m.Sysdescr, ClusterName: m.ClusterName}
}

func v2ClientInfo(ci ClientInfo) *exhookv2.ClientInfo {
	return &exhookv2.ClientInfo{Node: ci.Node, Clientid: ci.ClientID, Username: ci.Username, Peerhost: ci.Peerhost, Sockport: ci.Sockport, Protocol: ci.Protocol, Peerport: ci.Peerport}
}

func v2Message(m *Message) *exhookv2.Message {
	return &exhookv2.Message{Node: m.Node, Id: m.ID, Qos: m.QoS, From: m.From, Topic: m.Topic,
		Payload: m.Payload, Timestamp: uint64(m.Timestamp), Headers: m.Headers}
}

func (s v2Stub) Loaded(ctx context.Context, b BrokerInfo, meta Meta) ([]HookSpec, error) {
	resp, err := s.c.OnProviderLoaded(ctx, &exhookv2.ProviderLoadedRequest{
		Broker: &exhookv2.BrokerInfo{Version: b.Version, Sysdescr: b.Sysdescr, Uptime: b.Uptime, Datetime: b.Datetime},
		Meta:   v2Meta(meta),
	})
	if err != nil {
		return nil, err
	}
	var out []HookSpec
	for _, h := range resp.GetHooks() {
		out = append(out, HookSpec{Name: h.GetName(), Topics: h.GetTopics()})
	}
	return out, nil
}

func (s v2Stub) Unloaded(ctx context.Context, meta Meta) error {
	_, err := s.c.OnProviderUnloaded(ctx, &exhookv2.ProviderUnloadedRequest{Meta: v2Meta(meta)})
	return err
}

func (s v2Stub) ClientConnected(ctx context.Context, ci ClientInfo, meta Meta) error {
	_, err := s.c.OnClientConnected(ctx, &exhookv2.ClientConnectedRequest{Clientinfo: v2ClientInfo(ci), Meta: v2Meta(meta)})
	return err
}

func (s v2Stub) ClientDisconnected(ctx context.Context, ci ClientInfo, reason string, meta Meta) error {
	_, err := s.c.OnClientDisconnected(ctx, &exhookv2.ClientDisconnectedRequest{Clientinfo: v2ClientInfo(ci), Reason: reason, Meta: v2Meta(meta)})
	return err
}

func (s v2Stub) MessagePublish(ctx context.Context, m *Message, meta Meta) (Verdict, error) {
	return s.publish(ctx, v2PublishRequest(m, meta))
}

func v2PublishRequest(m *Message, meta Meta) *exhookv2.MessagePublishRequest {
	return &exhookv2.MessagePublishRequest{Message: v2Message(m), Meta: v2Meta(meta)}
}

// publish calls OnMessagePublish with req: the v2 request, or one that extends it on the wire
// (v3's); the reply is the same in both versions.
func (s v2Stub) publish(ctx context.Context, req proto.Message) (Verdict, error) {
	resp := new(exhookv2.ValuedResponse)
	if err := s.cc.Invoke(ctx, exhookv2.HookProvider_OnMessagePublish_FullMethodName, req, resp); err != nil {
		return Verdict{}, err
	}
	r := resp.GetMessage()
	if resp.GetType() == exhookv2.ValuedResponse_IGNORE || r == nil {
		return Verdict{}, nil
	}
	return Verdict{Replace: true, Topic: r.GetTopic(), Payload: r.GetPayload(), Deny: r.GetHeaders()["allow_publish"] == "false"}, nil
}

func (s v2Stub) MessageDelivered(ctx context.Context, ci ClientInfo, m *Message, meta Meta) error {
	_, err := s.c.OnMessageDelivered(ctx, &exhookv2.MessageDeliveredRequest{Clientinfo: v2ClientInfo(ci), Message: v2Message(m), Meta: v2Meta(meta)})
	return err
}

func (s v2Stub) MessageAcked(ctx context.Context, ci ClientInfo, m *Message, meta Meta) error {
	_, err := s.c.OnMessageAcked(ctx, &exhookv2.MessageAckedRequest{Clientinfo: v2ClientInfo(ci), Message: v2Message(m), Meta: v2Meta(meta)})
	return err
}

func (s v2Stub) MessageDropped(ctx context.Context, m *Message, reason string, meta Meta) error {
	_, err := s.c.OnMessageDropped(ctx, &exhookv2.MessageDroppedRequest{Message: v2Message(m), Reason: reason, Meta: v2Meta(meta)})
	return err
}
