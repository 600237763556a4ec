package svcconfig

import (
	"errors"
	"fmt"
	"strings"
)

// GroupOwned are the librdkafka settings a consumer group's kafka section has fields for:
// setting -> the field to use instead.
var GroupOwned = map[string]string{
	"bootstrap.servers": "kafka.bootstrapServers",
	"group.id":          "kafka.groupId",
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
}

// Protected settings may only take one value each.
type Protected struct {
	Settings map[string]string // setting -> the value required, compared ignoring case
	Because  string            // what the value guarantees, in messages
}

// Check reports every setting of props the rules refuse.
func (r Properties) Check(props map[string]string) error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for key, v := range props {
		if field, ok := r.Owned[key]; ok {
			add("kafka.properties.%s: set %s instead", key, field)
		}
		for _, p := range r.Protected {
			if want, ok := p.Settings[key]; ok && !strings.EqualFold(v, want) {
				add("kafka.properties.%s=%s: %s requires %s (%s)", key, v, r.Service, want, p.Because)
			}
		}
		if strings.HasPrefix(key, "go.") {
			add("kafka.properties.%s: Go client settings are managed by %s", key, r.Service)
		}
	}
	return errors.Join(errs...)
}
