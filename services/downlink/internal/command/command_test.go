package command

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iov-platform/iov/schemas"
)

func TestParseTemplate(t *testing.T) {
	for _, tc := range []struct {
		in, err string
		filter  string
		v, c    int
	}{
		{in: "vehicles/{vehicle_id}/commands/{command_id}", filter: "vehicles/+/commands/+", v: 1, c: 3},
		{in: "vehicles/{vehicle_id}/commands/{command_id}/response", filter: "vehicles/+/commands/+/response", v: 1, c: 3},
		{in: "{command_id}/to/{vehicle_id}", filter: "+/to/+", v: 2, c: 0},
		{in: "", err: "empty"},
		{in: "vehicles/{vehicle_id}/commands", err: "must contain"},
		{in: "vehicles/{vehicle_id}/commands/+/{command_id}", err: "wildcard"},
		{in: "vehicles/{vehicle_id}/#", err: "wildcard"},
		{in: "$SYS/{vehicle_id}/{command_id}", err: "starts with $"},
		{in: "vehicles/v-{vehicle_id}/{command_id}", err: "whole level"},
		{in: "vehicles/{vehicle_id}/{vehicle_id}/{command_id}", err: "more than once"},
		{in: "vehicles/{vin}/{vehicle_id}/{command_id}", err: "only {vehicle_id} and {command_id}"},
		{in: "a\x00/{vehicle_id}/{command_id}", err: "NUL"},
		{in: "a\xff/{vehicle_id}/{command_id}", err: "UTF-8"},
	} {
		tpl, err := ParseTemplate(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseTemplate(%q) = %v, want error containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTemplate(%q): %v", tc.in, err)
			continue
		}
		if tpl.Filter() != tc.filter || tpl.VehicleLevel() != tc.v || tpl.CommandLevel() != tc.c || tpl.String() != tc.in {
			t.Errorf("%q: filter %q levels %d/%d", tc.in, tpl.Filter(), tpl.VehicleLevel(), tpl.CommandLevel())
		}
	}
}

func TestExpand(t *testing.T) {
	tpl := MustTemplate("vehicles/{vehicle_id}/commands/{command_id}/response")
	if got := tpl.Expand("VIN1", "c-9"); got != "vehicles/VIN1/commands/c-9/response" {
		t.Fatalf("Expand = %q", got)
	}
	// Expanding must not alias the template's levels.
	_ = tpl.Expand("A", "B")
	if got := tpl.Expand("VIN2", "c-1"); got != "vehicles/VIN2/commands/c-1/response" {
		t.Fatalf("second Expand = %q", got)
	}
}

func valid() schemas.VehicleCommand {
	issued := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	return schemas.VehicleCommand{CommandID: "c-1", VehicleID: "VIN1", Name: "door.lock", Params: map[string]string{"door": "all"},
		IssuedAt: issued, ExpiresAt: issued.Add(time.Minute)}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*schemas.VehicleCommand)
		key  string
		want string // "" = valid
	}{
		{name: "valid", edit: func(*schemas.VehicleCommand) {}, key: "VIN1"},
		{name: "no key", edit: func(*schemas.VehicleCommand) {}},
		{name: "empty vehicle", edit: func(c *schemas.VehicleCommand) { c.VehicleID = "" }, want: "vehicle_id is empty"},
		{name: "empty command id", edit: func(c *schemas.VehicleCommand) { c.CommandID = "" }, want: "command_id is empty"},
		{name: "empty name", edit: func(c *schemas.VehicleCommand) { c.Name = " " }, want: "name is empty"},
		{name: "slash in command id", edit: func(c *schemas.VehicleCommand) { c.CommandID = "a/b" }, want: "level separator or wildcard"},
		{name: "plus in vehicle", edit: func(c *schemas.VehicleCommand) { c.VehicleID = "VIN+" }, key: "VIN+", want: "level separator or wildcard"},
		{name: "hash in command id", edit: func(c *schemas.VehicleCommand) { c.CommandID = "#" }, want: "level separator or wildcard"},
		{name: "control char", edit: func(c *schemas.VehicleCommand) { c.CommandID = "a\nb" }, want: "control character"},
		{name: "NUL", edit: func(c *schemas.VehicleCommand) { c.VehicleID = "V\x00" }, want: "control character"},
		{name: "bad utf8", edit: func(c *schemas.VehicleCommand) { c.CommandID = "\xff" }, want: "UTF-8"},
		{name: "too long", edit: func(c *schemas.VehicleCommand) { c.CommandID = strings.Repeat("x", MaxIDLength+1) }, want: "longer than"},
		{name: "expiry equals issue", edit: func(c *schemas.VehicleCommand) { c.ExpiresAt = c.IssuedAt }, want: "not after issued_at"},
		{name: "expiry before issue", edit: func(c *schemas.VehicleCommand) { c.ExpiresAt = c.IssuedAt.Add(-time.Second) }, want: "not after issued_at"},
		{name: "key mismatch", edit: func(*schemas.VehicleCommand) {}, key: "VIN2", want: `record key "VIN2" differs from vehicle_id "VIN1"`},
		{name: "all reasons", edit: func(c *schemas.VehicleCommand) { c.Name, c.CommandID = "", "" }, want: "command_id is empty; name is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.edit(&c)
			err := Validate(&c, []byte(tc.key))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var inv *InvalidError
			if !errors.As(err, &inv) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want InvalidError containing %q", err, tc.want)
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	c := valid()
	if Expired(&c, c.ExpiresAt.Add(-time.Millisecond)) {
		t.Fatal("expired 1ms before expires_at")
	}
	if !Expired(&c, c.ExpiresAt) || !Expired(&c, c.ExpiresAt.Add(time.Hour)) {
		t.Fatal("not expired at/after expires_at")
	}
	for _, tc := range []struct {
		left time.Duration
		want uint32
	}{
		{time.Minute, 60}, {59*time.Second + time.Millisecond, 60}, {time.Millisecond, 1}, {0, 1}, {-time.Second, 1},
	} {
		if got := MessageExpiry(&c, c.ExpiresAt.Add(-tc.left)); got != tc.want {
			t.Errorf("MessageExpiry with %s left = %d, want %d", tc.left, got, tc.want)
		}
	}
	far := c
	far.ExpiresAt = c.IssuedAt.Add(200 * 365 * 24 * time.Hour)
	if got := MessageExpiry(&far, c.IssuedAt); got != 1<<32-1 {
		t.Errorf("MessageExpiry far future = %d, want max uint32", got)
	}
	reason := ExpiredReason(&c, c.ExpiresAt.Add(3*time.Second), "")
	if !strings.HasPrefix(reason, "expired 3s before it could be sent (expires_at 2026-05-01T12:01:00.000Z)") {
		t.Errorf("reason %q", reason)
	}
	if r := ExpiredReason(&c, c.ExpiresAt.Add(1234*time.Microsecond), "while waiting"); !strings.HasPrefix(r, "expired 1ms while waiting") {
		t.Errorf("reason %q", r)
	}
}

func TestJSON(t *testing.T) {
	c := valid()
	b, err := JSON(&c)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"command_id":"c-1","name":"door.lock","params":{"door":"all"},"expires_at":"2026-05-01T12:01:00.000Z"}`
	if string(b) != want {
		t.Fatalf("JSON = %s\nwant   %s", b, want)
	}
	c.Params = nil
	b, _ = JSON(&c)
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil || p.Params == nil || !strings.Contains(string(b), `"params":{}`) {
		t.Fatalf("nil params rendered as %s (%v)", b, err)
	}
}
