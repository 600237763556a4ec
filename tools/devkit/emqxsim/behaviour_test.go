package emqxsim

// behaviour_test.go: each EMQX behaviour the simulator reproduces, with a test that fails
// when the behaviour is removed.

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	"github.com/iov-platform/iov/tools/devkit/service"
)

var publishAll = []*exhookv2.HookSpec{{Name: HookMessagePublish}}

// While OnProviderLoaded fails, the listener is already open and messages are routed
// without the hook; the load is retried every AutoReconnect, not sooner.
func TestLoadRetriesEveryAutoReconnectWithListenerOpen(t *testing.T) {
	const autoReconnect = 300 * time.Millisecond
	release := make(chan struct{})
	p := &provider{hooks: publishAll, loadErr: func(int) error {
		select {
		case <-release:
			return nil
		default:
			return status.Error(codes.Unavailable, "not ready")
		}
	}}
	b, sub, pub := startUnloaded(t, serveProvider(t, p), autoReconnect)
	if n := p.count(HookMessagePublish); n != 0 {
		t.Fatalf("%d message.publish calls before the provider loaded", n)
	}
	waitCalls(t, p, func(cs []call) bool { return len(cs) >= 2 })
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.WaitLoaded(ctx); err != nil {
		t.Fatal(err)
	}
	var loads []time.Time
	for _, c := range p.snapshot() {
		if c.hook == "provider.loaded" {
			loads = append(loads, c.at)
		}
	}
	for i := 1; i < len(loads); i++ {
		if gap := loads[i].Sub(loads[i-1]); gap < autoReconnect-20*time.Millisecond {
			t.Fatalf("load attempts %s apart, want auto_reconnect %s", gap, autoReconnect)
		}
	}
	pub.publish(t, "t/late", "y")
	if m := sub.next(t); m.Topic != "t/late" {
		t.Fatalf("got %s", m.Topic)
	}
	if n := p.count(HookMessagePublish); n != 1 {
		t.Fatalf("%d message.publish calls after the load, want 1", n)
	}
}

