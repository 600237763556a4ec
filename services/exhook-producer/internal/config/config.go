// Package config loads and validates the exhook producer's YAML configuration.
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/iov-platform/iov/kit/svcconfig"
	"github.com/iov-platform/iov/services/exhook-producer/internal/route"
)

// Default is the embedded configuration used when no --config is given: every address on
// loopback, matching the dev stack that `make demo` starts.
//
//go:embed default.yaml
var Default []byte

// Config is the whole producer configuration. YAML keys are camelCase.
type Config struct {
	GRPC     GRPC               `yaml:"grpc"`
	HTTP     svcconfig.HTTP     `yaml:"http"`
	Log      svcconfig.Log      `yaml:"log"`
	Kafka    Kafka              `yaml:"kafka"`
	Registry Registry           `yaml:"registry"`
	Shutdown svcconfig.Shutdown `yaml:"shutdown"`
	Topics   Topics             `yaml:"topics"`
	Spool    Spool              `yaml:"spool"`
	Commands Commands           `yaml:"commands"`
	Hooks    Hooks              `yaml:"hooks"`
	Memory   Memory             `yaml:"memory"`
	Routes   []route.Config     `yaml:"routes"`
}

// Memory bounds the Go runtime's memory (runtime/debug.SetMemoryLimit): near the limit the
// GC runs more often instead of letting the heap grow to twice its live data (GOGC). It
// is a soft limit on Go's memory alone; librdkafka's C memory and the binary come on top.
// GOMEMLIMIT in the environment takes precedence over both settings.
type Memory struct {
	// LimitBytes is the limit; 0: LimitRatio of the container's (cgroup) memory limit.
	LimitBytes int64 `yaml:"limitBytes"`
	// LimitRatio is the share of the container's memory limit given to Go when LimitBytes
	// is 0; 0, or no container limit: no limit.
	LimitRatio float64 `yaml:"limitRatio"`
}

// MinMemoryLimit is the smallest memory.limitBytes accepted: below it the GC would run
// without pause.
const MinMemoryLimit = 32 << 20

func (m Memory) validate() error {
	var errs []error
	if m.LimitBytes != 0 && m.LimitBytes < MinMemoryLimit {
		errs = append(errs, fmt.Errorf("memory.limitBytes %d: want 0 (from the container limit) or at least %d", m.LimitBytes, MinMemoryLimit))
	}
	if m.LimitRatio < 0 || m.LimitRatio > 1 {
		errs = append(errs, fmt.Errorf("memory.limitRatio %v: want 0 (none) to 1", m.LimitRatio))
	}
	return errors.Join(errs...)
}

// Hooks is what the producer registers with EMQX in OnProviderLoaded.
type Hooks struct {
	// Scope lists the MQTT topic filters EMQX calls message.publish for. EMQX reads them
	// only when it loads the ExHook server (its start, enable or update), not when the
	// producer restarts, so keep the scope stable (e.g. vehicles/#) and let routes change
	// inside it: every route filter and commands.responseFilter must lie within the scope.
	// Empty: the route filters themselves (a route change then needs an EMQX reload).
	Scope []string `yaml:"scope"`
}

// GRPC is the HookProvider listener EMQX connects to.
type GRPC struct {
	ListenAddress string `yaml:"listenAddress"`
	// MaxPacketBytes is the largest MQTT packet EMQX accepts (its mqtt.max_packet_size,
	// at most 256 MB). The gRPC receive limit is the larger of it and
	// kafka.maxPayloadBytes plus RequestHeadroom, so that every message EMQX can send
	// reaches the handler and an oversize one takes the oversize path.
	MaxPacketBytes int `yaml:"maxPacketBytes"`
	// MaxConcurrentStreams bounds the hook calls in flight on one connection
	// (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS). The server refuses a stream over it
	// (REFUSED_STREAM): grpc-go clients wait for a free stream, but EMQX's gun (1.3 and 2.x)
	// ignores the limit, so for EMQX a refused stream is a failed hook call.
	MaxConcurrentStreams int `yaml:"maxConcurrentStreams"`
	// MaxRunningCalls bounds the hook calls one connection runs at once, by back-pressure
	// instead of refusal: a call over it waits unread in the connection (and EMQX) until
	// one of the connection's calls returns, so that a burst of calls does not cost a
	// goroutine and its stream's state per call (internal/callgate). 0: no bound (every
	// stream up to maxConcurrentStreams runs at once).
	MaxRunningCalls int `yaml:"maxRunningCalls"`
	// MaxConnections bounds the open connections; further ones wait to be accepted.
	MaxConnections int `yaml:"maxConnections"`
	// HandshakeTimeout bounds a new connection's TLS and HTTP/2 handshake: a client that
	// connects and sends nothing is closed after it.
	HandshakeTimeout time.Duration `yaml:"handshakeTimeout"`
	TLS              GRPCTLS       `yaml:"tls"`
}

