package evolve

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/riferrei/srclient"

	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/tools/devkit/apicurio"
)

// TestRealRegistry runs the workflow against a real Confluent-compatible registry (Apicurio
// Registry, tools/registry), at BACKWARD: the repository's schemas/ evolution registers
// cleanly, and a version adding a field without a default is refused by the check and by the
// registration.
func TestRealRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a JVM")
	}
	reg, err := apicurio.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	c := client(t, reg.URL())
	ctx := context.Background()

	t.Run("platform schemas register cleanly", func(t *testing.T) {
		dir := filepath.Join("..", "..", "..", "..", "schemas", "avro")
		names, err := schemas.NamesIn(os.DirFS(dir))
		if err != nil {
			t.Fatal(err)
		}
		var subjects []Subject
		for _, name := range names {
			vs, err := schemas.VersionsIn(os.DirFS(dir), name)
			if err != nil {
				t.Fatal(err)
			}
			subjects = append(subjects, Subject{Name: "platform." + name + "-value", Compatibility: srclient.Backward, Versions: vs, Dir: dir})
		}
		var out bytes.Buffer
		if err := RegisterAll(ctx, &out, c, subjects); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		for _, s := range subjects {
			latest, err := c.GetLatestSchema(s.Name)
			if err != nil || latest.Version() != len(s.Versions) {
				t.Fatalf("%s: latest %v, %v; want all %d versions\n%s", s.Name, latest, err, len(s.Versions), out.String())
			}
			level, err := c.GetCompatibilityLevel(s.Name, false)
			if err != nil || *level != srclient.Backward {
				t.Fatalf("%s: level %v, %v; want BACKWARD pinned on the subject", s.Name, level, err)
			}
		}
		out.Reset()
		if err := CheckAll(ctx, &out, c, subjects); err != nil || strings.Count(out.String(), "up to date") != len(subjects) {
			t.Fatalf("check after register: %v\n%s", err, out.String())
		}
	})

	t.Run("incompatible version refused", func(t *testing.T) {
		s := subject(v1, v2, v3Bad)
		s.Name = "refused-value"
		seed := s
		seed.Versions = seed.Versions[:2]
		if err := RegisterAll(ctx, &bytes.Buffer{}, c, []Subject{seed}); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := CheckAll(ctx, &out, c, []Subject{s}); !errors.Is(err, ErrRefused) {
			t.Fatalf("check: %v\n%s", err, out.String())
		}
		for _, want := range []string{
			"REFUSED refused-value: reading v3 is not BACKWARD-compatible with registered refused-value version 2",
			"reader field odometer_km is missing in writer schema and has no default",
			`  +      "name": "odometer_km",`,
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("check output lacks %q:\n%s", want, out.String())
			}
		}
		out.Reset()
		if err := RegisterAll(ctx, &out, c, []Subject{s}); !errors.Is(err, ErrRefused) {
			t.Fatalf("register: %v\n%s", err, out.String())
		}
		latest, err := c.GetLatestSchema("refused-value")
		if err != nil || latest.Version() != 2 {
			t.Fatalf("latest = %v, %v; want v3 not registered", latest, err)
		}
	})

	t.Run("older unregistered version is not registered after a newer one", func(t *testing.T) {
		if _, err := c.CreateSchema("auto-value", v2, srclient.Avro); err != nil {
			t.Fatal(err)
		}
		s := subject(v1, v2)
		s.Name = "auto-value"
		st, err := Inspect(c, s)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.New) != 0 || st.LatestLocal != 2 {
			t.Fatalf("new = %v, latest local = %d; want nothing new, v2 latest", st.New, st.LatestLocal)
		}
	})
}
