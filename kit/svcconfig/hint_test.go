package svcconfig

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
)

// dialErr is the error net/http returns for a refused connection to addr.
func dialErr(addr *net.TCPAddr) error {
	return &url.Error{Op: "Post", URL: "http://" + addr.String() + "/subjects/s/versions",
		Err: &net.OpError{Op: "dial", Net: "tcp", Addr: addr, Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}}
}

func TestDevStackHint(t *testing.T) {
	loopback := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8081}
	wrapped := fmt.Errorf("schema x under subject y: %w", dialErr(loopback))
	got := DevStackHint(wrapped)
	if !errors.Is(got, wrapped) || got.Error() != wrapped.Error()+"\nnothing listens on 127.0.0.1:8081; "+DevStack {
		t.Fatalf("refused loopback: %v", got)
	}
	if got := DevStackHint(dialErr(&net.TCPAddr{IP: net.IPv6loopback, Port: 9092})); !strings.Contains(got.Error(), "nothing listens on [::1]:9092; ") {
		t.Fatalf("refused ::1: %v", got)
	}

	remote := fmt.Errorf("x: %w", dialErr(&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 8081}))
	timeout := &net.OpError{Op: "dial", Net: "tcp", Addr: loopback, Err: os.ErrDeadlineExceeded}
	for name, err := range map[string]error{"nil": nil, "not a connection error": errors.New("registry said 401"), "remote address": remote, "loopback timeout": timeout} {
		if got := DevStackHint(err); got != err { //nolint:errorlint // the same error, unchanged
			t.Errorf("%s: %v", name, got)
		}
	}
}
