package charttest

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
)

var update = flag.Bool("update", false, "rewrite the goldens and the infra/ reference files")

const (
	kubeVersion = "1.30.0" // newest schema set embedded in kubectl-validate v0.0.4
	kvVersion   = "1.30"
	release     = "iov"
	namespace   = "iov"

	kubectlValidateVersion = "v0.0.4"
	helmUnittestVersion    = "v1.1.2"
	certManagerVersion     = "v1.21.2" // Certificate CRD for kubectl-validate (tools/chart-tools.sh)
)

// repoRoot is the repository root (this package lives in tools/charttest).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func chartsDir(t testing.TB) string   { return filepath.Join(repoRoot(t), "charts") }
func umbrellaDir(t testing.TB) string { return filepath.Join(chartsDir(t), "iov-platform") }

// sharedDir is ../shared beside the repository (IOV_SHARED overrides it, e.g. for a
// git worktree that does not sit beside it).
func sharedDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("IOV_SHARED"); d != "" {
		return d
	}
	return filepath.Join(repoRoot(t), "..", "shared")
}

// chartFile is the part of Chart.yaml the tests read.
type chartFile struct {
	Name         string `yaml:"name"`
	Version      string `yaml:"version"`
	Dependencies []struct {
		Name       string `yaml:"name"`
		Alias      string `yaml:"alias"`
		Version    string `yaml:"version"`
		Repository string `yaml:"repository"`
		Condition  string `yaml:"condition"`
	} `yaml:"dependencies"`
}

func readChartFile(t testing.TB, dir string) chartFile {
	t.Helper()
	var c chartFile
	b, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s/Chart.yaml: %v", dir, err)
	}
	return c
}

// localCharts are the umbrella's file:// dependencies (our service charts).
func localCharts(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, d := range readChartFile(t, umbrellaDir(t)).Dependencies {
		if strings.HasPrefix(d.Repository, "file://") {
			out = append(out, d.Name)
		}
	}
	return out
}

// upstreamArchive is the file in ../shared/charts-upstream a pinned dependency needs.
func upstreamArchive(name, version string) string { return name + "-" + version + ".tgz" }

// missingArchives lists the pinned third-party archives ../shared lacks, each with its path.
func missingArchives(t testing.TB) []string {
	t.Helper()
	var missing []string
	for _, d := range readChartFile(t, umbrellaDir(t)).Dependencies {
		if strings.HasPrefix(d.Repository, "file://") {
			continue
		}
		p := filepath.Join(sharedDir(t), "charts-upstream", upstreamArchive(d.Name, d.Version))
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, fmt.Sprintf("%s (dependency %s %s from %s)", p, d.Name, d.Version, d.Repository))
		}
	}
	return missing
}

var (
	scratchOnce sync.Once
	scratchPath string
	scratchErr  error
)

// scratchUmbrella is a copy of charts/iov-platform whose charts/ folder holds our
// subcharts and the pinned upstream archives: `helm dependency build` done offline.
// It is made once per test binary and removed by TestMain.
func scratchUmbrella(t testing.TB) string {
	t.Helper()
	scratchOnce.Do(func() { scratchPath, scratchErr = makeScratch(t) })
	if scratchErr != nil {
		t.Fatal(scratchErr)
	}
	return scratchPath
}

func makeScratch(t testing.TB) (string, error) {
	if missing := missingArchives(t); len(missing) > 0 {
		return "", fmt.Errorf("upstream chart archives pinned by charts/iov-platform/Chart.yaml are missing:\n  %s\n"+
			"(../shared/charts-upstream holds them; set IOV_SHARED if ../shared is elsewhere)", strings.Join(missing, "\n  "))
	}
	dir, err := os.MkdirTemp("", "charttest-")
	if err != nil {
		return "", err
	}
	scratchDirs = append(scratchDirs, dir)
	dst := filepath.Join(dir, "iov-platform")
	if err := os.CopyFS(dst, os.DirFS(umbrellaDir(t))); err != nil {
		return "", err
	}
	sub := filepath.Join(dst, "charts")
	_ = os.RemoveAll(sub)
	_ = os.Remove(filepath.Join(dst, "Chart.lock"))
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return "", err
	}
	for _, d := range readChartFile(t, umbrellaDir(t)).Dependencies {
		if strings.HasPrefix(d.Repository, "file://") {
			if err := os.CopyFS(filepath.Join(sub, d.Name), os.DirFS(filepath.Join(chartsDir(t), d.Name))); err != nil {
				return "", err
			}
			continue
		}
		name := upstreamArchive(d.Name, d.Version)
		b, err := os.ReadFile(filepath.Join(sharedDir(t), "charts-upstream", name))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(sub, name), b, 0o644); err != nil {
			return "", err
		}
	}
	ch, err := loader.Load(dst)
	if err != nil {
		return "", fmt.Errorf("load scratch umbrella: %w", err)
	}
	if err := action.CheckDependencies(ch, ch.Metadata.Dependencies); err != nil {
		return "", fmt.Errorf("scratch umbrella: %w", err)
	}
	return dst, nil
}