// GRPCTLS serves the listener over TLS (certFile and keyFile set), mutual TLS when
// clientCAFile is set too. The files are re-read every reloadInterval.
type GRPCTLS struct {
	CertFile       string        `yaml:"certFile"`
	KeyFile        string        `yaml:"keyFile"`
	ClientCAFile   string        `yaml:"clientCAFile"`
	ReloadInterval time.Duration `yaml:"reloadInterval"`
}

// Enabled tells whether the listener serves TLS.
func (t GRPCTLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// RequestHeadroom is what a MessagePublishRequest carries besides the MQTT packet: client
// id, node, headers and the protobuf framing.
const RequestHeadroom = 256 << 10

// MaxEMQXPacketBytes is the MQTT ceiling for a packet, EMQX's largest mqtt.max_packet_size.
const MaxEMQXPacketBytes = 268435455

// MaxReceiveBytes is the gRPC server's receive limit.
func (c *Config) MaxReceiveBytes() int {
	return max(c.GRPC.MaxPacketBytes, c.Kafka.MaxPayloadBytes) + RequestHeadroom
}

func (g GRPC) validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if g.MaxPacketBytes <= 0 || g.MaxPacketBytes > MaxEMQXPacketBytes {
		add("grpc.maxPacketBytes %d: want 1..%d (EMQX's mqtt.max_packet_size)", g.MaxPacketBytes, MaxEMQXPacketBytes)
	}
	if g.MaxConcurrentStreams <= 0 {
		add("grpc.maxConcurrentStreams must be positive")
	}
	if g.MaxRunningCalls < 0 || g.MaxRunningCalls > g.MaxConcurrentStreams {
		add("grpc.maxRunningCalls %d: want 0 (no bound) to grpc.maxConcurrentStreams (%d)", g.MaxRunningCalls, g.MaxConcurrentStreams)
	}
	if g.MaxConnections <= 0 {
		add("grpc.maxConnections must be positive")
	}
	if g.HandshakeTimeout <= 0 {
		add("grpc.handshakeTimeout must be positive")
	}
	t := g.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		add("grpc.tls: certFile and keyFile go together")
	}
	if t.ClientCAFile != "" && !t.Enabled() {
		add("grpc.tls.clientCAFile needs certFile and keyFile (mutual TLS is TLS first)")
	}
	if t.ReloadInterval <= 0 {
		add("grpc.tls.reloadInterval must be positive")
	}
	return errors.Join(errs...)
}

// Kafka configures the librdkafka producer.
type Kafka struct {
	BootstrapServers string `yaml:"bootstrapServers"`
	ClientID         string `yaml:"clientId"`
	// MaxPayloadBytes is the largest MQTT payload forwarded. Besides, the whole record
	// (Avro envelope with the payload, key, headers) must fit message.max.bytes and, where
	// the producer could read it at start, the topic's max.message.bytes (minus 61 bytes of
	// batch header). Larger messages are refused (InvalidArgument) with a headers-only note
	// on the dead-letter topic.
	MaxPayloadBytes int `yaml:"maxPayloadBytes"`
	// SyncTimeout bounds a sync-mode wait when EMQX sent no deadline.
	SyncTimeout time.Duration `yaml:"syncTimeout"`
	// UnreachableAfter is how long no broker may answer before the producer counts as
	// unreachable (exhook_kafka_producer_state) and, unless every route is delivery: spool,
	// /ready turns 503.
	UnreachableAfter time.Duration `yaml:"unreachableAfter"`
	// Properties are extra librdkafka settings (security.protocol, sasl.*, linger.ms, ...).
	// Settings that would weaken ordering, durability or idempotence are refused
	// (svcconfig.OrderedProducer: acks, enable.idempotence, partitioner, queuing.strategy,
	// retries, max.in.flight above 5, message.timeout.ms below 30s, ..., and their aliases).
	Properties map[string]string `yaml:"properties"`
	// PropertyFiles are librdkafka settings whose values are read from files at start
	// (setting -> file), e.g. sasl.password from a mounted KafkaUser Secret.
	PropertyFiles map[string]string `yaml:"propertyFiles"`
}

// Registry is the Confluent-compatible schema registry.
type Registry struct {
	svcconfig.Registry `yaml:",inline"`
	AutoRegister       bool `yaml:"autoRegister"`
}

