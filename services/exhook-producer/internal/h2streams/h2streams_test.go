package h2streams

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	"github.com/iov-platform/iov/tools/devkit/testpki"
)

// frames encodes what write does with an HTTP/2 framer.
func frames(t testing.TB, write func(f *http2.Framer) error) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := write(http2.NewFramer(&b, nil)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func headers(id uint32, endStream bool) func(f *http2.Framer) error {
	return func(f *http2.Framer) error {
		return f.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte{0x82, 0x86}, EndHeaders: true, EndStream: endStream})
	}
}

func data(id uint32, n int, endStream bool) func(f *http2.Framer) error {
	return func(f *http2.Framer) error { return f.WriteData(id, endStream, bytes.Repeat([]byte{'x'}, n)) }
}

func rst(id uint32) func(f *http2.Framer) error {
	return func(f *http2.Framer) error { return f.WriteRSTStream(id, http2.ErrCodeCancel) }
}

func settings(f *http2.Framer) error {
	return f.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 14})
}

// pipeConn reads what a test queued and writes into a buffer.
type pipeConn struct {
	net.Conn
	in    bytes.Buffer
	chunk int // bytes per Read and per Write at most (0: all)
}

func (p *pipeConn) Read(b []byte) (int, error) {
	if p.chunk > 0 && len(b) > p.chunk {
		b = b[:p.chunk]
	}
	return p.in.Read(b)
}

func (p *pipeConn) Close() error { return nil }

func (p *pipeConn) Write(b []byte) (int, error) {
	if p.chunk > 0 && len(b) > p.chunk {
		return p.chunk, nil // a short write: the caller writes the rest again
	}
	return len(b), nil
}

type step struct {
	inbound bool
	frame   func(f *http2.Framer) error
	want    int64 // streams open after it
}

func TestCounter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"unary call: open from the request headers to the status written", []step{
			{true, settings, 0}, {false, settings, 0},
			{true, headers(1, false), 1}, {true, data(1, 40, true), 1},
			{false, headers(1, false), 1}, {false, data(1, 7, false), 1},
			{false, headers(1, true), 0},
		}},
		{"calls overlapping", []step{
			{true, headers(1, false), 1}, {true, headers(3, false), 2}, {true, data(3, 10, true), 2},
			{false, headers(3, true), 1}, {true, headers(5, false), 2}, {false, headers(1, true), 1}, {false, headers(5, true), 0},
		}},
		{"trailers-only answer", []step{{true, headers(1, false), 1}, {false, headers(1, true), 0}}},
		{"client cancels, then the server's status: closed once", []step{
			{true, headers(1, false), 1}, {true, rst(1), 0}, {false, headers(1, true), 0}, {true, headers(3, false), 1},
		}},
		{"server refuses the stream", []step{{true, headers(1, false), 1}, {false, rst(1), 0}}},
		{"client trailers on an open stream open nothing", []step{
			{true, headers(1, false), 1}, {true, headers(1, true), 1}, {false, headers(1, true), 0}, {true, headers(1, false), 0},
		}},
		{"connection frames", []step{
			{true, func(f *http2.Framer) error { return f.WritePing(false, [8]byte{}) }, 0},
			{false, func(f *http2.Framer) error { return f.WriteGoAway(1, http2.ErrCodeNo, nil) }, 0},
			{true, func(f *http2.Framer) error { return f.WriteWindowUpdate(0, 1000) }, 0},
		}},
	} {
		for _, chunk := range []int{0, 1, 2, 5, 9, 10} {
			c := &Counter{}
			p := &pipeConn{chunk: chunk}
			nc := Conn(p, c)
			p.in.WriteString(http2.ClientPreface)
			buf := make([]byte, 64)
			for i, st := range tc.steps {
				b := frames(t, st.frame)
				if st.inbound {
					p.in.Write(b)
					for p.in.Len() > 0 {
						if _, err := nc.Read(buf); err != nil && err != io.EOF {
							t.Fatal(err)
						}
					}
				} else {
					for len(b) > 0 {
						n, err := nc.Write(b)
						if err != nil {
							t.Fatal(err)
						}
						b = b[n:]
					}
				}
				if got := c.Open(); got != st.want {
					t.Fatalf("%s, %d-byte chunks: after step %d %d open, want %d", tc.name, chunk, i, got, st.want)
				}
			}
		}
	}
}

