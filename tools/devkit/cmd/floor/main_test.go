package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iov-platform/iov/kit/calltime"
	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	exhookv3 "github.com/iov-platform/iov/proto/emqx/exhook/v3"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
)

// The floor loads message.publish and answers IGNORE over v2 and v3, then stops on its context.
func TestFloorAnswersIgnoreOverV2AndV3(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, lis, slog.New(slog.NewTextHandler(io.Discard, nil))) }()

	sim, err := emqxsim.Dial(emqxsim.Options{Addr: lis.Addr().String(), PoolSize: 2, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	loaded, err := sim.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if hs := loaded.GetHooks(); len(hs) != 1 || hs[0].GetName() != "message.publish" {
		t.Fatalf("v2 loaded %v, want message.publish only", hs)
	}
	r2, err := sim.Publish(ctx, sim.NewMessage("V1", "vehicles/V1/telemetry", 1, []byte(`{}`)))
	if err != nil || r2.GetType() != exhookv2.ValuedResponse_IGNORE {
		t.Fatalf("v2 publish: %v, %v", r2, err)
	}
	v3 := sim.V3()
	loaded3, err := v3.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if hs := loaded3.GetHooks(); len(hs) != 1 || hs[0].GetName() != "message.publish" {
		t.Fatalf("v3 loaded %v, want message.publish only", hs)
	}
	r3, err := v3.Publish(ctx, v3.NewMessage("V1", "vehicles/V1/telemetry", 1, []byte(`{}`)), nil, nil)
	if err != nil || r3.GetType() != exhookv3.ValuedResponse_IGNORE {
		t.Fatalf("v3 publish: %v, %v", r3, err)
	}
	if err := sim.Connected(ctx, "V1"); err == nil {
		t.Fatal("client.connected answered; the floor implements message.publish only")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after its context ended")
	}
}

// With --metrics-listen the floor counts each call's time in the server at /metrics, and
// with --mem-peak-dir it writes its memory peak.
func TestFloorMeasuresItsCalls(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--mem-peak-dir", dir}, w)
		w.Close()
	}()
	lines := bufio.NewScanner(r)
	var metricsAddr, addr string
	for addr == "" && lines.Scan() {
		if a, ok := strings.CutPrefix(lines.Text(), "METRICS "); ok {
			metricsAddr = a
		}
		if a, ok := strings.CutPrefix(lines.Text(), "LISTEN "); ok {
			addr = a
		}
	}
	go func() { _, _ = io.Copy(io.Discard, r) }()
	if addr == "" || metricsAddr == "" {
		t.Fatalf("LISTEN %q, METRICS %q", addr, metricsAddr)
	}
	sim, err := emqxsim.Dial(emqxsim.Options{Addr: addr, PoolSize: 1, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	const calls = 3
	for range calls {
		if _, err := sim.Publish(ctx, sim.NewMessage("V1", "vehicles/V1/telemetry", 1, []byte(`{}`))); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("%s_count %d", calltime.MetricName, calls); !strings.Contains(string(body), want) {
		t.Fatalf("/metrics lacks %q:\n%s", want, body)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "peak.txt")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no memory peak written")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
