package charttest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
)

// The documented chart locations of the third-party dependencies.
var upstreamRepositories = map[string]string{
	"strimzi-kafka-operator": "oci://quay.io/strimzi-helm", // https://strimzi.io/charts/ is deprecated since 0.36
	"emqx":                   "https://repos.emqx.io/charts",
	"emqx-enterprise":        "https://repos.emqx.io/charts",
	"haproxy":                "https://haproxytech.github.io/helm-charts",
}

// TestChartDependencies: third-party versions pinned to exact releases from their
// documented locations, local subcharts in sync and all wired, a condition on each.
func TestChartDependencies(t *testing.T) {
	c := readChartFile(t, umbrellaDir(t))
	exact := regexp.MustCompile(`^\d+\.\d+\.\d+$`)
	local := map[string]bool{}
	for _, d := range c.Dependencies {
		t.Run(d.Name, func(t *testing.T) {
			if d.Condition == "" {
				t.Error("no condition")
			}
			if rel, ok := strings.CutPrefix(d.Repository, "file://"); ok {
				local[strings.TrimPrefix(rel, "../")] = true
				sub := readChartFile(t, filepath.Join(umbrellaDir(t), rel))
				if sub.Name != d.Name || sub.Version != d.Version {
					t.Errorf("Chart.yaml of %s is %s %s, dependency says %s", d.Repository, sub.Name, sub.Version, d.Version)
				}
				return
			}
			if !exact.MatchString(d.Version) {
				t.Errorf("version %q is not pinned to an exact release", d.Version)
			}
			if want, ok := upstreamRepositories[d.Name]; !ok || d.Repository != want {
				t.Errorf("repository %q, want the documented location %q", d.Repository, want)
			}
		})
	}
	entries, err := os.ReadDir(chartsDir(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(chartsDir(t), e.Name(), "Chart.yaml")); err == nil && e.Name() != "iov-platform" && !local[e.Name()] {
			t.Errorf("charts/%s is not a file:// dependency of charts/iov-platform", e.Name())
		}
	}
}

// TestLint is `helm lint --strict` of every variant: our subcharts standalone and the
// umbrella with the upstream charts in place.
func TestLint(t *testing.T) {
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range variants(t) {
		t.Run(v.name, func(t *testing.T) {
			dir := filepath.Join(chartsDir(t), v.chart)
			if v.umbrella() {
				dir = scratchUmbrella(t)
			}
			vals, err := valuesFrom(v.values, nil)
			if err != nil {
				t.Fatal(err)
			}
			l := action.NewLint()
			l.Strict = true
			l.Namespace = namespace
			l.KubeVersion = kv
			res := l.Run([]string{dir}, vals)
			for _, e := range res.Errors {
				t.Error(e)
			}
			if res.TotalChartsLinted != 1 {
				t.Errorf("linted %d charts, want 1", res.TotalChartsLinted)
			}
		})
	}
}

// TestHelmUnittest runs the helm-unittest suites of every chart (tests/*_test.yaml).
func TestHelmUnittest(t *testing.T) {
	bin := chartTool(t, "helm-unittest", helmUnittestVersion)
	charts := append(localCharts(t), "iov-platform")
	summary := regexp.MustCompile(`(?m)^Tests:\s+(.*)$`)
	for _, c := range charts {
		t.Run(c, func(t *testing.T) {
			dir := filepath.Join(chartsDir(t), c)
			args := []string{"--color=false"}
			if c == "iov-platform" {
				dir = scratchUmbrella(t)
				args = append(args, "--with-subchart=false")
			}
			cmd := exec.Command(bin, append(args, dir)...)
			cmd.Env = append(os.Environ(), "HELM_PLUGIN_DIR="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("helm-unittest %s: %v\n%s", c, err, out)
			}
			m := summary.FindSubmatch(out)
			if m == nil {
				t.Fatalf("no test summary in the output:\n%s", out)
			}
			t.Logf("%s: %s", c, m[1])
		})
	}
}

// crdDir gathers the real CRDs for the Strimzi version Chart.yaml pins and the
// prometheus-operator CRDs from ../shared, and cert-manager's Certificate CRD, into one
// folder for kubectl-validate.
func crdDir(t *testing.T) string {
	t.Helper()
	var strimzi string
	for _, d := range readChartFile(t, umbrellaDir(t)).Dependencies {
		if d.Name == "strimzi-kafka-operator" {
			strimzi = d.Version
		}
	}
	src := map[string]string{"0.51.0": "crds", "1.2.0": "crds-strimzi-1.2.0"}[strimzi]
	if src == "" {
		t.Fatalf("no CRD folder in ../shared is known for Strimzi %q", strimzi)
	}
	dst := t.TempDir()
	copyYAML := func(dir, glob string) int {
		files, _ := filepath.Glob(filepath.Join(sharedDir(t), dir, glob))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return len(files)
	}
	if copyYAML(src, "04*-Crd-*.yaml") == 0 {
		t.Fatalf("no Strimzi %s CRDs in %s", strimzi, filepath.Join(sharedDir(t), src))
	}
	if copyYAML("crds", "monitoring.coreos.com_*.yaml") == 0 {
		t.Fatalf("no prometheus-operator CRDs in %s", filepath.Join(sharedDir(t), "crds"))
	}
	// cert-manager's Certificate CRD, from its Go module (tools/chart-tools.sh fetches it).
	cm := filepath.Join(chartTool(t, "cert-manager-crds", certManagerVersion), "cert-manager.io_certificates.yaml")
	b, err := os.ReadFile(cm)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, filepath.Base(cm)), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestKubectlValidate validates every rendered object: built-in kinds against the
