package route

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestMatchFilter(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"vehicles/+/telemetry", "vehicles/VIN1/telemetry", true},
		{"vehicles/+/telemetry", "vehicles/VIN1/telemetry/x", false},
		{"vehicles/+/telemetry", "vehicles//telemetry", true},
		{"vehicles/+/telemetry", "vehicles/VIN1", false},
		{"vehicles/+/events/#", "vehicles/V/events", true},
		{"vehicles/+/events/#", "vehicles/V/events/alarm/door", true},
		{"vehicles/+/events/#", "vehicles/V/eventsx", false},
		{"#", "anything/at/all", true},
		{"#", "$SYS/brokers", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/brokers", true},
		{"a/b", "a/b", true},
		{"a/b", "a/b/", false},
		{"a/+", "a/", true},
		{"+", "a", true},
		{"+", "a/b", false},
	}
	for _, tt := range tests {
		t.Run(tt.filter+"~"+tt.topic, func(t *testing.T) {
			if got := MatchFilter(strings.Split(tt.filter, "/"), tt.topic); got != tt.want {
				t.Fatalf("MatchFilter(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
			}
		})
	}
}

func TestValidateFilter(t *testing.T) {
	for _, f := range []string{"a/#/b", "a/b#", "a/+b", "", "$share/g/a"} {
		if err := ValidateFilter(f); err == nil {
			t.Errorf("ValidateFilter(%q) accepted an invalid filter", f)
		}
	}
	for _, f := range []string{"a/#", "+/+/+", "#", "vehicles/+/events/#"} {
		if err := ValidateFilter(f); err != nil {
			t.Errorf("ValidateFilter(%q) = %v", f, err)
		}
	}
}

