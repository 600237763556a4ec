package emqxsim

// broker.go: an in-process MQTT 5 broker (mochi-mqtt) that stands in for EMQX's message
// delivery in tests and the demo, and calls an ExHook HookProvider over gRPC as EMQX does.
//
// THIS IS A TEST DOUBLE, NOT EMQX. It reproduces the parts of EMQX the platform's services
// depend on, checked against EMQX's source (v5.8.6: apps/emqx_exhook/src/emqx_exhook_mgr.erl,
// emqx_exhook_server.erl, emqx_exhook_handler.erl, emqx_exhook.erl; apps/emqx/src/
// emqx_channel.erl), and nothing more:
//
//   - Loading: the MQTT listener opens first; OnProviderLoaded runs once per node at start,
//     and again only when the server is re-enabled or updated (Reload). While it fails, it is
//     retried every AutoReconnect (EMQX's auto_reconnect, default 60s) and messages skip the
//     hooks meanwhile. A provider that restarts is not loaded again: the hooks registered
//     first stay in force. A LoadedResponse naming an unknown hook fails the whole load.
//     From then on only the registered hooks are called, and message.* hooks only for their
//     topics (an empty list means every topic); $SYS/ topics never reach message.* hooks.
//   - message.publish: called for a client's PUBLISH before it is routed. The reply may
//     rewrite the topic and payload, or drop the message with the header
//     allow_publish=false. A failed call applies FailedAction, and both deny and ignore
//     route the message unchanged (EMQX's deny_action_result for message.publish is the
//     message itself). A dropped QoS 1/2 message is still acknowledged, with reason code
//     0x10 (no matching subscribers), as EMQX does; so is one that no subscriber matched.
//   - message.delivered: called when a message is about to be written to a subscriber's
//     connection, once per PUBLISH written, DUP retransmissions included.
//   - message.acked: called when the subscriber's PUBACK (QoS 1) or PUBREC (QoS 2) for that
//     delivery has been processed, whatever its reason code.
//   - client.connected before the CONNACK is sent; client.disconnected with a reason (normal,
//     takenover, keepalive_timeout, sock_closed).
//   - Every hook runs synchronously in the client's own goroutine, as EMQX's exhook does
//     (its "cast" for delivered/acked/dropped is a synchronous call too), so the events of one
//     delivery reach the provider in order (delivered, then acked).
//
// It keeps no sessions across restarts, no retained-message persistence, no
// shared-subscription strategies beyond mochi's, no authentication (every client is allowed;
// Authorize can deny topics), and it never assigns outbound topic aliases (EMQX does not
// either).

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
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"google.golang.org/grpc"
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

// DefaultAutoReconnect is EMQX's exhook auto_reconnect default.
const DefaultAutoReconnect = 60 * time.Second

// BrokerOptions configures StartBroker.
type BrokerOptions struct {
	// Addr is the MQTT (TCP) listen address; default 127.0.0.1:0 (any free port).
	Addr string
	// HookAddr is the ExHook HookProvider's gRPC host:port; "" runs a broker without hooks.
	HookAddr string
	// Protocol is the ExHook protocol version: V2 (default, EMQX 5.0–5.8) or V3Protocol
	// (EMQX 5.9 and later, with the MQTT 5 properties of message.publish).
	Protocol Protocol
	// PoolSize is EMQX's exhook pool_size (default 8).
	PoolSize int
	// RequestTimeout bounds each hook call (EMQX's request_timeout, default 5s).
	RequestTimeout time.Duration
	// AutoReconnect is how long after a failed load the next one is tried (EMQX's
	// auto_reconnect, default 60s).
	AutoReconnect time.Duration
	// LoadTimeout is how long StartBroker waits for the first successful load before it
	// gives up (default 10s); negative: StartBroker returns once the listener is open and
	// loading goes on in the background (WaitLoaded).
	LoadTimeout time.Duration
	// FailedAction is EMQX's exhook failed_action, deny (default) or ignore. For
	// message.publish both route the message unchanged.
	FailedAction string
	// Mode, RetryInterval and Retries: the connection-loss behaviour of EMQX's gRPC client
	// (see Options).
	Mode          Mode
	RetryInterval time.Duration
	Retries       int
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
	log      *slog.Logger
	start    int64
	msgSeq   atomic.Uint64

	closeOnce sync.Once
	closed    chan struct{}
	loaderWG  sync.WaitGroup

	hmu      sync.RWMutex
	pool     *pool               // the loaded channel; nil while not loaded
	hooks    map[string][]string // registered hooks and their topics
	loaded   chan struct{}       // closed on the first successful load
	loads    int                 // successful loads
	retry    *time.Timer         // pending auto_reconnect load
	loadErr  error               // last load error
	reloadCh chan struct{}

	mu       sync.Mutex
	inflight map[clientPacket]*Message // deliveries awaiting the subscriber's ack
	noSubs   map[clientPacket]bool     // publishes to acknowledge with 0x10
}

