package app

// connserve.go: the HookProvider's gRPC serving, one grpc.Server per EMQX connection, so
// that a drain can send each connection its GOAWAY at a moment when no call is in flight
// on it.
//
// Why: EMQX up to 5.8.8 (grpc-erl 0.6 on gun 1.3) ends a connection on the first GOAWAY
// frame and fails every call in flight on it, although the server goes on and answers
// them; grpc.Server.GracefulStop sends GOAWAY to every connection at once, whatever is in
// flight. Draining connection by connection, each when idle, leaves EMQX nothing to fail
// but the calls that race the GOAWAY on the wire (which the server still processes: the
// first GOAWAY accepts every stream). A connection that never goes idle before the drain
// deadline gets its GOAWAY anyway.

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/iov-platform/iov/services/exhook-producer/internal/callgate"
	"github.com/iov-platform/iov/services/exhook-producer/internal/h2streams"
)

// connServers serves each accepted connection with its own grpc.Server from newServer.
type connServers struct {
	newServer  func(count *h2streams.Counter, gate *callgate.Gate) *grpc.Server
	maxRunning int    // calls each connection runs at once (grpc.maxRunningCalls; 0: no gate)
	pastLimit  func() // each call a gate let in at the limit (callgate.New); nil: not counted

	mu      sync.Mutex
	conns   map[*connServer]bool
	closing bool
	wg      sync.WaitGroup
}

// connServer is one connection's server. Its calls in flight are its HTTP/2 streams open,
// counted from the request's headers read to the status written (h2streams, through the
// server's credentials: connServerOptions), so that a GOAWAY sent when none is open reaches
// EMQX after every answer. A grpc.StatsHandler could count them too, but with one grpc-go
// builds seven stats events per call: 15-17% of the CPU per message (README).
type connServer struct {
	srv   *grpc.Server
	count h2streams.Counter
}

func newConnServers(maxRunning int, newServer func(count *h2streams.Counter, gate *callgate.Gate) *grpc.Server) *connServers {
	return &connServers{newServer: newServer, maxRunning: maxRunning, conns: map[*connServer]bool{}}
}

// Serve accepts connections until ln is closed (by Drain or Stop: then it returns nil).
func (s *connServers) Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		cs := &connServer{}
		var gate *callgate.Gate
		if s.maxRunning > 0 {
			gate = callgate.New(s.maxRunning, s.pastLimit)
		}
		cs.srv = s.newServer(&cs.count, gate)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			_ = c.Close()
			continue
		}
		s.conns[cs] = true
		s.mu.Unlock()
		s.wg.Go(func() {
			l := newOneConn(c)
			_ = cs.srv.Serve(l)
			if l.connClosed.Load() {
				// The connection ended (EMQX closed it, or its handshake failed), not a
				// Drain or Stop: stop its server too, or it (and any stream workers it
				// has) stays forever.
				cs.srv.Stop()
			}
			s.mu.Lock()
			delete(s.conns, cs)
			s.mu.Unlock()
		})
	}
}

// servers marks the set closing (no new connections) and lists the connections.
func (s *connServers) servers() []*connServer {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	return s.servers0()
}

// servers0 lists the connections.
func (s *connServers) servers0() []*connServer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*connServer, 0, len(s.conns))
	for cs := range s.conns {
		out = append(out, cs)
	}
	return out
}

// Drain sends every connection its GOAWAY once no call is in flight on it (or at
// idleBy, whichever comes first), lets the calls finish, and returns when every
// connection is closed or at deadline (then it reports false and the caller stops).
func (s *connServers) Drain(idleBy, deadline time.Time) bool {
	var wg sync.WaitGroup
	for _, cs := range s.servers() {
		wg.Go(func() {
			for cs.count.Open() > 0 && time.Now().Before(idleBy) {
				time.Sleep(200 * time.Microsecond)
			}
			cs.srv.GracefulStop()
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(time.Until(deadline)):
		return false
	}
}

// Stop closes every connection at once, cancelling what is in flight.
func (s *connServers) Stop() {
	for _, cs := range s.servers() {
		cs.srv.Stop()
	}
	s.wg.Wait()
}

// oneConn is a listener that yields one connection, then blocks until closed; it closes
// when the connection does, so that the server's Serve returns.
type oneConn struct {
	c          chan *closingConn
	addr       net.Addr
	closed     chan struct{}
	once       sync.Once
	connClosed atomic.Bool
}

func newOneConn(c net.Conn) *oneConn {
	l := &oneConn{c: make(chan *closingConn, 1), addr: c.LocalAddr(), closed: make(chan struct{})}
	l.c <- &closingConn{Conn: c, l: l}
	return l
}

// closingConn closes its oneConn listener when it is closed.
type closingConn struct {
	net.Conn
	l *oneConn
}

func (c *closingConn) Close() error {
	err := c.Conn.Close()
	c.l.connClosed.Store(true)
	_ = c.l.Close()
	return err
}

func (l *oneConn) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *oneConn) Close() error {
	l.once.Do(func() {
		close(l.closed)
		select {
		case c := <-l.c: // never served
			_ = c.Conn.Close()
		default:
		}
	})
	return nil
}

func (l *oneConn) Addr() net.Addr { return l.addr }
