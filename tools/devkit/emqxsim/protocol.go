package emqxsim

// protocol.go: what the broker double needs from a HookProvider, independent of the ExHook
// protocol version. v2.go speaks emqx.exhook.v2 (EMQX 5.0–5.8), v3.go emqx.exhook.v3 (EMQX
// 5.9 and later); each is a Protocol (BrokerOptions.Protocol) over the same pool (pool.go),
// so pinning, deadlines and connection-loss behaviour stay the same for every version.

import (
	"context"

	"google.golang.org/grpc"
)

// Protocol is one ExHook protocol version.
type Protocol interface {
	// Name is the gRPC service, e.g. emqx.exhook.v2.HookProvider.
	Name() string
	// Version is the EMQX version the broker reports when it speaks this protocol.
	Version() string
	// Stub calls the provider over cc.
	Stub(cc grpc.ClientConnInterface) Stub
}

// Stub calls one HookProvider. Each method is one unary RPC; meta is EMQX's RequestMeta.
type Stub interface {
	Loaded(ctx context.Context, broker BrokerInfo, meta Meta) ([]HookSpec, error)
	Unloaded(ctx context.Context, meta Meta) error
	ClientConnected(ctx context.Context, ci ClientInfo, meta Meta) error
	ClientDisconnected(ctx context.Context, ci ClientInfo, reason string, meta Meta) error
	MessagePublish(ctx context.Context, m *Message, meta Meta) (Verdict, error)
	MessageDelivered(ctx context.Context, ci ClientInfo, m *Message, meta Meta) error
	MessageAcked(ctx context.Context, ci ClientInfo, m *Message, meta Meta) error
	MessageDropped(ctx context.Context, m *Message, reason string, meta Meta) error
}

// BrokerInfo is what OnProviderLoaded tells the provider about the broker.
type BrokerInfo struct {
	Version, Sysdescr, Datetime string
	Uptime                      int64
}

// Meta is EMQX's RequestMeta.
type Meta struct {
	Node, Version, Sysdescr, ClusterName string
}

// HookSpec is one hook the provider registered; Topics applies to message.* hooks and
// empty means every topic.
type HookSpec struct {
	Name   string
	Topics []string
}

// ClientInfo is the client a hook is about.
type ClientInfo struct {
	Node, ClientID, Username, Peerhost, Protocol string
	Sockport, Peerport                           uint32
}

// Message is a message as the hooks see it.
type Message struct {
	Node, ID, From, Topic string
	QoS                   uint32
	Payload               []byte
	Timestamp             int64 // milliseconds
	Headers               map[string]string
	// UserProperties are the PUBLISH's MQTT 5 user properties, in order, and Properties its
	// other MQTT 5 properties under EMQX's names (Content-Type, Correlation-Data,
	// Message-Expiry-Interval, Payload-Format-Indicator, Response-Topic), values as EMQX
	// writes them in strings (numbers in decimal). Only protocol versions that carry them
	// send them (v3).
	UserProperties [][2]string
	Properties     map[string]string
}

// Verdict is the provider's answer to message.publish.
type Verdict struct {
	// Replace is set when the provider returned a message: the broker then takes its
	// topic (if not empty) and payload, and drops the message if Deny.
	Replace bool
	Topic   string
	Payload []byte
	Deny    bool // header allow_publish=false
}

// knownHooks are the hook points EMQX 5 accepts in a LoadedResponse
// (emqx_exhook_server:available_hooks/0); any other name fails the whole load.
var knownHooks = map[string]bool{
	"client.connect": true, "client.connack": true, "client.connected": true, "client.disconnected": true,
	"client.authenticate": true, "client.authorize": true, "client.subscribe": true, "client.unsubscribe": true,
	"session.created": true, "session.subscribed": true, "session.unsubscribed": true, "session.resumed": true,
	"session.discarded": true, "session.takenover": true, "session.terminated": true,
	"message.publish": true, "message.delivered": true, "message.acked": true, "message.dropped": true,
}
