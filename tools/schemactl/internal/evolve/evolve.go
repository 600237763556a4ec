// Package evolve compares the local versions of a schema family with what a Confluent-compatible
// registry holds for a subject, asks the registry whether the new versions are compatible, and
// registers them.
//
// The local versions of a family are v1..vN. The versions a subject still needs are the local
// ones after the newest local version the registry already has (by lookup of the exact text);
// an older local version the registry lacks is never registered after a newer one, which would
// turn back what producers write. A subject the registry does not know gets every local
// version in order, so its history matches the repository's.
package evolve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/riferrei/srclient"

	"github.com/iov-platform/iov/schemas"
)

// Registry is the part of srclient's client schemactl uses.
type Registry interface {
	GetLatestSchema(subject string) (*srclient.Schema, error)
	LookupSchema(subject, schema string, schemaType srclient.SchemaType, references ...srclient.Reference) (*srclient.Schema, error)
	IsSchemaCompatible(subject, schema, version string, schemaType srclient.SchemaType, references ...srclient.Reference) (bool, error)
	CreateSchema(subject, schema string, schemaType srclient.SchemaType, references ...srclient.Reference) (*srclient.Schema, error)
	GetCompatibilityLevel(subject string, defaultToGlobal bool) (*srclient.CompatibilityLevel, error)
	GetGlobalCompatibilityLevel() (*srclient.CompatibilityLevel, error)
	ChangeSubjectCompatibilityLevel(subject string, compatibility srclient.CompatibilityLevel) (*srclient.CompatibilityLevel, error)
}

// Subject is a registry subject, the local versions of the family it carries and the
// compatibility level it must have.
type Subject struct {
	Name          string
	Compatibility srclient.CompatibilityLevel
	Versions      []schemas.Definition // v1..vN, ascending
	Dir           string               // where the versions live, for messages
}

// State is a subject as the registry holds it, next to the local versions.
type State struct {
	Subject Subject
	Level   srclient.CompatibilityLevel // in force now (the subject's or the global one)
	Pinned  bool                        // Level is set on the subject, not the global default
	Latest  *srclient.Schema            // nil when the subject has no version
	// LatestLocal is the local version equal to Latest, 0 when Latest is none of them.
	LatestLocal int
	// Registered maps each local version the registry has to its registry version.
	Registered map[int]int
	// New are the local versions to register, ascending.
	New []schemas.Definition
}

// Registry error codes (Confluent's REST API).
const (
	codeSubjectNotFound = 40401
	codeVersionNotFound = 40402
	codeSchemaNotFound  = 40403
	codeNoSubjectLevel  = 40408 // subject has no compatibility level of its own
	codeIncompatible    = 409
)

