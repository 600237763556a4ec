package emqxsim

// broker.go: an in-process MQTT 5 broker (mochi-mqtt) that stands in for EMQX's message
// delivery in tests and the demo, and calls an ExHook HookProvider over gRPC as EMQX does.
//
// THIS IS A TEST DOUBLE, NOT EMQX. It reproduces the parts of EMQX the platform's services
// depend on and nothing more:
//
//   - At start it calls OnProviderLoaded (retrying while the provider is not up yet, like
//     EMQX's exhook auto_reconnect) and from then on calls only the hooks — and, for the
//     message.* hooks, only the topics — registered in the LoadedResponse; an empty topic
//     list means every topic. $SYS/ topics never reach message.* hooks.
//   - message.publish: called for a client's PUBLISH before it is routed. The reply may
//     rewrite the topic and payload, or drop the message with the header
//     allow_publish=false. A failed call applies FailedAction (EMQX's exhook failed_action:
//     deny drops the message, ignore routes it unchanged). A dropped QoS 1/2 message is
//     still acknowledged, with reason code 0x10 (no matching subscribers), as EMQX does;
//     so is one that no subscriber matched.
//   - message.delivered: called when a message is about to be written to a subscriber's
//     connection (before the bytes go out), once per delivery (not for DUP retransmissions).
//   - message.acked: called when the subscriber's PUBACK (QoS 1) or PUBREC (QoS 2) for
//     that delivery has been processed.
//   - client.connected after the CONNACK; client.disconnected with a reason (normal,
//     takenover, keepalive_timeout, sock_closed).
//
// Differences from EMQX that a test must not rely on: EMQX casts message.delivered,
// message.acked and client.* hooks asynchronously; this double calls every hook
// synchronously, in the client's own goroutine, so that the events of one delivery reach
// the provider in order (delivered, then acked) and tests are deterministic. It keeps no
// sessions across restarts, no retained-message persistence, no shared-subscription
// strategies beyond mochi's, no authentication (every client is allowed; Authorize can deny
// topics), and it never assigns outbound topic aliases (EMQX does not either).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
)

// Hook names as EMQX spells them.
const (
	HookClientConnected    = "client.connected"
	HookClientDisconnected = "client.disconnected"
	HookMessagePublish     = "message.publish"
	HookMessageDelivered   = "message.delivered"
	HookMessageAcked       = "message.acked"
	HookMessageDropped     = "message.dropped"
)

// EMQX's exhook failed_action values.
const (
	FailedDeny   = "deny"
	FailedIgnore = "ignore"
)

// BrokerOptions configures StartBroker.
type BrokerOptions struct {
	// Addr is the MQTT (TCP) listen address; default 127.0.0.1:0 (any free port).
	Addr string
	// HookAddr is the ExHook HookProvider's gRPC host:port; "" runs a broker without hooks.
	HookAddr string
	// RequestTimeout bounds each hook call (EMQX's request_timeout, default 5s).
	RequestTimeout time.Duration
	// LoadTimeout bounds the OnProviderLoaded retries at start (default 10s).
	LoadTimeout time.Duration
	// FailedAction is what a failed message.publish call does: deny (default, drop the
	// message) or ignore (route it unchanged).
	FailedAction string
	// Node is the broker node name sent to the provider (default emqx@127.0.0.1).
	Node string
	// Authorize, when set, decides publish (write) and subscribe/deliver (read) access; a
	// denied QoS 1 publish gets PUBACK 0x87 (not authorized). nil allows everything.
	Authorize func(clientID, topic string, write bool) bool
	// OnHook, when set, is told about every hook call after it returned (for tests that
	// need to sequence a simulated client after a broker event).
	OnHook func(HookCall)
	// Log receives the broker's logs (mochi's included); default: discarded.
	Log *slog.Logger
}

// HookCall describes one hook call the broker made.
type HookCall struct {
	Hook     string
	ClientID string // the client the event is about (the publisher for message.publish)
	Topic    string // message.* only
	Err      error
}

// Broker is a running test-double broker.
type Broker struct {
	opts     BrokerOptions
	srv      *mqtt.Server
	listener *listeners.TCP
	client   *Client // nil without HookAddr
	hooks    map[string][]string
	log      *slog.Logger

	closeOnce sync.Once
	mu        sync.Mutex
	inflight  map[clientPacket]*exhookv2.Message // deliveries awaiting the subscriber's ack
	noSubs    map[clientPacket]bool              // publishes to acknowledge with 0x10
}

type clientPacket struct {
	client string
	id     uint16
}

