// Package route maps MQTT topics to Kafka topics: which route a PUBLISH belongs to, which
// vehicle it is keyed by, whether its payload decodes, and how it must be delivered.
package route

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/iov-platform/iov/kit/svcconfig"
)

// Key sources.
const (
	KeyTopicSegment = "topic-segment"
	KeyClientID     = "clientid"
)

// Payload formats.
const (
	PayloadJSON  = "json"
	PayloadBytes = "bytes"
)

// Mode is how a route delivers to Kafka before EMQX gets its reply.
type Mode string

// Delivery modes.
const (
	// Async replies as soon as the record is queued in the producer; failures after that
	// are counted and logged but EMQX has moved on.
	Async Mode = "async"
	// Sync replies after Kafka acknowledged the record (acks=all) or returns an error
	// within the request deadline.
	Sync Mode = "sync"
	// Spool replies after the record is durable in the local spool (fsync, group commit);
	// a shipper drains the spool to Kafka, surviving Kafka outages and restarts.
	Spool Mode = "spool"
)

// Config is one route as written in YAML.
type Config struct {
	Name       string    `yaml:"name"`
	Filter     string    `yaml:"filter"`
	KafkaTopic string    `yaml:"kafkaTopic"`
	Key        KeyConfig `yaml:"key"`
	Payload    string    `yaml:"payload"`
	Delivery   Mode      `yaml:"delivery"`
}

// KeyConfig says where the vehicle id comes from.
type KeyConfig struct {
	From    string `yaml:"from"`    // topic-segment | clientid
	Segment int    `yaml:"segment"` // 0-based topic level, with from=topic-segment
}

// ApplyDefaults fills optional fields.
func (c *Config) ApplyDefaults() {
	if c.Key.From == "" {
		c.Key.From = KeyClientID
	}
	if c.Payload == "" {
		c.Payload = PayloadBytes
	}
	if c.Delivery == "" {
		c.Delivery = Async
	}
}

// Validate checks one route and returns every problem, one per line, without the route's
// name: the caller says which route it is.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if err := ValidateFilter(c.Filter); err != nil {
		errs = append(errs, fmt.Errorf("filter: %w", err))
	}
	if err := validateKafkaTopic(c.KafkaTopic); err != nil {
		errs = append(errs, fmt.Errorf("kafkaTopic: %w", err))
	}
	switch c.Key.From {
	case KeyClientID:
	case KeyTopicSegment:
		levels := strings.Split(c.Filter, "/")
		switch {
		case c.Key.Segment < 0:
			errs = append(errs, fmt.Errorf("key.segment %d: must be >= 0", c.Key.Segment))
		case c.Key.Segment < len(levels) && levels[c.Key.Segment] == "#":
			errs = append(errs, fmt.Errorf("key.segment %d: falls on the multi-level wildcard # of %q", c.Key.Segment, c.Filter))
		case c.Key.Segment >= len(levels) && !strings.HasSuffix(c.Filter, "#"):
			errs = append(errs, fmt.Errorf("key.segment %d: filter %q has only %d levels", c.Key.Segment, c.Filter, len(levels)))
		}
	default:
		errs = append(errs, fmt.Errorf("key.from %q: want %s or %s", c.Key.From, KeyTopicSegment, KeyClientID))
	}
	switch c.Payload {
	case PayloadJSON, PayloadBytes:
	default:
		errs = append(errs, fmt.Errorf("payload %q: want %s or %s", c.Payload, PayloadJSON, PayloadBytes))
	}
	switch c.Delivery {
	case Async, Sync, Spool:
	default:
		errs = append(errs, fmt.Errorf("delivery %q: want %s, %s or %s", c.Delivery, Async, Sync, Spool))
	}
	return errors.Join(errs...)
}

// validateKafkaTopic applies Kafka's topic name rules.
func validateKafkaTopic(t string) error {
	if t == "" {
		return errors.New("required")
	}
	if len(t) > 249 || t == "." || t == ".." {
		return fmt.Errorf("%q is not a legal Kafka topic name", t)
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q: only [a-zA-Z0-9._-] are allowed", t)
		}
	}
	return nil
}

// Route is a compiled route.
type Route struct {
	Config
	levels []string
}

// Router finds the first route whose filter matches a topic.
type Router struct {
	routes []*Route
}

// New compiles validated route configs, in order: the first match wins.
func New(cfgs []Config) (*Router, error) {
	rt := &Router{}
	for _, c := range cfgs {
		if err := c.Validate(); err != nil {
			return nil, svcconfig.Prefix(fmt.Sprintf("route %q", c.Name), err)
		}
		rt.routes = append(rt.routes, &Route{Config: c, levels: strings.Split(c.Filter, "/")})
	}
	return rt, nil
}

// Routes returns the compiled routes in match order.
func (rt *Router) Routes() []*Route { return rt.routes }

// Uses reports whether any route delivers with mode m.
func (rt *Router) Uses(m Mode) bool {
	for _, r := range rt.routes {
		if r.Delivery == m {
			return true
		}
	}
	return false
}

// Filters returns the distinct MQTT filters, for registering message.publish with EMQX.
func (rt *Router) Filters() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range rt.routes {
		if !seen[r.Filter] {
			seen[r.Filter] = true
			out = append(out, r.Filter)
		}
	}
	return out
}

// Match returns the first route for topic, or nil.
func (rt *Router) Match(topic string) *Route {
	for _, r := range rt.routes {
		if MatchFilter(r.levels, topic) {
			return r
		}
	}
	return nil
}

// ErrNoVehicleID means the key source was empty for this message.
var ErrNoVehicleID = errors.New("no vehicle id")

// VehicleID extracts the record key for a message on topic from clientID.
func (r *Route) VehicleID(topic, clientID string) (string, error) {
	var id string
	if r.Key.From == KeyClientID {
		id = clientID
	} else {
		id = Level(topic, r.Key.Segment)
	}
	if id == "" {
		return "", fmt.Errorf("%w: key %s is empty for topic %q", ErrNoVehicleID, r.keySource(), topic)
	}
	return id, nil
}

func (r *Route) keySource() string {
	if r.Key.From == KeyClientID {
		return "clientid"
	}
	return fmt.Sprintf("topic segment %d", r.Key.Segment)
}

// ErrBadPayload wraps a payload that does not decode as the route's format.
var ErrBadPayload = errors.New("payload does not decode")

// jsonSyntax is what a JSON payload must be: what encoding/json's Valid accepts, so
// invalid UTF-8 and repeated object names pass as they always have (FuzzCheckPayloadJSON
// holds the two equal). jsontext (encoding/json/v2's, stable in Go 1.27) checks a 200-byte
// payload in a third of Valid's time.
var jsonSyntax = []jsontext.Options{jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true)}

// CheckPayload decodes the payload as the route's format.
func (r *Route) CheckPayload(p []byte) error {
	if r.Payload == PayloadJSON && !jsontext.Value(p).IsValid(jsonSyntax...) {
		return fmt.Errorf("%w as JSON (%d bytes)", ErrBadPayload, len(p))
	}
	return nil
}

// Level returns the 0-based level i of topic, or "" when topic has fewer levels.
func Level(topic string, i int) string {
	for ; i > 0; i-- {
		_, rest, ok := strings.Cut(topic, "/")
		if !ok {
			return ""
		}
		topic = rest
	}
	level, _, _ := strings.Cut(topic, "/")
	return level
}
