package svcconfig

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
)

// refusedAddr is a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestDevStackHint(t *testing.T) {
	addr := refusedAddr(t)
	_, httpErr := http.Get("http://" + addr + "/subjects")
	if httpErr == nil {
		t.Skip("something listens on the freed port") // another process took it between Close and Get
	}
	wrapped := fmt.Errorf("schema x under subject y: %w", httpErr)
	got := DevStackHint(wrapped)
	if !errors.Is(got, wrapped) || !strings.HasPrefix(got.Error(), wrapped.Error()+"\nnothing listens on "+addr+"; the embedded default config expects the dev stack") ||
		!strings.Contains(got.Error(), "bin/devstack") {
		t.Fatalf("refused loopback: %v", got)
	}

	remote := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 8081}, Err: httpErr}
	other := errors.New("registry said 401")
	for name, err := range map[string]error{"nil": nil, "not a connection error": other, "remote address": fmt.Errorf("x: %w", remote)} {
		if got := DevStackHint(err); got != err { //nolint:errorlint // the same error, unchanged
			t.Errorf("%s: %v", name, got)
		}
	}
}
