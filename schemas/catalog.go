// Package schemas holds the platform's Avro schemas (the versioned .avsc files under avro/),
// the Go types that match their latest versions, and helpers to parse them.
//
// Every schema lives in avro/<name>/v<N>.avsc. A new version must be backward compatible with
// the one before it (a consumer on version N reads data written with N-1); compat_test.go
// enforces that with hamba/avro's SchemaCompatibility, because not every registry does.
package schemas

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
)

// Names of the schema families in avro/.
const (
	VehicleMessageName = "vehicle_message"
	ClientEventName    = "client_event"
	VehicleCommandName = "vehicle_command"
	CommandStatusName  = "command_status"
)

//go:embed avro
var files embed.FS

// Definition is one version of one schema family.
type Definition struct {
	Name    string // family, e.g. vehicle_message
	Version int    // N of vN.avsc
	Text    string // the .avsc document
}

// Parse parses the definition in a cache of its own, so that two versions of the same named
// record never see each other.
func (d Definition) Parse() (avro.Schema, error) {
	s, err := avro.ParseWithCache(d.Text, "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("parse %s v%d: %w", d.Name, d.Version, err)
	}
	return s, nil
}

// Names lists the schema families, sorted.
func Names() ([]string, error) { return NamesIn(builtIn()) }

// builtIn is the avro/ tree compiled into this package.
func builtIn() fs.FS {
	sub, err := fs.Sub(files, "avro")
	if err != nil {
		panic(err) // "avro" is a valid path: fs.Sub cannot fail on it
	}
	return sub
}

// NamesIn lists the schema families of a tree laid out like avro/ (<name>/v<N>.avsc), such as
// a checkout's schemas/avro read by tools, sorted.
func NamesIn(fsys fs.FS) ([]string, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read schema dir: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Versions returns every version of a family in ascending order.
func Versions(name string) ([]Definition, error) { return VersionsIn(builtIn(), name) }

// VersionsIn returns every version of a family of a tree laid out like avro/, ascending.
func VersionsIn(fsys fs.FS, name string) ([]Definition, error) {
	return versionsIn(fsys, name, name)
}

// CheckBackward reports why a reader on version r cannot read data written with version w
// (Avro schema resolution, hamba/avro's SchemaCompatibility), or nil when it can.
func CheckBackward(r, w Definition) error {
	rs, err := r.Parse()
	if err != nil {
		return err
	}
	ws, err := w.Parse()
	if err != nil {
		return err
	}
	if err := avro.NewSchemaCompatibility().Compatible(rs, ws); err != nil {
		return fmt.Errorf("%s v%d cannot read %s v%d data: %w", r.Name, r.Version, w.Name, w.Version, err)
	}
	return nil
}

func versionsIn(fsys fs.FS, dir, name string) ([]Definition, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("schema %q: %w", name, err)
	}
	var defs []Definition
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".avsc")
		if e.IsDir() || !ok {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(base, "v"))
		if !strings.HasPrefix(base, "v") || err != nil || n < 1 {
			return nil, fmt.Errorf("schema %q: file %s is not named v<N>.avsc", name, e.Name())
		}
		text, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("schema %q: %w", name, err)
		}
		defs = append(defs, Definition{Name: name, Version: n, Text: string(text)})
	}
	if len(defs) == 0 {
		return nil, fmt.Errorf("schema %q: no versions", name)
	}
	slices.SortFunc(defs, func(a, b Definition) int { return a.Version - b.Version })
	for i, d := range defs {
		if d.Version != i+1 {
			return nil, fmt.Errorf("schema %q: versions must be v1..vN without gaps, found v%d at position %d", name, d.Version, i+1)
		}
	}
	return defs, nil
}

// Latest returns the newest version of a family: what producers write.
func Latest(name string) (Definition, error) {
	defs, err := Versions(name)
	if err != nil {
		return Definition{}, err
	}
	return defs[len(defs)-1], nil
}

// MustLatest is Latest for package-level initialisation of the families this package ships.
func MustLatest(name string) Definition {
	d, err := Latest(name)
	if err != nil {
		panic(err)
	}
	return d
}
