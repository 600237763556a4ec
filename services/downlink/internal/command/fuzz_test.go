package command

import (
	"strings"
	"testing"
)

// FuzzTemplate: whatever a template and ids are, a template that parses and ids that pass
// ValidID expand to a topic whose placeholder levels hold exactly the ids, which the
// template's filter matches level by level.
func FuzzTemplate(f *testing.F) {
	f.Add("vehicles/{vehicle_id}/commands/{command_id}", "VIN1", "cmd-1")
	f.Add("{command_id}/x/{vehicle_id}", "a", "b")
	f.Add("v/{vehicle_id}/{vehicle_id}", "a", "b")
	f.Add("v/+/{command_id}", "a/b", "#")
	f.Fuzz(func(t *testing.T, tmpl, vehicle, cmd string) {
		tp, err := ParseTemplate(tmpl)
		if err != nil {
			return
		}
		if ValidID("vehicle_id", vehicle) != nil || ValidID("command_id", cmd) != nil {
			return
		}
		topic := tp.Expand(vehicle, cmd)
		if strings.ContainsAny(topic, "+#\x00") {
			t.Fatalf("expanded topic %q has a wildcard or NUL", topic)
		}
		levels := strings.Split(topic, "/")
		if levels[tp.VehicleLevel()] != vehicle || levels[tp.CommandLevel()] != cmd {
			t.Fatalf("topic %q: levels %d/%d are not %q/%q", topic, tp.VehicleLevel(), tp.CommandLevel(), vehicle, cmd)
		}
		filter := strings.Split(tp.Filter(), "/")
		if len(filter) != len(levels) {
			t.Fatalf("filter %q and topic %q differ in depth", tp.Filter(), topic)
		}
		for i := range filter {
			if filter[i] != "+" && filter[i] != levels[i] {
				t.Fatalf("filter %q does not match topic %q at level %d", tp.Filter(), topic, i)
			}
		}
	})
}