// A connection closed with calls in flight has none open any more.
func TestCloseEndsStreams(t *testing.T) {
	c := &Counter{}
	p := &pipeConn{}
	nc := Conn(p, c)
	p.in.WriteString(http2.ClientPreface)
	p.in.Write(frames(t, headers(1, false)))
	p.in.Write(frames(t, headers(3, false)))
	if _, err := io.ReadAll(nc); err != nil {
		t.Fatal(err)
	}
	if got := c.Open(); got != 2 {
		t.Fatalf("%d open, want 2", got)
	}
	if err := nc.Close(); err != nil {
		t.Fatal(err)
	}
	if got := c.Open(); got != 0 {
		t.Fatalf("%d open after Close, want 0", got)
	}
}

type answer struct {
	exhookv2.UnimplementedHookProviderServer
	called chan struct{}
	reply  chan struct{}
}

func (a answer) OnMessagePublish(context.Context, *exhookv2.MessagePublishRequest) (*exhookv2.ValuedResponse, error) {
	a.called <- struct{}{}
	<-a.reply
	return &exhookv2.ValuedResponse{Type: exhookv2.ValuedResponse_IGNORE}, nil
}

// A gRPC server whose credentials are wrapped counts a call open while its handler runs and
// closed once answered, in plaintext and over TLS.
func TestGRPCServer(t *testing.T) {
	ca, err := testpki.NewCA("h2streams test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueValid("127.0.0.1", testpki.Server)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name           string
		server, client credentials.TransportCredentials
	}{
		{"plaintext", insecure.NewCredentials(), insecure.NewCredentials()},
		{"tls", credentials.NewServerTLSFromCert(&leaf.TLS), credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			c := &Counter{}
			srv := grpc.NewServer(grpc.Creds(Credentials(tc.server, c)))
			h := answer{called: make(chan struct{}), reply: make(chan struct{})}
			exhookv2.RegisterHookProviderServer(srv, h)
			go func() { _ = srv.Serve(ln) }()
			defer srv.Stop()
			cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(tc.client))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			client := exhookv2.NewHookProviderClient(cc)
			for range 3 {
				done := make(chan error, 1)
				go func() {
					_, err := client.OnMessagePublish(context.Background(), &exhookv2.MessagePublishRequest{Message: &exhookv2.Message{Topic: "t"}})
					done <- err
				}()
				<-h.called
				if got := c.Open(); got != 1 {
					t.Fatalf("%d streams open while the handler runs, want 1", got)
				}
				h.reply <- struct{}{}
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				// The client has the answer, so the status was written; the count drops
				// once the server's Write has returned.
				for deadline := time.Now().Add(5 * time.Second); c.Open() != 0; time.Sleep(100 * time.Microsecond) {
					if time.Now().After(deadline) {
						t.Fatalf("%d streams open after the answer, want 0", c.Open())
					}
				}
			}
		})
	}
}

// FuzzScan: any bytes, in any chunks, in either direction: the count never goes negative
// and does not depend on how the bytes were split.
func FuzzScan(f *testing.F) {
	f.Add(frames(f, headers(1, false)), frames(f, headers(1, true)), uint8(3))
	f.Add(append(frames(f, headers(1, false)), frames(f, rst(1))...), frames(f, data(1, 20, false)), uint8(0))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 5}, []byte{0xff, 0xff, 0xff, 1, 1, 0x80, 0, 0, 5}, uint8(1))
	f.Fuzz(func(t *testing.T, in, out []byte, split uint8) {
		whole, parts := &Counter{}, &Counter{}
		var wi, wo, pi, po scanner
		wi.scan(in, whole, true)
		wo.scan(out, whole, false)
		size := int(split) + 1
		for b := in; len(b) > 0; b = b[min(size, len(b)):] {
			pi.scan(b[:min(size, len(b))], parts, true)
			if parts.Open() < 0 {
				t.Fatal("negative count")
			}
		}
		for b := out; len(b) > 0; b = b[min(size, len(b)):] {
			po.scan(b[:min(size, len(b))], parts, false)
			if parts.Open() < 0 {
				t.Fatal("negative count")
			}
		}
		if whole.Open() != parts.Open() || whole.Open() < 0 {
			t.Fatalf("whole %d, in %d-byte parts %d", whole.Open(), size, parts.Open())
		}
	})
}
