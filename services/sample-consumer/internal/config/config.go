// Package config loads and validates the sample consumer's YAML configuration.
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/iov-platform/iov/kit/kafkagroup"
	"github.com/iov-platform/iov/kit/svcconfig"
)

// Default is the embedded configuration used when no --config is given: every address on
// loopback, matching the dev stack that `make demo` starts.
//
//go:embed default.yaml
var Default []byte

// Config is the whole consumer configuration. YAML keys are camelCase.
type Config struct {
	HTTP     svcconfig.HTTP     `yaml:"http"`
	Log      svcconfig.Log      `yaml:"log"`
	Kafka    Kafka              `yaml:"kafka"`
	Registry svcconfig.Registry `yaml:"registry"`
	Handler  Handler            `yaml:"handler"`
}

// Kafka configures the librdkafka consumer group.
type Kafka struct {
	BootstrapServers string `yaml:"bootstrapServers"`
	// GroupID has no default on purpose: two applications sharing a group id silently split
	// each other's partitions.
	GroupID string   `yaml:"groupId"`
	Topics  []string `yaml:"topics"`
	// Properties are extra librdkafka consumer settings (security.protocol, sasl.*,
	// session.timeout.ms, ...). Settings the delivery guarantee depends on cannot be changed.
	Properties map[string]string `yaml:"properties"`
	// PropertyFiles are librdkafka settings whose values are read from files at start
	// (setting -> file), e.g. sasl.password from a mounted KafkaUser Secret.
	PropertyFiles map[string]string `yaml:"propertyFiles"`
	// DeadLetterTopic receives a copy of every record that cannot be decoded (or that the
	// handler rejected maxAttempts times) before its offset is committed. Empty: such a record
	// stops the consumer instead.
	DeadLetterTopic string `yaml:"deadLetterTopic"`
}

// Handler bounds the retries of a failing handler.
type Handler struct {
	// MaxAttempts is how often a record is handed to the handler before the consumer gives
	// up on it (dead-letters it, or stops).
	MaxAttempts int `yaml:"maxAttempts"`
	// InitialBackoff is the wait after the first failure; it doubles up to MaxBackoff.
	InitialBackoff time.Duration `yaml:"initialBackoff"`
	MaxBackoff     time.Duration `yaml:"maxBackoff"`
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
	return errors.Join(fileErr, c.Validate())
}

// EnvOnly lists the settings read only from the environment, for --check-config.
func (c *Config) EnvOnly() []svcconfig.EnvOnly { return c.Registry.EnvOnly() }

func defaults() *Config {
	return &Config{
		HTTP:    svcconfig.HTTP{ListenAddress: ":8080"},
		Log:     svcconfig.Log{Level: "info", Format: "json"},
		Handler: Handler{MaxAttempts: 5, InitialBackoff: 200 * time.Millisecond, MaxBackoff: 10 * time.Second},
	}
}

// applyEnv lets deployments override addresses and inject secrets without editing YAML.
func (c *Config) applyEnv() {
	if v := os.Getenv("CONSUMER_KAFKA_BOOTSTRAP_SERVERS"); v != "" {
		c.Kafka.BootstrapServers = v
	}
	if v := os.Getenv("CONSUMER_REGISTRY_URL"); v != "" {
		c.Registry.URL = v
	}
	c.Registry.CredentialsFromEnv()
}

// Protected are librdkafka settings the consumer owns (kafkagroup's, which the engine always
// applies): with any other value a record could be committed before it was handled.
var Protected = kafkagroup.Protected

// properties are the rules for kafka.properties.
var properties = svcconfig.Properties{
	Service:   "the consumer",
	Owned:     svcconfig.GroupOwned,
	Protected: []svcconfig.Protected{{Settings: Protected, Because: "offsets are stored only after the handler succeeded"}},
}

// MaxAttempts bounds handler.maxAttempts.
const MaxAttempts = 100

// DefaultMaxPollInterval is librdkafka's max.poll.interval.ms default.
const DefaultMaxPollInterval = 300 * time.Second

// Validate reports every problem at once.
func (c *Config) Validate() error {
	errs := []error{c.HTTP.Validate(), c.Log.Validate()} // nil ones are dropped by errors.Join
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if strings.TrimSpace(c.Kafka.BootstrapServers) == "" {
		add("kafka.bootstrapServers is required")
	}
	if strings.TrimSpace(c.Kafka.GroupID) == "" {
		add("kafka.groupId is required (use one group id per application)")
	}
	if len(c.Kafka.Topics) == 0 {
		add("kafka.topics: at least one topic is required")
	}
	seen := map[string]bool{}
	for i, t := range c.Kafka.Topics {
		switch {
		case !svcconfig.ValidTopic(t):
			add("kafka.topics[%d] %q: not a valid Kafka topic name", i, t)
		case seen[t]:
			add("kafka.topics[%d] %q: listed twice", i, t)
		}
		seen[t] = true
	}
	if d := c.Kafka.DeadLetterTopic; d != "" {
		if !svcconfig.ValidTopic(d) {
			add("kafka.deadLetterTopic %q: not a valid Kafka topic name", d)
		}
		if seen[d] {
			add("kafka.deadLetterTopic %q: must not be one of kafka.topics (dead letters would be consumed again)", d)
		}
	}
	errs = append(errs, properties.Check(c.Kafka.Properties), c.Registry.Validate())

	h := c.Handler
	if h.MaxAttempts < 1 || h.MaxAttempts > MaxAttempts {
		add("handler.maxAttempts %d: want 1 to %d", h.MaxAttempts, MaxAttempts)
	}
	if h.InitialBackoff <= 0 {
		add("handler.initialBackoff must be positive")
	}
	if h.MaxBackoff < h.InitialBackoff {
		add("handler.maxBackoff (%s) must not be below handler.initialBackoff (%s)", h.MaxBackoff, h.InitialBackoff)
	}
	if h.MaxAttempts >= 1 && h.MaxAttempts <= MaxAttempts && h.InitialBackoff > 0 && h.MaxBackoff >= h.InitialBackoff {
		// The poll loop is blocked while a record is retried; past max.poll.interval.ms the
		// consumer is thrown out of its group.
		limit, err := c.maxPollInterval()
		if err != nil {
			add("%v", err)
		} else if worst := h.WorstCaseBackoff(); worst >= limit {
			add("handler: %d attempts back off up to %s in total, not below max.poll.interval.ms (%s); lower handler.maxAttempts or handler.maxBackoff", h.MaxAttempts, worst, limit)
		}
	}
	return errors.Join(errs...)
}

func (c *Config) maxPollInterval() (time.Duration, error) {
	v, ok := c.Kafka.Properties["max.poll.interval.ms"]
	if !ok {
		return DefaultMaxPollInterval, nil
	}
	ms, err := strconv.Atoi(v)
	if err != nil || ms <= 0 {
		return 0, fmt.Errorf("kafka.properties.max.poll.interval.ms %q: want a positive number of milliseconds", v)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// Backoff is the wait after failed attempt n (1-based): InitialBackoff doubling up to
// MaxBackoff.
func (h Handler) Backoff(n int) time.Duration {
	return svcconfig.Backoff(h.InitialBackoff, h.MaxBackoff, n)
}

// WorstCaseBackoff is the total wait of a record that fails every attempt.
func (h Handler) WorstCaseBackoff() time.Duration {
	var total time.Duration
	for n := 1; n < h.MaxAttempts; n++ {
		total += h.Backoff(n)
	}
	return total
}
