package emqxsim

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	exhookv3 "github.com/iov-platform/iov/proto/emqx/exhook/v3"
)

// V3Version is the EMQX version the v3 mode reports: 5.9 and later call emqx.exhook.v3.
const V3Version = "6.0.1"

// V3 is the client in ExHook v3 mode, as EMQX 5.9 and later (6.x included) call a provider:
// the same pool, turn taking and deadline as the v2 Client, on the emqx.exhook.v3 service,
// with the MQTT 5 properties of message.publish.
type V3 struct {
	c *Client
}

// V3 returns the v3 mode of c, over c's pooled connections.
func (c *Client) V3() *V3 { return &V3{c: c} }

// call runs one v3 RPC pinned by key (a client id) with EMQX's deadline, as Client.call does.
func (v *V3) call(ctx context.Context, key string, fn func(context.Context, exhookv3.HookProviderClient) error) error {
	return v.c.pool.do(ctx, key, func(ctx context.Context, cc grpc.ClientConnInterface) error {
		return fn(ctx, exhookv3.NewHookProviderClient(cc))
	})
}

func (v *V3) meta() *exhookv3.RequestMeta {
	return &exhookv3.RequestMeta{Node: v.c.opts.Node, Version: V3Version, Sysdescr: "EMQX", ClusterName: "emqxcl"}
}

// Load calls OnProviderLoaded.
func (v *V3) Load(ctx context.Context) (*exhookv3.LoadedResponse, error) {
	var resp *exhookv3.LoadedResponse
	err := v.call(ctx, "", func(ctx context.Context, h exhookv3.HookProviderClient) (err error) {
		resp, err = h.OnProviderLoaded(ctx, &exhookv3.ProviderLoadedRequest{
			Broker: &exhookv3.BrokerInfo{Version: V3Version, Sysdescr: "EMQX", Uptime: 1000, Datetime: time.Now().UTC().Format(time.RFC3339)},
			Meta:   v.meta(),
		})
		return err
	})
	return resp, err
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
	var resp *exhookv3.ValuedResponse
	err := v.call(ctx, msg.GetFrom(), func(ctx context.Context, h exhookv3.HookProviderClient) (err error) {
		resp, err = h.OnMessagePublish(ctx, &exhookv3.MessagePublishRequest{Message: msg, Meta: v.meta(), Props: props, UserProps: user})
		return err
	})
	return resp, err
}
