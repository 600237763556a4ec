// Package command holds the downlink's pure logic: which commands are well formed, when one
// has expired, which MQTT topics it goes to, and the JSON payload a vehicle receives.
package command

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/iov-platform/iov/schemas"
)

// Placeholders of a topic template.
const (
	VehiclePlaceholder = "{vehicle_id}"
	CommandPlaceholder = "{command_id}"
)

// MaxIDLength bounds vehicle and command ids (bytes), so that a topic built from them stays
// far below MQTT's 65535-byte limit and EMQX's default max_topic_levels/length.
const MaxIDLength = 256

// maxTopicLength is MQTT's limit for a UTF-8 encoded topic name.
const maxTopicLength = 65535

// Template is an MQTT topic name with the placeholders {vehicle_id} and {command_id}, each
// filling one whole topic level, e.g. vehicles/{vehicle_id}/commands/{command_id}.
type Template struct {
	text    string
	levels  []string
	vehicle int // level index of {vehicle_id}
	command int // level index of {command_id}
}

// ParseTemplate checks an MQTT topic template: a valid topic name (no wildcards, no NUL, not a
// $-topic) in which {vehicle_id} and {command_id} each occupy exactly one whole level.
func ParseTemplate(s string) (Template, error) {
	t := Template{text: s, vehicle: -1, command: -1}
	switch {
	case s == "":
		return t, errors.New("empty topic template")
	case len(s) > maxTopicLength:
		return t, errors.New("topic template longer than 65535 bytes")
	case !utf8.ValidString(s):
		return t, errors.New("topic template is not valid UTF-8")
	case strings.ContainsRune(s, 0):
		return t, errors.New("topic template contains NUL")
	case strings.ContainsAny(s, "+#"):
		return t, errors.New("topic template contains a wildcard (+ or #): commands are published to topic names")
	case strings.HasPrefix(s, "$"):
		return t, errors.New("topic template starts with $ (reserved for broker topics)")
	}
	t.levels = strings.Split(s, "/")
	for i, l := range t.levels {
		switch {
		case l == VehiclePlaceholder && t.vehicle >= 0, l == CommandPlaceholder && t.command >= 0:
			return t, fmt.Errorf("%s appears more than once", l)
		case l == VehiclePlaceholder:
			t.vehicle = i
		case l == CommandPlaceholder:
			t.command = i
		case strings.ContainsAny(l, "{}"):
			return t, fmt.Errorf("level %q: only %s and %s are allowed, each as a whole level", l, VehiclePlaceholder, CommandPlaceholder)
		}
	}
	if t.vehicle < 0 || t.command < 0 {
		return t, fmt.Errorf("topic template must contain %s and %s", VehiclePlaceholder, CommandPlaceholder)
	}
	return t, nil
}

// MustTemplate is ParseTemplate for constants.
func MustTemplate(s string) Template {
	t, err := ParseTemplate(s)
	if err != nil {
		panic(err)
	}
	return t
}

// String returns the template text.
func (t Template) String() string { return t.text }

// Expand fills the placeholders. The ids must have passed ValidID.
func (t Template) Expand(vehicleID, commandID string) string {
	out := make([]string, len(t.levels))
	copy(out, t.levels)
	out[t.vehicle] = vehicleID
	out[t.command] = commandID
	return strings.Join(out, "/")
}

// Filter is the MQTT topic filter matching every expansion (placeholders become +): what the
// exhook producer's commands.topicFilter / responseFilter must be.
func (t Template) Filter() string {
	out := make([]string, len(t.levels))
	copy(out, t.levels)
	out[t.vehicle] = "+"
	out[t.command] = "+"
	return strings.Join(out, "/")
}

// VehicleLevel and CommandLevel are the 0-based levels of the ids: what the exhook
// producer's commands.vehicleSegment / commandSegment must be.
func (t Template) VehicleLevel() int { return t.vehicle }

// CommandLevel is the 0-based level of the command id.
func (t Template) CommandLevel() int { return t.command }

