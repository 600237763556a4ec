package config

import (
	"strings"
	"testing"
	"time"
)

func TestEmbeddedDefaultIsValid(t *testing.T) {
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.BootstrapServers != "127.0.0.1:9092" || len(cfg.Routes) != 3 || cfg.Shutdown.DrainTimeout != 20*time.Second {
		t.Fatalf("unexpected default: %+v", cfg)
	}
	if cfg.Routes[1].Delivery != "sync" {
		t.Fatalf("events route delivery = %s", cfg.Routes[1].Delivery)
	}
}

const minimal = `
kafka: {bootstrapServers: "k:9092"}
registry: {url: "http://r:8081"}
routes:
  - {name: t, filter: "v/+/t", kafkaTopic: tel}
`

// A route change inside the hook scope needs no EMQX reload; the scope is checked against
// every route filter and the command response filter.
func TestHookScope(t *testing.T) {
	cfg, err := Parse([]byte(minimal + "hooks: {scope: [\"vehicles/#\", \"v/+/t\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Hooks.Scope) != 2 {
		t.Fatalf("scope %q", cfg.Hooks.Scope)
	}
	def, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if len(def.Hooks.Scope) != 1 || def.Hooks.Scope[0] != "vehicles/#" {
		t.Fatalf("embedded default scope %q, want [vehicles/#]", def.Hooks.Scope)
	}
}

func TestDefaultsApplied(t *testing.T) {
	cfg, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Routes[0]
	if r.Key.From != "clientid" || r.Payload != "bytes" || r.Delivery != "async" {
		t.Fatalf("route defaults not applied: %+v", r)
	}
	if cfg.GRPC.ListenAddress != ":9000" || cfg.Topics.DeadLetter != "iov.deadletter" || !cfg.Registry.AutoRegister ||
		cfg.Memory.LimitRatio != 0.8 || cfg.Memory.LimitBytes != 0 {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Setenv("EXHOOK_KAFKA_BOOTSTRAP_SERVERS", "other:9093")
	t.Setenv("REGISTRY_USERNAME", "u")
	t.Setenv("REGISTRY_PASSWORD", "p")
	cfg, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.BootstrapServers != "other:9093" || cfg.Registry.Username != "u" || cfg.Registry.Password != "p" {
		t.Fatalf("env not applied: %+v", cfg)
	}
}

func TestInvalidConfigs(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", minimal + "\nbogus: 1\n", "field bogus not found"},
		{"no bootstrap", strings.Replace(minimal, `"k:9092"`, `""`, 1), "kafka.bootstrapServers is required"},
		{"bad registry url", strings.Replace(minimal, `http://r:8081`, `r:8081`, 1), "registry.url"},
		{"no routes", "kafka: {bootstrapServers: k}\nregistry: {url: 'http://r'}\n", "at least one route"},
		{"bad log level", minimal + "log: {level: loud}\n", "log.level"},
		{"bad listen", minimal + "grpc: {listenAddress: '9000'}\n", "grpc.listenAddress"},
		{"bad delivery", strings.Replace(minimal, "kafkaTopic: tel}", "kafkaTopic: tel, delivery: maybe}", 1), `delivery "maybe"`},
		{"duplicate route", minimal + `  - {name: t, filter: "v/+/u", kafkaTopic: tel2}` + "\n", "duplicate route name"},
		{"route on dead-letter topic", strings.Replace(minimal, "kafkaTopic: tel", "kafkaTopic: iov.deadletter", 1), "reserved"},
		{"negative drain", minimal + "shutdown: {drainTimeout: -1s}\n", "drainTimeout"},
		{"route outside hook scope", minimal + "hooks: {scope: [\"vehicles/#\"]}\n", `routes[0] (t): filter "v/+/t" is outside hooks.scope`},
		{"response filter outside hook scope", minimal + "hooks: {scope: [\"v/#\"]}\ncommands: {enabled: true}\n", "commands.responseFilter \"vehicles/+/commands/+/response\" is outside hooks.scope"},
		{"bad hook scope", minimal + "hooks: {scope: [\"v/#/x\"]}\n", "hooks.scope[0]"},
		{"memory limit too small", minimal + "memory: {limitBytes: 1000000}\n", "memory.limitBytes 1000000"},
		{"memory ratio above 1", minimal + "memory: {limitRatio: 1.5}\n", "memory.limitRatio 1.5"},
		{"bad spool sync wait", minimal + "spool: {syncWait: spin}\n", `spool.syncWait "spin": want release or hold`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.want != "" && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

// TestKafkaPropertiesThatWeakenDeliveryAreRejected: every librdkafka setting (and alias)
// that can weaken ordering, durability or idempotence is refused, with the reason.
func TestKafkaPropertiesThatWeakenDeliveryAreRejected(t *testing.T) {
	tests := []struct {
		key, value string
		want       string // "" = accepted
	}{
		{"linger.ms", "20", ""},
		{"security.protocol", "SASL_SSL", ""},
		{"acks", "all", ""},
		{"acks", "-1", ""},
		{"acks", "1", "kafka.properties.acks=1: the producer requires all or -1"},
		{"request.required.acks", "0", "kafka.properties.request.required.acks (alias of acks)=0"},
		{"enable.idempotence", "false", "kafka.properties.enable.idempotence=false: the producer requires true"},
		{"enable.idempotence", "TRUE", ""},
		{"partitioner", "random", "kafka.properties.partitioner=random: the producer requires murmur2_random"},
		{"partitioner", "consistent_random", "partitioner=consistent_random"},
		{"partitioner", "murmur2_random", ""},
		{"queuing.strategy", "lifo", "queuing.strategy=lifo: the producer requires fifo"},
		{"delivery.report.only.error", "true", "delivery.report.only.error=true"},
		{"retries", "3", "kafka.properties.retries: may not be set"},
		{"message.send.max.retries", "0", "message.send.max.retries (alias of retries): may not be set"},
		{"transactional.id", "t1", "transactional.id: may not be set"},
		{"max.in.flight.requests.per.connection", "5", ""},
		{"max.in.flight.requests.per.connection", "1", ""},
		{"max.in.flight.requests.per.connection", "6", "max.in.flight.requests.per.connection=6: want 1..5"},
		{"max.in.flight", "100", "max.in.flight (alias of max.in.flight.requests.per.connection)=100: want 1..5"},
		{"max.in.flight", "x", "want an integer"},
		{"message.timeout.ms", "300000", ""},
		{"message.timeout.ms", "30000", ""},
		{"message.timeout.ms", "0", ""},
		{"message.timeout.ms", "29999", "message.timeout.ms=29999: want 30000..2147483647 (or 0)"},
		{"delivery.timeout.ms", "1000", "delivery.timeout.ms (alias of message.timeout.ms)=1000"},
		{"bootstrap.servers", "x:1", "kafka.properties.bootstrap.servers: set kafka.bootstrapServers instead"},
		{"metadata.broker.list", "x:1", "set kafka.bootstrapServers instead"},
		{"client.id", "c", "kafka.properties.client.id: set kafka.clientId instead"},
		{"go.delivery.reports", "false", "Go client settings are managed by the producer"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			cfg, err := Parse([]byte(minimal))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Kafka.Properties = map[string]string{tt.key: tt.value}
			err = cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestEveryRefusedPropertyIsReportedAtOnce(t *testing.T) {
	yaml := strings.Replace(minimal, `kafka: {bootstrapServers: "k:9092"}`,
		`kafka: {bootstrapServers: "k:9092", properties: {partitioner: random, acks: "1", retries: "1"}}`, 1)
	_, err := Parse([]byte(yaml))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"partitioner=random", "acks=1", "retries: may not be set"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
