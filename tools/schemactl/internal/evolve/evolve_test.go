package evolve

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/iov-platform/iov/kit/svcconfig"
	"github.com/iov-platform/iov/schemas"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const (
	v1 = `{
  "type": "record",
  "name": "Reading",
  "namespace": "io.test",
  "fields": [
    {"name": "vehicle_id", "type": "string"},
    {"name": "speed", "type": "double"}
  ]
}`
	// v2 adds a field with a default: backward compatible.
	v2 = `{
  "type": "record",
  "name": "Reading",
  "namespace": "io.test",
  "fields": [
    {"name": "vehicle_id", "type": "string"},
    {"name": "speed", "type": "double"},
    {"name": "heading", "type": "int", "default": 0}
  ]
}`
	// v3Bad adds a field without a default: a v3 reader cannot read v2 data.
	v3Bad = `{
  "type": "record",
  "name": "Reading",
  "namespace": "io.test",
  "fields": [
    {"name": "vehicle_id", "type": "string"},
    {"name": "speed", "type": "double"},
    {"name": "heading", "type": "int", "default": 0},
    {"name": "odometer_km", "type": "long"}
  ]
}`
	foreign = `{"type": "record", "name": "Other", "fields": [{"name": "x", "type": "string"}]}`
)

func defs(texts ...string) []schemas.Definition {
	var out []schemas.Definition
	for i, t := range texts {
		out = append(out, schemas.Definition{Name: "reading", Version: i + 1, Text: t})
	}
	return out
}

func subject(texts ...string) Subject {
	return Subject{Name: "iov.test-value", Compatibility: srclient.Backward, Versions: defs(texts...), Dir: "schemas/avro"}
}