var scratchDirs []string

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	for _, d := range scratchDirs {
		_ = os.RemoveAll(d)
	}
	os.Exit(code)
}

// valuesFrom merges values files and --set style assignments as `helm template` does.
func valuesFrom(files []string, set []string) (map[string]any, error) {
	return (&values.Options{ValueFiles: files, Values: set}).MergeValues(getter.Providers{})
}

// render is `helm template iov CHART --namespace iov --kube-version 1.30.0` with the
// given values files and --set assignments, hooks included (as helm template prints them).
func render(chartDir string, files []string, set ...string) (string, error) {
	return renderOpts(chartDir, &values.Options{ValueFiles: files, Values: set})
}

// renderOpts renders with values merged as the helm CLI merges -f, --set, --set-string.
func renderOpts(chartDir string, opts *values.Options) (string, error) {
	vals, err := opts.MergeValues(getter.Providers{})
	if err != nil {
		return "", err
	}
	ch, err := loader.Load(chartDir)
	if err != nil {
		return "", err
	}
	return renderChart(ch, vals)
}

func renderChart(ch *chart.Chart, vals map[string]any) (string, error) {
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		return "", err
	}
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	inst.DryRun = true
	inst.DryRunOption = "true"
	inst.ClientOnly = true
	inst.Replace = true
	inst.ReleaseName = release
	inst.Namespace = namespace
	inst.KubeVersion = kv
	rel, err := inst.Run(ch, vals)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(strings.TrimSpace(rel.Manifest))
	b.WriteString("\n")
	for _, h := range rel.Hooks {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", h.Path, h.Manifest)
	}
	return b.String(), nil
}

// object is one rendered Kubernetes object.
type object map[string]any

func (o object) kind() string       { s, _ := o["kind"].(string); return s }
func (o object) apiVersion() string { s, _ := o["apiVersion"].(string); return s }
func (o object) meta() map[string]any {
	m, _ := o["metadata"].(map[string]any)
	return m
}
func (o object) name() string { s, _ := o.meta()["name"].(string); return s }
func (o object) labels() map[string]any {
	m, _ := o.meta()["labels"].(map[string]any)
	return m
}

// parseObjects splits a multi-document render into objects (empty documents skipped).
func parseObjects(manifest string) ([]object, error) {
	dec := yaml.NewDecoder(strings.NewReader(manifest))
	var out []object
	for {
		// Decode into a plain map: yaml.v3 would give nested mappings the named type too.
		var o map[string]any
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(o) > 0 {
			out = append(out, object(o))
		}
	}
}

func mustObjects(t testing.TB, manifest string) []object {
	t.Helper()
	objs, err := parseObjects(manifest)
	if err != nil {
		t.Fatalf("parse render: %v", err)
	}
	return objs
}

// path walks nested maps: path(o, "spec", "kafka", "listeners").
func path(v any, keys ...string) any {
	if o, ok := v.(object); ok {
		v = map[string]any(o)
	}
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func find(objs []object, kind, nameSuffix string) object {
	for _, o := range objs {
		if o.kind() == kind && strings.HasSuffix(o.name(), nameSuffix) {
			return o
		}
	}
	return nil
}

// chartTool is a tool built by tools/chart-tools.sh into its cache directory.
func chartTool(t testing.TB, name, version string) string {
	t.Helper()
	dir := os.Getenv("IOV_CHART_TOOLS")
	if dir == "" {
		out, err := exec.Command(filepath.Join(repoRoot(t), "tools", "chart-tools.sh"), "--dir").Output()
		if err != nil {
			t.Fatalf("tools/chart-tools.sh --dir: %v", err)
		}
		dir = strings.TrimSpace(string(out))
	}
	p := filepath.Join(dir, name+"-"+version)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s %s is not built: run tools/chart-tools.sh (make chart-tools) first (%v)", name, version, err)
	}
	return p
}

// compareGolden compares got with the file at path, or rewrites it with -update.
func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run: go test ./tools/charttest -run %s -update)", err, t.Name())
	}
	if string(want) != got {
		t.Errorf("%s differs from the render:\n%s\n(if the change is intended: make chart-golden)", path, diff(string(want), got))
	}
}

// diff is a short line diff: the first differing lines with a little context.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "first difference at line %d (golden %d lines, render %d lines)\n", i+1, len(w), len(g))
	for j := max(0, i-3); j < min(len(w), i+10); j++ {
		fmt.Fprintf(&b, "- %s\n", w[j])
	}
	for j := max(0, i-3); j < min(len(g), i+10); j++ {
		fmt.Fprintf(&b, "+ %s\n", g[j])
	}
	return b.String()
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// toStrings formats each element of a YAML list (nil for anything else).
func toStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}