func testRouter(t *testing.T) *Router {
	t.Helper()
	cfgs := []Config{
		{Name: "telemetry", Filter: "vehicles/+/telemetry", KafkaTopic: "tel", Key: KeyConfig{From: KeyTopicSegment, Segment: 1}, Payload: PayloadJSON, Delivery: Async},
		{Name: "events", Filter: "vehicles/+/events/#", KafkaTopic: "ev", Key: KeyConfig{From: KeyTopicSegment, Segment: 1}, Payload: PayloadJSON, Delivery: Sync},
		{Name: "catchall", Filter: "vehicles/#", KafkaTopic: "raw", Key: KeyConfig{From: KeyClientID}, Payload: PayloadBytes, Delivery: Async},
	}
	rt, err := New(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func TestRouterFirstMatchWinsAndKeys(t *testing.T) {
	rt := testRouter(t)
	tests := []struct {
		topic, client string
		route, key    string
		keyErr        bool
	}{
		{"vehicles/VIN1/telemetry", "c1", "telemetry", "VIN1", false},
		{"vehicles/VIN2/events/door", "c2", "events", "VIN2", false},
		{"vehicles/VIN3/other", "c3", "catchall", "c3", false},
		{"vehicles//telemetry", "c4", "telemetry", "", true},
		{"vehicles/VIN5/other", "", "catchall", "", true},
		{"fleet/VIN1/telemetry", "c", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			r := rt.Match(tt.topic)
			if tt.route == "" {
				if r != nil {
					t.Fatalf("matched %q, want no route", r.Name)
				}
				return
			}
			if r == nil || r.Name != tt.route {
				t.Fatalf("Match(%q) = %v, want %s", tt.topic, r, tt.route)
			}
			key, err := r.VehicleID(tt.topic, tt.client)
			if tt.keyErr {
				if !errors.Is(err, ErrNoVehicleID) {
					t.Fatalf("VehicleID err = %v, want ErrNoVehicleID", err)
				}
				return
			}
			if err != nil || key != tt.key {
				t.Fatalf("VehicleID = %q, %v; want %q", key, err, tt.key)
			}
		})
	}
	if got := rt.Filters(); strings.Join(got, ",") != "vehicles/+/telemetry,vehicles/+/events/#,vehicles/#" {
		t.Fatalf("Filters() = %v", got)
	}
}

func TestCheckPayload(t *testing.T) {
	rt := testRouter(t)
	tel := rt.Match("vehicles/V/telemetry")
	raw := rt.Match("vehicles/V/x")
	if err := tel.CheckPayload([]byte(`{"speed":1}`)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{`{"speed":`, "", "\xff\xfe"} {
		if err := tel.CheckPayload([]byte(p)); !errors.Is(err, ErrBadPayload) {
			t.Errorf("json route accepted %q: %v", p, err)
		}
	}
	if err := raw.CheckPayload([]byte{0xff, 0x00}); err != nil {
		t.Fatalf("bytes route rejected binary: %v", err)
	}
}

// A JSON route accepts exactly what encoding/json's Valid accepts: the faster check changed
// no payload's fate.
func FuzzCheckPayloadJSON(f *testing.F) {
	for _, p := range []string{
		`{"speed":1}`, ``, ` `, `{"speed":`, "\xff\xfe", `"\xff"`, "\"\xff\xfe\"", `{"a":1,"a":2}`,
		`"\ud800"`, `"\udc00\ud800"`, `"\u00e9"`, "\"\x00\"", `01`, `-`, `1e`, `1.`, `-0.0e+00`,
		` [1 , 2] `, `[1,]`, `{"a" 1}`, `nul`, `null x`, `{}{}`, `"a"` + "\n", `[[[[[[]]]]]]`,
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001), "\ufeff{}", `"\/\b\f\n\r\t\""`, `"\x"`,
	} {
		f.Add([]byte(p))
	}
	tel := Route{Config: Config{Payload: PayloadJSON}}
	f.Fuzz(func(t *testing.T, p []byte) {
		err := tel.CheckPayload(p)
		if want := json.Valid(p); (err == nil) != want {
			t.Fatalf("CheckPayload(%q) = %v; encoding/json's Valid says %v", p, err, want)
		}
		if err != nil && !errors.Is(err, ErrBadPayload) {
			t.Fatalf("CheckPayload(%q) = %v, not ErrBadPayload", p, err)
		}
	})
}

// BenchmarkCheckPayload is a JSON route's check of a bench-like ~200-byte payload.
func BenchmarkCheckPayload(b *testing.B) {
	tel := Route{Config: Config{Payload: PayloadJSON}}
	p := []byte(`{"vin":"WVW00000000000123","seq":17,"run":"9f3a8c1d2e4b5a6f","ts":1733230000000,"pad":"` + strings.Repeat("x", 120) + `"}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := tel.CheckPayload(p); err != nil {
			b.Fatal(err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Name: "r", Filter: "a/+/b", KafkaTopic: "t", Key: KeyConfig{From: KeyTopicSegment, Segment: 1}, Payload: PayloadJSON, Delivery: Sync}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := map[string]func(c *Config){
		"no name":         func(c *Config) { c.Name = "" },
		"bad filter":      func(c *Config) { c.Filter = "a/#/b" },
		"bad topic":       func(c *Config) { c.KafkaTopic = "has space" },
		"segment on #":    func(c *Config) { c.Filter = "a/#"; c.Key.Segment = 1 },
		"segment too far": func(c *Config) { c.Key.Segment = 3 },
		"bad key source":  func(c *Config) { c.Key.From = "username" },
		"bad payload":     func(c *Config) { c.Payload = "xml" },
		"bad delivery":    func(c *Config) { c.Delivery = "eventually" },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			c := ok
			mutate(&c)
			if err := c.Validate(); err == nil {
				t.Fatalf("accepted %+v", c)
			}
		})
	}
}

func TestLevel(t *testing.T) {
	tests := []struct {
		topic string
		i     int
		want  string
	}{
		{"a/b/c", 0, "a"}, {"a/b/c", 2, "c"}, {"a/b/c", 3, ""}, {"a//c", 1, ""}, {"", 0, ""},
	}
	for _, tt := range tests {
		if got := Level(tt.topic, tt.i); got != tt.want {
			t.Errorf("Level(%q, %d) = %q, want %q", tt.topic, tt.i, got, tt.want)
		}
	}
}

func FuzzMatchFilter(f *testing.F) {
	f.Add("vehicles/+/telemetry", "vehicles/V/telemetry")
	f.Add("#", "$SYS/x")
	f.Add("a/+/#", "a/b")
	f.Fuzz(func(t *testing.T, filter, topic string) {
		if ValidateFilter(filter) != nil {
			return
		}
		levels := strings.Split(filter, "/")
		got := MatchFilter(levels, topic)
		// A filter without wildcards matches exactly itself.
		if !strings.ContainsAny(filter, "+#") && got != (filter == topic) {
			t.Fatalf("literal filter %q vs %q: %v", filter, topic, got)
		}
		// Every topic matches itself used as a filter.
		if ValidateFilter(topic) == nil && !strings.ContainsAny(topic, "+#") && !MatchFilter(strings.Split(topic, "/"), topic) {
			t.Fatalf("topic %q does not match itself", topic)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	rt, _ := New([]Config{
		{Name: "a", Filter: "vehicles/+/status", KafkaTopic: "a", Key: KeyConfig{From: KeyClientID}, Payload: PayloadBytes, Delivery: Async},
		{Name: "b", Filter: "vehicles/+/telemetry", KafkaTopic: "b", Key: KeyConfig{From: KeyTopicSegment, Segment: 1}, Payload: PayloadBytes, Delivery: Async},
	})
	b.ReportAllocs()
	for b.Loop() {
		r := rt.Match("vehicles/WVW1234567890/telemetry")
		if _, err := r.VehicleID("vehicles/WVW1234567890/telemetry", "c"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		scope, filter string
		want          bool
	}{
		{"vehicles/#", "vehicles/+/telemetry", true},
		{"vehicles/#", "vehicles/+/events/#", true},
		{"vehicles/#", "vehicles", true},
		{"vehicles/#", "vehicles/#", true},
		{"vehicles/#", "fleet/+/telemetry", false},
		{"vehicles/+/telemetry", "vehicles/V1/telemetry", true},
		{"vehicles/+/telemetry", "vehicles/+/telemetry", true},
		{"vehicles/+/telemetry", "vehicles/+/events", false},
		{"vehicles/+", "vehicles/#", false},
		{"vehicles/+", "vehicles/+/x", false},
		{"vehicles/+/x", "vehicles/+", false},
		{"vehicles/+/#", "vehicles/+", true},
		{"vehicles/+/#", "vehicles", false},
		{"#", "vehicles/+/telemetry", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/b", "a/b", true},
		{"a/b", "a/b/c", false},
	} {
		if got := Covers(tc.scope, tc.filter); got != tc.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tc.scope, tc.filter, got, tc.want)
		}
	}
}

// FuzzCovers: a scope that covers a filter matches every topic the filter matches.
func FuzzCovers(f *testing.F) {
	f.Add("vehicles/#", "vehicles/+/telemetry", "vehicles/V1/telemetry")
	f.Add("vehicles/+/#", "vehicles/+", "vehicles/V1")
	f.Add("#", "$SYS/x", "$SYS/x")
	f.Fuzz(func(t *testing.T, scope, filter, topic string) {
		if ValidateFilter(scope) != nil || ValidateFilter(filter) != nil || strings.ContainsAny(topic, "+#") {
			return
		}
		if Covers(scope, filter) && MatchFilter(strings.Split(filter, "/"), topic) && !MatchFilter(strings.Split(scope, "/"), topic) {
			t.Fatalf("%q covers %q, which matches %q, but %q does not", scope, filter, topic, scope)
		}
	})
}
