// Package readiness helps dev tools start services as child processes: a free loopback
// address to give them, and a wait for their /ready endpoint or their listener.
package readiness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// FreeAddr returns a loopback host:port that was free a moment ago (FreeAddrs for several).
func FreeAddr() (string, error) {
	addrs, err := FreeAddrs(1)
	if err != nil {
		return "", err
	}
	return addrs[0], nil
}

// FreeAddrs returns n distinct free 127.0.0.1:port addresses. It holds every listener open
// until all n are taken: FreeAddr called n times can return the same port twice, since the
// kernel may hand out a port again as soon as its listener closed (a Kafka node once got the
// same port for its PLAINTEXT and CONTROLLER listeners and refused to start).
func FreeAddrs(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		held = append(held, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// ErrExited means the process ended before it became ready.
var ErrExited = errors.New("process exited during startup")

// Wait polls http://addr/ready until it answers 200, exited is closed (nil: never), or 30s
// (or ctx) pass.
func Wait(ctx context.Context, addr string, exited <-chan struct{}) error {
	return Poll(ctx, 30*time.Second, 50*time.Millisecond, exited, addr+" not ready", func() bool {
		resp, err := http.Get("http://" + addr + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// WaitListening dials addr until it accepts a TCP connection, exited is closed (nil: never),
// or 60s (or ctx) pass: for a server with no /ready endpoint.
func WaitListening(ctx context.Context, addr string, exited <-chan struct{}) error {
	return Poll(ctx, 60*time.Second, 50*time.Millisecond, exited, addr+" not listening", func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	})
}

// Poll calls ready every interval until it reports true. It returns ErrExited once exited is
// closed (nil: never), and "what: <ctx's error>" once timeout (or ctx) passed.
func Poll(ctx context.Context, timeout, interval time.Duration, exited <-chan struct{}, what string, ready func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for !ready() {
		select {
		case <-exited:
			return ErrExited
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(interval):
		}
	}
	return nil
}
