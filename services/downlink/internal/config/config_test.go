package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEmbeddedDefault(t *testing.T) {
	t.Setenv("POD_NAME", "")
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.BootstrapServers != "127.0.0.1:9092" || cfg.Registry.URL != "http://127.0.0.1:8081" ||
		cfg.MQTT.BrokerURL != "mqtt://127.0.0.1:1883" || cfg.HTTP.ListenAddress != "127.0.0.1:8089" {
		t.Fatalf("default addresses: %+v", cfg)
	}
	if cfg.MQTT.ClientID != "iov-downlink-dev" {
		t.Fatalf("client id %q", cfg.MQTT.ClientID)
	}
	if cfg.Kafka.GroupID != "iov-downlink" || cfg.Kafka.CommandsTopic != "iov.vehicle.commands" ||
		cfg.Kafka.StatusTopic != "iov.vehicle.command-status" || cfg.Kafka.DeadLetterTopic != "iov.deadletter" {
		t.Fatalf("default topics: %+v", cfg.Kafka)
	}
	if cfg.MQTT.PublishTimeout != 10*time.Second || cfg.MQTT.KeepAlive != 30*time.Second || cfg.Shutdown.DrainTimeout != 20*time.Second {
		t.Fatalf("default timings: %+v", cfg.MQTT)
	}
}

const minimal = `
kafka: {bootstrapServers: "k:9092"}
registry: {url: "http://r:8081"}
mqtt: {brokerUrl: "mqtt://emqx:1883", clientId: "iov-downlink-${POD_NAME}"}
`

