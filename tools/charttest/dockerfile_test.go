package charttest

import (
	"io"
	"os"
	pathpkg "path"
	"path/filepath"
	"regexp"
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

// TestProducerImageCarriesChartCommands: the charts run the producer image with other
// commands than the producer (the schema Job's schemactl, the ExHook reload Job and status
// exporter's exhook-reload). Every `/usr/local/bin/<name>` a chart template runs must be
// built into the build stage's /out/<name> and copied to /usr/local/bin/<name> in the final
// stage of services/exhook-producer/Dockerfile, or the pod fails with "no such file".
func TestProducerImageCarriesChartCommands(t *testing.T) {
	root := repoRoot(t)
	var templates []string
	for _, pattern := range []string{"charts/*/templates/*.yaml", "charts/*/templates/*.tpl"} {
		m, _ := filepath.Glob(filepath.Join(root, pattern))
		templates = append(templates, m...)
	}
	cmdRE := regexp.MustCompile(`command:\s*\[\s*"?/usr/local/bin/([A-Za-z0-9_-]+)`)
	used := map[string]string{} // binary -> template
	for _, f := range templates {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range cmdRE.FindAllStringSubmatch(string(b), -1) {
			used[m[1]], _ = filepath.Rel(root, f)
		}
	}
	for _, want := range []string{"schemactl", "exhook-reload"} {
		if used[want] == "" {
			t.Errorf("no chart template runs /usr/local/bin/%s; the check lost its subject", want)
		}
	}
	f, err := os.Open(filepath.Join(root, "services", "exhook-producer", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	carried, err := imageBinaries(f)
	if err != nil {
		t.Fatal(err)
	}
	for bin, tmpl := range used {
		if !slices.Contains(carried, bin) {
			t.Errorf("%s runs /usr/local/bin/%s, which services/exhook-producer/Dockerfile does not build and copy there", tmpl, bin)
		}
	}
}

// imageBinaries lists the <name>s a Dockerfile builds with `go build ... -o /out/<name>` in a
// RUN and copies with `COPY --from=<stage> /out/<name> /usr/local/bin/<name>`.
func imageBinaries(dockerfile io.Reader) ([]string, error) {
	res, err := parser.Parse(dockerfile)
	if err != nil {
		return nil, err
	}
	builtRE := regexp.MustCompile(`go build\b[^&;]*-o /out/([A-Za-z0-9_-]+)`)
	built := map[string]bool{}
	var out []string
	for _, n := range res.AST.Children {
		var args []string
		for a := n.Next; a != nil; a = a.Next {
			args = append(args, a.Value)
		}
		switch strings.ToLower(n.Value) {
		case "run":
			for _, m := range builtRE.FindAllStringSubmatch(strings.Join(args, " "), -1) {
				built[m[1]] = true
			}
		case "copy":
			if !slices.ContainsFunc(n.Flags, func(f string) bool { return strings.HasPrefix(f, "--from") }) || len(args) != 2 {
				continue
			}
			src, dst := pathpkg.Clean(args[0]), pathpkg.Clean(args[1])
			name := pathpkg.Base(dst)
			if src == "/out/"+name && dst == "/usr/local/bin/"+name && built[name] {
				out = append(out, name)
			}
		}
	}
	return out, nil
}

func TestImageBinaries(t *testing.T) {
	const build = "FROM golang AS build\nRUN cd x && CGO_ENABLED=0 go build -trimpath -o /out/a ./cmd/a\nRUN --mount=type=cache,target=/c go build -o /out/b .\n"
	for _, tc := range []struct {
		name, dockerfile string
		want             []string
	}{
		{"built and copied", build + "FROM base\nCOPY --from=build /out/a /usr/local/bin/a\nCOPY --from=build /out/b /usr/local/bin/b\n", []string{"a", "b"}},
		{"built, not copied", build + "FROM base\nCOPY --from=build /out/a /usr/local/bin/a\n", []string{"a"}},
		{"copied, never built", "FROM golang AS build\nRUN true\nFROM base\nCOPY --from=build /out/a /usr/local/bin/a\n", nil},
		{"copied elsewhere", build + "FROM base\nCOPY --from=build /out/a /bin/a\n", nil},
		{"copied from the context", build + "FROM base\nCOPY out/a /usr/local/bin/a\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := imageBinaries(strings.NewReader(tc.dockerfile))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
