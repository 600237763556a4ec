package route

import (
	"errors"
	"strings"
)

// ValidateFilter applies the MQTT 5 topic filter rules (section 4.7).
func ValidateFilter(f string) error {
	if f == "" {
		return errors.New("empty topic filter")
	}
	if len(f) > 65535 {
		return errors.New("topic filter longer than 65535 bytes")
	}
	if strings.ContainsRune(f, 0) {
		return errors.New("topic filter contains NUL")
	}
	if strings.HasPrefix(f, "$share/") || strings.HasPrefix(f, "$queue/") {
		return errors.New("shared-subscription filters do not apply to message.publish")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return errors.New("# must be the last level")
		case l != "#" && strings.Contains(l, "#"):
			return errors.New("# must occupy a whole level")
		case l != "+" && strings.Contains(l, "+"):
			return errors.New("+ must occupy a whole level")
		}
	}
	return nil
}

// MatchFilter reports whether topic matches the filter split into levels, following MQTT:
// + matches one level, # matches the rest (including the parent level), and wildcards in the
// first level do not match topics starting with $.
func MatchFilter(levels []string, topic string) bool {
	if strings.HasPrefix(topic, "$") && len(levels) > 0 && (levels[0] == "+" || levels[0] == "#") {
		return false
	}
	for i, l := range levels {
		if l == "#" {
			return true
		}
		level, rest, more := strings.Cut(topic, "/")
		if l != "+" && l != level {
			return false
		}
		if !more {
			// Topic ended: matches if the filter ends here too, or continues only with #.
			return i == len(levels)-1 || (i == len(levels)-2 && levels[i+1] == "#")
		}
		topic = rest
	}
	return false
}

// Covers reports whether every topic that matches filter also matches scope, both valid
// MQTT topic filters: e.g. "vehicles/#" covers "vehicles/+/telemetry", "vehicles/+" does not
// cover "vehicles/#".
func Covers(scope, filter string) bool {
	s, f := strings.Split(scope, "/"), strings.Split(filter, "/")
	for i, fl := range f {
		if i >= len(s) {
			return false
		}
		sl := s[i]
		switch {
		case sl == "#":
			// A wildcard first level never matches topics starting with $; a literal $ level
			// in filter would.
			return i > 0 || !strings.HasPrefix(fl, "$")
		case fl == "#":
			return false
		case sl == "+":
			if i == 0 && strings.HasPrefix(fl, "$") {
				return false
			}
		case sl != fl:
			return false
		}
	}
	// filter ended; scope matches those topics only if it ends too or continues with a
	// final # (which also matches the parent level).
	return len(s) == len(f) || (len(s) == len(f)+1 && s[len(s)-1] == "#")
}