func client(t testing.TB, url string) *srclient.SchemaRegistryClient {
	t.Helper()
	c, err := NewRegistry(svcconfig.Registry{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// registries are the stand-ins every evolution test runs against: srfake as it is (accepts
// everything) and srfake made to refuse like Confluent's registry.
func registries(t *testing.T) map[string]string {
	fake := srfake.New()
	srv := httptest.NewServer(fake.Handler())
	t.Cleanup(func() {
		srv.Close()
		fake.Close()
	})
	return map[string]string{"srfake": srv.URL, "strict": newStrictRegistry(t, true).url}
}

func TestRegisterAllRegistersInOrderThenIsUpToDate(t *testing.T) {
	for name, url := range registries(t) {
		t.Run(name, func(t *testing.T) {
			reg := client(t, url)
			var out bytes.Buffer
			if err := RegisterAll(context.Background(), &out, reg, []Subject{subject(v1, v2)}); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			for _, want := range []string{
				"added    iov.test-value: reading v1 as version 1",
				"added    iov.test-value: reading v2 as version 2",
			} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
			level, err := reg.GetCompatibilityLevel("iov.test-value", false)
			if err != nil || *level != srclient.Backward {
				t.Fatalf("subject level = %v, %v; want BACKWARD set on the subject", level, err)
			}
			latest, err := reg.GetLatestSchema("iov.test-value")
			if err != nil || latest.Version() != 2 {
				t.Fatalf("latest = %v, %v", latest, err)
			}

			out.Reset()
			if err := RegisterAll(context.Background(), &out, reg, []Subject{subject(v1, v2)}); err != nil {
				t.Fatal(err)
			}
			if want := "ok       iov.test-value: up to date (reading v2 is registered version 2)\n"; out.String() != want {
				t.Fatalf("second run:\n%s\nwant:\n%s", out.String(), want)
			}
			out.Reset()
			if err := CheckAll(context.Background(), &out, reg, []Subject{subject(v1, v2)}); err != nil || !strings.Contains(out.String(), "up to date") {
				t.Fatalf("check after register: %v\n%s", err, out.String())
			}
		})
	}
}

func TestCheckNewVersion(t *testing.T) {
	tests := []struct {
		name    string
		strict  bool
		local   []string
		refused bool
		want    string
	}{
		{"compatible", true, []string{v1, v2}, false, "ok       iov.test-value: reading v2 BACKWARD-compatible with registered version 1\n"},
		{"incompatible refused by the registry", true, []string{v1, v2, v3Bad}, true, ""},
		{"srfake accepts the incompatible one", false, []string{v1, v2, v3Bad}, false, "ok       iov.test-value: reading v3 BACKWARD-compatible with registered version 2\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStrictRegistry(t, tt.strict)
			reg := client(t, s.url)
			seed := tt.local[:len(tt.local)-1]
			if err := RegisterAll(context.Background(), &bytes.Buffer{}, reg, []Subject{subject(seed...)}); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err := CheckAll(context.Background(), &out, reg, []Subject{subject(tt.local...)})
			if tt.refused != errors.Is(err, ErrRefused) {
				t.Fatalf("err = %v, refused want %v\n%s", err, tt.refused, out.String())
			}
			if tt.refused {
				golden(t, "refused_check.golden", out.Bytes())
			} else if out.String() != tt.want {
				t.Fatalf("output:\n%s\nwant:\n%s", out.String(), tt.want)
			}
			latest, err := reg.GetLatestSchema("iov.test-value")
			if err != nil || latest.Version() != len(seed) {
				t.Fatalf("check changed the registry: latest %v, %v", latest, err)
			}
		})
	}
}

// TestRegisterRefused: a refused version is not registered, the ones before it are, and
// the diff is printed; a 409 from the registration itself (check said yes) is a refusal too.
func TestRegisterRefused(t *testing.T) {
	for _, check := range []bool{true, false} {
		t.Run(map[bool]string{true: "by the check", false: "by registration (409)"}[check], func(t *testing.T) {
			s := newStrictRegistry(t, check)
			reg := client(t, s.url)
			if err := RegisterAll(context.Background(), &bytes.Buffer{}, reg, []Subject{subject(v1)}); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err := RegisterAll(context.Background(), &out, reg, []Subject{subject(v1, v2, v3Bad)})
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("err = %v\n%s", err, out.String())
			}
			golden(t, map[bool]string{true: "refused_register.golden", false: "refused_register_409.golden"}[check], out.Bytes())
			latest, err := reg.GetLatestSchema("iov.test-value")
			if err != nil || latest.Version() != 2 {
				t.Fatalf("latest = %v, %v; want v2 registered and v3 not", latest, err)
			}
		})
	}
}

func TestInspect(t *testing.T) {
	tests := []struct {
		name       string
		registered []string // registered in order, before Inspect
		local      []string
		wantNew    []int
		wantLatest int // local version equal to the registry's latest, 0 for none
	}{
		{"unknown subject gets every version", nil, []string{v1, v2}, []int{1, 2}, 0},
		{"only the versions after the newest registered", []string{v1}, []string{v1, v2}, []int{2}, 1},
		// A producer with autoRegister registered v2 alone: v1 must not follow it.
		{"older unregistered version is skipped", []string{v2}, []string{v1, v2}, nil, 2},
		{"foreign latest: only the newest local version", []string{foreign}, []string{v1, v2}, []int{2}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStrictRegistry(t, false)
			for _, text := range tt.registered {
				if _, _, err := s.fake.RegisterSchema("iov.test-value", sr.Schema{Schema: text}); err != nil {
					t.Fatal(err)
				}
			}
			st, err := Inspect(client(t, s.url), subject(tt.local...))
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, d := range st.New {
				got = append(got, d.Version)
			}
			if !slices.Equal(got, tt.wantNew) || st.LatestLocal != tt.wantLatest {
				t.Fatalf("new = %v latest local = %d; want %v, %d", got, st.LatestLocal, tt.wantNew, tt.wantLatest)
			}
		})
	}
}