// idProperty carries EMQX's message id (and publish time) from message.publish to the
// deliveries of the same message; it is removed before any packet is encoded.
const idProperty = "x-emqxsim-message"

// StartBroker loads the hook provider (if any) and starts listening.
func StartBroker(opts BrokerOptions) (*Broker, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 5 * time.Second
	}
	if opts.LoadTimeout <= 0 {
		opts.LoadTimeout = 10 * time.Second
	}
	if opts.Node == "" {
		opts.Node = "emqx@127.0.0.1"
	}
	switch opts.FailedAction {
	case "":
		opts.FailedAction = FailedDeny
	case FailedDeny, FailedIgnore:
	default:
		return nil, fmt.Errorf("emqxsim: FailedAction %q: want deny or ignore", opts.FailedAction)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	b := &Broker{opts: opts, log: opts.Log, hooks: map[string][]string{},
		inflight: map[clientPacket]*exhookv2.Message{}, noSubs: map[clientPacket]bool{}}

	if opts.HookAddr != "" {
		// Wait for the provider to listen before opening the pool: a pooled connection
		// whose first dial was refused sits in gRPC's reconnect backoff and would fail the
		// first hook calls routed to it.
		if err := waitListening(opts.HookAddr, opts.LoadTimeout); err != nil {
			return nil, err
		}
		c, err := Dial(Options{Addr: opts.HookAddr, PoolSize: 4, RequestTimeout: opts.RequestTimeout, Node: opts.Node})
		if err != nil {
			return nil, err
		}
		b.client = c
		if err := b.load(); err != nil {
			c.Close()
			return nil, err
		}
	}

	caps := mqtt.NewDefaultServerCapabilities()
	b.srv = mqtt.New(&mqtt.Options{Logger: opts.Log, Capabilities: caps})
	if err := b.srv.AddHook(&exhook{b: b}, nil); err != nil {
		b.closeClient()
		return nil, fmt.Errorf("emqxsim: add hook: %w", err)
	}
	b.listener = listeners.NewTCP(listeners.Config{ID: "tcp", Address: opts.Addr})
	if err := b.srv.AddListener(b.listener); err != nil {
		b.closeClient()
		return nil, fmt.Errorf("emqxsim: listen %s: %w", opts.Addr, err)
	}
	if err := b.srv.Serve(); err != nil {
		_ = b.srv.Close()
		b.closeClient()
		return nil, fmt.Errorf("emqxsim: serve: %w", err)
	}
	return b, nil
}

func waitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("emqxsim: hook provider %s not listening: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// load calls OnProviderLoaded until it answers or LoadTimeout passes.
func (b *Broker) load() error {
	deadline := time.Now().Add(b.opts.LoadTimeout)
	backoff := 50 * time.Millisecond
	for {
		resp, err := b.client.Load(context.Background())
		if err == nil {
			for _, h := range resp.GetHooks() {
				b.hooks[h.GetName()] = append(b.hooks[h.GetName()], h.GetTopics()...)
			}
			b.log.Info("exhook provider loaded", "hooks", b.Hooks())
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("emqxsim: OnProviderLoaded at %s: %w", b.opts.HookAddr, err)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
}

func (b *Broker) closeClient() {
	if b.client != nil {
		b.client.Close()
	}
}

// Addr is the MQTT listener's host:port.
func (b *Broker) Addr() string { return b.listener.Address() }

// URL is the broker URL for MQTT clients, mqtt://host:port.
func (b *Broker) URL() string { return "mqtt://" + b.Addr() }

// Hooks lists the registered hook names, sorted, each with its topic filters, e.g.
// "message.acked[vehicles/+/commands/+]".
func (b *Broker) Hooks() []string {
	var out []string
	for name, topics := range b.hooks {
		out = append(out, name+"["+strings.Join(topics, " ")+"]")
	}
	slices.Sort(out)
	return out
}

// Close disconnects every client, stops listening and tells the provider it is unloaded.
// Safe to call more than once.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		_ = b.srv.Close()
		if b.client != nil {
			ctx, cancel := b.client.call(context.Background())
			_, _ = b.client.pick().OnProviderUnloaded(ctx, &exhookv2.ProviderUnloadedRequest{Meta: b.client.meta()})
			cancel()
			b.client.Close()
		}
	})
	return nil
}

// wants reports whether hook is registered for topic.
func (b *Broker) wants(hook, topic string) bool {
	filters, ok := b.hooks[hook]
	if !ok || b.client == nil {
		return false
	}
	if strings.HasPrefix(hook, "message.") && strings.HasPrefix(topic, "$SYS/") {
		return false
	}
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		if TopicMatch(f, topic) {
			return true
		}
	}
	return false
}

