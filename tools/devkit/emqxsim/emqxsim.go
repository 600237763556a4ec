// Package emqxsim is a test double for EMQX's ExHook client: it calls an ExHook
// HookProvider the way EMQX 5.x does, from EMQX's own source (apps/emqx_exhook,
// apps/emqx/src/emqx_channel.erl, emqx/grpc-erl, emqx/gun):
//
//   - a pool of gRPC connections (pool_size, default 8), each call pinned to one of them by
//     a hash of the client id;
//   - one synchronous unary call per hook with request_timeout as deadline, sent in whole
//     seconds above one second;
//   - a connection lost the way EMQX's HTTP/2 client loses it: Mode gun1 (EMQX <= 5.8.8)
//     or gun2 (5.8.9 and later), see pool.go.
//
// Client drives a provider directly (load tools, tests); StartBroker runs an MQTT broker
// that calls the provider as EMQX does (broker.go). A vehicle's messages go one at a time
// (EMQX runs a client's hooks in that client's process), which is what keeps per-vehicle
// order; many vehicles run in parallel. It is not EMQX.
package emqxsim

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
)

// Options configures Dial.
type Options struct {
	Addr           string        // host:port of the HookProvider
	PoolSize       int           // gRPC connections; EMQX's exhook pool_size (default 8)
	RequestTimeout time.Duration // EMQX's request_timeout (default 5s)
	Node           string        // broker node name sent in requests (default emqx@127.0.0.1)
	// Mode is the connection-loss behaviour (default ModeGun2).
	Mode Mode
	// RetryInterval and Retries are gun 1.3's reconnect schedule in ModeGun1 (defaults 5s
	// and 5, as in EMQX); tests shorten the interval.
	RetryInterval time.Duration
	Retries       int
	// TLS dials the provider over TLS (mutual TLS with Certificates set), as EMQX does with
	// exhook.servers[].ssl enabled; nil dials plaintext.
	TLS *tls.Config
}

// Client is an EMQX stand-in speaking emqx.exhook.v2.
type Client struct {
	opts   Options
	pool   *pool
	msgSeq atomic.Uint64
	start  int64
}

// Dial opens the connection pool (connections are made on first use).
func Dial(opts Options) (*Client, error) {
	if opts.Node == "" {
		opts.Node = "emqx@127.0.0.1"
	}
	p, err := newPool(poolOptions{addr: opts.Addr, size: opts.PoolSize, requestTimeout: opts.RequestTimeout,
		mode: opts.Mode, retryInterval: opts.RetryInterval, retries: opts.Retries, tls: opts.TLS})
	if err != nil {
		return nil, err
	}
	return &Client{opts: opts, pool: p, start: time.Now().UnixNano()}, nil
}

// Close closes every pooled connection.
func (c *Client) Close() { c.pool.close() }

// SlotFor is the pool connection (0-based) that calls about clientID use.
func (c *Client) SlotFor(clientID string) int { return c.pool.SlotFor(clientID) }

func (c *Client) meta() *exhookv2.RequestMeta {
	return &exhookv2.RequestMeta{Node: c.opts.Node, Version: v2Version, Sysdescr: "EMQX", ClusterName: "emqxcl"}
}

// rpc runs one RPC pinned by key (a client id) with EMQX's deadline.
func rpc[T any](ctx context.Context, c *Client, key string, fn func(context.Context, exhookv2.HookProviderClient) (T, error)) (T, error) {
	return callPool(ctx, c.pool, key, func(ctx context.Context, cc grpc.ClientConnInterface) (T, error) {
		return fn(ctx, exhookv2.NewHookProviderClient(cc))
	})
}

// Load calls OnProviderLoaded, as EMQX does when the exhook server is enabled.
func (c *Client) Load(ctx context.Context) (*exhookv2.LoadedResponse, error) {
	return rpc(ctx, c, "", func(ctx context.Context, h exhookv2.HookProviderClient) (*exhookv2.LoadedResponse, error) {
		return h.OnProviderLoaded(ctx, &exhookv2.ProviderLoadedRequest{
			Broker: &exhookv2.BrokerInfo{Version: v2Version, Sysdescr: "EMQX", Uptime: 1000, Datetime: time.Now().UTC().Format(time.RFC3339)},
			Meta:   c.meta(),
		})
	})
}

