package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEmbeddedDefaultIsValid(t *testing.T) {
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	wantTopics := []string{"iov.vehicle.telemetry", "iov.vehicle.events", "iov.vehicle.status", "iov.vehicle.raw"}
	if cfg.Kafka.BootstrapServers != "127.0.0.1:9092" || cfg.Registry.URL != "http://127.0.0.1:8081" ||
		cfg.HTTP.ListenAddress != "127.0.0.1:8088" || cfg.Kafka.GroupID != "iov-sample-consumer" ||
		!slices.Equal(cfg.Kafka.Topics, wantTopics) || cfg.Kafka.DeadLetterTopic != "iov.consumer.deadletter" ||
		cfg.Handler.MaxAttempts != 5 {
		t.Fatalf("unexpected default: %+v", cfg)
	}
}

// minimal is the smallest valid config; everything else has a default.
const minimal = `
kafka:
  bootstrapServers: "k:9092"
  groupId: g
  topics: [a, b]
registry: {url: "http://r:8081"}
`

func TestDefaultsApplied(t *testing.T) {
	cfg, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.ListenAddress != ":8080" || cfg.Log.Level != "info" || cfg.Log.Format != "json" ||
		cfg.Handler.MaxAttempts != 5 || cfg.Handler.InitialBackoff != 200*time.Millisecond ||
		cfg.Handler.MaxBackoff != 10*time.Second || cfg.Kafka.DeadLetterTopic != "" {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
}

// TestHelmChartShape parses the documented config shape as the chart renders it.
func TestHelmChartShape(t *testing.T) {
	cfg, err := Parse([]byte(`
http: {listenAddress: ":8080"}
log: {level: info, format: json}
kafka:
  bootstrapServers: "host:9092"
  groupId: iov-sample-consumer
  topics: [iov.vehicle.telemetry, iov.vehicle.events, iov.vehicle.status]
  properties: {session.timeout.ms: 10000, security.protocol: SASL_SSL, enable.auto.commit: true}
  deadLetterTopic: ""
registry: {url: "http://schema-registry:8081"}
handler:
  maxAttempts: 3
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.Properties["session.timeout.ms"] != "10000" || cfg.Kafka.Properties["enable.auto.commit"] != "true" || cfg.Handler.MaxAttempts != 3 {
		t.Fatalf("parsed %+v", cfg.Kafka)
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Setenv("CONSUMER_KAFKA_BOOTSTRAP_SERVERS", "other:9093")
	t.Setenv("CONSUMER_REGISTRY_URL", "https://sr:443")
	t.Setenv("REGISTRY_USERNAME", "u")
	t.Setenv("REGISTRY_PASSWORD", "p")
	cfg, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.BootstrapServers != "other:9093" || cfg.Registry.URL != "https://sr:443" ||
		cfg.Registry.Username != "u" || cfg.Registry.Password != "p" {
		t.Fatalf("env not applied: %+v", cfg)
	}
}

func TestEnvOverrideCanFixMissingBootstrap(t *testing.T) {
	t.Setenv("CONSUMER_KAFKA_BOOTSTRAP_SERVERS", "k:9092")
	if _, err := Parse([]byte(strings.Replace(minimal, `"k:9092"`, `""`, 1))); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidConfigs(t *testing.T) {
	with := func(old, new string) string {
		if !strings.Contains(minimal, old) {
			t.Fatalf("minimal lacks %q", old)
		}
		return strings.Replace(minimal, old, new, 1)
	}
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", minimal + "bogus: 1\n", "field bogus not found"},
		{"unknown nested key", minimal + "handler: {retries: 3}\n", "field retries not found"},
		{"not yaml", "kafka: [", "parse yaml"},
		{"bad listen address", minimal + "http: {listenAddress: '8080'}\n", "http.listenAddress"},
		{"bad log level", minimal + "log: {level: loud}\n", `log.level "loud"`},
		{"bad log format", minimal + "log: {format: xml}\n", `log.format "xml"`},
		{"no bootstrap", with(`"k:9092"`, `""`), "kafka.bootstrapServers is required"},
		{"no group", with("groupId: g", "groupId: ''"), "kafka.groupId is required"},
		{"no topics", with("topics: [a, b]", "topics: []"), "kafka.topics: at least one topic"},
		{"empty topic", with("topics: [a, b]", "topics: [a, '']"), `kafka.topics[1] "": not a valid Kafka topic name`},
		{"bad topic chars", with("topics: [a, b]", "topics: [a, 'b c']"), `kafka.topics[1] "b c"`},
		{"duplicate topic", with("topics: [a, b]", "topics: [a, a]"), `kafka.topics[1] "a": listed twice`},
		{"bad dead-letter topic", with("groupId: g", "groupId: g\n  deadLetterTopic: 'x/y'"), `kafka.deadLetterTopic "x/y": not a valid`},
		{"dead-letter topic consumed", with("groupId: g", "groupId: g\n  deadLetterTopic: b"), "must not be one of kafka.topics"},
		{"bootstrap in properties", with("groupId: g", "groupId: g\n  properties: {bootstrap.servers: x}"), "set kafka.bootstrapServers instead"},
		{"group in properties", with("groupId: g", "groupId: g\n  properties: {group.id: x}"), "set kafka.groupId instead"},
		{"auto commit off", with("groupId: g", "groupId: g\n  properties: {enable.auto.commit: 'false'}"), "enable.auto.commit=false: the consumer requires true"},
		{"auto offset store on", with("groupId: g", "groupId: g\n  properties: {enable.auto.offset.store: 'true'}"), "enable.auto.offset.store=true: the consumer requires false"},
		{"go client setting", with("groupId: g", "groupId: g\n  properties: {go.application.rebalance.enable: 'true'}"), "Go client settings are managed"},
		{"bad max poll interval", with("groupId: g", "groupId: g\n  properties: {max.poll.interval.ms: soon}"), "max.poll.interval.ms"},
		{"no registry", with(`registry: {url: "http://r:8081"}`, ""), "registry.url is required"},
		{"bad registry url", with("http://r:8081", "r:8081"), `registry.url "r:8081"`},
		{"zero attempts", minimal + "handler: {maxAttempts: 0}\n", "handler.maxAttempts 0: want 1 to 100"},
		{"too many attempts", minimal + "handler: {maxAttempts: 1000}\n", "handler.maxAttempts 1000"},
		{"zero backoff", minimal + "handler: {initialBackoff: 0s}\n", "handler.initialBackoff must be positive"},
		{"max below initial backoff", minimal + "handler: {initialBackoff: 2s, maxBackoff: 1s}\n", "handler.maxBackoff (1s) must not be below"},
		{"retries outlast max.poll.interval", minimal + "handler: {maxAttempts: 40, maxBackoff: 20s}\n", "not below max.poll.interval.ms (5m0s)"},
		{"retries outlast custom max.poll.interval", with("groupId: g", "groupId: g\n  properties: {max.poll.interval.ms: 1000}"), "not below max.poll.interval.ms (1s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

// TestEveryProblemReported: an operator fixing a config sees all problems in one run.
func TestEveryProblemReported(t *testing.T) {
	_, err := Parse([]byte("log: {level: x}\nhandler: {maxAttempts: 0}\n"))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"log.level", "kafka.bootstrapServers", "kafka.groupId", "kafka.topics", "registry.url", "handler.maxAttempts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s:\n%v", want, err)
		}
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	_, err := Load("/nonexistent/consumer.yaml")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/consumer.yaml") {
		t.Fatalf("Load = %v", err)
	}
}

func TestBackoff(t *testing.T) {
	h := Handler{MaxAttempts: 6, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	var got []time.Duration
	for n := 1; n < h.MaxAttempts; n++ {
		got = append(got, h.Backoff(n))
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("backoffs %v, want %v", got, want)
	}
	if h.WorstCaseBackoff() != 2500*time.Millisecond {
		t.Fatalf("worst case %v", h.WorstCaseBackoff())
	}
}
