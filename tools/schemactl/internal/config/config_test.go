package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/riferrei/srclient"
)

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse([]byte(`
registry: {url: "ftp://registry"}
compatibility: SIDEWAYS
subjects:
  - {name: a-value, schema: a}
  - {name: a-value, schema: a, compatibility: WHATEVER}
  - {schema: ""}
`), "")
	if err == nil {
		t.Fatal("expected errors")
	}
	for _, want := range []string{
		`registry.url "ftp://registry"`,
		"schemas: the schema directory is required",
		`compatibility "SIDEWAYS"`,
		`subjects[1].name "a-value": listed twice`,
		`subjects[1].compatibility "WHATEVER"`,
		"subjects[2].name is required",
		"subjects[2].schema is required",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	tests := []struct {
		name, yaml, url string
		wantURL         string
		wantLevels      []srclient.CompatibilityLevel
	}{
		{"default level is BACKWARD", "schemas: avro\nsubjects: [{name: a, schema: x}]", "", "", []srclient.CompatibilityLevel{srclient.Backward}},
		{"subject level wins", "schemas: avro\ncompatibility: FULL\nsubjects: [{name: a, schema: x}, {name: b, schema: x, compatibility: NONE}]", "",
			"", []srclient.CompatibilityLevel{srclient.Full, srclient.None}},
		{"flag replaces url", "schemas: avro\nregistry: {url: 'http://a:8081'}\nsubjects: [{name: a, schema: x}]", "http://b:8081",
			"http://b:8081", []srclient.CompatibilityLevel{srclient.Backward}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml), tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Registry.URL != tt.wantURL {
				t.Errorf("url = %q, want %q", cfg.Registry.URL, tt.wantURL)
			}
			for i, want := range tt.wantLevels {
				if got := cfg.Subjects[i].Compatibility; got != want {
					t.Errorf("subject %d level = %s, want %s", i, got, want)
				}
			}
		})
	}
}

func TestLoadResolvesSchemasAgainstTheConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "subjects.yaml")
	if err := os.WriteFile(path, []byte("schemas: avro\nsubjects: [{name: a, schema: x}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "avro"); cfg.Schemas != want {
		t.Fatalf("schemas = %q, want %q", cfg.Schemas, want)
	}
}

// FuzzParse: any input either fails or yields a config whose every subject has a valid level.
func FuzzParse(f *testing.F) {
	f.Add([]byte("schemas: avro\nsubjects: [{name: a-value, schema: x}]\n"))
	f.Add([]byte("schemas: avro\ncompatibility: FULL\nsubjects: [{name: a, schema: x, compatibility: NONE}]\n"))
	f.Add([]byte("registry: {url: 'http://r:8081'}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "")
		if err != nil {
			return
		}
		for _, s := range cfg.Subjects {
			if !slices.Contains(levels, s.Compatibility) || s.Name == "" || s.Schema == "" {
				t.Fatalf("accepted subject %+v", s)
			}
		}
	})
}
