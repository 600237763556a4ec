// Package svcconfig holds what the services' YAML configurations share: strict loading,
// the sections every service has (ops HTTP listener, logging, schema registry, shutdown
// drain) and common checks (listen addresses, Kafka topic names, kafka.properties of a
// consumer group, exponential backoff). YAML keys and error messages are the services'
// existing ones.
package svcconfig

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Load reads path — or takes def, the embedded default, when path is empty — and parses it;
// every problem is one line naming the file.
func Load[T any](path string, def []byte, parse func([]byte) (T, error)) (T, error) {
	data := def
	name := "(embedded default)"
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			var zero T
			return zero, fmt.Errorf("read config: %w", err)
		}
		name = path
	}
	cfg, err := parse(data)
	if err != nil {
		return cfg, Prefix("config "+name, err)
	}
	return cfg, nil
}

// Decode decodes one YAML document into v strictly: unknown keys are errors. An empty
// document is an error wrapping io.EOF.
func Decode(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("parse yaml: %w", err)
	}
	return nil
}

// HTTP serves /metrics, /healthz and /ready.
type HTTP struct {
	ListenAddress string `yaml:"listenAddress"`
}

// Validate checks http.listenAddress.
func (h HTTP) Validate() error { return ListenAddress("http.listenAddress", h.ListenAddress) }

// ListenAddress checks a host:port listen address set at key.
func ListenAddress(key, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%s %q: %v", key, addr, err)
	}
	return nil
}

// Log sets slog's level and handler.
type Log struct {
	Level  string `yaml:"level"`  // debug|info|warn|error
	Format string `yaml:"format"` // json|text
}

// Validate checks log.level and log.format.
func (l Log) Validate() error {
	var errs []error
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level %q: want debug, info, warn or error", l.Level))
	}
	switch l.Format {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("log.format %q: want json or text", l.Format))
	}
	return errors.Join(errs...)
}

// Registry is the Confluent-compatible schema registry.
type Registry struct {
	URL string `yaml:"url"`
	// CAFile verifies an https registry (PEM bundle); empty: the system roots.
	CAFile string `yaml:"caFile"`
	// UsernameFile and PasswordFile hold basic-auth credentials (a mounted Secret), read at
	// each request.
	UsernameFile string `yaml:"usernameFile"`
	PasswordFile string `yaml:"passwordFile"`
	// Username and Password come from REGISTRY_USERNAME / REGISTRY_PASSWORD, never from YAML.
	Username string `yaml:"-"`
	Password string `yaml:"-"`
}

// CredentialsFromEnv sets Username and Password from REGISTRY_USERNAME and
// REGISTRY_PASSWORD.
func (r *Registry) CredentialsFromEnv() {
	r.Username = os.Getenv("REGISTRY_USERNAME")
	r.Password = os.Getenv("REGISTRY_PASSWORD")
}

// Validate checks registry.url, its CA and credential files.
func (r Registry) Validate() error {
	if r.URL == "" {
		return errors.Join(errors.New("registry.url is required"), r.validateAccess())
	}
	if !strings.HasPrefix(r.URL, "http://") && !strings.HasPrefix(r.URL, "https://") {
		return errors.Join(fmt.Errorf("registry.url %q: want an http:// or https:// URL", r.URL), r.validateAccess())
	}
	return r.validateAccess()
}

// Shutdown bounds the drain on SIGTERM.
type Shutdown struct {
	DrainTimeout time.Duration `yaml:"drainTimeout"`
}

// Validate checks shutdown.drainTimeout.
func (s Shutdown) Validate() error {
	if s.DrainTimeout <= 0 {
		return errors.New("shutdown.drainTimeout must be positive")
	}
	return nil
}

var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// ValidTopic tells whether t is a legal Kafka topic name.
func ValidTopic(t string) bool { return topicName.MatchString(t) && t != "." && t != ".." }

// Backoff is the wait after failed attempt n (1-based): initial doubling up to max.
func Backoff(initial, max time.Duration, n int) time.Duration {
	d := initial
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}