// Kubernetes 1.30 schemas, custom resources against the real CRDs.
func TestKubectlValidate(t *testing.T) {
	bin := chartTool(t, "kubectl-validate", kubectlValidateVersion)
	crds := crdDir(t)
	for _, v := range variants(t) {
		t.Run(v.name, func(t *testing.T) {
			objs := mustObjects(t, renderVariant(t, v))
			var native, custom []object
			for _, o := range objs {
				group := strings.SplitN(o.apiVersion(), "/", 2)[0]
				if group == "kafka.strimzi.io" || group == "monitoring.coreos.com" || group == "cert-manager.io" {
					custom = append(custom, o)
				} else {
					native = append(native, o)
				}
			}
			dir := t.TempDir()
			validate := func(name string, objs []object, extra ...string) {
				if len(objs) == 0 {
					return
				}
				f := filepath.Join(dir, name+".yaml")
				writeObjects(t, f, objs)
				args := append([]string{f, "--version", kvVersion, "-o", "json"}, extra...)
				out, err := exec.Command(bin, args...).Output()
				if problems := kvProblems(out); err != nil || len(problems) > 0 {
					t.Errorf("kubectl-validate %s (%d objects): %v\n%s", name, len(objs), err, strings.Join(problems, "\n"))
				}
			}
			validate("built-in", native)
			validate("custom", custom, "--local-crds", crds)
			t.Logf("%d built-in, %d custom resources", len(native), len(custom))
		})
	}
}

func writeObjects(t *testing.T, file string, objs []object) {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	enc := yaml.NewEncoder(f)
	for _, o := range objs {
		if err := enc.Encode(map[string]any(o)); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// kvProblems reads kubectl-validate's JSON report: file -> one status per document.
func kvProblems(out []byte) []string {
	var res map[string][]map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		return []string{fmt.Sprintf("unreadable report (%v): %s", err, out)}
	}
	var problems []string
	for _, items := range res {
		for i, it := range items {
			if it["status"] != "Success" {
				problems = append(problems, fmt.Sprintf("document %d: %v", i, it["message"]))
			}
		}
	}
	return problems
}

// TestKubectlValidateRejects proves the validation above can fail: an object the real
// Strimzi CRD refuses and a Deployment with a wrongly typed field.
func TestKubectlValidateRejects(t *testing.T) {
	bin := chartTool(t, "kubectl-validate", kubectlValidateVersion)
	crds := crdDir(t)
	cases := []struct {
		name string
		obj  object
		want string // in kubectl-validate's message
	}{
		{"KafkaTopic partitions as a string", object{"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic",
			"metadata": map[string]any{"name": "t", "namespace": "n"}, "spec": map[string]any{"partitions": "six"}}, "spec.partitions"},
		{"Certificate dnsNames as a string", object{"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
			"metadata": map[string]any{"name": "c", "namespace": "n"}, "spec": map[string]any{"secretName": "s",
				"dnsNames": "a.example", "issuerRef": map[string]any{"name": "ca"}}}, "spec.dnsNames"},
		{"KafkaUser ACL with an unknown operation", object{"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaUser",
			"metadata": map[string]any{"name": "u", "namespace": "n"}, "spec": map[string]any{
				"authentication": map[string]any{"type": "scram-sha-512"},
				"authorization": map[string]any{"type": "simple", "acls": []any{map[string]any{
					"resource": map[string]any{"type": "topic", "name": "t"}, "operations": []any{"Produce"}}}}}}, `Unsupported value: "Produce"`},
		{"Kafka listener with an unknown authentication", object{"apiVersion": "kafka.strimzi.io/v1", "kind": "Kafka",
			"metadata": map[string]any{"name": "k", "namespace": "n"}, "spec": map[string]any{"kafka": map[string]any{
				"listeners": []any{map[string]any{"name": "tls", "port": 9093, "type": "internal", "tls": true,
					"authentication": map[string]any{"type": "scram-sha-256"}}}}}}, `Unsupported value: "scram-sha-256"`},
		{"Deployment replicas as a string", object{"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": "d"}, "spec": map[string]any{"replicas": "two",
				"selector": map[string]any{"matchLabels": map[string]any{"a": "b"}},
				"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"a": "b"}},
					"spec": map[string]any{"containers": []any{map[string]any{"name": "c", "image": "i"}}}}}}, "replicas"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "o.yaml")
			writeObjects(t, f, []object{c.obj})
			out, _ := exec.Command(bin, f, "--version", kvVersion, "-o", "json", "--local-crds", crds).Output()
			problems := strings.Join(kvProblems(out), "\n")
			if !strings.Contains(problems, c.want) {
				t.Errorf("kubectl-validate did not refuse it for %q: %s", c.want, out)
			}
		})
	}
}
