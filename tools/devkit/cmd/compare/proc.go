package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/iov-platform/iov/tools/devkit/readiness"
)

// server is a running HookProvider child process.
type server struct {
	name string
	cmd  *exec.Cmd
	addr string // gRPC address
	dir  string // temp dir to remove after stop, if any

	done    chan struct{} // closed when the process has exited and its output is copied
	waitErr error         // cmd.Wait's result, valid after done

	mu    sync.Mutex
	stats string // the bridge's STATS line
}

// start starts cmd and watches for its exit.
func (s *server) start() error {
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.cmd.Path, err)
	}
	s.done = make(chan struct{})
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	return nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) setStats(line string) {
	s.mu.Lock()
	s.stats = line
	s.mu.Unlock()
}

// Stats is what the bridge reported when it stopped ("" for our producer).
func (s *server) Stats() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// stop sends SIGTERM, waits up to timeout for a graceful exit (then kills) and describes how
// the process ended: "exit 0", "exit 1", "killed after 1m0s".
func (s *server) stop(timeout time.Duration) string {
	if s.dir != "" {
		defer os.RemoveAll(s.dir)
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return exitDesc(s.waitErr)
	case <-time.After(timeout):
		_ = s.cmd.Process.Kill()
		<-s.done
		return fmt.Sprintf("killed after %s", timeout)
	}
}

// kill ends a server that failed to start.
func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

func exitDesc(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exit 0"
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "signal " + ws.Signal().String()
		}
		return fmt.Sprintf("exit %d", ee.ExitCode())
	default:
		return err.Error()
	}
}

// lineWriter calls fn for every complete line written to it; exec copies a child's output
// into it and Wait returns only after the last line was handled.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	fn  func(line string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.fn(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

func prefixed(w io.Writer, prefix string) *lineWriter {
	return &lineWriter{fn: func(line string) { fmt.Fprintf(w, "%s: %s\n", prefix, line) }}
}

type pythonOptions struct {
	Python, Bridge   string
	Bootstrap, Topic string
	Filter           string
	Workers          int
	Sync             bool
	Log              io.Writer // the bridge's logs, prefixed
	ReadyTimeout     time.Duration
	ExtraArgs        []string // more bridge flags
}

// startPython starts the baseline bridge on a free port and waits for its READY line.
func startPython(ctx context.Context, o pythonOptions) (*server, error) {
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	args := []string{o.Bridge, "--listen", "127.0.0.1:0", "--bootstrap", o.Bootstrap, "--topic", o.Topic,
		"--filter", o.Filter, "--workers", strconv.Itoa(o.Workers)}
	if o.Sync {
		args = append(args, "--sync")
	}
	args = append(args, o.ExtraArgs...)
	s := &server{name: namePython, cmd: exec.Command(o.Python, args...)}
	ready := make(chan string, 1)
	s.cmd.Stdout = &lineWriter{fn: func(line string) {
		switch {
		case strings.HasPrefix(line, "READY "):
			select {
			case ready <- strings.TrimPrefix(line, "READY "):
			default:
			}
		case strings.HasPrefix(line, "STATS "):
			s.setStats(strings.TrimPrefix(line, "STATS "))
		default:
			fmt.Fprintf(o.Log, "%s: %s\n", namePython, line)
		}
	}}
	s.cmd.Stderr = prefixed(o.Log, namePython)
	if err := s.start(); err != nil {
		return nil, err
	}
	timer := time.NewTimer(o.ReadyTimeout)
	defer timer.Stop()
	select {
	case s.addr = <-ready:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("python bridge exited during startup: %s", exitDesc(s.waitErr))
	case <-timer.C:
		s.kill()
		return nil, fmt.Errorf("python bridge not ready after %s", o.ReadyTimeout)
	case <-ctx.Done():
		s.kill()
		return nil, ctx.Err()
	}
}

type producerOptions struct {
	Binary                 string
	Bootstrap, RegistryURL string
	Topic, Filter          string
	Delivery               string // async | sync
	Log                    io.Writer
}

// producerConfig is the exhook-producer configuration for one compare run: one route, keyed
// by the vehicle id in the topic (the same value as the client id the load uses).
const producerConfig = `
grpc: {listenAddress: %q}
http: {listenAddress: %q}
log: {level: warn, format: text}
kafka:
  bootstrapServers: %q
  properties: {linger.ms: "5"}
registry: {url: %q}
routes:
  - {name: compare, filter: %q, kafkaTopic: %q, key: {from: topic-segment, segment: 1}, payload: json, delivery: %s}
`

// startProducer starts our exhook-producer with a generated config and waits for /ready.
func startProducer(ctx context.Context, o producerOptions) (*server, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	dir, err := os.MkdirTemp("", "compare")
	if err != nil {
		return nil, err
	}
	addrs, err := readiness.FreeAddrs(2) // two calls of FreeAddr can return one port twice
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	grpcAddr, httpAddr := addrs[0], addrs[1]
	cfg := filepath.Join(dir, "producer.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, producerConfig, grpcAddr, httpAddr, o.Bootstrap, o.RegistryURL, o.Filter, o.Topic, o.Delivery), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &server{name: nameOurs, cmd: exec.Command(o.Binary, "--config", cfg), addr: grpcAddr, dir: dir}
	s.cmd.Stdout, s.cmd.Stderr = prefixed(o.Log, nameOurs), prefixed(o.Log, nameOurs)
	if err := s.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := readiness.Wait(ctx, httpAddr, s.done); err != nil {
		s.kill()
		return nil, err
	}
	return s, nil
}
