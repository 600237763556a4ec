package main

// peer.go: a --peer server, started from its command line with the placeholders filled in.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/iov-platform/iov/tools/devkit/readiness"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

// peerArgs is the peer's command line with its placeholders filled in.
func peerArgs(command, listen, bootstrap, topic, dir string) []string {
	_, port, _ := net.SplitHostPort(listen)
	r := strings.NewReplacer("{listen}", listen, "{port}", port, "{bootstrap}", bootstrap, "{topic}", topic, "{dir}", dir)
	args := strings.Fields(command)
	for i, a := range args {
		args[i] = r.Replace(a)
	}
	return args
}

// startPeer starts a peer in a fresh directory, its output in peer.log there, and waits until
// its gRPC port accepts connections.
func startPeer(ctx context.Context, c config, st *stack.Stack, p peer) (*child, error) {
	addr, err := readiness.FreeAddr()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-"+p.name)
	if err != nil {
		return nil, err
	}
	args := peerArgs(p.command, addr, st.KafkaBootstrap(), "bench."+p.name, dir)
	if strings.Contains(args[0], "/") { // it runs in dir: a relative path to it is ours
		if args[0], err = filepath.Abs(args[0]); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	logPath := filepath.Join(dir, "peer.log")
	logf, err := os.Create(logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	s := &child{cmd: command(c, args[0], args[1:]...), addr: addr, dir: dir}
	s.cmd.Dir, s.cmd.Stdout, s.cmd.Stderr = dir, logf, logf
	if err := s.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := readiness.WaitListening(ctx, addr, s.done); err != nil {
		tail := logTail(logPath, 2000)
		s.stop(5 * time.Second)
		return nil, fmt.Errorf("%w; its output ends: %s", err, tail)
	}
	return s, nil
}

func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(b[max(0, len(b)-n):]))
}
