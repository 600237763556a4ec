// Package config loads and validates the sample consumer's YAML configuration.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Default is the embedded configuration used when no --config is given: every address on
// loopback, matching the dev stack that `make demo` starts.
//
//go:embed default.yaml
var Default []byte

// Config is the whole consumer configuration. YAML keys are camelCase.
type Config struct {
	HTTP     HTTP     `yaml:"http"`
	Log      Log      `yaml:"log"`
	Kafka    Kafka    `yaml:"kafka"`
	Registry Registry `yaml:"registry"`
	Handler  Handler  `yaml:"handler"`
}

// HTTP serves /metrics, /healthz and /ready.
type HTTP struct {
	ListenAddress string `yaml:"listenAddress"`
}

// Log sets slog's level and handler.
type Log struct {
	Level  string `yaml:"level"`  // debug|info|warn|error
	Format string `yaml:"format"` // json|text
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
	// DeadLetterTopic receives a copy of every record that cannot be decoded (or that the
	// handler rejected maxAttempts times) before its offset is committed. Empty: such a record
	// stops the consumer instead.
	DeadLetterTopic string `yaml:"deadLetterTopic"`
}

// Registry is the Confluent-compatible schema registry.
type Registry struct {
	URL string `yaml:"url"`
	// Username and Password come from REGISTRY_USERNAME / REGISTRY_PASSWORD, never from YAML.
	Username string `yaml:"-"`
	Password string `yaml:"-"`
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
func Load(path string) (*Config, error) {
	data := Default
	name := "(embedded default)"
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		name = path
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	return cfg, nil
}

// Parse decodes YAML strictly (unknown keys are errors), applies defaults and the
// environment, and validates.
func Parse(data []byte) (*Config, error) {
	cfg := defaults()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return nil, fmt.Errorf("parse yaml: %w", err)
	}
	cfg.applyEnv()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func defaults() *Config {
	return &Config{
		HTTP:    HTTP{ListenAddress: ":8080"},
		Log:     Log{Level: "info", Format: "json"},
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
	c.Registry.Username = os.Getenv("REGISTRY_USERNAME")
	c.Registry.Password = os.Getenv("REGISTRY_PASSWORD")
}

// Protected are librdkafka settings the consumer owns: with any other value a record could
// be committed before it was handled.
var Protected = map[string]string{
	"enable.auto.commit":       "true",
	"enable.auto.offset.store": "false",
}

// owned are settings with a dedicated config field.
var owned = map[string]string{
	"bootstrap.servers": "kafka.bootstrapServers",
	"group.id":          "kafka.groupId",
}

// MaxAttempts bounds handler.maxAttempts.
const MaxAttempts = 100

// DefaultMaxPollInterval is librdkafka's max.poll.interval.ms default.
const DefaultMaxPollInterval = 300 * time.Second

var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func validTopic(t string) bool { return topicName.MatchString(t) && t != "." && t != ".." }

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, _, err := net.SplitHostPort(c.HTTP.ListenAddress); err != nil {
		add("http.listenAddress %q: %v", c.HTTP.ListenAddress, err)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level %q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		add("log.format %q: want json or text", c.Log.Format)
	}

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
		case !validTopic(t):
			add("kafka.topics[%d] %q: not a valid Kafka topic name", i, t)
		case seen[t]:
			add("kafka.topics[%d] %q: listed twice", i, t)
		}
		seen[t] = true
	}
	if d := c.Kafka.DeadLetterTopic; d != "" {
		if !validTopic(d) {
			add("kafka.deadLetterTopic %q: not a valid Kafka topic name", d)
		}
		if seen[d] {
			add("kafka.deadLetterTopic %q: must not be one of kafka.topics (dead letters would be consumed again)", d)
		}
	}
	for k, v := range c.Kafka.Properties {
		if field, ok := owned[k]; ok {
			add("kafka.properties.%s: set %s instead", k, field)
		}
		if want, ok := Protected[k]; ok && !strings.EqualFold(v, want) {
			add("kafka.properties.%s=%s: the consumer requires %s (offsets are stored only after the handler succeeded)", k, v, want)
		}
		if strings.HasPrefix(k, "go.") {
			add("kafka.properties.%s: Go client settings are managed by the consumer", k)
		}
	}

	if c.Registry.URL == "" {
		add("registry.url is required")
	} else if !strings.HasPrefix(c.Registry.URL, "http://") && !strings.HasPrefix(c.Registry.URL, "https://") {
		add("registry.url %q: want an http:// or https:// URL", c.Registry.URL)
	}

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
	d := h.InitialBackoff
	for i := 1; i < n && d < h.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, h.MaxBackoff)
}

// WorstCaseBackoff is the total wait of a record that fails every attempt.
func (h Handler) WorstCaseBackoff() time.Duration {
	var total time.Duration
	for n := 1; n < h.MaxAttempts; n++ {
		total += h.Backoff(n)
	}
	return total
}