func (b *Broker) report(hook, clientID, topic string, err error) {
	if err != nil {
		b.log.Warn("exhook call failed", "hook", hook, "clientid", clientID, "topic", topic, "err", err)
	}
	if b.opts.OnHook != nil {
		b.opts.OnHook(HookCall{Hook: hook, ClientID: clientID, Topic: topic, Err: err})
	}
}

// TopicMatch reports whether an MQTT topic name matches a topic filter: + matches exactly
// one level, # (last level only) matches the parent level and everything below, and a
// filter starting with a wildcard does not match topics starting with $ (MQTT 5, 4.7).
// It is a small local helper because the matching in mochi is internal to its index.
func TopicMatch(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	fl := strings.Split(filter, "/")
	tl := strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return i == len(fl)-1
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

// message builds the exhook Message for a packet seen by the broker.
func (b *Broker) message(id string, ts int64, from string, pk packets.Packet, headers map[string]string) *exhookv2.Message {
	return &exhookv2.Message{
		Node:      b.opts.Node,
		Id:        id,
		Qos:       uint32(pk.FixedHeader.Qos),
		From:      from,
		Topic:     pk.TopicName,
		Payload:   pk.Payload,
		Timestamp: uint64(ts),
		Headers:   headers,
	}
}

func (b *Broker) newID() string {
	return fmt.Sprintf("%016X%016X", b.client.start, b.client.msgSeq.Add(1))
}

// exhook is the mochi hook that turns broker events into ExHook calls.
type exhook struct {
	mqtt.HookBase
	b *Broker
}

func (h *exhook) ID() string { return "emqxsim-exhook" }

func (h *exhook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnPublish, mqtt.OnPacketEncode, mqtt.OnPacketProcessed:
		return true
	}
	return false
}

// OnConnect turns off outbound topic aliases for the client (EMQX assigns none), so that
// every delivered PUBLISH carries its topic name.
func (h *exhook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	cl.Properties.Props.TopicAliasMaximum = 0
	return nil
}

func (h *exhook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *exhook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if h.b.opts.Authorize == nil {
		return true
	}
	return h.b.opts.Authorize(cl.ID, topic, write)
}

func (h *exhook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	b := h.b
	if cl.Net.Inline || !b.wants(HookClientConnected, "") {
		return
	}
	b.report(HookClientConnected, cl.ID, "", b.client.Connected(context.Background(), cl.ID))
}

func (h *exhook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	b := h.b
	if expire {
		b.mu.Lock()
		for k := range b.inflight {
			if k.client == cl.ID {
				delete(b.inflight, k)
			}
		}
		b.mu.Unlock()
	}
	if cl.Net.Inline || !b.wants(HookClientDisconnected, "") {
		return
	}
	b.report(HookClientDisconnected, cl.ID, "", b.client.Disconnected(context.Background(), cl.ID, disconnectReason(cl, err)))
}

func disconnectReason(cl *mqtt.Client, err error) string {
	switch {
	case cl.IsTakenOver():
		return "takenover"
	case err == nil, errors.Is(cl.StopCause(), packets.CodeDisconnect):
		return "normal"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "keepalive_timeout"
	default:
		return "sock_closed"
	}
}

// OnPublish runs message.publish for a client's PUBLISH and tags the packet with the
// message id its deliveries report.
func (h *exhook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	b := h.b
	if b.client == nil {
		b.noteSubscribers(cl, pk, false)
		return pk, nil
	}
	id, ts := b.newID(), time.Now().UnixMilli()
	if b.wants(HookMessagePublish, pk.TopicName) {
		username := string(cl.Properties.Username)
		if username == "" {
			username = cl.ID
		}
		host, _, _ := net.SplitHostPort(cl.Net.Remote)
		msg := b.message(id, ts, cl.ID, pk, map[string]string{"username": username, "peerhost": host, "protocol": "mqtt"})
		resp, err := b.client.Publish(context.Background(), msg)
		b.report(HookMessagePublish, cl.ID, pk.TopicName, err)
		drop := false
		switch {
		case err != nil:
			drop = b.opts.FailedAction == FailedDeny
		case resp.GetType() != exhookv2.ValuedResponse_IGNORE && resp.GetMessage() != nil:
			m := resp.GetMessage()
			if m.GetHeaders()["allow_publish"] == "false" {
				drop = true
			}
			if t := m.GetTopic(); t != "" {
				pk.TopicName = t
			}
			pk.Payload = m.GetPayload()
		}
		if drop {
			b.noteSubscribers(cl, pk, true)
			return pk, packets.CodeSuccessIgnore
		}
	}
	b.noteSubscribers(cl, pk, false)
	if b.wants(HookMessageDropped, pk.TopicName) && !b.hasSubscribers(pk.TopicName) {
		// EMQX runs message.dropped with reason no_subscribers when nobody receives it.
		msg := b.message(id, ts, cl.ID, pk, nil)
		b.report(HookMessageDropped, cl.ID, pk.TopicName, b.client.Dropped(context.Background(), msg, "no_subscribers"))
	}
	pk.Properties.User = append(slices.Clone(pk.Properties.User), packets.UserProperty{Key: idProperty, Val: id + ";" + strconv.FormatInt(ts, 10)})
	return pk, nil
}