func TestCompatibilityLevelIsSetPerSubject(t *testing.T) {
	s := newStrictRegistry(t, true)
	reg := client(t, s.url)
	if err := RegisterAll(context.Background(), &bytes.Buffer{}, reg, []Subject{subject(v1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.ChangeSubjectCompatibilityLevel("iov.test-value", srclient.None); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	// Under NONE the registry takes v3; schemactl reports the drift but check cannot refuse.
	if err := CheckAll(context.Background(), &out, reg, []Subject{subject(v1, v3Bad)}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if want := "note     iov.test-value: compatibility is NONE in the registry, the config wants BACKWARD (register sets it)\n"; !strings.HasPrefix(out.String(), want) {
		t.Fatalf("output:\n%s\nwant prefix:\n%s", out.String(), want)
	}
	// register sets BACKWARD back before registering, so the bad version is refused.
	out.Reset()
	err := RegisterAll(context.Background(), &out, reg, []Subject{subject(v1, v2, v3Bad)})
	if !errors.Is(err, ErrRefused) || !strings.HasPrefix(out.String(), "set      iov.test-value: compatibility BACKWARD (was NONE)\n") {
		t.Fatalf("err = %v\n%s", err, out.String())
	}
	level, err := reg.GetCompatibilityLevel("iov.test-value", false)
	if err != nil || *level != srclient.Backward {
		t.Fatalf("level = %v, %v", level, err)
	}
}

// TestPlatformSchemasRegisterCleanly registers the repository's own schemas/ with its
// subjects.yaml, on the registry stand-in that refuses incompatible versions.
func TestPlatformSchemasRegisterCleanly(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "..", "schemas", "avro")
	names, err := schemas.NamesIn(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	s := newStrictRegistry(t, true)
	reg := client(t, s.url)
	var subjects []Subject
	for _, name := range names {
		vs, err := schemas.VersionsIn(os.DirFS(dir), name)
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, Subject{Name: name + "-value", Compatibility: srclient.Backward, Versions: vs, Dir: dir})
	}
	var out bytes.Buffer
	if err := RegisterAll(context.Background(), &out, reg, subjects); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, sub := range subjects {
		latest, err := reg.GetLatestSchema(sub.Name)
		if err != nil || latest.Version() != len(sub.Versions) {
			t.Fatalf("%s: latest %v, %v; want all %d versions\n%s", sub.Name, latest, err, len(sub.Versions), out.String())
		}
	}
}

func TestWriteRefusalDiffIgnoresLayout(t *testing.T) {
	var out bytes.Buffer
	compact := `{"type":"record","name":"Reading","namespace":"io.test","fields":[{"name":"vehicle_id","type":"string"},{"name":"speed","type":"double"},{"name":"heading","type":"int","default":0}]}`
	r := Refusal{Subject: "s", Level: srclient.Backward, Version: defs(v1, v2, v3Bad)[2], Dir: "d", Against: "registered s version 2 (id 2)", AgainstText: compact}
	if err := WriteRefusal(&out, r); err != nil {
		t.Fatal(err)
	}
	var changed []string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "  +") || strings.HasPrefix(line, "  -") {
			changed = append(changed, line)
		}
	}
	want := []string{
		"  --- registered s version 2 (id 2)",
		"  +++ d/reading/v3.avsc",
		"  +    },",
		"  +    {",
		`  +      "name": "odometer_km",`,
		`  +      "type": "long"`,
	}
	if !slices.Equal(changed, want) {
		t.Fatalf("changed lines:\n%s\nwant:\n%s\nfull:\n%s", strings.Join(changed, "\n"), strings.Join(want, "\n"), out.String())
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("output differs from %s (go test -update rewrites it):\n%s", path, got)
	}
}

// TestCheckUnknownSubjectChecksTheChainAtTheConfiguredLevel: a subject the registry does not
// know gets all local versions; they are checked against each other at the level register
// will pin, whatever the registry's global default (here NONE, Apicurio's default).
func TestCheckUnknownSubjectChecksTheChainAtTheConfiguredLevel(t *testing.T) {
	s := newStrictRegistry(t, true)
	reg := client(t, s.url)
	req := httptest.NewRequest("PUT", "/config", strings.NewReader(`{"compatibility":"NONE"}`))
	rec := httptest.NewRecorder()
	s.fake.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("set global NONE: %d %s", rec.Code, rec.Body.String())
	}
	var out bytes.Buffer
	err := CheckAll(context.Background(), &out, reg, []Subject{subject(v1, v2, v3Bad)})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("err = %v\n%s", err, out.String())
	}
	if want := "REFUSED iov.test-value: reading v3 is not BACKWARD-compatible with local reading v2 (to be registered before it)"; !strings.Contains(out.String(), want) {
		t.Fatalf("output lacks %q:\n%s", want, out.String())
	}
}