// Spool configures the durable delivery mode used by routes with delivery: spool.
type Spool struct {
	Dir      string `yaml:"dir"`      // on a persistent volume in production
	MaxBytes int64  `yaml:"maxBytes"` // size limit on disk
	WhenFull string `yaml:"whenFull"` // reject | block
	// SyncWait is how the committer waits for each group's fsync: release (the core runs
	// other calls meanwhile; the committer comes back through the run queue) or hold (a
	// helper thread syncs while the committer keeps the core for up to 1 ms: a shorter tail
	// on a disk that syncs well under that; Linux only). See the producer README, "Eleventh round".
	SyncWait string `yaml:"syncWait"`
}

// Commands tracks the downlink: EMQX's message.delivered / message.dropped for command topics
// and vehicles' responses become CommandStatus events.
type Commands struct {
	Enabled bool `yaml:"enabled"`
	// TopicFilter matches the MQTT topics the downlink publishes commands to.
	TopicFilter string `yaml:"topicFilter"`
	// ResponseFilter matches the MQTT topics vehicles publish command responses to.
	ResponseFilter string `yaml:"responseFilter"`
	// VehicleSegment and CommandSegment are the 0-based topic levels holding the vehicle
	// id and the command id, in both command and response topics.
	VehicleSegment int    `yaml:"vehicleSegment"`
	CommandSegment int    `yaml:"commandSegment"`
	StatusTopic    string `yaml:"statusTopic"`
}

func (c *Config) inScope(filter string) bool {
	for _, s := range c.Hooks.Scope {
		if route.Covers(s, filter) {
			return true
		}
	}
	return false
}

// Topics are the Kafka topics that are not per route.
type Topics struct {
	Status     string `yaml:"status"`
	DeadLetter string `yaml:"deadLetter"`
}

// Load reads path (or the embedded default when path is empty), applies defaults and
// environment overrides, and validates.
func Load(path string) (*Config, error) { return svcconfig.Load(path, Default, Parse) }

// Parse decodes YAML strictly (unknown keys are errors), applies defaults and the
// environment, and validates; YAML and validation problems are reported together.
func Parse(data []byte) (*Config, error) {
	cfg := defaults()
	if err := svcconfig.Parse(data, cfg, (*Config).finish); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) finish() error {
	c.applyEnv()
	fileErr := svcconfig.ApplyPropertyFiles("kafka", &c.Kafka.Properties, c.Kafka.PropertyFiles)
	for i := range c.Routes {
		c.Routes[i].ApplyDefaults()
	}
	return errors.Join(fileErr, c.Validate())
}

// EnvOnly lists the settings read only from the environment, for --check-config.
func (c *Config) EnvOnly() []svcconfig.EnvOnly { return c.Registry.EnvOnly() }

func defaults() *Config {
	return &Config{
		GRPC: GRPC{ListenAddress: ":9000", MaxPacketBytes: MaxEMQXPacketBytes, MaxConcurrentStreams: 1024, MaxRunningCalls: 64,
			MaxConnections: 1024, HandshakeTimeout: 10 * time.Second, TLS: GRPCTLS{ReloadInterval: 30 * time.Second}},
		HTTP:     svcconfig.HTTP{ListenAddress: ":8080"},
		Log:      svcconfig.Log{Level: "info", Format: "json"},
		Kafka:    Kafka{ClientID: "exhook-producer", SyncTimeout: 5 * time.Second, UnreachableAfter: 5 * time.Second, MaxPayloadBytes: 1000000},
		Registry: Registry{AutoRegister: true},
		Shutdown: svcconfig.Shutdown{DrainTimeout: 20 * time.Second},
		Topics:   Topics{Status: "iov.vehicle.status", DeadLetter: "iov.deadletter"},
		Spool:    Spool{MaxBytes: 1 << 30, WhenFull: "reject", SyncWait: "release"},
		Memory:   Memory{LimitRatio: 0.8},
		Commands: Commands{
			TopicFilter: "vehicles/+/commands/+", ResponseFilter: "vehicles/+/commands/+/response",
			VehicleSegment: 1, CommandSegment: 3, StatusTopic: "iov.vehicle.command-status",
		},
	}
}

// applyEnv lets deployments override addresses and inject secrets without editing YAML.
func (c *Config) applyEnv() {
	if v := os.Getenv("EXHOOK_KAFKA_BOOTSTRAP_SERVERS"); v != "" {
		c.Kafka.BootstrapServers = v
	}
	if v := os.Getenv("EXHOOK_REGISTRY_URL"); v != "" {
		c.Registry.URL = v
	}
	c.Registry.CredentialsFromEnv()
}

// DefaultMessageMaxBytes is librdkafka's message.max.bytes default.
const DefaultMessageMaxBytes = 1000000

