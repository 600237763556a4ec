package emqxsim

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	exhookv3 "github.com/iov-platform/iov/proto/emqx/exhook/v3"
)

// V3Version is the EMQX version the v3 mode reports: 5.9 and later call emqx.exhook.v3.
const V3Version = "6.0.1"

// V3 is the client in ExHook v3 mode, as EMQX 5.9 and later (6.x included) call a provider:
// the same pool (pinning by client id, whole-second deadlines, connection-loss mode) as the
// v2 Client, on the emqx.exhook.v3 service, with the MQTT 5 properties of message.publish.
type V3 struct{ c *Client }

// V3 returns the v3 mode of c, over c's pooled connections.
func (c *Client) V3() *V3 { return &V3{c: c} }

// rpc3 runs one v3 RPC pinned by key (a client id) with EMQX's deadline.
func rpc3[T any](ctx context.Context, v *V3, key string, fn func(context.Context, exhookv3.HookProviderClient) (T, error)) (T, error) {
	return callPool(ctx, v.c.pool, key, func(ctx context.Context, cc grpc.ClientConnInterface) (T, error) {
		return fn(ctx, exhookv3.NewHookProviderClient(cc))
	})
}

func (v *V3) meta() *exhookv3.RequestMeta {
	return &exhookv3.RequestMeta{Node: v.c.opts.Node, Version: V3Version, Sysdescr: "EMQX", ClusterName: "emqxcl"}
}

// Load calls OnProviderLoaded.
func (v *V3) Load(ctx context.Context) (*exhookv3.LoadedResponse, error) {
	return rpc3(ctx, v, "", func(ctx context.Context, h exhookv3.HookProviderClient) (*exhookv3.LoadedResponse, error) {
		return h.OnProviderLoaded(ctx, &exhookv3.ProviderLoadedRequest{
			Broker: &exhookv3.BrokerInfo{Version: V3Version, Sysdescr: "EMQX", Uptime: 1000, Datetime: time.Now().UTC().Format(time.RFC3339)},
			Meta:   v.meta(),
		})
	})
}

// NewMessage is Client.NewMessage as a v3 Message (the message is the same in both versions).
func (v *V3) NewMessage(clientID, topic string, qos uint32, payload []byte) *exhookv3.Message {
	b, err := proto.Marshal(v.c.NewMessage(clientID, topic, qos, payload))
	var m exhookv3.Message
	if err == nil {
		err = proto.Unmarshal(b, &m)
	}
	if err != nil {
		panic(fmt.Sprintf("emqxsim: v2 message as v3: %v", err)) // the two are the same message
	}
	return &m
}

// Publish calls OnMessagePublish for one message with the publisher's MQTT 5 properties as
// EMQX sends them: props are the properties other than User Property (EMQX's names, values
// as strings, e.g. "Message-Expiry-Interval" = "30"), user the User Properties in order.
func (v *V3) Publish(ctx context.Context, msg *exhookv3.Message, props, user []*exhookv3.Property) (*exhookv3.ValuedResponse, error) {
	return rpc3(ctx, v, msg.GetFrom(), func(ctx context.Context, h exhookv3.HookProviderClient) (*exhookv3.ValuedResponse, error) {
		return h.OnMessagePublish(ctx, &exhookv3.MessagePublishRequest{Message: msg, Meta: v.meta(), Props: props, UserProps: user})
	})
}

// V3Protocol is emqx.exhook.v3 for the broker double (BrokerOptions.Protocol), as EMQX 5.9
// and later call a provider. On the wire a v3 request is the v2 request plus fields and the
// replies are the same (proto/emqx/exhook/v3's wire tests pin that), so the v3 stub is the v2
// stub calling the v3 service's methods; message.publish adds what v3 carries, the
// publisher's MQTT 5 properties, as EMQX's emqx_exhook_handler:on_message_publish/1 sends
// them (format_props/1: the User Property list in order as user_props, every other property
// as props, each value a string).
var V3Protocol Protocol = v3Protocol{}

type v3Protocol struct{}

func (v3Protocol) Name() string { return exhookv3.HookProvider_ServiceDesc.ServiceName }

func (v3Protocol) Version() string { return V3Version }

func (v3Protocol) Stub(cc grpc.ClientConnInterface) Stub {
	return v3Stub{v2Stub: V2.Stub(v3Conn{cc}).(v2Stub)}
}

// v3Conn calls the v3 service's method wherever a v2 stub names a v2 method (every
// HookProvider method is unary).
type v3Conn struct{ grpc.ClientConnInterface }

var (
	v2MethodPrefix = "/" + exhookv2.HookProvider_ServiceDesc.ServiceName + "/"
	v3MethodPrefix = "/" + exhookv3.HookProvider_ServiceDesc.ServiceName + "/"
)

func (c v3Conn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.ClientConnInterface.Invoke(ctx, v3MethodPrefix+strings.TrimPrefix(method, v2MethodPrefix), args, reply, opts...)
}

type v3Stub struct{ v2Stub }

func (s v3Stub) MessagePublish(ctx context.Context, m *Message, meta Meta) (Verdict, error) {
	b, err := proto.Marshal(v2PublishRequest(m, meta))
	req := &exhookv3.MessagePublishRequest{}
	if err == nil {
		err = proto.Unmarshal(b, req)
	}
	if err != nil {
		return Verdict{}, fmt.Errorf("emqxsim: v2 publish request as v3: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(m.Properties)) { // EMQX folds a map: no order
		req.Props = append(req.Props, &exhookv3.Property{Name: name, Value: m.Properties[name]})
	}
	for _, u := range m.UserProperties {
		req.UserProps = append(req.UserProps, &exhookv3.Property{Name: u[0], Value: u[1]})
	}
	return s.publish(ctx, req)
}