// startUnloaded starts a broker that loads hookAddr in the background and checks that a
// message published before the load is routed.
func startUnloaded(t *testing.T, hookAddr string, autoReconnect time.Duration) (b *Broker, sub, pub *client) {
	t.Helper()
	b, err := StartBroker(BrokerOptions{HookAddr: hookAddr, AutoReconnect: autoReconnect, LoadTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	sub = connect(t, b, "sub", "t/#")
	pub = connect(t, b, "pub")
	pub.publish(t, "t/early", "x")
	if m := sub.next(t); m.Topic != "t/early" {
		t.Fatalf("got %s", m.Topic)
	}
	return b, sub, pub
}

// A provider that restarts is not loaded again: EMQX keeps the hooks it registered first
// and calls the new process with them. Reload (enable/update) loads it again.
func TestProviderRestartDoesNotReload(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	first := &provider{hooks: publishAll}
	srv := grpc.NewServer()
	exhookv2.RegisterHookProviderServer(srv, first)
	go func() { _ = srv.Serve(ln) }()
	b, err := StartBroker(BrokerOptions{HookAddr: addr, AutoReconnect: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	srv.Stop()

	second := &provider{hooks: []*exhookv2.HookSpec{{Name: HookMessagePublish, Topics: []string{"other/#"}}}}
	ln2, err := net.Listen("tcp", addr) // the restarted producer, same address
	if err != nil {
		t.Skipf("address %s taken again before the restart: %v", addr, err)
	}
	srv2 := grpc.NewServer()
	exhookv2.RegisterHookProviderServer(srv2, second)
	go func() { _ = srv2.Serve(ln2) }()
	t.Cleanup(srv2.Stop)

	pub := connect(t, b, "pub")
	deadline := time.Now().Add(5 * time.Second)
	for second.count(HookMessagePublish) == 0 && time.Now().Before(deadline) {
		pub.publish(t, "t/x", "x") // the first may meet the dead connection
		time.Sleep(20 * time.Millisecond)
	}
	if second.count(HookMessagePublish) == 0 {
		t.Fatal("restarted provider never called")
	}
	if n := second.count("provider.loaded"); n != 0 || b.Loads() != 1 {
		t.Fatalf("restart loaded the provider again: %d calls, Loads %d", n, b.Loads())
	}

	b.Reload()
	waitCalls(t, second, func(cs []call) bool {
		return slices.ContainsFunc(cs, func(c call) bool { return c.hook == "provider.loaded" })
	})
	for b.Loads() != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := b.Hooks(); !slices.Equal(got, []string{"message.publish[other/#]"}) {
		t.Fatalf("hooks after Reload %q", got)
	}
}

// One unknown hook name fails the whole load: nothing is registered.
func TestUnknownHookFailsLoad(t *testing.T) {
	p := &provider{hooks: []*exhookv2.HookSpec{{Name: HookMessagePublish}, {Name: "message.bogus"}}}
	_, err := StartBroker(BrokerOptions{HookAddr: serveProvider(t, p), LoadTimeout: 300 * time.Millisecond, AutoReconnect: time.Hour})
	if err == nil || !strings.Contains(err.Error(), `unknown_hookpoint "message.bogus"`) {
		t.Fatalf("StartBroker = %v", err)
	}
	b, err := StartBroker(BrokerOptions{HookAddr: serveProvider(t, p), LoadTimeout: -1, AutoReconnect: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitCalls(t, p, func(cs []call) bool { return len(cs) >= 2 })
	if h := b.Hooks(); len(h) != 0 {
		t.Fatalf("hooks registered from a failed load: %q", h)
	}
}

// Every call about a client goes over the same pooled connection.
func TestCallsPinnedByClientID(t *testing.T) {
	p := &provider{hooks: publishAll}
	c, err := Dial(Options{Addr: serveProvider(t, p), PoolSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	clients := []string{"VIN1", "VIN2", "VIN3", "VIN4", "VIN5", "VIN6", "VIN7", "VIN8"}
	for range 5 {
		for _, id := range clients {
			if _, err := c.Publish(ctx, c.NewMessage(id, "t/"+id, 1, nil)); err != nil {
				t.Fatal(err)
			}
		}
	}
	peers := map[string]string{}
	conns := map[string]bool{}
	for _, call := range p.snapshot() {
		if prev, ok := peers[call.client]; ok && prev != call.peer {
			t.Fatalf("%s called over %s and %s", call.client, prev, call.peer)
		}
		peers[call.client] = call.peer
		conns[call.peer] = true
	}
	slots := map[int]bool{}
	for _, id := range clients {
		slots[c.SlotFor(id)] = true
	}
	if len(conns) != len(slots) || len(conns) < 2 {
		t.Fatalf("%d connections used, %d slots for the clients", len(conns), len(slots))
	}
}

// EMQX writes grpc-timeout in whole seconds above one second (5500 ms -> "5S").
func TestDeadlineWholeSeconds(t *testing.T) {
	for _, tc := range []struct {
		timeout, min, max time.Duration
	}{
		{2500 * time.Millisecond, 1500 * time.Millisecond, 2 * time.Second},
		{5 * time.Second, 4 * time.Second, 5 * time.Second},
		{800 * time.Millisecond, 300 * time.Millisecond, 800 * time.Millisecond},
	} {
		p := &provider{hooks: publishAll}
		c, err := Dial(Options{Addr: serveProvider(t, p), PoolSize: 1, RequestTimeout: tc.timeout})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Publish(context.Background(), c.NewMessage("VIN1", "t", 1, nil)); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if d := p.snapshot()[0].deadline; d <= tc.min || d > tc.max {
			t.Errorf("request_timeout %s: provider saw %s left, want in (%s, %s]", tc.timeout, d, tc.min, tc.max)
		}
	}
}

// client.connected returns before the client gets its CONNACK.
func TestConnectedBeforeConnack(t *testing.T) {
	p := &provider{hooks: []*exhookv2.HookSpec{{Name: HookClientConnected}}, connectedDelay: 200 * time.Millisecond}
	b, err := StartBroker(BrokerOptions{HookAddr: serveProvider(t, p)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	connect(t, b, "VIN1") // returns on CONNACK
	if n := p.count(HookClientConnected); n != 1 {
		t.Fatalf("CONNACK arrived with %d client.connected calls done, want 1", n)
	}
}

// rawClient speaks MQTT 5 packet by packet, for acks with chosen reason codes and sessions
// that outlive a connection.
type rawClient struct {
	t    *testing.T
	conn net.Conn
}

func dialRaw(t *testing.T, b *Broker, id string, cleanStart bool) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	rc := &rawClient{t: t, conn: conn}
	cp := packets.NewControlPacket(packets.CONNECT)
	c := cp.Content.(*packets.Connect)
	expiry := uint32(300)
	c.ClientID, c.CleanStart, c.KeepAlive, c.Properties.SessionExpiryInterval = id, cleanStart, 30, &expiry
	rc.write(cp)
	if ack := rc.read(); ack.Type != packets.CONNACK || ack.Content.(*packets.Connack).ReasonCode != 0 {
		t.Fatalf("%s: connect answered %v", id, ack)
	}
	return rc
}

func (rc *rawClient) write(cp *packets.ControlPacket) {
	rc.t.Helper()
	if _, err := cp.WriteTo(rc.conn); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawClient) read() *packets.ControlPacket {
	rc.t.Helper()
	_ = rc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	cp, err := packets.ReadPacket(rc.conn)
	if err != nil {
		rc.t.Fatal(err)
	}
	return cp
}

func (rc *rawClient) subscribe(filter string, qos byte) {
	rc.t.Helper()
	cp := packets.NewControlPacket(packets.SUBSCRIBE)
	s := cp.Content.(*packets.Subscribe)
	s.PacketID, s.Subscriptions = 1, []packets.SubOptions{{Topic: filter, QoS: qos}}
	rc.write(cp)
	if ack := rc.read(); ack.Type != packets.SUBACK {
		rc.t.Fatalf("subscribe answered %v", ack)
	}
}

func (rc *rawClient) nextPublish() *packets.Publish {
	rc.t.Helper()
	for {
		if cp := rc.read(); cp.Type == packets.PUBLISH {
			return cp.Content.(*packets.Publish)
		}
	}
}

// message.acked fires on a QoS 1 PUBACK and a QoS 2 PUBREC whatever their reason code.
func TestAckedWhateverReasonCode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		qos    byte
		reason byte
	}{
		{"puback-success", 1, 0x00},
		{"puback-unspecified-error", 1, 0x80},
		{"puback-not-authorized", 1, 0x87},
		{"pubrec-unspecified-error", 2, 0x80},
		{"pubrec-success", 2, 0x00},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &provider{hooks: []*exhookv2.HookSpec{{Name: HookMessageAcked}}}
			b, err := StartBroker(BrokerOptions{HookAddr: serveProvider(t, p)})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			sub := dialRaw(t, b, "car", true)
			sub.subscribe("cmd/#", tc.qos)
			pub := connect(t, b, "app")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			go func() { _, _ = pub.c.Publish(ctx, pubPacket("cmd/1", tc.qos)) }()
			m := sub.nextPublish()
			typ := byte(packets.PUBACK)
			if tc.qos == 2 {
				typ = packets.PUBREC
			}
			ack := packets.NewControlPacket(typ)
			switch a := ack.Content.(type) {
			case *packets.Puback:
				a.PacketID, a.ReasonCode = m.PacketID, tc.reason
			case *packets.Pubrec:
				a.PacketID, a.ReasonCode = m.PacketID, tc.reason
			}
			sub.write(ack)
			waitCalls(t, p, func(cs []call) bool { return len(cs) >= 2 }) // loaded, acked
		})
	}
}

// message.delivered fires again for a DUP retransmission (a session resumed with the
// message unacknowledged), with the same message id.
func TestDeliveredAgainOnDup(t *testing.T) {
	p := &provider{hooks: []*exhookv2.HookSpec{{Name: HookMessageDelivered}}}
	var mu sync.Mutex
	var ids []string
	b, err := StartBroker(BrokerOptions{HookAddr: serveProvider(t, p)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sub := dialRaw(t, b, "car", true)
	sub.subscribe("cmd/#", 1)
	pub := connect(t, b, "app")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { _, _ = pub.c.Publish(ctx, pubPacket("cmd/1", 1)) }()
	if m := sub.nextPublish(); m.Duplicate {
		t.Fatal("first delivery marked DUP")
	}
	_ = sub.conn.Close() // no PUBACK
	again := dialRaw(t, b, "car", false)
	if m := again.nextPublish(); !m.Duplicate || m.Topic != "cmd/1" {
		t.Fatalf("resent %s dup=%v", m.Topic, m.Duplicate)
	}
	calls := waitCalls(t, p, func(cs []call) bool {
		mu.Lock()
		defer mu.Unlock()
		ids = ids[:0]
		for _, c := range cs {
			if c.hook == HookMessageDelivered {
				ids = append(ids, c.msg.GetId())
			}
		}
		return len(ids) >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 2 || ids[0] != ids[1] {
		t.Fatalf("delivered ids %v (calls %d)", ids, len(calls))
	}
}

func pubPacket(topic string, qos byte) *paho.Publish {
	return &paho.Publish{QoS: qos, Topic: topic, Payload: []byte("x")}
}

// A producer that is unreachable while the broker starts costs at most auto_reconnect: the
// broker retries the load that often, and messages meanwhile are routed without the hook.
func TestStartupWindowIsAutoReconnect(t *testing.T) {
	const autoReconnect = 500 * time.Millisecond
	svc, err := service.Start() // the producer's Service, no ready pod yet
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	b, sub, pub := startUnloaded(t, svc.Addr(), autoReconnect)

	p := &provider{hooks: publishAll}
	up := time.Now()
	svc.SetEndpoints(serveProvider(t, p))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.WaitLoaded(ctx); err != nil {
		t.Fatal(err)
	}
	if window := time.Since(up); window > autoReconnect+300*time.Millisecond {
		t.Fatalf("loaded %s after the producer came up, want within auto_reconnect %s", window, autoReconnect)
	}
	pub.publish(t, "t/late", "y")
	sub.next(t)
	calls := waitCalls(t, p, func(cs []call) bool { return p.count(HookMessagePublish) == 1 })
	for _, c := range calls {
		if c.hook == HookMessagePublish && c.msg.GetTopic() != "t/late" {
			t.Fatalf("hook called for %s, published before the load", c.msg.GetTopic())
		}
	}
}
