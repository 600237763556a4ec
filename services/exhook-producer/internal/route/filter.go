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
