package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iov-platform/iov/services/exhook-producer/internal/emqxapi/emqxapitest"
)

func keyFile(t *testing.T, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "bootstrap.txt")
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// The Job's command line: the key from EMQX's bootstrap file, a reload, the scope checked.
func TestReloadAndStatus(t *testing.T) {
	p := &emqxapitest.Provider{}
	p.SetScope("vehicles/#")
	node := emqxapitest.StartNode(t, p, "reload", "s3cret")
	url, b := node.APIURL, node.Broker
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitLoaded(ctx); err != nil {
		t.Fatal(err)
	}
	key := keyFile(t, "reload:s3cret:administrator\n")
	for _, tc := range []struct {
		name    string
		args    []string
		out     string // in stdout on success
		errText string // in the error otherwise
		loads   int    // broker loads afterwards
	}{
		{"status", []string{"-status", "-scope", "vehicles/#"}, `connected on 1 node(s); message.publish topics ["vehicles/#"]`, "", 1},
		{"reload", []string{"-scope", "vehicles/#"}, `reloaded on 1 node(s)`, "", 2},
		{"reload without a scope check", nil, `reloaded on 1 node(s)`, "", 3},
		{"ensure, scope unchanged", []string{"-ensure", "-scope", "vehicles/#"}, `with message.publish topics ["vehicles/#"] (reloaded: false)`, "", 3},
		{"status, other scope", []string{"-status", "-scope", "fleet/#"}, "", `want ["fleet/#"]`, 3},
		{"unknown server", []string{"-status", "-name", "other"}, "", "404", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(ctx, append([]string{"-emqx", url, "-api-key-file", key}, tc.args...), &out, io.Discard)
			if tc.errText == "" && (err != nil || !strings.Contains(out.String(), tc.out)) {
				t.Fatalf("run = %v, output %q, want %q", err, out.String(), tc.out)
			}
			if tc.errText != "" && (err == nil || !strings.Contains(err.Error(), tc.errText)) {
				t.Fatalf("run = %v, want an error with %q", err, tc.errText)
			}
			if n := b.Loads(); n != tc.loads {
				t.Fatalf("broker loads %d, want %d", n, tc.loads)
			}
		})
	}
}

func TestCommandLineErrors(t *testing.T) {
	t.Setenv("EMQX_API_KEY", "")
	t.Setenv("EMQX_API_SECRET", "")
	for _, tc := range []struct {
		name    string
		args    []string
		errText string
	}{
		{"no key", []string{"-status"}, "no API key"},
		{"key file missing", []string{"-api-key-file", filepath.Join(t.TempDir(), "none")}, "no such file"},
		{"key file without secret", []string{"-api-key-file", keyFile(t, "reload\n")}, "not key:secret"},
		{"stray argument", []string{"-status", "now"}, "unexpected arguments"},
		{"two modes", []string{"-status", "-ensure", "-scope", "vehicles/#"}, "exclude each other"},
		{"ensure without scope", []string{"-api-key-file", keyFile(t, "k:s"), "-ensure"}, "-ensure needs -scope"},
		{"bad log format", []string{"-api-key-file", keyFile(t, "k:s"), "-serve", "127.0.0.1:0", "-log-format", "xml"}, "log format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.errText) {
				t.Fatalf("run = %v, want %q", err, tc.errText)
			}
		})
	}
}

// -serve exports the state EMQX reports at each scrape and stops on cancel.
func TestServe(t *testing.T) {
	p := &emqxapitest.Provider{}
	p.SetScope("vehicles/#")
	p.SetRefuse(true) // the producer is not ready while the node starts
	node := emqxapitest.StartNode(t, p, "reload", "s3cret")
	url, b := node.APIURL, node.Broker
	t.Setenv("EMQX_API_KEY", "reload")
	t.Setenv("EMQX_API_SECRET", "s3cret")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logR, logW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-emqx", url, "-serve", "127.0.0.1:0", "-scope", "vehicles/#", "-log-format", "json"}, io.Discard, logW)
		_ = logW.Close()
	}()
	lines := bufio.NewScanner(logR)
	var listening struct{ Msg, Addr, Service string }
	if !lines.Scan() || json.Unmarshal(lines.Bytes(), &listening) != nil || listening.Addr == "" {
		t.Fatalf("first log line %q, want the listening address", lines.Text())
	}
	if listening.Service != "exhook-reload" {
		t.Fatalf("log line %q has no service key", lines.Text())
	}
	go func() { _, _ = io.Copy(io.Discard, logR) }() // keep the logger unblocked

	scrape := func() string {
		t.Helper()
		resp, err := http.Get("http://" + listening.Addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	if m := scrape(); !strings.Contains(m, `exhook_emqx_server_loaded{node="emqx@n1",server="iov"} 0`) ||
		!strings.Contains(m, `exhook_emqx_api_up{server="iov"} 1`) {
		t.Fatalf("while the node cannot load the server:\n%s", m)
	}
	p.SetRefuse(false)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := b.WaitLoaded(wctx); err != nil {
		t.Fatal(err)
	}
	if m := scrape(); !strings.Contains(m, `exhook_emqx_server_loaded{node="emqx@n1",server="iov"} 1`) ||
		!strings.Contains(m, `exhook_emqx_server_scope_matches{server="iov"} 1`) {
		t.Fatalf("after the load:\n%s", m)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}
