package emqxsim

// pool.go: EMQX's ExHook gRPC channel, independent of the protocol version spoken on it.
//
// What it reproduces, from EMQX's source (apps/emqx_exhook/src/emqx_exhook_server.erl at
// v5.8.6 and v5.8.9; emqx/grpc-erl 0.6.12 and 0.7.1; emqx/gun 1.3.11):
//
//   - pool_size connections (default 8); every call is pinned to one of them by a hash of
//     its dispatch key, the client id (key_dispatch/1 and gproc_pool hash workers);
//   - the grpc-timeout header in whole seconds above one second (grpc_client:ms2timeout/1:
//     "5S" for 5000 ms, 5500 ms also "5S", below that milliseconds);
//   - what a lost connection does, in two modes (Mode).

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Mode is how the simulated EMQX's gRPC client behaves when a connection is lost.
type Mode string

const (
	// ModeGun1 is EMQX up to 5.8.8 (grpc-erl 0.6.12 on gun 1.3.11; v5.8.8 still pins both).
	// gun 1.3 terminates the connection on the first GOAWAY frame whatever its last stream
	// id, so every call in flight on it fails (connection_down). It then waits retry_timeout
	// (5 s) before each of its 5 reconnect attempts; calls made meanwhile sit in gun's
	// mailbox: EMQX gives up on them at its deadline, but they are still sent, with a fresh
	// grpc-timeout, once the connection is back. After the 5th failed attempt gun exits and
	// the queued calls are gone; the next call connects synchronously.
	ModeGun1 Mode = "gun1"
	// ModeGun2 is EMQX 5.8.9 and later (grpc-erl 0.7 on gun 2.1 with retry 0). gun 2 honours
	// GOAWAY: calls the server accepted finish, and the next call opens a new connection at
	// once; calls that find no connection fail at once (fail fast).
	ModeGun2 Mode = "gun2"
)

// EMQX's defaults.
const (
	defaultPoolSize       = 8
	defaultRequestTimeout = 5 * time.Second
	defaultRetryInterval  = 5 * time.Second // gun 1.3 retry_timeout
	defaultRetries        = 5               // gun 1.3 retry
	connectTimeout        = 5 * time.Second // grpc-erl DEFAULT_GUN_OPTS connect_timeout
)

// poolOptions configures a pool.
type poolOptions struct {
	addr           string
	size           int
	requestTimeout time.Duration
	mode           Mode
	retryInterval  time.Duration
	retries        int
	tls            *tls.Config // nil: plaintext
}

func (o *poolOptions) defaults() error {
	if o.addr == "" {
		return errors.New("emqxsim: Addr is required")
	}
	if o.size <= 0 {
		o.size = defaultPoolSize
	}
	if o.requestTimeout <= 0 {
		o.requestTimeout = defaultRequestTimeout
	}
	switch o.mode {
	case "":
		o.mode = ModeGun2
	case ModeGun1, ModeGun2:
	default:
		return fmt.Errorf("emqxsim: Mode %q: want %s or %s", o.mode, ModeGun1, ModeGun2)
	}
	if o.retryInterval <= 0 {
		o.retryInterval = defaultRetryInterval
	}
	if o.retries <= 0 {
		o.retries = defaultRetries
	}
	return nil
}

// pool is EMQX's channel: size connections to one HookProvider.
type pool struct {
	o     poolOptions
	slots []*slot
}

func newPool(o poolOptions) (*pool, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	p := &pool{o: o}
	for i := range o.size {
		s := &slot{p: p, id: i, up: make(chan struct{})}
		if err := s.open(); err != nil {
			p.close()
			return nil, err
		}
		p.slots = append(p.slots, s)
	}
	return p, nil
}

func (p *pool) close() {
	for _, s := range p.slots {
		s.close()
	}
}

// callTimeout is the deadline EMQX puts in grpc-timeout for request_timeout d.
func callTimeout(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Truncate(time.Second)
	}
	return d
}

// slotFor pins a dispatch key (a client id) to a connection.
func (p *pool) slotFor(key string) *slot {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return p.slots[h.Sum32()%uint32(len(p.slots))]
}

// SlotFor reports the pool connection (0-based) calls for a client id are pinned to.
func (p *pool) SlotFor(key string) int { return p.slotFor(key).id }

// callFn is one RPC on a connection; its result is returned, never written elsewhere,
// because a call queued in gun1 mode may still run after its caller gave up.
type callFn func(context.Context, grpc.ClientConnInterface) (any, error)

// do runs one call for key with EMQX's deadline. fn gets the connection to call on.
func (p *pool) do(ctx context.Context, key string, fn callFn) (any, error) {
	return p.slotFor(key).do(ctx, fn)
}

// callPool is do with a typed result.
func callPool[T any](ctx context.Context, p *pool, key string, fn func(context.Context, grpc.ClientConnInterface) (T, error)) (T, error) {
	v, err := p.do(ctx, key, func(ctx context.Context, cc grpc.ClientConnInterface) (any, error) { return fn(ctx, cc) })
	t, _ := v.(T)
	return t, err
}

// slot is one pooled connection (a grpc_client process and its gun connection).
type slot struct {
	p  *pool
	id int

	mu     sync.Mutex
	cc     *grpc.ClientConn
	down   bool          // gun1: connection lost, reconnecting
	dead   bool          // gun1: reconnects exhausted; the next call connects synchronously
	up     chan struct{} // gun1: closed when a reconnect succeeds or gives up
	gen    int           // connection generation, so a stale loss report is ignored
	closed bool
}