func registryCode(err error) int {
	var se srclient.Error
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// Inspect reads what the registry holds for s.
func Inspect(reg Registry, s Subject) (State, error) {
	st := State{Subject: s, Registered: map[int]int{}}
	level, err := reg.GetCompatibilityLevel(s.Name, false)
	if code := registryCode(err); code == codeSubjectNotFound || code == codeNoSubjectLevel {
		// No level of its own: the global one applies. (Apicurio's ccompat API answers 40401
		// for an unknown subject even with defaultToGlobal, so ask for the global directly.)
		level, err = reg.GetGlobalCompatibilityLevel()
	} else {
		st.Pinned = err == nil
	}
	if err != nil {
		return st, fmt.Errorf("subject %s: compatibility level: %w", s.Name, err)
	}
	st.Level = *level
	latest, err := reg.GetLatestSchema(s.Name)
	switch code := registryCode(err); {
	case code == codeSubjectNotFound || code == codeVersionNotFound: // Apicurio: 40402 for "latest" of an empty subject
		st.New = s.Versions
		return st, nil
	case err != nil:
		return st, fmt.Errorf("subject %s: latest version: %w", s.Name, err)
	}
	st.Latest = latest
	newestKnown := 0
	for _, d := range s.Versions {
		got, err := reg.LookupSchema(s.Name, d.Text, srclient.Avro)
		switch code := registryCode(err); {
		case code == codeSchemaNotFound || code == codeSubjectNotFound:
			continue
		case err != nil:
			return st, fmt.Errorf("subject %s: look up %s v%d: %w", s.Name, d.Name, d.Version, err)
		}
		st.Registered[d.Version] = got.Version()
		newestKnown = d.Version
		if got.Version() == latest.Version() {
			st.LatestLocal = d.Version
		}
	}
	for _, d := range s.Versions {
		if d.Version > newestKnown {
			st.New = append(st.New, d)
		}
	}
	if newestKnown == 0 && len(s.Versions) > 0 {
		// The subject holds versions that are none of ours: only the newest local version
		// can follow them.
		st.New = s.Versions[len(s.Versions)-1:]
	}
	return st, nil
}

// Refusal is a local version the registry does not accept under a subject.
type Refusal struct {
	Subject string
	Level   srclient.CompatibilityLevel
	Version schemas.Definition
	Dir     string
	// Against names what it was checked against (the registered version, or for a subject
	// the registry does not know yet, the local version before it); AgainstText is that
	// schema.
	Against, AgainstText string
	Reason               string // the Avro resolution error, checked locally for the message
	Registry             string // the registry's own message, when it gave one
}

// compatible asks the registry whether d may follow the subject's latest version; an error
// counts as no.
func compatible(reg Registry, subject string, d schemas.Definition) bool {
	ok, err := reg.IsSchemaCompatible(subject, d.Text, "latest", srclient.Avro)
	return err == nil && ok
}

func registryMessage(err error) string {
	var se srclient.Error
	if errors.As(err, &se) && se.Message != "" {
		return se.Message
	}
	return err.Error()
}

// ErrRefused is returned when at least one version was refused.
var ErrRefused = errors.New("refused by the registry")

// Check asks the registry whether each new version of st is compatible with the latest
// registered one. A subject without versions accepts anything; its later new versions are
// checked against the ones before them locally, as the registry will when they are registered.
func Check(reg Registry, st State) ([]Refusal, error) {
	var refused []Refusal
	for i, d := range st.New {
		if st.Latest == nil {
			if i > 0 {
				// register pins the configured level before the first version, so that is
				// the level these versions will meet.
				if err := schemas.CheckBackward(d, st.New[i-1]); err != nil && st.Subject.Compatibility != srclient.None {
					prev := st.New[i-1]
					refused = append(refused, Refusal{Subject: st.Subject.Name, Level: st.Subject.Compatibility, Version: d, Dir: st.Subject.Dir,
						Against:     fmt.Sprintf("local %s v%d (to be registered before it)", prev.Name, prev.Version),
						AgainstText: prev.Text, Reason: err.Error()})
				}
			}
			continue
		}
		ok, err := reg.IsSchemaCompatible(st.Subject.Name, d.Text, "latest", srclient.Avro)
		if err != nil {
			return refused, fmt.Errorf("subject %s: check %s v%d: %w", st.Subject.Name, d.Name, d.Version, err)
		}
		if !ok {
			refused = append(refused, refusal(st, d))
		}
	}
	return refused, nil
}

func refusal(st State, d schemas.Definition) Refusal {
	r := Refusal{Subject: st.Subject.Name, Level: st.Level, Version: d, Dir: st.Subject.Dir,
		Against:     fmt.Sprintf("registered %s version %d (id %d)", st.Subject.Name, st.Latest.Version(), st.Latest.ID()),
		AgainstText: st.Latest.Schema()}
	registered := schemas.Definition{Name: st.Subject.Name, Version: st.Latest.Version(), Text: st.Latest.Schema()}
	if err := schemas.CheckBackward(d, registered); err != nil {
		r.Reason = err.Error()
	}
	return r
}

// Registration is one version registered under a subject.
type Registration struct {
	Version  schemas.Definition
	ID       int // the registry's schema id
	Registry int // the subject's version number
}

// Register sets st's subject's own compatibility level (so that a change of the registry's
// global default does not change it), then registers each new version in order, checking it
// first. It stops at the first refused version of the subject. set tells whether the level
// was changed.
func Register(reg Registry, st State) (set bool, done []Registration, refused *Refusal, err error) {
	s := st.Subject
	if !st.Pinned || st.Level != s.Compatibility {
		if _, err := reg.ChangeSubjectCompatibilityLevel(s.Name, s.Compatibility); err != nil {
			return false, nil, nil, fmt.Errorf("subject %s: set compatibility %s: %w", s.Name, s.Compatibility, err)
		}
		st.Level, set = s.Compatibility, true
	}
	for _, d := range st.New {
		if st.Latest != nil {
			ok, err := reg.IsSchemaCompatible(s.Name, d.Text, "latest", srclient.Avro)
			if err != nil {
				return set, done, nil, fmt.Errorf("subject %s: check %s v%d: %w", s.Name, d.Name, d.Version, err)
			}
			if !ok {
				r := refusal(st, d)
				return set, done, &r, nil
			}
		}
		if _, err := reg.CreateSchema(s.Name, d.Text, srclient.Avro); err != nil {
			// Confluent answers 409 / error_code 409; Apicurio's ccompat API error_code 0
			// with "Incompatible artifact: ...". Ask the compatibility API to tell them apart
			// from other failures.
			if st.Latest != nil && (registryCode(err) == codeIncompatible || !compatible(reg, s.Name, d)) {
				r := refusal(st, d)
				r.Registry = registryMessage(err)
				return set, done, &r, nil
			}
			return set, done, nil, fmt.Errorf("subject %s: register %s v%d: %w", s.Name, d.Name, d.Version, err)
		}
		latest, err := reg.GetLatestSchema(s.Name)
		if err != nil {
			return set, done, nil, fmt.Errorf("subject %s: read back %s v%d: %w", s.Name, d.Name, d.Version, err)
		}
		st.Latest = latest
		done = append(done, Registration{Version: d, ID: latest.ID(), Registry: latest.Version()})
	}
	return set, done, nil, nil
}

// WriteRefusal prints r: what was refused, why, and a unified diff from the registered
// schema to the local one.
func WriteRefusal(w io.Writer, r Refusal) error {
	file := fmt.Sprintf("%s/%s/v%d.avsc", r.Dir, r.Version.Name, r.Version.Version)
	fmt.Fprintf(w, "REFUSED %s: %s v%d is not %s-compatible with %s\n", r.Subject, r.Version.Name, r.Version.Version, r.Level, r.Against)
	if r.Registry != "" {
		fmt.Fprintf(w, "  registry: %s\n", r.Registry)
	}
	if r.Reason != "" {
		fmt.Fprintf(w, "  why (Avro schema resolution): %s\n", r.Reason)
	}
	diff, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        difflib.SplitLines(pretty(r.AgainstText)),
		B:        difflib.SplitLines(pretty(r.Version.Text)),
		FromFile: r.Against,
		ToFile:   file,
		Context:  3,
	})
	if err != nil {
		return fmt.Errorf("diff: %w", err)
	}
	for _, line := range strings.SplitAfter(diff, "\n") {
		if line != "" {
			fmt.Fprint(w, "  ", line)
		}
	}
	return nil
}

// pretty indents a schema document the same way whatever its source's layout, so that the
// diff shows changes, not whitespace. Text that is not JSON is shown as it is.
func pretty(text string) string {
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, []byte(text)); err != nil {
		return text + "\n"
	}
	_ = json.Indent(&out, compact.Bytes(), "", "  ") // valid JSON: cannot fail
	return out.String() + "\n"
}
