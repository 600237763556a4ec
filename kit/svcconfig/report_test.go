package svcconfig

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// finish is a service's Parse tail: validation of the decoded config.
func finish(c *testConfig) error {
	return errors.Join(c.HTTP.Validate(), c.Log.Validate(), c.Registry.Validate(), c.Shutdown.Validate())
}

func defaultConfig() *testConfig {
	return &testConfig{HTTP: HTTP{ListenAddress: ":8080"}, Log: Log{Level: "info", Format: "json"},
		Registry: registry{Registry: Registry{URL: "http://r"}}, Shutdown: Shutdown{DrainTimeout: time.Second}}
}

func TestParseReportsEverythingAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // every line of the error, in order; nil: no error
	}{
		{"valid", "log: {level: debug}\n", nil},
		{"empty document is the defaults", "", nil},
		{"validation only", "log: {level: loud}\nregistry: {url: nope}\n", []string{
			`log.level "loud": want debug, info, warn or error`,
			`registry.url "nope": want an http:// or https:// URL`,
		}},
		{"unknown keys, wrong types and validation together", "bogus: 1\nhttp: {listenAddress: x}\nshutdown: {drainTimeout: [1]}\nlog: {format: xml, levle: debug}\n", []string{
			"parse yaml: line 1: field bogus not found in type svcconfig.testConfig",
			"parse yaml: line 3: cannot unmarshal !!seq into time.Duration",
			"parse yaml: line 4: field levle not found in type svcconfig.Log",
			`http.listenAddress "x": address x: missing port in address`,
			`log.format "xml": want json or text`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig()
			err := Parse([]byte(tc.yaml), cfg, finish)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("error lines:\n%s\nwant:\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestParseStopsAtSyntaxError(t *testing.T) {
	called := false
	err := Parse([]byte("log: [\n"), defaultConfig(), func(*testConfig) error { called = true; return nil })
	if err == nil || called || !strings.HasPrefix(err.Error(), "parse yaml: ") {
		t.Fatalf("err %v, finish called %v", err, called)
	}
}

func TestParseKeepsDefaultOfUndecodableField(t *testing.T) {
	cfg := defaultConfig()
	_ = Parse([]byte("shutdown: {drainTimeout: soon}\n"), cfg, func(*testConfig) error { return nil })
	if cfg.Shutdown.DrainTimeout != time.Second {
		t.Fatalf("drainTimeout %s, want the default 1s", cfg.Shutdown.DrainTimeout)
	}
}

var errBase = errors.New("base")

func TestPrefix(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"one", errors.New("a"), "p: a"},
		{"joined", errors.Join(errors.New("a"), nil, errors.New("b")), "p: a\np: b"},
		{"nested", errors.Join(errors.New("a"), Prefix("q", errors.Join(errors.New("b"), errors.New("c")))), "p: a\np: q: b\np: q: c"},
		{"join of one join", errors.Join(errors.Join(errors.New("a"), errors.New("b"))), "p: a\np: b"},
		{"two wraps on one line stay one problem", fmt.Errorf("%w: %w", errBase, errors.New("x")), "p: base: x"},
	} {
		got := Prefix("p", tc.err)
		if (got == nil) != (tc.want == "") || got != nil && got.Error() != tc.want {
			t.Errorf("%s: %v, want %q", tc.name, got, tc.want)
		}
	}
	if !errors.Is(Prefix("p", errors.Join(errBase, errors.New("x"))), errBase) {
		t.Error("Prefix hides the wrapped errors")
	}
	if !errors.Is(Prefix("p", errors.Join(io.EOF)), io.EOF) {
		t.Error("Prefix of a one-error join hides it")
	}
}
