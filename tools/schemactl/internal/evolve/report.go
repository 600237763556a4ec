package evolve

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/riferrei/srclient"

	"github.com/iov-platform/iov/kit/svcconfig"
	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/tools/schemactl/internal/config"
)

// NewRegistry returns an srclient client for r without caching: schemactl reads a subject's
// latest version again after each registration. It reaches the registry as the services do
// (svcconfig.Registry.HTTPClient): an https registry checked against registry.caFile, basic
// auth from usernameFile/passwordFile or REGISTRY_USERNAME/REGISTRY_PASSWORD.
func NewRegistry(r svcconfig.Registry) (*srclient.SchemaRegistryClient, error) {
	hc, err := r.HTTPClient()
	if err != nil {
		return nil, err
	}
	c := srclient.NewSchemaRegistryClient(strings.TrimSuffix(r.URL, "/"), srclient.WithClient(hc))
	c.CodecCreationEnabled(false)
	c.CachingEnabled(false)
	if r.Username != "" {
		c.SetCredentials(r.Username, r.Password)
	}
	return c, nil
}

// LoadSubjects reads the local versions of every configured subject's family from the
// schema tree.
func LoadSubjects(cfg *config.Config) ([]Subject, error) {
	tree := os.DirFS(cfg.Schemas)
	var subjects []Subject
	for _, s := range cfg.Subjects {
		defs, err := schemas.VersionsIn(tree, s.Schema)
		if err != nil {
			return nil, fmt.Errorf("subject %s: %w", s.Name, err)
		}
		for _, d := range defs {
			if _, err := d.Parse(); err != nil {
				return nil, fmt.Errorf("subject %s: %w", s.Name, err)
			}
		}
		subjects = append(subjects, Subject{Name: s.Name, Compatibility: s.Compatibility, Versions: defs, Dir: cfg.Schemas})
	}
	return subjects, nil
}

// List prints the families under dir with their versions, then the subjects.
func List(w io.Writer, dir string, subjects []Subject) error {
	names, err := schemas.NamesIn(os.DirFS(dir))
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "SCHEMA\tVERSIONS\tLATEST\n")
	for _, name := range names {
		defs, err := schemas.VersionsIn(os.DirFS(dir), name)
		if err != nil {
			return err
		}
		var vs []string
		for _, d := range defs {
			vs = append(vs, fmt.Sprintf("v%d", d.Version))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/%s/v%d.avsc\n", name, strings.Join(vs, " "), dir, name, defs[len(defs)-1].Version)
	}
	fmt.Fprintf(tw, "\nSUBJECT\tSCHEMA\tCOMPATIBILITY\n")
	for _, s := range subjects {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.Versions[0].Name, s.Compatibility)
	}
	return tw.Flush()
}

// CheckAll checks every subject and prints one line per subject, and each refusal in full.
// It returns an error wrapping ErrRefused when a version was refused.
func CheckAll(ctx context.Context, w io.Writer, reg Registry, subjects []Subject) error {
	return eachSubject(ctx, reg, subjects, func(s Subject, st State) (int, error) {
		if st.Level != s.Compatibility {
			fmt.Fprintf(w, "note     %s: compatibility is %s in the registry, the config wants %s (register sets it)\n", s.Name, st.Level, s.Compatibility)
		}
		refused, err := Check(reg, st)
		if err != nil {
			return 0, err
		}
		bad := map[int]bool{}
		for _, r := range refused {
			bad[r.Version.Version] = true
			if err := WriteRefusal(w, r); err != nil {
				return 0, err
			}
		}
		var ok []string
		for _, d := range st.New {
			if !bad[d.Version] {
				ok = append(ok, fmt.Sprintf("v%d", d.Version))
			}
		}
		switch {
		case len(st.New) == 0:
			fmt.Fprintf(w, "ok       %s: up to date (%s)\n", s.Name, registered(st))
		case st.Latest == nil && len(ok) > 0:
			fmt.Fprintf(w, "new      %s: not in the registry yet; register adds %s %s\n", s.Name, s.Versions[0].Name, strings.Join(ok, ", "))
		case len(ok) > 0:
			fmt.Fprintf(w, "ok       %s: %s %s %s-compatible with registered version %d\n", s.Name, s.Versions[0].Name, strings.Join(ok, ", "), st.Level, st.Latest.Version())
		}
		return len(refused), nil
	})
}

// eachSubject inspects each subject and hands it to fn, which returns how many versions it
// saw refused; the result wraps ErrRefused when there were any.
func eachSubject(ctx context.Context, reg Registry, subjects []Subject, fn func(Subject, State) (int, error)) error {
	refusals := 0
	for _, s := range subjects {
		if err := ctx.Err(); err != nil {
			return err
		}
		st, err := Inspect(reg, s)
		if err != nil {
			return err
		}
		n, err := fn(s, st)
		if err != nil {
			return err
		}
		refusals += n
	}
	if refusals > 0 {
		return fmt.Errorf("%d schema version(s) %w", refusals, ErrRefused)
	}
	return nil
}

// RegisterAll registers the new versions of every subject, after setting its compatibility
// level. A refused version stops its subject, not the others.
func RegisterAll(ctx context.Context, w io.Writer, reg Registry, subjects []Subject) error {
	return eachSubject(ctx, reg, subjects, func(s Subject, st State) (int, error) {
		set, done, refused, err := Register(reg, st)
		if set {
			was := string(st.Level)
			if !st.Pinned {
				was = "registry default " + was
			}
			fmt.Fprintf(w, "set      %s: compatibility %s (was %s)\n", s.Name, s.Compatibility, was)
		}
		for _, r := range done {
			fmt.Fprintf(w, "added    %s: %s v%d as version %d (schema id %d)\n", s.Name, r.Version.Name, r.Version.Version, r.Registry, r.ID)
		}
		if err != nil {
			return 0, err
		}
		if refused != nil {
			return 1, WriteRefusal(w, *refused)
		}
		if len(done) == 0 {
			fmt.Fprintf(w, "ok       %s: up to date (%s)\n", s.Name, registered(st))
		}
		return 0, nil
	})
}

func registered(st State) string {
	if st.LatestLocal == 0 {
		return fmt.Sprintf("registered version %d is none of the local versions", st.Latest.Version())
	}
	return fmt.Sprintf("%s v%d is registered version %d", st.Subject.Versions[0].Name, st.LatestLocal, st.Latest.Version())
}
