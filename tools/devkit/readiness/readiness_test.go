package readiness

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" || !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	time.AfterFunc(150*time.Millisecond, func() { ready.Store(true) })
	if err := Wait(context.Background(), addr, nil); err != nil {
		t.Fatalf("Wait = %v once /ready turned 200", err)
	}

	ready.Store(false)
	exited := make(chan struct{})
	close(exited)
	if err := Wait(context.Background(), addr, exited); !errors.Is(err, ErrExited) {
		t.Fatalf("Wait after exit = %v, want ErrExited", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := Wait(ctx, addr, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait never ready = %v, want deadline exceeded", err)
	}
	free, err := FreeAddr()
	if err != nil || !strings.HasPrefix(free, "127.0.0.1:") {
		t.Fatalf("FreeAddr = %q, %v", free, err)
	}
}

// FreeAddrs must never hand out one port twice: a Kafka node given the same port for two
// listeners refuses to start. Asking for many at once makes a reuse likely if the listeners
// were closed one by one.
func TestFreeAddrsDistinct(t *testing.T) {
	for range 20 {
		addrs, err := FreeAddrs(64)
		if err != nil {
			t.Fatal(err)
		}
		if len(addrs) != 64 {
			t.Fatalf("got %d addresses, want 64", len(addrs))
		}
		seen := map[string]bool{}
		for _, a := range addrs {
			if seen[a] {
				t.Fatalf("address %s handed out twice in %v", a, addrs)
			}
			seen[a] = true
		}
	}
}

func TestWaitListening(t *testing.T) {
	addrs, err := FreeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	close(exited)
	if err := WaitListening(context.Background(), addrs[0], exited); !errors.Is(err, ErrExited) {
		t.Fatalf("WaitListening on a closed port of an exited process = %v, want ErrExited", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := WaitListening(ctx, addrs[0], nil); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), addrs[0]+" not listening") {
		t.Fatalf("WaitListening on a closed port = %v, want %s not listening: deadline exceeded", err, addrs[0])
	}
	ln, err := net.Listen("tcp", addrs[0])
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addrs[0], err)
	}
	defer ln.Close()
	if err := WaitListening(context.Background(), addrs[0], exited); err != nil {
		t.Fatalf("WaitListening on a listening port = %v", err)
	}
}