// with returns minimal with whole top-level sections replaced or added: each part is one
// "key: value" YAML line.
func with(parts ...string) string {
	lines := strings.Split(strings.TrimSpace(minimal), "\n")
	for _, part := range parts {
		key, _, _ := strings.Cut(part, ":")
		replaced := false
		for i, l := range lines {
			if strings.HasPrefix(l, key+":") {
				lines[i], replaced = part, true
			}
		}
		if !replaced {
			lines = append(lines, part)
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestEnvironment(t *testing.T) {
	t.Setenv("POD_NAME", "downlink-7f9c")
	t.Setenv("DOWNLINK_KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9093")
	t.Setenv("DOWNLINK_REGISTRY_URL", "https://sr:8081")
	t.Setenv("DOWNLINK_MQTT_BROKER_URL", "tls://emqx:8883")
	t.Setenv("REGISTRY_USERNAME", "ru")
	t.Setenv("REGISTRY_PASSWORD", "rp")
	t.Setenv("MQTT_USERNAME", "mu")
	t.Setenv("MQTT_PASSWORD", "mp")
	cfg, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MQTT.ClientID != "iov-downlink-downlink-7f9c" || cfg.Kafka.BootstrapServers != "kafka-0:9093" ||
		cfg.Registry.URL != "https://sr:8081" || cfg.MQTT.BrokerURL != "tls://emqx:8883" {
		t.Fatalf("overrides not applied: %+v", cfg)
	}
	if cfg.Registry.Username != "ru" || cfg.Registry.Password != "rp" || cfg.MQTT.Username != "mu" || cfg.MQTT.Password != "mp" {
		t.Fatal("credentials not taken from the environment")
	}
	// Defaults fill what the file leaves out.
	if cfg.HTTP.ListenAddress != ":8080" || cfg.Log.Format != "json" || cfg.Kafka.GroupID != "iov-downlink" || !cfg.Registry.AutoRegister {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestUnsetClientIDVariableIsAnError(t *testing.T) {
	t.Setenv("POD_NAME", "")
	_, err := Parse([]byte(minimal))
	if err == nil || !strings.Contains(err.Error(), "POD_NAME is not set") {
		t.Fatalf("err = %v", err)
	}
}

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"A": "x", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct{ in, want, err string }{
		{in: "plain", want: "plain"},
		{in: "p-${A}", want: "p-x"},
		{in: "${A}-${A}", want: "x-x"},
		{in: "p-${B:-dflt}", want: "p-dflt"},
		{in: "p-${EMPTY:-dflt}", want: "p-dflt"},
		{in: "p-${A:-dflt}", want: "p-x"},
		{in: "p-${B:-}", want: "p-"},
		{in: "p-$A", want: "p-$A"},
		{in: "p-${B}", err: "B is not set"},
		{in: "${B}${C}", err: "C is not set"},
	} {
		got, err := ExpandEnv(tc.in, lookup)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ExpandEnv(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ExpandEnv(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestValidation(t *testing.T) {
	t.Setenv("POD_NAME", "p")
	for _, tc := range []struct {
		name string
		yaml string
		want []string // substrings, all required
	}{
		{name: "unknown key", yaml: with("extra: 1"), want: []string{"field extra not found"}},
		{name: "unknown nested key", yaml: with("shutdown: {drainTimout: 1s}"), want: []string{"field drainTimout not found"}},
		{name: "missing kafka and registry", yaml: `mqtt: {brokerUrl: "mqtt://e:1883", clientId: x}`,
			want: []string{"kafka.bootstrapServers is required", "registry.url is required"}},
		{name: "bad addresses", yaml: with(`http: {listenAddress: "8080"}`, "log: {level: loud, format: xml}"),
			want: []string{"http.listenAddress", "log.level", "log.format"}},
		{name: "topics", yaml: with(`kafka: {bootstrapServers: k, commandsTopic: "bad topic", statusTopic: iov.deadletter, deadLetterTopic: iov.deadletter, groupId: " "}`),
			want: []string{`kafka.commandsTopic "bad topic"`, "same topic as kafka.statusTopic", "kafka.groupId is required"}},
		{name: "protected properties", yaml: with(`kafka: {bootstrapServers: k, properties: {enable.auto.offset.store: "true", acks: "1", partitioner: consistent, group.id: g, go.events.channel.enable: "true"}}`),
			want: []string{"enable.auto.offset.store=true", "acks=1", "partitioner=consistent", "set kafka.groupId instead", "go.events.channel.enable"}},
		{name: "allowed properties", yaml: with(`kafka: {bootstrapServers: k, properties: {security.protocol: SASL_SSL, enable.auto.commit: "TRUE"}}`)},
		{name: "registry scheme", yaml: with(`registry: {url: "r:8081"}`), want: []string{"registry.url"}},
		{name: "broker scheme", yaml: with(`mqtt: {brokerUrl: "amqp://e:5672", clientId: x}`), want: []string{"mqtt.brokerUrl", "want mqtt://"}},
		{name: "broker port", yaml: with(`mqtt: {brokerUrl: "mqtt://emqx", clientId: x}`), want: []string{"host:port"}},
		{name: "ws and tls urls", yaml: with(`mqtt: {brokerUrl: "wss://emqx:8084/mqtt", clientId: x}`)},
		{name: "templates", yaml: with(`mqtt: {brokerUrl: "mqtt://e:1883", clientId: x, commandTopic: "vehicles/+/c/{command_id}", responseTopic: "r/{vehicle_id}"}`),
			want: []string{"mqtt.commandTopic", "wildcard", "mqtt.responseTopic", "must contain"}},
		{name: "same templates", yaml: with(`mqtt: {brokerUrl: "mqtt://e:1883", clientId: x, commandTopic: "v/{vehicle_id}/{command_id}", responseTopic: "v/{vehicle_id}/{command_id}"}`),
			want: []string{"must differ"}},
		{name: "timings", yaml: with(`mqtt: {brokerUrl: "mqtt://e:1883", clientId: x, publishTimeout: 0s, keepAlive: 500ms, connectTimeout: -1s, retry: {initialBackoff: 2s, maxBackoff: 1s}}`, "shutdown: {drainTimeout: 0s}"),
			want: []string{"mqtt.publishTimeout", "mqtt.keepAlive", "mqtt.connectTimeout", "mqtt.retry.maxBackoff", "shutdown.drainTimeout"}},
		{name: "client id", yaml: with(`mqtt: {brokerUrl: "mqtt://e:1883", clientId: ""}`), want: []string{"mqtt.clientId is required"}},
		{name: "tls on plain url", yaml: with(`mqtt: {brokerUrl: "mqtt://e:1883", clientId: x, tls: {caFile: /nonexistent/ca.pem}}`),
			want: []string{"not tls://", "caFile"}},
		{name: "tls half pair", yaml: with(`mqtt: {brokerUrl: "tls://e:8883", clientId: x, tls: {certFile: c.pem}}`),
			want: []string{"certFile and keyFile go together"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse accepted the config, want errors %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestTLSConfig(t *testing.T) {
	t.Setenv("POD_NAME", "p")
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Parse([]byte(with(`mqtt: {brokerUrl: "tls://e:8883", clientId: x, tls: {caFile: ` + ca + `}}`)))
	if err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("bad CA file: %v", err)
	}
	cfg, err := Parse([]byte(with(`mqtt: {brokerUrl: "mqtts://e:8883", clientId: x, tls: {serverName: emqx.internal}}`)))
	if err != nil {
		t.Fatal(err)
	}
	tc, err := cfg.MQTT.TLSConfig()
	if err != nil || tc == nil || tc.ServerName != "emqx.internal" {
		t.Fatalf("TLSConfig = %+v, %v", tc, err)
	}
	cfg, _ = Parse([]byte(minimal))
	if tc, err := cfg.MQTT.TLSConfig(); tc != nil || err != nil {
		t.Fatalf("plain URL TLSConfig = %v, %v", tc, err)
	}
}

func TestBackoff(t *testing.T) {
	r := Retry{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := r.Backoff(i + 1); got != w*time.Millisecond {
			t.Errorf("Backoff(%d) = %s, want %s", i+1, got, w*time.Millisecond)
		}
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "downlink.yaml")
	if err := os.WriteFile(path, []byte("kafka: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Load = %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "read config") {
		t.Fatalf("Load missing = %v", err)
	}
}
