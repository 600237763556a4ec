package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	"github.com/iov-platform/iov/services/exhook-producer/internal/hook"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
	"github.com/iov-platform/iov/tools/devkit/rawgrpc"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

const publishMethod = "/emqx.exhook.v2.HookProvider/OnMessagePublish"

func readTopics(t *testing.T, st *stack.Stack, want int, topics ...string) []stack.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs, err := stack.ReadAll(ctx, st.KafkaBootstrap(), want, topics...)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// readSettled waits until the topics hold want records, then returns every record they
// hold: an async route answers EMQX before Kafka has the record, so a read right after the
// answer may not see it yet, and a read of want records alone would not see one too many.
func readSettled(t *testing.T, st *stack.Stack, want int, topics ...string) []stack.Record {
	t.Helper()
	readTopics(t, st, want, topics...)
	return readTopics(t, st, 0, topics...)
}

// TestOversizeAboveOldGRPCLimitGetsTheNote: a payload above grpc-go's old 4 MiB default
// receive limit reaches the hook and takes the oversize path (INVALID_ARGUMENT and a note on
// the dead-letter topic) instead of being refused by gRPC before it. Only a request above
// grpc.maxPacketBytes (more than EMQX can send) is refused by gRPC itself.
func TestOversizeAboveOldGRPCLimitGetsTheNote(t *testing.T) {
	st := startStack(t)
	h := start(t, testConfig(t, st.KafkaBootstrap(), st.RegistryURL()), st)
	big := bytes.Repeat([]byte("x"), 5<<20)
	_, err := h.sim.Publish(context.Background(), h.sim.NewMessage("VIN1", "vehicles/VIN1/telemetry", 1, big))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "payload limit") {
		t.Fatalf("5 MiB publish: %v, want InvalidArgument from the payload limit", err)
	}
	notes := readTopics(t, st, 1, deadTopic)
	if n := notes[0]; n.Headers[hook.HeaderSize] != fmt.Sprint(len(big)) || len(n.Value) != 0 || string(n.Key) != "VIN1" {
		t.Fatalf("oversize note %+v", n)
	}

	cfg := testConfig(t, st.KafkaBootstrap(), st.RegistryURL())
	cfg.GRPC.MaxPacketBytes = 1 << 20
	small := start(t, cfg, st)
	_, err = small.sim.Publish(context.Background(), small.sim.NewMessage("VIN1", "vehicles/VIN1/telemetry", 1, make([]byte, 2<<20)))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("2 MiB publish with maxPacketBytes 1 MiB: %v, want ResourceExhausted", err)
	}
}

// TestHostileRequests: requests EMQX never sends (invalid UTF-8, absurdly long topics) get a
// clear status, are not written anywhere they do not belong, and leave the server serving
// and what it accepted intact.
func TestHostileRequests(t *testing.T) {
	st := startStack(t)
	h := start(t, testConfig(t, st.KafkaBootstrap(), st.RegistryURL()), st)
	ctx := context.Background()
	if _, err := h.sim.Publish(ctx, h.sim.NewMessage("VIN1", "vehicles/VIN1/telemetry", 1, []byte(`{"seq":1}`))); err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(h.app.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	// invalid replaces the placeholder XXXX (same length, so the framing holds) by bytes
	// that are not UTF-8: the protobuf codec would not marshal them.
	invalid := func(msg *exhookv2.Message) []byte {
		b, err := proto.Marshal(&exhookv2.MessagePublishRequest{Message: msg})
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Replace(b, []byte("XXXX"), []byte{0xff, 0xfe, 0xc0, 0x80}, 1)
	}
	for name, req := range map[string][]byte{
		"topic":     invalid(&exhookv2.Message{Id: "1", From: "VIN2", Topic: "vehicles/VIN2XXXX/telemetry", Payload: []byte(`{}`)}),
		"client id": invalid(&exhookv2.Message{Id: "2", From: "VIN2XXXX", Topic: "vehicles/+/raw/x", Payload: []byte(`{}`)}),
	} {
		_, err := rawgrpc.Invoke(ctx, cc, publishMethod, req)
		if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "invalid UTF-8") {
			t.Errorf("invalid UTF-8 in %s: %v, want Internal naming invalid UTF-8", name, err)
		}
	}

	long := strings.Repeat("v", 2<<20)
	tests := []struct {
		name, topic string
		want        codes.Code
	}{
		{"routed, 2 MiB vehicle id", "vehicles/" + long + "/telemetry", codes.InvalidArgument},
		{"unrouted, 2 MiB", "elsewhere/" + long, codes.OK},
		{"unrouted, 1M levels", strings.Repeat("a/", 1<<20), codes.OK},
	}
	for _, tt := range tests {
		start := time.Now()
		_, err := h.sim.Publish(ctx, h.sim.NewMessage("VIN3", tt.topic, 1, []byte(`{}`)))
		if status.Code(err) != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: answered after %v", tt.name, d)
		}
	}
	// The server still serves; Kafka holds the accepted messages and one note, its topic
	// header cut, nothing else.
	if _, err := h.sim.Publish(ctx, h.sim.NewMessage("VIN1", "vehicles/VIN1/telemetry", 1, []byte(`{"seq":2}`))); err != nil {
		t.Fatal(err)
	}
	if got := readSettled(t, st, 2, telemetryTopic, eventsTopic); len(got) != 2 {
		t.Fatalf("routed topics hold %d records, want the 2 accepted", len(got))
	}
	notes := readSettled(t, st, 1, deadTopic)
	if len(notes) != 1 || len(notes[0].Headers[hook.HeaderTopic]) > 1024 || len(notes[0].Key) > 1024 {
		t.Fatalf("dead letters: %d, want one note with cut identifiers", len(notes))
	}
}

