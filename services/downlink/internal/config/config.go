// Package config loads and validates the downlink's YAML configuration.
package config

import (
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/iov-platform/iov/kit/kafkagroup"
	"github.com/iov-platform/iov/kit/svcconfig"
	"github.com/iov-platform/iov/services/downlink/internal/command"
)

// Default is the embedded configuration used when no --config is given: every address on
// loopback, matching the dev stack that `make demo` starts.
//
//go:embed default.yaml
var Default []byte

// Config is the whole downlink configuration. YAML keys are camelCase.
type Config struct {
	HTTP     svcconfig.HTTP     `yaml:"http"`
	Log      svcconfig.Log      `yaml:"log"`
	Kafka    Kafka              `yaml:"kafka"`
	Registry Registry           `yaml:"registry"`
	MQTT     MQTT               `yaml:"mqtt"`
	Shutdown svcconfig.Shutdown `yaml:"shutdown"`
}

// Kafka configures the consumer group on the commands topic and the producer of status
// events and dead letters.
type Kafka struct {
	BootstrapServers string `yaml:"bootstrapServers"`
	GroupID          string `yaml:"groupId"`
	CommandsTopic    string `yaml:"commandsTopic"`
	StatusTopic      string `yaml:"statusTopic"`
	DeadLetterTopic  string `yaml:"deadLetterTopic"`
	// Properties are extra librdkafka settings given to both the consumer and the producer
	// (security.protocol, sasl.*, session.timeout.ms, ...). Settings the delivery guarantees
	// depend on cannot be changed.
	Properties map[string]string `yaml:"properties"`
	// PropertyFiles are librdkafka settings whose values are read from files at start
	// (setting -> file), e.g. sasl.password from a mounted KafkaUser Secret.
	PropertyFiles map[string]string `yaml:"propertyFiles"`
}

// Registry is the Confluent-compatible schema registry.
type Registry struct {
	svcconfig.Registry `yaml:",inline"`
	// AutoRegister registers the CommandStatus schema under <statusTopic>-value at start;
	// false requires it to be registered already (a locked-down registry).
	AutoRegister bool `yaml:"autoRegister"`
}

// MQTT configures the MQTT 5 client that publishes commands to EMQX.
type MQTT struct {
	// BrokerURL is mqtt://host:port, tls://host:port (also mqtts, ssl), ws:// or wss://.
	BrokerURL string `yaml:"brokerUrl"`
	// ClientID may reference environment variables as ${VAR} or ${VAR:-default}, e.g.
	// iov-downlink-${POD_NAME}: every replica needs its own id, or EMQX keeps kicking one
	// out for the other. A variable that is unset and has no default is an error.
	ClientID string `yaml:"clientId"`
	// Username is overridden by MQTT_USERNAME; the password comes from MQTT_PASSWORD only.
	Username string `yaml:"username"`
	Password string `yaml:"-"`
	// CommandTopic and ResponseTopic are topic templates with {vehicle_id} and {command_id}.
	CommandTopic  string `yaml:"commandTopic"`
	ResponseTopic string `yaml:"responseTopic"`
	// PublishTimeout bounds the wait for EMQX's PUBACK of one publish attempt.
	PublishTimeout time.Duration `yaml:"publishTimeout"`
	KeepAlive      time.Duration `yaml:"keepAlive"`
	ConnectTimeout time.Duration `yaml:"connectTimeout"`
	// Retry spaces publish attempts (and MQTT reconnects) after failures.
	Retry Retry `yaml:"retry"`
	TLS   TLS   `yaml:"tls"`
}

// Retry is an exponential backoff.
type Retry struct {
	InitialBackoff time.Duration `yaml:"initialBackoff"`
	MaxBackoff     time.Duration `yaml:"maxBackoff"`
}

// Backoff is the wait after failed attempt n (1-based): InitialBackoff doubling up to
// MaxBackoff.
func (r Retry) Backoff(n int) time.Duration {
	return svcconfig.Backoff(r.InitialBackoff, r.MaxBackoff, n)
}

// TLS applies to tls:// and wss:// broker URLs. Empty files use the system roots and no
// client certificate.
type TLS struct {
	CAFile             string `yaml:"caFile"`
	CertFile           string `yaml:"certFile"`
	KeyFile            string `yaml:"keyFile"`
	ServerName         string `yaml:"serverName"`
	InsecureSkipVerify bool   `yaml:"insecureSkipVerify"` // tests only
}

// Load reads path (or the embedded default when path is empty), applies defaults and
// environment overrides, and validates.
func Load(path string) (*Config, error) { return svcconfig.Load(path, Default, Parse) }

