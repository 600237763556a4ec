// Package producerproc runs the exhook-producer binary as a child process for end-to-end
// tests in other modules (whose tests cannot import the producer's internal packages).
package producerproc

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/iov-platform/iov/tools/devkit/readiness"
)

// Start builds the producer from src (its module directory) and runs it on free loopback
// ports against Kafka at bootstrap and the registry at registryURL, with the rest of its
// YAML config (topics, routes, ...) from more. It waits until the producer is ready and
// returns its gRPC address. At cleanup it sends SIGTERM and waits; the producer's log is
// printed when the test failed.
func Start(t testing.TB, src, bootstrap, registryURL, more string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "exhook-producer")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build exhook-producer: %v\n%s", err, out)
	}
	grpcAddr, _ := Run(t, bin, func(grpcAddr, httpAddr string) string {
		return fmt.Sprintf(`grpc: {listenAddress: %q}
http: {listenAddress: %q}
log: {level: info, format: text}
kafka: {bootstrapServers: %q, properties: {linger.ms: "1"}}
registry: {url: %q}
`, grpcAddr, httpAddr, bootstrap, registryURL) + more
	})
	return grpcAddr
}

// Run runs the service binary bin (the producer, or any of our services: --config FILE,
// /ready on its HTTP address) on free loopback ports with the YAML config that config
// returns for them (it must listen on httpAddr, and on grpcAddr if it serves gRPC), waits
// until it is ready and returns both addresses. At cleanup it sends SIGTERM and waits; the
// service's log is printed when the test failed.
func Run(t testing.TB, bin string, config func(grpcAddr, httpAddr string) string) (grpcAddr, httpAddr string) {
	t.Helper()
	addrs, err := readiness.FreeAddrs(2) // two calls of FreeAddr can return one port twice
	if err != nil {
		t.Fatal(err)
	}
	grpcAddr, httpAddr = addrs[0], addrs[1]
	cfg := filepath.Join(t.TempDir(), "producer.yaml")
	if err := os.WriteFile(cfg, []byte(config(grpcAddr, httpAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs []string
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			logs = append(logs, sc.Text())
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		_ = cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("%s log:\n%s", filepath.Base(bin), strings.Join(logs, "\n"))
			mu.Unlock()
		}
	})
	if err := readiness.Wait(context.Background(), httpAddr, exited); err != nil {
		t.Fatalf("%s: %v", filepath.Base(bin), err)
	}
	return grpcAddr, httpAddr
}