// InvalidError says why a decoded command cannot be sent. The record is dead-lettered.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return "invalid command: " + e.Reason }

func invalid(format string, a ...any) error { return &InvalidError{Reason: fmt.Sprintf(format, a...)} }

// ValidID checks a vehicle or command id for use as one MQTT topic level: not empty, at most
// MaxIDLength bytes of UTF-8, no level separator, wildcard or control character.
func ValidID(field, id string) error {
	switch {
	case id == "":
		return invalid("%s is empty", field)
	case len(id) > MaxIDLength:
		return invalid("%s is longer than %d bytes", field, MaxIDLength)
	case !utf8.ValidString(id):
		return invalid("%s is not valid UTF-8", field)
	case strings.ContainsAny(id, "/+#"):
		return invalid("%s %q contains an MQTT level separator or wildcard (/ + #)", field, id)
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return invalid("%s %q contains a control character", field, id)
	}
	return nil
}

// Validate checks a decoded command against the rules the downlink depends on. key is the
// Kafka record key; when set it must equal vehicle_id (the topic is keyed by vehicle, and
// status events are keyed by the same id so that they share the vehicle's partition).
func Validate(c *schemas.VehicleCommand, key []byte) error {
	var errs []error
	if err := ValidID("vehicle_id", c.VehicleID); err != nil {
		errs = append(errs, err)
	}
	if err := ValidID("command_id", c.CommandID); err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(c.Name) == "" {
		errs = append(errs, invalid("name is empty"))
	}
	if !c.ExpiresAt.After(c.IssuedAt) {
		errs = append(errs, invalid("expires_at %s is not after issued_at %s", stamp(c.ExpiresAt), stamp(c.IssuedAt)))
	}
	if len(key) > 0 && string(key) != c.VehicleID {
		errs = append(errs, invalid("record key %q differs from vehicle_id %q", key, c.VehicleID))
	}
	if len(errs) == 0 {
		return nil
	}
	reasons := make([]string, len(errs))
	for i, err := range errs {
		reasons[i] = err.(*InvalidError).Reason
	}
	return &InvalidError{Reason: strings.Join(reasons, "; ")}
}

// Expired reports whether a command may no longer be sent at now (now >= expires_at).
func Expired(c *schemas.VehicleCommand, now time.Time) bool { return !now.Before(c.ExpiresAt) }

// ExpiredReason is the CommandStatus reason of an EXPIRED command.
func ExpiredReason(c *schemas.VehicleCommand, now time.Time, while string) string {
	late := now.Sub(c.ExpiresAt)
	if late < 0 {
		late = 0
	}
	if while == "" {
		while = "before it could be sent"
	}
	return fmt.Sprintf("expired %s %s (expires_at %s)", roundLate(late), while, stamp(c.ExpiresAt))
}

func roundLate(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Millisecond)
	}
}

// MessageExpiry is the MQTT 5 Message Expiry Interval for a command sent at now: the seconds
// left until expires_at, rounded up (so the broker never drops it early), at least 1.
func MessageExpiry(c *schemas.VehicleCommand, now time.Time) uint32 {
	left := c.ExpiresAt.Sub(now)
	if left <= 0 {
		return 1
	}
	secs := math.Ceil(left.Seconds())
	if secs >= math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(secs)
}

// Payload is the JSON body of the MQTT command message.
type Payload struct {
	CommandID string            `json:"command_id"`
	Name      string            `json:"name"`
	Params    map[string]string `json:"params"`
	ExpiresAt string            `json:"expires_at"` // RFC 3339, UTC, milliseconds
}

// TimeFormat is how instants appear in payloads and reasons.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

func stamp(t time.Time) string { return t.UTC().Format(TimeFormat) }

// JSON renders the payload a vehicle receives for c.
func JSON(c *schemas.VehicleCommand) ([]byte, error) {
	params := c.Params
	if params == nil {
		params = map[string]string{}
	}
	return json.Marshal(Payload{CommandID: c.CommandID, Name: c.Name, Params: params, ExpiresAt: stamp(c.ExpiresAt)})
}