func (b *Broker) hasSubscribers(topic string) bool {
	subs := b.srv.Topics.Subscribers(topic)
	return len(subs.Subscriptions)+len(subs.Shared)+len(subs.InlineSubscriptions) > 0
}

// noteSubscribers remembers a QoS 1/2 publish that nobody will receive, so that its
// PUBACK/PUBREC carries 0x10 (no matching subscribers) as in EMQX.
func (b *Broker) noteSubscribers(cl *mqtt.Client, pk packets.Packet, dropped bool) {
	if pk.FixedHeader.Qos == 0 || cl.Net.Inline {
		return
	}
	if !dropped && b.hasSubscribers(pk.TopicName) {
		return
	}
	b.mu.Lock()
	b.noSubs[clientPacket{cl.ID, pk.PacketID}] = true
	b.mu.Unlock()
}

// OnPacketEncode removes the internal id property from every outgoing packet, sets 0x10 on
// acknowledgements of unrouted publishes, and runs message.delivered for deliveries.
func (h *exhook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	b := h.b
	tag := ""
	if i := slices.IndexFunc(pk.Properties.User, func(u packets.UserProperty) bool { return u.Key == idProperty }); i >= 0 {
		tag = pk.Properties.User[i].Val
		pk.Properties.User = slices.Delete(slices.Clone(pk.Properties.User), i, i+1)
	}
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubrec:
		k := clientPacket{cl.ID, pk.PacketID}
		b.mu.Lock()
		unrouted := b.noSubs[k]
		delete(b.noSubs, k)
		b.mu.Unlock()
		if unrouted && pk.ReasonCode < 0x80 {
			pk.ReasonCode = 0x10
			// mochi omits a reason code below 0x80 from an ack without properties; a reason
			// string (allowed on PUBACK/PUBREC) makes it encode the code.
			if pk.Properties.ReasonString == "" {
				pk.Properties.ReasonString = "no matching subscribers"
			}
		}
	case packets.Publish:
		if cl.Net.Inline || pk.FixedHeader.Dup || b.client == nil {
			return pk
		}
		id, tsText, _ := strings.Cut(tag, ";")
		ts, _ := strconv.ParseInt(tsText, 10, 64)
		if id == "" {
			id, ts = b.newID(), time.Now().UnixMilli()
		}
		msg := b.message(id, ts, pk.Origin, pk, map[string]string{})
		if pk.FixedHeader.Qos > 0 && b.wants(HookMessageAcked, pk.TopicName) {
			b.mu.Lock()
			b.inflight[clientPacket{cl.ID, pk.PacketID}] = msg
			b.mu.Unlock()
		}
		if b.wants(HookMessageDelivered, pk.TopicName) {
			b.report(HookMessageDelivered, cl.ID, pk.TopicName, b.client.Delivered(context.Background(), cl.ID, msg))
		}
	}
	return pk
}

// OnPacketProcessed runs message.acked once the subscriber's PUBACK (QoS 1) or PUBREC
// (QoS 2) of a tracked delivery has been handled.
func (h *exhook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, err error) {
	b := h.b
	if err != nil || (pk.FixedHeader.Type != packets.Puback && pk.FixedHeader.Type != packets.Pubrec) || pk.ReasonCode >= 0x80 {
		return
	}
	k := clientPacket{cl.ID, pk.PacketID}
	b.mu.Lock()
	msg, ok := b.inflight[k]
	delete(b.inflight, k)
	b.mu.Unlock()
	if !ok {
		return
	}
	b.report(HookMessageAcked, cl.ID, msg.GetTopic(), b.client.Acked(context.Background(), cl.ID, msg))
}

var _ io.Closer = (*Broker)(nil)