func (s *slot) open() error {
	gen := s.gen
	opts := []grpc.DialOption{transportCredentials(s.p.o.tls)}
	if s.p.o.mode == ModeGun1 {
		// gun1Conn reads the server's HTTP/2 frames, so with TLS the handshake is made here,
		// under it, and gRPC sees a plaintext connection.
		conf := dialTLS(s.p.o.tls, s.p.o.addr)
		opts = []grpc.DialOption{transportCredentials(nil), grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			if conf != nil {
				tc := tls.Client(c, conf)
				if err := tc.HandshakeContext(ctx); err != nil {
					_ = c.Close()
					return nil, fmt.Errorf("tls handshake %s: %w", addr, err)
				}
				c = tc
			}
			return &gun1Conn{Conn: c, lost: func() { s.lost(gen) }}, nil
		})}
	}
	cc, err := grpc.NewClient(s.p.o.addr, opts...)
	if err != nil {
		return fmt.Errorf("dial %s: %w", s.p.o.addr, err)
	}
	s.cc = cc
	return nil
}

func (s *slot) close() {
	s.mu.Lock()
	s.closed = true
	cc := s.cc
	s.cc = nil
	s.mu.Unlock()
	if cc != nil {
		_ = cc.Close() // outside mu: closing the transport may report the loss (lost)
	}
}

// do runs fn on this connection, as grpc_client does for one unary call.
func (s *slot) do(ctx context.Context, fn callFn) (any, error) {
	timeout := callTimeout(s.p.o.requestTimeout)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, status.Error(codes.Canceled, "emqxsim: pool closed")
	}
	if s.dead {
		// gun exited: grpc_client connects synchronously before it opens the stream.
		s.mu.Unlock()
		if err := s.reconnect(); err != nil {
			return nil, status.Errorf(codes.Unavailable, "connect: %v", err)
		}
		s.mu.Lock()
	}
	if !s.down {
		cc := s.cc
		s.mu.Unlock()
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return fn(cctx, cc)
	}
	// gun1 reconnecting: the request waits in gun's mailbox. EMQX waits for its reply only
	// until its deadline; the request itself goes out when (if) the connection is back.
	up := s.up
	s.mu.Unlock()
	type result struct {
		v   any
		err error
	}
	done := make(chan result, 1)
	go func() {
		<-up
		s.mu.Lock()
		cc, ok := s.cc, !s.down && !s.dead && !s.closed
		s.mu.Unlock()
		if !ok {
			done <- result{nil, status.Error(codes.Unavailable, "connection_down")}
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		v, err := fn(cctx, cc)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-time.After(timeout):
		return nil, status.Error(codes.DeadlineExceeded, "Waiting for response timeout")
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// lost is gun 1.3 losing its connection (a GOAWAY frame or the socket closing): every
// call in flight fails, and reconnect attempts follow retryInterval apart.
func (s *slot) lost(gen int) {
	s.mu.Lock()
	if s.closed || s.down || gen != s.gen {
		s.mu.Unlock()
		return
	}
	s.down = true
	s.gen++
	s.up = make(chan struct{})
	cc := s.cc
	s.mu.Unlock()
	go func() {
		_ = cc.Close() // fails what is still in flight on it
		for range s.p.o.retries {
			time.Sleep(s.p.o.retryInterval)
			if s.isClosed() {
				return
			}
			if err := s.reconnect(); err == nil {
				return
			}
		}
		s.mu.Lock()
		s.down, s.dead = false, true
		close(s.up)
		s.mu.Unlock()
	}()
}

func (s *slot) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// reconnect opens a new connection if the provider accepts one.
func (s *slot) reconnect() error {
	c, err := net.DialTimeout("tcp", s.p.o.addr, connectTimeout)
	if err != nil {
		return err
	}
	_ = c.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("pool closed")
	}
	if err := s.open(); err != nil {
		return err
	}
	wasDown := s.down
	s.down, s.dead = false, false
	if wasDown {
		close(s.up)
	}
	return nil
}

// gun1Conn is the client side of a connection as gun 1.3 handles it: the first GOAWAY frame
// from the server, or the socket closing, ends the connection for every stream on it.
// Frames before the GOAWAY are delivered; nothing after it is.
type gun1Conn struct {
	net.Conn
	lost func()

	hdr  [9]byte
	nhdr int // header bytes buffered
	skip int // payload bytes of the current frame still to pass
	gone bool
	once sync.Once
}

const frameGoAway = 0x7

func (c *gun1Conn) Read(b []byte) (int, error) {
	if c.gone {
		c.end()
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Read(b)
	if i := c.scan(b[:n]); i >= 0 {
		c.gone = true
		if i == 0 {
			c.end()
			return 0, net.ErrClosed
		}
		return i, nil
	}
	if err != nil {
		c.end()
	}
	return n, err
}

func (c *gun1Conn) end() {
	c.once.Do(func() {
		_ = c.Conn.Close()
		c.lost()
	})
}

// scan walks HTTP/2 frame headers in the server's byte stream and returns the offset in b
// where a GOAWAY frame starts, or -1.
func (c *gun1Conn) scan(b []byte) int {
	for i := 0; i < len(b); {
		if c.skip > 0 {
			k := min(c.skip, len(b)-i)
			c.skip -= k
			i += k
			continue
		}
		start := i - c.nhdr
		k := copy(c.hdr[c.nhdr:], b[i:])
		c.nhdr += k
		i += k
		if c.nhdr < len(c.hdr) {
			return -1
		}
		c.nhdr = 0
		if c.hdr[3] == frameGoAway {
			return max(start, 0)
		}
		c.skip = int(binary.BigEndian.Uint32(append([]byte{0}, c.hdr[:3]...)))
	}
	return -1
}