// MessageMaxBytes is the producer's message.max.bytes: the largest record it takes.
func (k Kafka) MessageMaxBytes() (int, error) {
	v, ok := k.Properties["message.max.bytes"]
	if !ok {
		return DefaultMessageMaxBytes, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1000 || n > 1000000000 {
		return 0, fmt.Errorf("kafka.properties.message.max.bytes=%s: want 1000..1000000000", v)
	}
	return n, nil
}

// properties are the rules for kafka.properties: nothing may weaken the idempotent, acks=all,
// in-order-per-vehicle producer.
var properties = svcconfig.OrderedProducer("the producer", map[string]string{
	"bootstrap.servers": "kafka.bootstrapServers",
	"client.id":         "kafka.clientId",
})

// Validate reports every problem at once.
func (c *Config) Validate() error {
	// nil ones are dropped by errors.Join
	errs := []error{svcconfig.ListenAddress("grpc.listenAddress", c.GRPC.ListenAddress), c.GRPC.validate(), c.HTTP.Validate(), c.Log.Validate()}
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if strings.TrimSpace(c.Kafka.BootstrapServers) == "" {
		add("kafka.bootstrapServers is required")
	}
	if c.Kafka.MaxPayloadBytes <= 0 {
		add("kafka.maxPayloadBytes must be positive")
	}
	if c.Kafka.SyncTimeout <= 0 {
		add("kafka.syncTimeout must be positive")
	}
	if _, err := c.Kafka.MessageMaxBytes(); err != nil {
		errs = append(errs, err)
	}
	if c.Kafka.UnreachableAfter <= 0 {
		add("kafka.unreachableAfter must be positive")
	}
	errs = append(errs, properties.Check(c.Kafka.Properties), c.Registry.Validate(), c.Shutdown.Validate(), c.Memory.validate())
	if c.Topics.Status == "" {
		add("topics.status is required")
	}
	if c.Topics.DeadLetter == "" {
		add("topics.deadLetter is required")
	}
	usesSpool := false
	for _, r := range c.Routes {
		usesSpool = usesSpool || r.Delivery == route.Spool
	}
	if usesSpool && c.Spool.Dir == "" {
		add("spool.dir is required when a route uses delivery: spool")
	}
	if c.Spool.MaxBytes <= 0 {
		add("spool.maxBytes must be positive")
	}
	if c.Spool.WhenFull != "reject" && c.Spool.WhenFull != "block" {
		add("spool.whenFull %q: want reject or block", c.Spool.WhenFull)
	}
	if c.Spool.SyncWait != "release" && c.Spool.SyncWait != "hold" {
		add("spool.syncWait %q: want release or hold", c.Spool.SyncWait)
	}
	if c.Commands.Enabled {
		for name, f := range map[string]string{"commands.topicFilter": c.Commands.TopicFilter, "commands.responseFilter": c.Commands.ResponseFilter} {
			if err := route.ValidateFilter(f); err != nil {
				add("%s %q: %w", name, f, err)
			}
		}
		if c.Commands.VehicleSegment < 0 || c.Commands.CommandSegment < 0 || c.Commands.VehicleSegment == c.Commands.CommandSegment {
			add("commands: vehicleSegment and commandSegment must be distinct levels >= 0")
		}
		if c.Commands.StatusTopic == "" {
			add("commands.statusTopic is required")
		}
	}
	for i, f := range c.Hooks.Scope {
		if err := route.ValidateFilter(f); err != nil {
			add("hooks.scope[%d] %q: %w", i, f, err)
		}
	}
	if len(c.Hooks.Scope) > 0 {
		if c.Commands.Enabled && !c.inScope(c.Commands.ResponseFilter) {
			add("commands.responseFilter %q is outside hooks.scope %q: EMQX would never call the producer for it", c.Commands.ResponseFilter, c.Hooks.Scope)
		}
		for i, r := range c.Routes {
			if r.Filter != "" && !c.inScope(r.Filter) {
				add("routes[%d] (%s): filter %q is outside hooks.scope %q: EMQX would never call the producer for it", i, r.Name, r.Filter, c.Hooks.Scope)
			}
		}
	}
	if len(c.Routes) == 0 {
		add("routes: at least one route is required")
	}
	seen := map[string]bool{}
	for i, r := range c.Routes {
		var rerrs []error // every problem of a route says which route
		if err := r.Validate(); err != nil {
			rerrs = append(rerrs, err)
		}
		if seen[r.Name] {
			rerrs = append(rerrs, fmt.Errorf("duplicate route name %q", r.Name))
		}
		seen[r.Name] = true
		if r.KafkaTopic == c.Topics.DeadLetter || r.KafkaTopic == c.Topics.Status {
			rerrs = append(rerrs, fmt.Errorf("kafkaTopic %q is reserved for status or dead-letter records", r.KafkaTopic))
		}
		errs = append(errs, svcconfig.Prefix(fmt.Sprintf("routes[%d] %q", i, r.Name), errors.Join(rerrs...)))
	}
	return errors.Join(errs...)
}