// TestTenThousandStreamsOnOneConnection: a client opening 10k streams at once on one
// connection gets grpc.maxConcurrentStreams of them; the server refuses the others with
// REFUSED_STREAM (a gRPC client retries those: UNAVAILABLE, transparently) instead of
// starting 10k handlers. Meanwhile EMQX's calls go through.
func TestTenThousandStreamsOnOneConnection(t *testing.T) {
	st := startStack(t)
	cfg := testConfig(t, st.KafkaBootstrap(), st.RegistryURL())
	h := start(t, cfg, st)
	const streams = 10000
	limit := cfg.GRPC.MaxConcurrentStreams

	heapBefore := heapInUse()
	conn, err := net.Dial("tcp", h.app.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", publishMethod},
		{":authority", "hook"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	writeErr := make(chan error, 1)
	go func() { // the server's frames are read meanwhile, so neither side blocks
		for i := range streams {
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}()

	_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	advertised, refused := uint32(0), 0
	for refused < streams-limit {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d refused streams: %v", refused, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if v, ok := f.Value(http2.SettingMaxConcurrentStreams); ok {
				advertised = v
			}
		case *http2.RSTStreamFrame:
			if f.ErrCode != http2.ErrCodeRefusedStream {
				t.Fatalf("stream %d reset with %v, want REFUSED_STREAM", f.StreamID, f.ErrCode)
			}
			refused++
		case *http2.GoAwayFrame:
			t.Fatalf("server went away (%v) after %d refused streams", f.ErrCode, refused)
		}
	}
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	// A figure for the README, not a check: the heap the open streams hold.
	t.Logf("heap in use: %d KiB before, %d KiB with %d streams open and %d refused", heapBefore>>10, heapInUse()>>10, limit, refused)
	if advertised != uint32(limit) {
		t.Fatalf("server advertised %d concurrent streams, want %d", advertised, limit)
	}
	// The 1024 open streams hold a slot each, waiting for a request; EMQX is not held up.
	if _, err := h.sim.Publish(context.Background(), h.sim.NewMessage("VIN1", "vehicles/VIN1/events/x", 1, []byte(`{}`))); err != nil {
		t.Fatalf("publish beside the abusive connection: %v", err)
	}
	// None of the open streams sends its request, so the gate (grpc.maxRunningCalls) let
	// every stream after the first maxRunningCalls in past its limit, and says so.
	running := cfg.GRPC.MaxRunningCalls
	m := regexp.MustCompile(`(?m)^exhook_grpc_calls_past_limit_total (\S+)$`).FindStringSubmatch(get(t, "http://"+h.app.HTTPAddr()+"/metrics"))
	if m == nil {
		t.Fatal("/metrics lacks exhook_grpc_calls_past_limit_total")
	}
	if past, err := strconv.ParseFloat(m[1], 64); err != nil || past < float64(limit-running) {
		t.Fatalf("exhook_grpc_calls_past_limit_total = %s, want at least %d (%d streams opened without a request, %d run at once)", m[1], limit-running, limit, running)
	}
}

// TestManyConcurrentCallsOnOneConnection: a well-behaved client with more calls in flight
// than the stream limit waits for free streams; every call is answered and every accepted
// message is in Kafka.
func TestManyConcurrentCallsOnOneConnection(t *testing.T) {
	st := startStack(t)
	cfg := testConfig(t, st.KafkaBootstrap(), st.RegistryURL())
	cfg.GRPC.MaxConcurrentStreams = 50
	h := start(t, cfg, st)
	const calls = 1000
	// EMQX's request timeout counts the wait for a stream; give it room on a loaded machine.
	sim, err := emqxsim.Dial(emqxsim.Options{Addr: h.app.GRPCAddr(), PoolSize: 1, RequestTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Go(func() {
			v := fmt.Sprintf("VIN%d", i)
			_, err := sim.Publish(context.Background(), sim.NewMessage(v, "vehicles/"+v+"/telemetry", 1, []byte(`{}`)))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := readTopics(t, st, calls, telemetryTopic); len(got) != calls {
		t.Fatalf("telemetry holds %d records, want %d", len(got), calls)
	}
}

// TestSilentConnectionsAreClosed: connections that send nothing are closed after
// grpc.handshakeTimeout, and while grpc.maxConnections of them are open EMQX's connection
// waits to be accepted rather than being refused; it gets through once they are closed.
func TestSilentConnectionsAreClosed(t *testing.T) {
	st := startStack(t)
	cfg := testConfig(t, st.KafkaBootstrap(), st.RegistryURL())
	cfg.GRPC.MaxConnections = 3
	cfg.GRPC.HandshakeTimeout = 500 * time.Millisecond
	h := start(t, cfg, st)
	silent := make([]net.Conn, cfg.GRPC.MaxConnections)
	for i := range silent {
		c, err := net.Dial("tcp", h.app.GRPCAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent[i] = c
	}
	start := time.Now()
	if _, err := h.sim.Publish(context.Background(), h.sim.NewMessage("VIN1", "vehicles/VIN1/events/x", 1, []byte(`{}`))); err != nil {
		t.Fatalf("publish while silent connections are open: %v", err)
	}
	t.Logf("publish answered after %v", time.Since(start))
	for i, c := range silent {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		// The server's SETTINGS come first, then the end of the connection.
		if _, err := io.Copy(io.Discard, c); isTimeout(err) {
			t.Fatalf("silent connection %d still open after 10s: %v", i, err)
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
