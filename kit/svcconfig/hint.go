package svcconfig

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// DevStack says what the embedded default configs expect on loopback and how to start it.
const DevStack = "the embedded default config expects the dev stack on loopback (Kafka 127.0.0.1:9092, schema registry http://127.0.0.1:8081): " +
	"start it with `make build && bin/devstack` in another terminal (`make demo` starts everything), or pass --config with your own addresses"

// DevStackHint adds DevStack to err when err is a refused connection to a loopback address:
// nothing runs where a loopback config, like the embedded default, points. Any other error
// is returned as it is.
func DevStackHint(err error) error {
	var op *net.OpError
	if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &op) || op.Addr == nil {
		return err
	}
	host, _, splitErr := net.SplitHostPort(op.Addr.String())
	if ip := net.ParseIP(host); splitErr != nil || ip == nil || !ip.IsLoopback() {
		return err
	}
	return fmt.Errorf("%w\nnothing listens on %s; %s", err, op.Addr, DevStack)
}
