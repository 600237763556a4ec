// Package service is a stand-in for a Kubernetes Service in front of producer pods: a TCP
// listener on loopback that hands each new connection to the next endpoint, round robin,
// as kube-proxy does, and leaves established connections where they are when the endpoint
// list changes (a terminating pod keeps its connections until it closes them).
package service

import (
	"errors"
	"io"
	"net"
	"sync"
)

// Service is a running stand-in.
type Service struct {
	ln net.Listener

	mu        sync.Mutex
	endpoints []string
	next      int
	conns     map[net.Conn]bool
	wg        sync.WaitGroup
}

// Start listens on 127.0.0.1 (any free port) with no endpoints: connections are refused
// (closed at once) until SetEndpoints.
func Start() (*Service, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Service{ln: ln, conns: map[net.Conn]bool{}}
	s.wg.Go(s.accept)
	return s, nil
}

// Addr is the Service's host:port.
func (s *Service) Addr() string { return s.ln.Addr().String() }

// SetEndpoints replaces the ready endpoints new connections go to.
func (s *Service) SetEndpoints(addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoints = append([]string(nil), addrs...)
}

func (s *Service) pick() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.endpoints) == 0 {
		return ""
	}
	s.next++
	return s.endpoints[s.next%len(s.endpoints)]
}

func (s *Service) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Go(func() { s.proxy(c) })
	}
}

func (s *Service) track(c net.Conn, on bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on && s.conns == nil {
		return false
	}
	if on {
		s.conns[c] = true
	} else {
		delete(s.conns, c)
	}
	return true
}

func (s *Service) proxy(client net.Conn) {
	defer client.Close()
	addr := s.pick()
	if addr == "" {
		return
	}
	backend, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer backend.Close()
	if !s.track(client, true) {
		return
	}
	defer s.track(client, false)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(backend, client)
	go pipe(client, backend)
	<-done // either side closing ends the connection for both, as a TCP proxy does
}

// Close stops listening and cuts every proxied connection.
func (s *Service) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