// NewMessage builds the Message EMQX sends for a PUBLISH from clientID.
func (c *Client) NewMessage(clientID, topic string, qos uint32, payload []byte) *exhookv2.Message {
	return &exhookv2.Message{
		Node:      c.opts.Node,
		Id:        fmt.Sprintf("%016X%016X", c.start, c.msgSeq.Add(1)),
		Qos:       qos,
		From:      clientID,
		Topic:     topic,
		Payload:   payload,
		Timestamp: uint64(time.Now().UnixMilli()),
		Headers:   map[string]string{"username": clientID, "peerhost": "127.0.0.1", "protocol": "mqtt"},
	}
}

// Publish calls OnMessagePublish for one message and returns the provider's answer.
func (c *Client) Publish(ctx context.Context, msg *exhookv2.Message) (*exhookv2.ValuedResponse, error) {
	return rpc(ctx, c, msg.GetFrom(), func(ctx context.Context, h exhookv2.HookProviderClient) (*exhookv2.ValuedResponse, error) {
		return h.OnMessagePublish(ctx, &exhookv2.MessagePublishRequest{Message: msg, Meta: c.meta()})
	})
}

func (c *Client) clientInfo(clientID string) *exhookv2.ClientInfo {
	return &exhookv2.ClientInfo{Node: c.opts.Node, Clientid: clientID, Username: clientID, Peerhost: "127.0.0.1", Sockport: 1883, Protocol: "mqtt"}
}

// Connected calls OnClientConnected.
func (c *Client) Connected(ctx context.Context, clientID string) error {
	_, err := rpc(ctx, c, clientID, func(ctx context.Context, h exhookv2.HookProviderClient) (*exhookv2.EmptySuccess, error) {
		return h.OnClientConnected(ctx, &exhookv2.ClientConnectedRequest{Clientinfo: c.clientInfo(clientID), Meta: c.meta()})
	})
	return err
}

// Disconnected calls OnClientDisconnected with reason (e.g. "normal").
func (c *Client) Disconnected(ctx context.Context, clientID, reason string) error {
	_, err := rpc(ctx, c, clientID, func(ctx context.Context, h exhookv2.HookProviderClient) (*exhookv2.EmptySuccess, error) {
		return h.OnClientDisconnected(ctx, &exhookv2.ClientDisconnectedRequest{Clientinfo: c.clientInfo(clientID), Reason: reason, Meta: c.meta()})
	})
	return err
}

// Delivered calls OnMessageDelivered: EMQX handed msg to clientID's session.
func (c *Client) Delivered(ctx context.Context, clientID string, msg *exhookv2.Message) error {
	_, err := rpc(ctx, c, clientID, func(ctx context.Context, h exhookv2.HookProviderClient) (*exhookv2.EmptySuccess, error) {
		return h.OnMessageDelivered(ctx, &exhookv2.MessageDeliveredRequest{Clientinfo: c.clientInfo(clientID), Message: msg, Meta: c.meta()})
	})
	return err
}

// Acked calls OnMessageAcked: clientID acknowledged msg (QoS 1 PUBACK).
func (c *Client) Acked(ctx context.Context, clientID string, msg *exhookv2.Message) error {
	_, err := rpc(ctx, c, clientID, func(ctx context.Context, h exhookv2.HookProviderClient) (*exhookv2.EmptySuccess, error) {
		return h.OnMessageAcked(ctx, &exhookv2.MessageAckedRequest{Clientinfo: c.clientInfo(clientID), Message: msg, Meta: c.meta()})
	})
	return err
}

// Dropped calls OnMessageDropped: the broker dropped msg, e.g. with reason "no_subscribers".
func (c *Client) Dropped(ctx context.Context, msg *exhookv2.Message, reason string) error {
	_, err := rpc(ctx, c, msg.GetFrom(), func(ctx context.Context, h exhookv2.HookProviderClient) (*exhookv2.EmptySuccess, error) {
		return h.OnMessageDropped(ctx, &exhookv2.MessageDroppedRequest{Message: msg, Reason: reason, Meta: c.meta()})
	})
	return err
}
