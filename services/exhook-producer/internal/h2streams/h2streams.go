// Package h2streams counts the HTTP/2 streams open on a server connection from the frame
// headers that pass through it, so that a drain can tell when no call is in flight on the
// connection without a grpc.StatsHandler (with one, grpc-go builds seven stats events per
// call, which cost 15-17% of the exhook producer's CPU per message).
//
// A stream opens when the client's HEADERS frame for a new stream id has been read from the
// connection, and closes once the server's HEADERS frame with END_STREAM (the gRPC status)
// has been written to it, or a RST_STREAM passed either way, or the connection is closed.
// So a GOAWAY written while the count is 0 reaches the client after every answer of the
// streams it has sent.
package h2streams

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/credentials"

	"github.com/iov-platform/iov/services/exhook-producer/internal/connwrap"
)

// frameHeaderLen is the size of an HTTP/2 frame header (RFC 9113, 4.1).
const frameHeaderLen = 9

// Counter is the number of streams open on one connection.
type Counter struct {
	n atomic.Int64

	mu    sync.Mutex
	open  map[uint32]struct{}
	maxID uint32 // the highest stream id opened: ids are never reused
}

// Open is the number of streams open now.
func (c *Counter) Open() int64 { return c.n.Load() }

func (c *Counter) frame(inbound bool, typ http2.FrameType, flags http2.Flags, id uint32) {
	switch {
	case id == 0: // connection frames
	case inbound && typ == http2.FrameHeaders:
		c.mu.Lock()
		if id > c.maxID { // a client's trailers on a stream already seen open nothing
			c.maxID = id
			if c.open == nil {
				c.open = map[uint32]struct{}{}
			}
			c.open[id] = struct{}{}
			c.n.Add(1)
		}
		c.mu.Unlock()
	case typ == http2.FrameRSTStream, !inbound && typ == http2.FrameHeaders && flags.Has(http2.FlagHeadersEndStream):
		c.mu.Lock()
		if _, ok := c.open[id]; ok { // once: trailers and a RST_STREAM may both come
			delete(c.open, id)
			c.n.Add(-1)
		}
		c.mu.Unlock()
	}
}

// closeAll closes every stream: the connection is closed, nothing is in flight on it.
func (c *Counter) closeAll() {
	c.mu.Lock()
	clear(c.open)
	c.n.Store(0)
	c.mu.Unlock()
}

// scanner follows the frame boundaries of one direction of a connection.
type scanner struct {
	skip int // bytes to pass before the next frame header: the rest of a payload, or the preface
	hdr  [frameHeaderLen]byte
	have int // bytes of hdr filled
}

// scan consumes p, the next bytes of the direction, and reports every frame header
// completed in it to c.
func (s *scanner) scan(p []byte, c *Counter, inbound bool) {
	for len(p) > 0 {
		if s.skip > 0 {
			k := min(s.skip, len(p))
			s.skip -= k
			p = p[k:]
			continue
		}
		k := copy(s.hdr[s.have:], p)
		s.have += k
		p = p[k:]
		if s.have < frameHeaderLen {
			return
		}
		s.have = 0
		s.skip = int(s.hdr[0])<<16 | int(s.hdr[1])<<8 | int(s.hdr[2])
		c.frame(inbound, http2.FrameType(s.hdr[3]), http2.Flags(s.hdr[4]), binary.BigEndian.Uint32(s.hdr[5:])&(1<<31-1))
	}
}

// conn counts the streams of the server side of an HTTP/2 connection. gRPC reads it from
// one goroutine and writes it from one goroutine (its reader and its loopy writer).
type conn struct {
	net.Conn
	c       *Counter
	in, out scanner
}

// Conn wraps the server side of a plaintext HTTP/2 connection (after any TLS handshake), whose
// first bytes read are the client's preface, so that c counts its streams.
func Conn(nc net.Conn, c *Counter) net.Conn {
	return &conn{Conn: nc, c: c, in: scanner{skip: len(http2.ClientPreface)}}
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.scan(p[:n], c.c, true)
	return n, err
}

// Write counts a stream closed once the bytes of its last frame are written.
func (c *conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.scan(p[:n], c.c, false)
	return n, err
}

// Close closes the connection and every stream on it (a connection that died with calls in
// flight does not keep a drain waiting).
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.c.closeAll()
	return err
}

// Credentials wraps creds (TLS, or insecure for plaintext) so that the connection each
// server handshake returns is counted by c: one Counter per connection, so one credentials
// value per grpc.Server serving a single connection.
func Credentials(creds credentials.TransportCredentials, c *Counter) credentials.TransportCredentials {
	return connwrap.Credentials(creds, func(nc net.Conn) net.Conn { return Conn(nc, c) })
}