// Parse decodes YAML strictly (unknown keys are errors), applies defaults and the
// environment, and validates; YAML and validation problems are reported together. An empty
// file is an empty document.
func Parse(data []byte) (*Config, error) {
	cfg := defaults()
	if err := svcconfig.Parse(data, cfg, (*Config).finish); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) finish() error {
	envErr := c.applyEnv()
	fileErr := svcconfig.ApplyPropertyFiles("kafka", &c.Kafka.Properties, c.Kafka.PropertyFiles)
	return errors.Join(envErr, fileErr, c.Validate())
}

// EnvOnly lists the settings read only from the environment, for --check-config.
func (c *Config) EnvOnly() []svcconfig.EnvOnly {
	return append(c.Registry.EnvOnly(), svcconfig.EnvOnly{Key: "mqtt.password", Env: "MQTT_PASSWORD", Value: c.MQTT.Password, Secret: true})
}

func defaults() *Config {
	return &Config{
		HTTP: svcconfig.HTTP{ListenAddress: ":8080"},
		Log:  svcconfig.Log{Level: "info", Format: "json"},
		Kafka: Kafka{
			GroupID:         "iov-downlink",
			CommandsTopic:   "iov.vehicle.commands",
			StatusTopic:     "iov.vehicle.command-status",
			DeadLetterTopic: "iov.deadletter",
		},
		Registry: Registry{AutoRegister: true},
		MQTT: MQTT{
			CommandTopic:   "vehicles/{vehicle_id}/commands/{command_id}",
			ResponseTopic:  "vehicles/{vehicle_id}/commands/{command_id}/response",
			PublishTimeout: 10 * time.Second,
			KeepAlive:      30 * time.Second,
			ConnectTimeout: 10 * time.Second,
			Retry:          Retry{InitialBackoff: 200 * time.Millisecond, MaxBackoff: 10 * time.Second},
		},
		Shutdown: svcconfig.Shutdown{DrainTimeout: 20 * time.Second},
	}
}

