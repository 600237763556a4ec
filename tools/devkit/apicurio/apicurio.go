// Package apicurio runs a real Confluent-compatible schema registry for tests: Apicurio
// Registry (in-memory storage), built by tools/registry/build.sh and started with the JDK on
// PATH on a free loopback port. Its Confluent API is under /apis/ccompat/v7.
package apicurio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/iov-platform/iov/tools/devkit/readiness"
)

// StartTimeout bounds the JVM's start (about 18 s on an idle 2-core machine).
const StartTimeout = 3 * time.Minute

// Registry is a running registry process.
type Registry struct {
	url    string
	cmd    *exec.Cmd
	exited chan struct{}
	out    *tail
}

// Jar builds the registry if needed (tools/registry/build.sh) and returns its jar.
func Jar(ctx context.Context) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("apicurio: cannot locate tools/registry")
	}
	script := filepath.Join(filepath.Dir(file), "..", "..", "registry", "build.sh")
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("build registry (%s): %w\n%s", script, err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// Start builds (once) and starts a registry, and waits until its Confluent API answers.
func Start(ctx context.Context) (*Registry, error) {
	jar, err := Jar(ctx)
	if err != nil {
		return nil, err
	}
	addr, err := readiness.FreeAddr()
	if err != nil {
		return nil, err
	}
	host, port, _ := strings.Cut(addr, ":")
	r := &Registry{url: "http://" + addr + "/apis/ccompat/v7", exited: make(chan struct{}), out: &tail{max: 64 << 10}}
	// A small, quickly started JVM: the tests need a few requests, not throughput.
	r.cmd = exec.Command("java", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dquarkus.http.host="+host, "-Dquarkus.http.port="+port, "-jar", jar)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	go func() {
		_ = r.cmd.Wait()
		close(r.exited)
	}()
	if err := r.wait(ctx); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("registry on %s: %w\n%s", addr, err, r.out.String())
	}
	return r, nil
}

func (r *Registry) wait(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	for {
		resp, err := http.Get(r.url + "/subjects")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-r.exited:
			return readiness.ErrExited
		case <-ctx.Done():
			return fmt.Errorf("not answering: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// URL is the Confluent-compatible API's base URL.
func (r *Registry) URL() string { return r.url }

// Close stops the registry: SIGTERM, then SIGKILL after 10 s.
func (r *Registry) Close() error {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
	return nil
}

// Output is the end of the registry's log, for failure messages.
func (r *Registry) Output() string { return r.out.String() }

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
