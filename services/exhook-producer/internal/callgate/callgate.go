// Package callgate bounds the unary calls one gRPC server connection runs at once by
// back-pressure, not refusal: while the connection runs its limit, the server reads nothing
// more from it, so further calls wait in the socket and, once its buffers are full, in the
// client (TCP back-pressure).
//
// Why: EMQX's HTTP/2 client (gun 1.3 and 2.x) ignores SETTINGS_MAX_CONCURRENT_STREAMS, so a
// stream the server refuses is a failed hook call (a message that never reaches Kafka). But
// each call grpc-go reads costs a goroutine, its stream's state and buffers until it is
// answered: 10 000 calls in flight cost ~150 MiB in a do-nothing grpc-go server.
//
// How (grpc-go 1.85, internal/transport/http2_server.go): one goroutine per connection, the
// reader, reads its frames and starts a goroutine per call. The gate counts the calls from
// the server's tap handle (run by the reader on each call's headers, before the call's
// goroutine exists) until the handler returns, or the stream ends without one (its context
// is cancelled: an early error, a reset, the connection closed). The connection's Read,
// which only the reader calls, waits while the count is at the limit. It waits there, not in
// the tap: the tap runs under the transport's mutex, which the writer needs to finish each
// answered stream, so a waiting tap would hold back every answer. The connection buffers
// what it reads from the socket itself, so that the server can read it unbuffered
// (grpc.ReadBufferSize(0)), and it ends each read at a frame's end: the reader waits before
// the frame that opens a stream (a call's headers), and reads on every other frame (data,
// window updates, pings, settings).
//
// Deadlock: a call admitted may still need the reader to read its request (its data behind
// later frames), so Read waits only while at least one admitted call has started its handler
// (its request is read: it finishes without the reader). When none has, the reader yields
// once (with one P, the goroutines of calls whose request it has read run only then) and
// reads on if still none has: a client that sends calls' headers well ahead of their data
// (EMQX's grpc-erl sends a call's headers and its data in two steps, other calls' headers
// may come in between) gets past the limit by those calls. The window matters: grpc-go's client, once it has
// used the connection's flow-control window, still sends headers but holds their data, so a
// server that bounds calls should give the connection a window that does not run out
// (grpc.StaticConnWindowSize) and let TCP bound what the client sends.
package callgate

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"runtime"
	"sync"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/tap"

	"github.com/iov-platform/iov/services/exhook-producer/internal/connwrap"
)

// Gate bounds the calls running on one connection. Its methods are safe for concurrent use;
// only the connection's reader waits in it.
type Gate struct {
	limit int

	mu      sync.Mutex
	running int  // calls admitted and not released
	started int  // of them, calls whose handler has started (their request is read)
	waiting bool // the reader waits for a start or a release
	closed  bool
	wake    chan struct{}

	pastLimit func() // called for each call read at the limit because none of the running ones had started
}

// New returns a gate that runs at most limit calls at once (limit ≥ 1). pastLimit, if not
// nil, is called (with the gate's lock held: keep it cheap, e.g. a Prometheus counter's Inc)
// for each call the reader lets in at the limit because none of the running calls had its
// request yet: where the bound gives way (the package comment).
func New(limit int, pastLimit func()) *Gate {
	return &Gate{limit: max(limit, 1), wake: make(chan struct{}, 1), pastLimit: pastLimit}
}

// Limit is the number of calls the gate runs at once.
func (g *Gate) Limit() int { return g.limit }

// Running is the number of calls admitted and not yet released.
func (g *Gate) Running() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running
}

// Close ends any wait and lets every later read through: the connection is closing.
func (g *Gate) Close() {
	g.mu.Lock()
	g.closed = true
	g.signal()
	g.mu.Unlock()
}

// signal wakes the waiting reader, if any. g.mu is held.
func (g *Gate) signal() {
	if g.waiting {
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
}

// wait returns once the connection may be read: fewer calls than the limit run, or none of
// them has started even after the reader yielded, or the gate is closed.
func (g *Gate) wait() {
	g.mu.Lock()
	defer g.mu.Unlock()
	yielded := false
	for g.running >= g.limit && !g.closed {
		if g.started == 0 {
			if yielded {
				if g.pastLimit != nil {
					g.pastLimit()
				}
				return
			}
			// Let the goroutines of admitted calls whose request is read start (with one
			// P, none runs while the reader does); those still not started wait for data
			// behind this frame.
			yielded = true
			g.mu.Unlock()
			runtime.Gosched()
			g.mu.Lock()
			continue
		}
		g.waiting = true
		g.mu.Unlock()
		<-g.wake
		g.mu.Lock()
		g.waiting = false
	}
}

// Tap returns the server's tap handle: it runs before (nil: none; e.g. kit/calltime's), then
// counts the call in.
func (g *Gate) Tap(before tap.ServerInHandle) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if before != nil {
			var err error
			if ctx, err = before(ctx, info); err != nil {
				return ctx, err
			}
		}
		s := &slot{g: g}
		g.mu.Lock()
		g.running++
		g.mu.Unlock()
		// The stream's context is cancelled when it ends, whatever the path (grpc-go's
		// finishStream and closeStream cancel it), so no slot outlives its stream. A call
		// whose handler runs frees its slot itself and stops this first: a cancelled
		// context runs its AfterFunc in a new goroutine, one per call otherwise.
		s.stop = afterFunc(ctx, s.release)
		return context.WithValue(ctx, slotKey{}, s), nil
	}
}

