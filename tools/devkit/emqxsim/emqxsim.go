// Package emqxsim is a client that calls an ExHook HookProvider the way EMQX 5.x does: a
// pool of gRPC connections, OnProviderLoaded once, then one synchronous unary call per hook
// with the broker's request timeout as the deadline. A vehicle's messages go one at a time
// (EMQX runs a client's hooks in that client's process), which is what keeps per-vehicle
// order; many vehicles run in parallel.
//
// It is a test double for EMQX in tests, the demo and load runs; it is not EMQX.
package emqxsim

import (
	"context"
	"crypto/tls"
	"errors"
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
	// TLS dials the provider over TLS (mutual TLS with Certificates set), as EMQX does with
	// exhook.servers[].ssl enabled; nil dials plaintext.
	TLS *tls.Config
}

// Client is an EMQX stand-in.
type Client struct {
	opts    Options
	conns   []*grpc.ClientConn
	clients []exhookv2.HookProviderClient
	next    atomic.Uint64
	msgSeq  atomic.Uint64
	start   int64
}

// Dial opens the connection pool.
func Dial(opts Options) (*Client, error) {
	if opts.Addr == "" {
		return nil, errors.New("emqxsim: Addr is required")
	}
	if opts.PoolSize <= 0 {
		opts.PoolSize = 8
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 5 * time.Second
	}
	if opts.Node == "" {
		opts.Node = "emqx@127.0.0.1"
	}
	c := &Client{opts: opts, start: time.Now().UnixNano()}
	for range opts.PoolSize {
		cc, err := grpc.NewClient(opts.Addr, transportCredentials(opts.TLS))
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("dial %s: %w", opts.Addr, err)
		}
		c.conns = append(c.conns, cc)
		c.clients = append(c.clients, exhookv2.NewHookProviderClient(cc))
	}
	return c, nil
}

// Close closes every pooled connection.
func (c *Client) Close() {
	for _, cc := range c.conns {
		_ = cc.Close()
	}
}

func (c *Client) pick() exhookv2.HookProviderClient {
	return c.clients[c.next.Add(1)%uint64(len(c.clients))]
}

func (c *Client) meta() *exhookv2.RequestMeta {
	return &exhookv2.RequestMeta{Node: c.opts.Node, Version: "5.8.6", Sysdescr: "EMQX", ClusterName: "emqxcl"}
}

func (c *Client) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opts.RequestTimeout)
}

// Load calls OnProviderLoaded, as EMQX does when the exhook server is enabled.
func (c *Client) Load(ctx context.Context) (*exhookv2.LoadedResponse, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	return c.pick().OnProviderLoaded(ctx, &exhookv2.ProviderLoadedRequest{
		Broker: &exhookv2.BrokerInfo{Version: "5.8.6", Sysdescr: "EMQX", Uptime: 1000, Datetime: time.Now().UTC().Format(time.RFC3339)},
		Meta:   c.meta(),
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
	ctx, cancel := c.call(ctx)
	defer cancel()
	return c.pick().OnMessagePublish(ctx, &exhookv2.MessagePublishRequest{Message: msg, Meta: c.meta()})
}

func (c *Client) clientInfo(clientID string) *exhookv2.ClientInfo {
	return &exhookv2.ClientInfo{Node: c.opts.Node, Clientid: clientID, Username: clientID, Peerhost: "127.0.0.1", Sockport: 1883, Protocol: "mqtt"}
}

// Connected calls OnClientConnected.
func (c *Client) Connected(ctx context.Context, clientID string) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.pick().OnClientConnected(ctx, &exhookv2.ClientConnectedRequest{Clientinfo: c.clientInfo(clientID), Meta: c.meta()})
	return err
}

// Disconnected calls OnClientDisconnected with reason (e.g. "normal").
func (c *Client) Disconnected(ctx context.Context, clientID, reason string) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.pick().OnClientDisconnected(ctx, &exhookv2.ClientDisconnectedRequest{Clientinfo: c.clientInfo(clientID), Reason: reason, Meta: c.meta()})
	return err
}

// Delivered calls OnMessageDelivered: EMQX handed msg to clientID's session.
func (c *Client) Delivered(ctx context.Context, clientID string, msg *exhookv2.Message) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.pick().OnMessageDelivered(ctx, &exhookv2.MessageDeliveredRequest{Clientinfo: c.clientInfo(clientID), Message: msg, Meta: c.meta()})
	return err
}

// Acked calls OnMessageAcked: clientID acknowledged msg (QoS 1 PUBACK).
func (c *Client) Acked(ctx context.Context, clientID string, msg *exhookv2.Message) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.pick().OnMessageAcked(ctx, &exhookv2.MessageAckedRequest{Clientinfo: c.clientInfo(clientID), Message: msg, Meta: c.meta()})
	return err
}

// Dropped calls OnMessageDropped: the broker dropped msg, e.g. with reason "no_subscribers".
func (c *Client) Dropped(ctx context.Context, msg *exhookv2.Message, reason string) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.pick().OnMessageDropped(ctx, &exhookv2.MessageDroppedRequest{Message: msg, Reason: reason, Meta: c.meta()})
	return err
}
