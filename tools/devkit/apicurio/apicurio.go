// Package apicurio runs a real Confluent-compatible schema registry for tests: Apicurio
// Registry (in-memory storage), built by tools/registry/build.sh and started with the JDK on
// PATH on a loopback port it picks itself (port 0; the address is read from its log, so no
// other process can take the port in between). Its Confluent API is under /apis/ccompat/v7.
package apicurio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
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
	r := &Registry{exited: make(chan struct{}), out: &tail{max: 64 << 10}}
	// A small, quickly started JVM: the tests need a few requests, not throughput.
	r.cmd = exec.Command("java", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dquarkus.http.host=127.0.0.1", "-Dquarkus.http.port=0", "-jar", jar)
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
		return nil, fmt.Errorf("registry: %w\n%s", err, r.out.String())
	}
	return r, nil
}

// listening is Quarkus's start line, with the address it bound.
var listening = regexp.MustCompile(`Listening on: (http://127\.0\.0\.1:[0-9]+)`)

// wait reads the bound address from the log, then waits until the Confluent API answers.
func (r *Registry) wait(ctx context.Context) error {
	return readiness.Poll(ctx, StartTimeout, 200*time.Millisecond, r.exited, "not answering", func() bool {
		if r.url == "" {
			if m := listening.FindStringSubmatch(r.out.String()); m != nil {
				r.url = m[1] + "/apis/ccompat/v7"
			}
		}
		return r.url != "" && answers(r.url+"/subjects")
	})
}

func answers(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
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