// afterFunc is context.AfterFunc; a test counts through it.
var afterFunc = context.AfterFunc

type slotKey struct{}

// slot is one admitted call's place in the gate.
type slot struct {
	g        *Gate
	stop     func() bool // stops the release at the stream's end; set before the call's goroutine starts
	started  bool        // guarded by g.mu
	released bool        // guarded by g.mu
}

func (s *slot) start() {
	g := s.g
	g.mu.Lock()
	if !s.started && !s.released {
		s.started = true
		g.started++
		g.signal() // a reader waiting for a start now waits for a release
	}
	g.mu.Unlock()
}

// finish frees the slot of a call that reached its interceptor, without waiting for the
// stream's end.
func (s *slot) finish() {
	s.stop()
	s.release()
}

func (s *slot) release() {
	g := s.g
	g.mu.Lock()
	if !s.released {
		s.released = true
		g.running--
		if s.started {
			g.started--
		}
		g.signal()
	}
	g.mu.Unlock()
}

// UnaryInterceptor marks the call started when its handler starts (its request is read) and
// frees its slot when the handler returns, before the answer is written: the answer may wait
// for the client to read, and the client for the server to read.
func (g *Gate) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		s, ok := ctx.Value(slotKey{}).(*slot)
		if ok {
			s.start()
			defer s.finish()
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor frees a streaming call's slot as it starts: a stream may need the reader
// for as long as it lasts (reflection, health watches), so streams are not bounded.
func (g *Gate) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if s, ok := ss.Context().Value(slotKey{}).(*slot); ok {
			s.finish()
		}
		return handler(srv, ss)
	}
}

// Credentials wraps creds (TLS, or insecure for plaintext) so that each connection the
// server's handshake returns waits in g before it is read: one Gate per connection, so one
// credentials value per grpc.Server serving a single connection. The server should read
// unbuffered (grpc.ReadBufferSize(0)): the connection buffers its reads itself.
func Credentials(creds credentials.TransportCredentials, g *Gate) credentials.TransportCredentials {
	return connwrap.Credentials(creds, func(nc net.Conn) net.Conn {
		return &conn{Conn: nc, g: g, r: bufio.NewReaderSize(nc, readBufferSize), left: len(http2.ClientPreface)}
	})
}

// readBufferSize is the connection's read buffer: grpc-go's default (32 KiB), the server's
// own set to 0.
const readBufferSize = 32 << 10

// frameHeaderLen is the size of an HTTP/2 frame header (RFC 9113, 4.1).
const frameHeaderLen = 9

// conn is a server connection whose reader waits in its gate before a new call's headers.
type conn struct {
	net.Conn
	g     *Gate
	r     *bufio.Reader
	left  int    // bytes of the current frame (first, the client's preface) not yet read
	maxID uint32 // the highest stream id seen: a client's ids only grow
}

// Read reads at most to the end of the current frame, so that every frame starts a read;
// before a frame that opens a stream it waits in the gate.
func (c *conn) Read(p []byte) (int, error) {
	if c.left == 0 {
		hdr, err := c.r.Peek(frameHeaderLen)
		if err != nil {
			return c.r.Read(p) // what is buffered, then the error
		}
		id := binary.BigEndian.Uint32(hdr[5:]) & (1<<31 - 1)
		if http2.FrameType(hdr[3]) == http2.FrameHeaders && id > c.maxID {
			c.maxID = id
			c.g.wait()
		}
		c.left = frameHeaderLen + (int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2]))
	}
	n, err := c.r.Read(p[:min(len(p), c.left)])
	c.left -= n
	return n, err
}

// Close closes the gate too: a reader waiting in it goes on to read, and sees the close.
func (c *conn) Close() error {
	c.g.Close()
	return c.Conn.Close()
}
