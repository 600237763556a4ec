package svcconfig

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	HTTP     HTTP     `yaml:"http"`
	Log      Log      `yaml:"log"`
	Registry registry `yaml:"registry"`
	Shutdown Shutdown `yaml:"shutdown"`
}

// registry is how a service adds its own field to the shared section.
type registry struct {
	Registry     `yaml:",inline"`
	AutoRegister bool `yaml:"autoRegister"`
}

func parse(data []byte) (*testConfig, error) {
	var c testConfig
	if err := Decode(data, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

func TestLoad(t *testing.T) {
	def := []byte("http: {listenAddress: ':1'}\n")
	cfg, err := Load("", def, parse)
	if err != nil || cfg.HTTP.ListenAddress != ":1" {
		t.Fatalf("embedded default: %+v, %v", cfg, err)
	}
	path := filepath.Join(t.TempDir(), "svc.yaml")
	if err := os.WriteFile(path, []byte("log: {level: debug}\nregistry: {url: 'http://r', autoRegister: true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = Load(path, def, parse)
	if err != nil || cfg.Log.Level != "debug" || cfg.HTTP.ListenAddress != "" || cfg.Registry.URL != "http://r" || !cfg.Registry.AutoRegister {
		t.Fatalf("file: %+v, %v", cfg, err)
	}

	if err := os.WriteFile(path, []byte("kafka: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, def, parse); err == nil || !strings.HasPrefix(err.Error(), "config "+path+": parse yaml: ") {
		t.Fatalf("bad file: %v", err)
	}
	if _, err := Load("", []byte("bogus: 1\n"), parse); err == nil || !strings.HasPrefix(err.Error(), "config (embedded default): parse yaml: ") ||
		!strings.Contains(err.Error(), "field bogus not found") {
		t.Fatalf("bad default: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	if _, err := Load(missing, def, parse); err == nil || !strings.HasPrefix(err.Error(), "read config: ") || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestDecodeIsStrict(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"extra: 1\n", "field extra not found"},
		{"http: {listenAdress: x}\n", "field listenAdress not found"},
		// Credentials come from the environment only.
		{"registry: {url: 'http://r', username: u}\n", "field username not found"},
		{"registry: {password: p}\n", "field password not found"},
	} {
		var c testConfig
		if err := Decode([]byte(tc.yaml), &c); err == nil || !strings.HasPrefix(err.Error(), "parse yaml: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%q) = %v, want %q", tc.yaml, err, tc.want)
		}
	}
	var c testConfig
	if err := Decode(nil, &c); !errors.Is(err, io.EOF) || err.Error() != "parse yaml: EOF" {
		t.Errorf("empty document: %v", err)
	}
}

func TestSectionChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string // "" for no error
	}{
		{"http ok", HTTP{ListenAddress: ":8080"}.Validate(), ""},
		{"http host", HTTP{ListenAddress: "127.0.0.1:0"}.Validate(), ""},
		{"http no port", HTTP{ListenAddress: "8080"}.Validate(), `http.listenAddress "8080": address 8080: missing port in address`},
		{"other key", ListenAddress("grpc.listenAddress", "x"), `grpc.listenAddress "x": address x: missing port in address`},
		{"log ok", Log{Level: "warn", Format: "text"}.Validate(), ""},
		{"log both", Log{Level: "loud", Format: "xml"}.Validate(), "log.level \"loud\": want debug, info, warn or error\nlog.format \"xml\": want json or text"},
		{"log empty", Log{Level: "info"}.Validate(), `log.format "": want json or text`},
		{"registry ok", Registry{URL: "https://sr:8081"}.Validate(), ""},
		{"registry missing", Registry{}.Validate(), "registry.url is required"},
		{"registry scheme", Registry{URL: "sr:8081"}.Validate(), `registry.url "sr:8081": want an http:// or https:// URL`},
		{"drain ok", Shutdown{DrainTimeout: time.Second}.Validate(), ""},
		{"drain zero", Shutdown{}.Validate(), "shutdown.drainTimeout must be positive"},
		{"drain negative", Shutdown{DrainTimeout: -time.Second}.Validate(), "shutdown.drainTimeout must be positive"},
	} {
		got := ""
		if tc.err != nil {
			got = tc.err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestCredentialsFromEnv(t *testing.T) {
	t.Setenv("REGISTRY_USERNAME", "u")
	t.Setenv("REGISTRY_PASSWORD", "p")
	var r registry
	r.CredentialsFromEnv()
	if r.Username != "u" || r.Password != "p" {
		t.Fatalf("%+v", r)
	}
	t.Setenv("REGISTRY_USERNAME", "")
	r.CredentialsFromEnv()
	if r.Username != "" {
		t.Fatalf("unset variable kept %q", r.Username)
	}
}

func TestValidTopic(t *testing.T) {
	for topic, want := range map[string]bool{
		"iov.vehicle.telemetry": true, "a": true, "A-b_c.9": true, strings.Repeat("x", 249): true,
		"": false, ".": false, "..": false, "b c": false, "x/y": false, strings.Repeat("x", 250): false, "é": false,
	} {
		if got := ValidTopic(topic); got != want {
			t.Errorf("ValidTopic(%q) = %v", topic, got)
		}
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := Backoff(100*time.Millisecond, time.Second, i+1); got != w*time.Millisecond {
			t.Errorf("Backoff(%d) = %s, want %s", i+1, got, w*time.Millisecond)
		}
	}
	if got := Backoff(3*time.Second, time.Second, 1); got != time.Second {
		t.Errorf("initial above max: %s", got)
	}
}

func TestProperties(t *testing.T) {
	rules := Properties{
		Service: "the service",
		Owned:   GroupOwned,
		Protected: []Protected{
			{Settings: map[string]string{"enable.auto.commit": "true"}, Because: "reason one"},
			{Settings: map[string]string{"acks": "all"}, Because: "reason two"},
		},
	}
	if err := rules.Check(map[string]string{"security.protocol": "SASL_SSL", "enable.auto.commit": "TRUE", "acks": "All"}); err != nil {
		t.Fatalf("allowed settings: %v", err)
	}
	if err := rules.Check(nil); err != nil {
		t.Fatal(err)
	}
	err := rules.Check(map[string]string{
		"bootstrap.servers":  "x",
		"group.id":           "g",
		"enable.auto.commit": "false",
		"acks":               "1",
		"go.logs.channel":    "x",
	})
	if err == nil {
		t.Fatal("accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	for _, want := range []string{
		"kafka.properties.bootstrap.servers: set kafka.bootstrapServers instead",
		"kafka.properties.group.id: set kafka.groupId instead",
		"kafka.properties.enable.auto.commit=false: the service requires true (reason one)",
		"kafka.properties.acks=1: the service requires all (reason two)",
		"kafka.properties.go.logs.channel: Go client settings are managed by the service",
	} {
		found := false
		for _, l := range lines {
			found = found || l == want
		}
		if !found {
			t.Errorf("no line %q in:\n%v", want, err)
		}
	}
	if len(lines) != 5 {
		t.Errorf("%d problems, want 5:\n%v", len(lines), err)
	}
}
