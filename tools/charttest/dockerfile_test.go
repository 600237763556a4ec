package charttest

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"golang.org/x/mod/modfile"
)

// TestDockerfilesCopyWorkspace: every service image builds inside the go.work workspace, and
// `go build` refuses a workspace whose `use` directories are missing. So each Dockerfile that
// copies go.work must copy go.work.sum and every module go.work uses (or a folder above it).
func TestDockerfilesCopyWorkspace(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	wf, err := modfile.ParseWork("go.work", b, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"go.work"}
	if _, err := os.Stat(filepath.Join(root, "go.work.sum")); err == nil {
		want = append(want, "go.work.sum")
	}
	for _, u := range wf.Use {
		want = append(want, filepath.Clean(u.Path))
	}
	files, _ := filepath.Glob(filepath.Join(root, "services", "*", "Dockerfile"))
	if len(files) == 0 {
		t.Fatal("no services/*/Dockerfile")
	}
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		t.Run(rel, func(t *testing.T) {
			r, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			missing, err := notCopied(r, want)
			if err != nil {
				t.Fatal(err)
			}
			if len(missing) > 0 {
				t.Errorf("%s does not COPY %s into the build stage; go.work needs them", rel, strings.Join(missing, ", "))
			}
		})
	}
}

// notCopied lists the paths of want (relative to the build context) that no COPY from the
// build context (no --from) brings in, itself or through a folder above it.
func notCopied(dockerfile io.Reader, want []string) ([]string, error) {
	res, err := parser.Parse(dockerfile)
	if err != nil {
		return nil, err
	}
	var sources []string
	for _, n := range res.AST.Children {
		if !strings.EqualFold(n.Value, "copy") || slices.ContainsFunc(n.Flags, func(f string) bool { return strings.HasPrefix(f, "--from") }) {
			continue
		}
		var args []string
		for a := n.Next; a != nil; a = a.Next {
			args = append(args, a.Value)
		}
		if len(args) < 2 {
			continue
		}
		for _, s := range args[:len(args)-1] { // the last one is the destination
			sources = append(sources, filepath.Clean(s))
		}
	}
	var missing []string
	for _, w := range want {
		if !slices.ContainsFunc(sources, func(s string) bool { return s == "." || s == w || strings.HasPrefix(w, s+"/") }) {
			missing = append(missing, w)
		}
	}
	return missing, nil
}

// TestNotCopied: the check finds a module the Dockerfile leaves out and accepts folders
// above a module, and ignores copies from other stages.
func TestNotCopied(t *testing.T) {
	want := []string{"go.work", "go.work.sum", "kit", "tools/devkit", "tools/monitoring"}
	tests := []struct {
		name, dockerfile string
		missing          []string
	}{
		{"every module", "FROM x AS build\nCOPY go.work go.work.sum ./\nCOPY kit/ kit/\nCOPY tools/devkit/ tools/devkit/\nCOPY tools/monitoring/ tools/monitoring/\n", nil},
		{"a module left out", "FROM x\nCOPY go.work go.work.sum ./\nCOPY kit/ kit/\nCOPY tools/devkit/ tools/devkit/\n", []string{"tools/monitoring"}},
		{"folder above", "FROM x\nCOPY go.work ./\nCOPY go.work.sum ./\nCOPY kit ./kit\nCOPY tools/ tools/\n", nil},
		{"whole context", "FROM x\nCOPY . .\n", nil},
		{"copied from another stage only", "FROM x\nCOPY go.work go.work.sum ./\nCOPY kit/ kit/\nCOPY --from=build tools/ tools/\n", []string{"tools/devkit", "tools/monitoring"}},
		{"no go.work.sum", "FROM x\nCOPY go.work ./\nCOPY kit/ tools/ ./\n", []string{"go.work.sum"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := notCopied(strings.NewReader(tt.dockerfile), want)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.missing) {
				t.Errorf("missing %v, want %v", got, tt.missing)
			}
		})
	}
}