// applyEnv lets deployments override addresses and inject secrets without editing YAML, and
// expands the client id.
func (c *Config) applyEnv() error {
	for env, field := range map[string]*string{
		"DOWNLINK_KAFKA_BOOTSTRAP_SERVERS": &c.Kafka.BootstrapServers,
		"DOWNLINK_REGISTRY_URL":            &c.Registry.URL,
		"DOWNLINK_MQTT_BROKER_URL":         &c.MQTT.BrokerURL,
		"MQTT_USERNAME":                    &c.MQTT.Username,
	} {
		if v := os.Getenv(env); v != "" {
			*field = v
		}
	}
	c.Registry.CredentialsFromEnv()
	c.MQTT.Password = os.Getenv("MQTT_PASSWORD")
	id, err := ExpandEnv(c.MQTT.ClientID, os.LookupEnv)
	if err != nil {
		return fmt.Errorf("mqtt.clientId %q: %w", c.MQTT.ClientID, err)
	}
	c.MQTT.ClientID = id
	return nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// ExpandEnv replaces ${VAR} and ${VAR:-default} in s. An unset (or empty) variable takes its
// default; one without a default is an error, so that replicas never share an id by accident.
func ExpandEnv(s string, lookup func(string) (string, bool)) (string, error) {
	var errs []error
	out := envRef.ReplaceAllStringFunc(s, func(ref string) string {
		m := envRef.FindStringSubmatch(ref)
		if v, ok := lookup(m[1]); ok && v != "" {
			return v
		}
		if m[2] != "" {
			return m[3]
		}
		errs = append(errs, fmt.Errorf("environment variable %s is not set", m[1]))
		return ""
	})
	return out, errors.Join(errs...)
}

// ConsumerProtected are librdkafka consumer settings the downlink owns (kafkagroup's, which
// the engine always applies): with any other value a command could be committed before it
// was handled.
var ConsumerProtected = kafkagroup.Protected

// ProducerProtected are librdkafka producer settings the downlink owns: status events must
// be written once each, in order.
var ProducerProtected = map[string]string{
	"acks":               "all",
	"enable.idempotence": "true",
	"partitioner":        "murmur2_random",
}

// properties are the rules for kafka.properties.
var properties = svcconfig.Properties{
	Service: "the downlink",
	Owned:   svcconfig.GroupOwned,
	Protected: []svcconfig.Protected{
		{Settings: ConsumerProtected, Because: "offsets are stored only after a command is handled"},
		{Settings: ProducerProtected, Because: "status events once each, on the vehicle's partition"},
	},
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	errs := []error{c.HTTP.Validate(), c.Log.Validate()} // nil ones are dropped by errors.Join
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	k := c.Kafka
	if strings.TrimSpace(k.BootstrapServers) == "" {
		add("kafka.bootstrapServers is required")
	}
	if strings.TrimSpace(k.GroupID) == "" {
		add("kafka.groupId is required")
	}
	seen := map[string]string{}
	for _, t := range []struct{ name, topic string }{
		{"kafka.commandsTopic", k.CommandsTopic}, {"kafka.statusTopic", k.StatusTopic}, {"kafka.deadLetterTopic", k.DeadLetterTopic},
	} {
		switch {
		case t.topic == "":
			add("%s is required", t.name)
		case !svcconfig.ValidTopic(t.topic):
			add("%s %q: not a valid Kafka topic name", t.name, t.topic)
		case seen[t.topic] != "":
			add("%s %q: same topic as %s", t.name, t.topic, seen[t.topic])
		default:
			seen[t.topic] = t.name
		}
	}
	errs = append(errs, properties.Check(k.Properties), c.Registry.Validate())

	m := c.MQTT
	if _, err := m.URL(); err != nil {
		add("mqtt.brokerUrl: %v", err)
	}
	if strings.TrimSpace(m.ClientID) == "" {
		add("mqtt.clientId is required")
	} else if len(m.ClientID) > 65535 || strings.ContainsRune(m.ClientID, 0) {
		add("mqtt.clientId %q: not a valid MQTT client id", m.ClientID)
	}
	cmdT, err := command.ParseTemplate(m.CommandTopic)
	if err != nil {
		add("mqtt.commandTopic %q: %v", m.CommandTopic, err)
	}
	respT, err2 := command.ParseTemplate(m.ResponseTopic)
	if err2 != nil {
		add("mqtt.responseTopic %q: %v", m.ResponseTopic, err2)
	}
	if err == nil && err2 == nil && cmdT.Filter() == respT.Filter() {
		add("mqtt.responseTopic must differ from mqtt.commandTopic (vehicles would receive their own responses as commands)")
	}
	if m.PublishTimeout <= 0 {
		add("mqtt.publishTimeout must be positive")
	}
	if m.KeepAlive < time.Second || m.KeepAlive > 65535*time.Second {
		add("mqtt.keepAlive %s: want 1s to 65535s (MQTT keep alive is whole seconds)", m.KeepAlive)
	}
	if m.ConnectTimeout <= 0 {
		add("mqtt.connectTimeout must be positive")
	}
	if m.Retry.InitialBackoff <= 0 {
		add("mqtt.retry.initialBackoff must be positive")
	}
	if m.Retry.MaxBackoff < m.Retry.InitialBackoff {
		add("mqtt.retry.maxBackoff (%s) must not be below mqtt.retry.initialBackoff (%s)", m.Retry.MaxBackoff, m.Retry.InitialBackoff)
	}
	if (m.TLS.CertFile == "") != (m.TLS.KeyFile == "") {
		add("mqtt.tls: certFile and keyFile go together")
	}
	if m.TLS != (TLS{}) {
		if u, err := m.URL(); err == nil && !secure(u) {
			add("mqtt.tls is set but mqtt.brokerUrl %q is not tls://, mqtts://, ssl:// or wss://", m.BrokerURL)
		}
		if _, err := m.TLSConfig(); err != nil {
			add("mqtt.tls: %v", err)
		}
	}

	errs = append(errs, c.Shutdown.Validate())
	return errors.Join(errs...)
}

// URL parses BrokerURL and checks its scheme and host.
func (m MQTT) URL() (*url.URL, error) {
	u, err := url.Parse(m.BrokerURL)
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(u.Scheme) {
	case "mqtt", "tcp", "tls", "mqtts", "ssl", "ws", "wss":
	default:
		return nil, fmt.Errorf("%q: want mqtt://, tls:// (mqtts://, ssl://), ws:// or wss://", m.BrokerURL)
	}
	if u.Hostname() == "" || u.Port() == "" {
		return nil, fmt.Errorf("%q: want scheme://host:port", m.BrokerURL)
	}
	return u, nil
}

func secure(u *url.URL) bool {
	switch strings.ToLower(u.Scheme) {
	case "tls", "mqtts", "ssl", "wss":
		return true
	}
	return false
}

// TLSConfig builds the client TLS settings (nil for plain-text URLs with no tls section).
func (m MQTT) TLSConfig() (*tls.Config, error) {
	u, err := m.URL()
	if err != nil {
		return nil, err
	}
	if !secure(u) && m.TLS == (TLS{}) {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: m.TLS.ServerName, InsecureSkipVerify: m.TLS.InsecureSkipVerify} //nolint:gosec // opt-in, tests only
	if m.TLS.CAFile != "" {
		pem, err := os.ReadFile(m.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("caFile %s: no PEM certificate", m.TLS.CAFile)
		}
		cfg.RootCAs = pool
	}
	if m.TLS.CertFile != "" && m.TLS.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(m.TLS.CertFile, m.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
