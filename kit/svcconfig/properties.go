package svcconfig

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// GroupOwned are the librdkafka settings a consumer group's kafka section has fields for:
// setting -> the field to use instead.
var GroupOwned = map[string]string{
	"bootstrap.servers": "kafka.bootstrapServers",
	"group.id":          "kafka.groupId",
}

// Aliases are librdkafka's alternative names of one setting (CONFIGURATION.md: "alias
// for"), alias -> name. Rules are written with the names; an alias is checked as its name,
// so that it cannot slip a refused value past them.
var Aliases = map[string]string{
	"metadata.broker.list":     "bootstrap.servers",
	"request.required.acks":    "acks",
	"max.in.flight":            "max.in.flight.requests.per.connection",
	"message.send.max.retries": "retries",
	"delivery.timeout.ms":      "message.timeout.ms",
	"queue.buffering.max.ms":   "linger.ms",
}

// Canonical is the name of setting key (itself unless it is an alias).
func Canonical(key string) string {
	if name, ok := Aliases[key]; ok {
		return name
	}
	return key
}

// Properties are the rules for a kafka.properties section (extra librdkafka settings).
// go.* settings, the Go client's, are always refused: the service manages them.
type Properties struct {
	// Service names who keeps the settings, in messages: "the consumer".
	Service string
	// Owned settings are refused: setting -> the config field to use instead.
	Owned map[string]string
	// Protected settings may only be set to the value the service requires.
	Protected []Protected
	// Refused settings may not be set at all: setting -> why.
	Refused map[string]string
	// Bounds limit numeric settings.
	Bounds []Bound
}

// Protected settings may only take one value each.
type Protected struct {
	Settings map[string]string // setting -> the values allowed, "|"-separated, compared ignoring case
	Because  string            // what the value guarantees, in messages
}

// Bound limits an integer setting to Min..Max, or to 0 when ZeroOK.
type Bound struct {
	Setting  string
	Min, Max int64
	ZeroOK   bool
	Because  string
}

func (b Bound) check(v string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return fmt.Errorf("want an integer")
	}
	if n == 0 && b.ZeroOK {
		return nil
	}
	if n < b.Min || n > b.Max {
		want := fmt.Sprintf("%d..%d", b.Min, b.Max)
		if b.ZeroOK {
			want += " (or 0)"
		}
		return fmt.Errorf("want %s (%s)", want, b.Because)
	}
	return nil
}

// Check reports every setting of props the rules refuse.
func (r Properties) Check(props map[string]string) error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for _, key := range sortedKeys(props) {
		v := props[key]
		name := Canonical(key)
		shown := key
		if name != key {
			shown = fmt.Sprintf("%s (alias of %s)", key, name)
		}
		if field, ok := r.Owned[name]; ok {
			add("kafka.properties.%s: set %s instead", shown, field)
		}
		for _, p := range r.Protected {
			if want, ok := p.Settings[name]; ok && !slices.ContainsFunc(strings.Split(want, "|"), func(w string) bool { return strings.EqualFold(strings.TrimSpace(v), w) }) {
				add("kafka.properties.%s=%s: %s requires %s (%s)", shown, v, r.Service, strings.ReplaceAll(want, "|", " or "), p.Because)
			}
		}
		if why, ok := r.Refused[name]; ok {
			add("kafka.properties.%s: may not be set: %s", shown, why)
		}
		for _, b := range r.Bounds {
			if b.Setting == name {
				if err := b.check(v); err != nil {
					add("kafka.properties.%s=%s: %w", shown, v, err)
				}
			}
		}
		if strings.HasPrefix(key, "go.") {
			add("kafka.properties.%s: Go client settings are managed by %s", key, r.Service)
		}
	}
	return errors.Join(errs...)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// MinMessageTimeoutMs is the shortest message.timeout.ms an ordered, at-least-once producer
// accepts: a shorter one fails records (losing what an async caller was told was accepted)
// during an ordinary broker restart or leader election.
const MinMessageTimeoutMs = 30000

// OrderedProducer are the rules for an idempotent, acks=all producer that keeps each key's
// records in order on the partition a Java client would pick (librdkafka CONFIGURATION.md,
// every setting that can weaken ordering, durability or idempotence). Add the service's own
// Owned settings and Service.
func OrderedProducer(service string, owned map[string]string) Properties {
	return Properties{
		Service: service,
		Owned:   owned,
		Protected: []Protected{
			{Settings: map[string]string{"acks": "all|-1"}, Because: "a record is acknowledged only once every in-sync replica has it"},
			{Settings: map[string]string{"enable.idempotence": "true"}, Because: "retries neither duplicate nor reorder records"},
			{Settings: map[string]string{"partitioner": "murmur2_random"}, Because: "a key's records go to one partition, the one a Java client picks"},
			{Settings: map[string]string{"queuing.strategy": "fifo"}, Because: "records are sent in the order they were produced"},
			{Settings: map[string]string{"delivery.report.only.error": "false"}, Because: "a waiting caller is told when its record is acknowledged"},
		},
		Refused: map[string]string{
			"retries":          "the producer retries until message.timeout.ms; fewer retries fail records early",
			"transactional.id": "the producer is idempotent, not transactional",
		},
		Bounds: []Bound{
			{Setting: "max.in.flight.requests.per.connection", Min: 1, Max: 5, Because: "more than 5 in-flight requests break idempotent ordering"},
			{Setting: "message.timeout.ms", Min: MinMessageTimeoutMs, Max: 1<<31 - 1, ZeroOK: true, Because: "a shorter timeout fails records during a broker restart; 0 waits forever"},
		},
	}
}