type clientPacket struct {
	client string
	id     uint16
}

// idProperty carries EMQX's message id (and publish time) from message.publish to the
// deliveries of the same message; it is removed before any packet is encoded.
const idProperty = "x-emqxsim-message"

// StartBroker opens the MQTT listener, then loads the hook provider (if any) as EMQX does.
func StartBroker(opts BrokerOptions) (*Broker, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Protocol == nil {
		opts.Protocol = V2
	}
	if opts.AutoReconnect <= 0 {
		opts.AutoReconnect = DefaultAutoReconnect
	}
	if opts.PoolSize <= 0 {
		opts.PoolSize = defaultPoolSize
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = defaultRequestTimeout
	}
	if opts.LoadTimeout == 0 {
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
	if opts.HookAddr != "" {
		// Check the pool options now rather than on every load attempt.
		po := poolOptions{addr: opts.HookAddr, mode: opts.Mode}
		if err := po.defaults(); err != nil {
			return nil, err
		}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	b := &Broker{opts: opts, log: opts.Log, start: time.Now().UnixNano(), closed: make(chan struct{}),
		hooks: map[string][]string{}, loaded: make(chan struct{}), reloadCh: make(chan struct{}, 1),
		inflight: map[clientPacket]*Message{}, noSubs: map[clientPacket]bool{}}

	caps := mqtt.NewDefaultServerCapabilities()
	b.srv = mqtt.New(&mqtt.Options{Logger: opts.Log, Capabilities: caps})
	if err := b.srv.AddHook(&exhook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("emqxsim: add hook: %w", err)
	}
	b.listener = listeners.NewTCP(listeners.Config{ID: "tcp", Address: opts.Addr})
	if err := b.srv.AddListener(b.listener); err != nil {
		return nil, fmt.Errorf("emqxsim: listen %s: %w", opts.Addr, err)
	}
	if err := b.srv.Serve(); err != nil {
		_ = b.srv.Close()
		return nil, fmt.Errorf("emqxsim: serve: %w", err)
	}
	if opts.HookAddr == "" {
		return b, nil
	}
	b.loaderWG.Go(b.loader)
	if opts.LoadTimeout < 0 {
		return b, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.LoadTimeout)
	defer cancel()
	if err := b.WaitLoaded(ctx); err != nil {
		_ = b.Close()
		return nil, err
	}
	return b, nil
}

// loader loads the provider at start and on Reload, and retries a failed load every
// AutoReconnect (emqx_exhook_mgr's reload timer).
func (b *Broker) loader() {
	b.loadOnce()
	for {
		b.hmu.RLock()
		var retry <-chan time.Time
		if b.retry != nil {
			retry = b.retry.C
		}
		b.hmu.RUnlock()
		select {
		case <-b.closed:
			return
		case <-retry:
			b.loadOnce()
		case <-b.reloadCh:
			b.unload()
			b.loadOnce()
		}
	}
}

// loadOnce is emqx_exhook_server:load/2: open the channel, call OnProviderLoaded, register
// the hooks; on failure close the channel and arm the reload timer.
func (b *Broker) loadOnce() {
	p, err := newPool(poolOptions{addr: b.opts.HookAddr, size: b.opts.PoolSize, requestTimeout: b.opts.RequestTimeout,
		mode: b.opts.Mode, retryInterval: b.opts.RetryInterval, retries: b.opts.Retries})
	var specs []HookSpec
	if err == nil {
		specs, err = callPool(context.Background(), p, "", func(ctx context.Context, cc grpc.ClientConnInterface) ([]HookSpec, error) {
			return b.opts.Protocol.Stub(cc).Loaded(ctx, BrokerInfo{Version: b.opts.Protocol.Version(), Sysdescr: "EMQX", Uptime: 1000,
				Datetime: time.Now().UTC().Format(time.RFC3339)}, b.meta())
		})
	}
	hooks := map[string][]string{}
	if err == nil {
		for _, h := range specs {
			if !knownHooks[h.Name] {
				err = fmt.Errorf("unknown_hookpoint %q", h.Name)
				break
			}
			hooks[h.Name] = append(hooks[h.Name], h.Topics...)
		}
	}
	b.hmu.Lock()
	defer b.hmu.Unlock()
	if err != nil {
		if p != nil {
			p.close()
		}
		b.loadErr = fmt.Errorf("emqxsim: load hook provider %s: %w", b.opts.HookAddr, err)
		b.retry = time.NewTimer(b.opts.AutoReconnect)
		b.log.Warn("exhook provider not loaded; retrying", "err", err, "auto_reconnect", b.opts.AutoReconnect)
		return
	}
	b.pool, b.hooks, b.retry, b.loadErr = p, hooks, nil, nil
	if b.loads == 0 {
		close(b.loaded)
	}
	b.loads++
	b.log.Info("exhook provider loaded", "hooks", b.hooksLocked())
}

// unload is emqx_exhook_server:unload/1: drop the hooks, OnProviderUnloaded, close the
// channel.
func (b *Broker) unload() {
	b.hmu.Lock()
	p := b.pool
	b.pool, b.hooks = nil, map[string][]string{}
	if b.retry != nil {
		b.retry.Stop()
		b.retry = nil
	}
	b.hmu.Unlock()
	if p == nil {
		return
	}
	_, _ = p.do(context.Background(), "", func(ctx context.Context, cc grpc.ClientConnInterface) (any, error) {
		return nil, b.opts.Protocol.Stub(cc).Unloaded(ctx, b.meta())
	})
	p.close()
}

// WaitLoaded waits for the first successful load.
func (b *Broker) WaitLoaded(ctx context.Context) error {
	select {
	case <-b.loaded:
		return nil
	case <-ctx.Done():
		b.hmu.RLock()
		defer b.hmu.RUnlock()
		return fmt.Errorf("emqxsim: hook provider %s not loaded: %w (last error: %v)", b.opts.HookAddr, ctx.Err(), b.loadErr)
	}
}

// Reload is what EMQX does when the ExHook server is enabled again or updated (REST API or
// config change): unload, then load at once (retrying every AutoReconnect on failure). It
// returns without waiting; Loads counts the successful loads.
func (b *Broker) Reload() {
	select {
	case b.reloadCh <- struct{}{}:
	default:
	}
}

// Loads is how many times OnProviderLoaded succeeded.
func (b *Broker) Loads() int {
	b.hmu.RLock()
	defer b.hmu.RUnlock()
	return b.loads
}

// waitLoads waits until Loads reaches n or ctx ends.
func (b *Broker) waitLoads(ctx context.Context, n int) {
	for b.Loads() < n && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (b *Broker) meta() Meta {
	return Meta{Node: b.opts.Node, Version: b.opts.Protocol.Version(), Sysdescr: "EMQX", ClusterName: "emqxcl"}
}

// call runs one hook call pinned by key (the client id), or reports errNotLoaded.
func (b *Broker) call(key string, fn func(context.Context, Stub) error) error {
	_, err := brokerCall(b, key, func(ctx context.Context, s Stub) (struct{}, error) { return struct{}{}, fn(ctx, s) })
	return err
}

// brokerCall is call with a result.
func brokerCall[T any](b *Broker, key string, fn func(context.Context, Stub) (T, error)) (T, error) {
	b.hmu.RLock()
	p := b.pool
	b.hmu.RUnlock()
	if p == nil {
		var zero T
		return zero, errNotLoaded
	}
	return callPool(context.Background(), p, key, func(ctx context.Context, cc grpc.ClientConnInterface) (T, error) {
		return fn(ctx, b.opts.Protocol.Stub(cc))
	})
}

var (
	errNotLoaded     = errors.New("emqxsim: provider unloaded")
	errBrokerClosing = errors.New("emqxsim: broker closing")
)

// Addr is the MQTT listener's host:port.
func (b *Broker) Addr() string { return b.listener.Address() }

// URL is the broker URL for MQTT clients, mqtt://host:port.
func (b *Broker) URL() string { return "mqtt://" + b.Addr() }

// Hooks lists the registered hook names, sorted, each with its topic filters, e.g.
// "message.acked[vehicles/+/commands/+]".
func (b *Broker) Hooks() []string {
	b.hmu.RLock()
	defer b.hmu.RUnlock()
	return b.hooksLocked()
}

func (b *Broker) hooksLocked() []string {
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
		// Disconnect the clients first and let their teardown finish: mochi v2.7.9's
		// listener close takes its client list's read lock twice, which deadlocks against
		// a client removing itself at the same moment.
		for _, cl := range b.srv.Clients.GetAll() {
			cl.Stop(errBrokerClosing)
		}
		// ClientsConnected drops when a connection's teardown (its removal included) is over.
		for deadline := time.Now().Add(2 * time.Second); atomic.LoadInt64(&b.srv.Info.ClientsConnected) > 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		_ = b.srv.Close()
		close(b.closed)
		b.loaderWG.Wait()
		b.unload()
	})
	return nil
}

// wants reports whether hook is registered for topic.
func (b *Broker) wants(hook, topic string) bool {
	b.hmu.RLock()
	filters, ok := b.hooks[hook]
	b.hmu.RUnlock()
	if !ok {
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

// message builds the hook Message for a packet seen by the broker.
func (b *Broker) message(id string, ts int64, from string, pk packets.Packet, headers map[string]string) *Message {
	m := &Message{Node: b.opts.Node, ID: id, QoS: uint32(pk.FixedHeader.Qos), From: from, Topic: pk.TopicName,
		Payload: pk.Payload, Timestamp: ts, Headers: headers}
	for _, u := range pk.Properties.User {
		if u.Key != idProperty {
			m.UserProperties = append(m.UserProperties, [2]string{u.Key, u.Val})
		}
	}
	m.Properties = publishProperties(pk.Properties)
	return m
}

// publishProperties are a PUBLISH's MQTT 5 properties other than User Property, under the
// names EMQX gives them; nil when there are none (and for MQTT 3.x clients). A topic alias
// is resolved by the broker and not passed on.
func publishProperties(p packets.Properties) map[string]string {
	out := map[string]string{}
	if p.PayloadFormatFlag {
		out["Payload-Format-Indicator"] = strconv.Itoa(int(p.PayloadFormat))
	}
	if p.MessageExpiryInterval > 0 {
		out["Message-Expiry-Interval"] = strconv.FormatUint(uint64(p.MessageExpiryInterval), 10)
	}
	if p.ContentType != "" {
		out["Content-Type"] = p.ContentType
	}
	if p.ResponseTopic != "" {
		out["Response-Topic"] = p.ResponseTopic
	}
	if len(p.CorrelationData) > 0 {
		out["Correlation-Data"] = string(p.CorrelationData)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func (b *Broker) newID() string {
	return fmt.Sprintf("%016X%016X", b.start, b.msgSeq.Add(1))
}

func (b *Broker) clientInfo(cl *mqtt.Client) ClientInfo {
	host, port, _ := net.SplitHostPort(cl.Net.Remote)
	pp, _ := strconv.ParseUint(port, 10, 32)
	username := string(cl.Properties.Username)
	if username == "" {
		username = cl.ID
	}
	return ClientInfo{Node: b.opts.Node, ClientID: cl.ID, Username: username, Peerhost: host, Peerport: uint32(pp), Sockport: 1883, Protocol: "mqtt"}
}

// exhook is the mochi hook that turns broker events into ExHook calls.
type exhook struct {
	mqtt.HookBase
	b *Broker
}

func (h *exhook) ID() string { return "emqxsim-exhook" }

func (h *exhook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish, mqtt.OnDisconnect,
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

// OnSessionEstablish runs client.connected before the CONNACK is written, as EMQX's channel
// does (ensure_connected runs the hook, then the CONNACK goes out).
func (h *exhook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	b := h.b
	if cl.Net.Inline || !b.wants(HookClientConnected, "") {
		return
	}
	ci := b.clientInfo(cl)
	b.report(HookClientConnected, cl.ID, "", b.call(cl.ID, func(ctx context.Context, s Stub) error {
		return s.ClientConnected(ctx, ci, b.meta())
	}))
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
	ci, reason := b.clientInfo(cl), disconnectReason(cl, err)
	b.report(HookClientDisconnected, cl.ID, "", b.call(cl.ID, func(ctx context.Context, s Stub) error {
		return s.ClientDisconnected(ctx, ci, reason, b.meta())
	}))
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
	if b.opts.HookAddr == "" {
		b.noteSubscribers(cl, pk, false)
		return pk, nil
	}
	id, ts := b.newID(), time.Now().UnixMilli()
	if b.wants(HookMessagePublish, pk.TopicName) {
		host, _, _ := net.SplitHostPort(cl.Net.Remote)
		msg := b.message(id, ts, cl.ID, pk, map[string]string{"username": b.clientInfo(cl).Username, "peerhost": host, "protocol": "mqtt"})
		v, err := brokerCall(b, cl.ID, func(ctx context.Context, s Stub) (Verdict, error) {
			return s.MessagePublish(ctx, msg, b.meta())
		})
		b.report(HookMessagePublish, cl.ID, pk.TopicName, err)
		// A failed call leaves the message as it was, with deny and with ignore alike.
		if err == nil && v.Replace {
			if v.Deny {
				b.noteSubscribers(cl, pk, true)
				return pk, packets.CodeSuccessIgnore
			}
			if v.Topic != "" {
				pk.TopicName = v.Topic
			}
			pk.Payload = v.Payload
		}
	}
	b.noteSubscribers(cl, pk, false)
	if b.wants(HookMessageDropped, pk.TopicName) && !b.hasSubscribers(pk.TopicName) {
		// EMQX runs message.dropped with reason no_subscribers when nobody receives it.
		msg := b.message(id, ts, cl.ID, pk, nil)
		b.report(HookMessageDropped, cl.ID, pk.TopicName, b.call(cl.ID, func(ctx context.Context, s Stub) error {
			return s.MessageDropped(ctx, msg, "no_subscribers", b.meta())
		}))
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
// acknowledgements of unrouted publishes, and runs message.delivered for every PUBLISH
// written to a subscriber, DUP retransmissions included.
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
		if cl.Net.Inline || b.opts.HookAddr == "" {
			return pk
		}
		k := clientPacket{cl.ID, pk.PacketID}
		var msg *Message
		if pk.FixedHeader.Dup && pk.FixedHeader.Qos > 0 {
			// A retransmission: the same message as the first delivery.
			b.mu.Lock()
			msg = b.inflight[k]
			b.mu.Unlock()
		}
		if msg == nil {
			id, tsText, _ := strings.Cut(tag, ";")
			ts, _ := strconv.ParseInt(tsText, 10, 64)
			if id == "" {
				id, ts = b.newID(), time.Now().UnixMilli()
			}
			msg = b.message(id, ts, pk.Origin, pk, map[string]string{})
		}
		if pk.FixedHeader.Qos > 0 && b.wants(HookMessageAcked, pk.TopicName) {
			b.mu.Lock()
			b.inflight[k] = msg
			b.mu.Unlock()
		}
		if b.wants(HookMessageDelivered, pk.TopicName) {
			ci := b.clientInfo(cl)
			b.report(HookMessageDelivered, cl.ID, pk.TopicName, b.call(cl.ID, func(ctx context.Context, s Stub) error {
				return s.MessageDelivered(ctx, ci, msg, b.meta())
			}))
		}
	}
	return pk
}

// OnPacketProcessed runs message.acked once the subscriber's PUBACK (QoS 1) or PUBREC
// (QoS 2) of a tracked delivery has been handled, whatever its reason code (EMQX's session
// runs the hook on the ack before it looks at the code).
func (h *exhook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, err error) {
	b := h.b
	if err != nil || (pk.FixedHeader.Type != packets.Puback && pk.FixedHeader.Type != packets.Pubrec) {
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
	ci := b.clientInfo(cl)
	b.report(HookMessageAcked, cl.ID, msg.Topic, b.call(cl.ID, func(ctx context.Context, s Stub) error {
		return s.MessageAcked(ctx, ci, msg, b.meta())
	}))
}

var _ io.Closer = (*Broker)(nil)
