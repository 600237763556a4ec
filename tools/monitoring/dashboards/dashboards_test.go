package dashboards

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the chart's dashboard JSON")

// Dir is where the chart keeps the rendered dashboards, relative to this package.
const Dir = "../../../charts/iov-platform/files/dashboards"

// TestGolden fails when the committed JSON is not what the builders render now, and when the
// directory holds a dashboard no builder makes. -update rewrites the files.
func TestGolden(t *testing.T) {
	got, err := Render()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range got {
		path := filepath.Join(Dir, name)
		if *update {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test ./dashboards -update writes it)", err)
		}
		if !bytes.Equal(want, b) {
			t.Errorf("%s differs from a fresh render: run go test ./dashboards -update", path)
		}
	}
	entries, err := os.ReadDir(Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := got[e.Name()]; !ok {
			t.Errorf("%s: no builder renders it; remove it or add it to Files", e.Name())
		}
	}
}

// TestPanels checks what each dashboard must show: every panel has a query, and the
// uplink and downlink cover the areas the platform's operators watch.
func TestPanels(t *testing.T) {
	want := map[string][]string{
		"iov-uplink.json": {"Hook rate by route and outcome", "Hook latency by mode", "Kafka delivery results",
			"Spool bytes", "Spool fill", "Consumer lag", "Dead letters", "EMQX messages and ExHook calls"},
		"iov-downlink.json": {"Status counts", "Commands by outcome"},
	}
	for name, build := range Files {
		d, err := build().Build()
		if err != nil {
			t.Fatal(err)
		}
		var titles []string
		for _, p := range d.Panels {
			if p.Panel == nil {
				continue // a row
			}
			titles = append(titles, *p.Panel.Title)
			if len(p.Panel.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", name, *p.Panel.Title)
			}
		}
		for _, w := range want[name] {
			if !slices.Contains(titles, w) {
				t.Errorf("%s: no panel %q (have %q)", name, w, titles)
			}
		}
	}
}
