package charttest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// variant is one render the tests check: the umbrella with the upstream charts (default
// values, each ci/*-values.yaml of the umbrella) or one of our subcharts standalone.
type variant struct {
	name   string // default, production, emqx-enterprise, exhook-producer, exhook-producer@spool-values
	chart  string // "" for the umbrella (scratch copy with the upstream archives)
	values []string
}

func (v variant) umbrella() bool { return v.chart == "" }

// variants lists every render: umbrella defaults, umbrella ci/*-values.yaml (the
// production values and each supported variant), each subchart with its defaults and
// its ci/*-values.yaml.
func variants(t testing.TB) []variant {
	t.Helper()
	vs := []variant{{name: "default"}}
	files, _ := filepath.Glob(filepath.Join(umbrellaDir(t), "ci", "*-values.yaml"))
	sort.Strings(files)
	// "# base: <variant>" renders a file over that variant's values (-f base -f file).
	var based []string
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && baseLine.Match(b) {
			based = append(based, f)
			continue
		}
		vs = append(vs, variant{name: strings.TrimSuffix(filepath.Base(f), "-values.yaml"), values: []string{f}})
	}
	for _, f := range based {
		b, _ := os.ReadFile(f)
		base := string(baseLine.FindSubmatch(b)[1])
		var values []string
		for _, v := range vs {
			if v.name == base {
				values = append(append(values, v.values...), f)
			}
		}
		if values == nil {
			t.Fatalf("%s: base variant %q is not a ci/*-values.yaml of the umbrella", f, base)
		}
		vs = append(vs, variant{name: strings.TrimSuffix(filepath.Base(f), "-values.yaml"), values: values})
	}
	for _, c := range localCharts(t) {
		vs = append(vs, variant{name: c, chart: c})
		files, _ := filepath.Glob(filepath.Join(chartsDir(t), c, "ci", "*-values.yaml"))
		sort.Strings(files)
		for _, f := range files {
			vs = append(vs, variant{name: c + "@" + strings.TrimSuffix(filepath.Base(f), ".yaml"), chart: c, values: []string{f}})
		}
	}
	return vs
}

func umbrellaVariants(t testing.TB) []variant {
	var out []variant
	for _, v := range variants(t) {
		if v.umbrella() {
			out = append(out, v)
		}
	}
	return out
}

var renders sync.Map // variant name -> *renderResult

type renderResult struct {
	once     sync.Once
	manifest string
	err      error
}

// renderVariant renders v once per test binary.
func renderVariant(t testing.TB, v variant) string {
	t.Helper()
	r, _ := renders.LoadOrStore(v.name, &renderResult{})
	res := r.(*renderResult)
	res.once.Do(func() {
		dir := filepath.Join(chartsDir(t), v.chart)
		if v.umbrella() {
			dir = scratchUmbrella(t)
		}
		res.manifest, res.err = render(dir, v.values)
	})
	if res.err != nil {
		t.Fatalf("render %s: %v", v.name, res.err)
	}
	return res.manifest
}

// TestRender renders every variant; the other tests reuse the renders.
func TestRender(t *testing.T) {
	for _, v := range variants(t) {
		t.Run(v.name, func(t *testing.T) {
			objs := mustObjects(t, renderVariant(t, v))
			if len(objs) == 0 {
				t.Fatal("nothing rendered")
			}
			for i, o := range objs {
				if o.kind() == "" || o.apiVersion() == "" || o.name() == "" {
					t.Errorf("object %d has no kind, apiVersion or name: %v", i, o)
				}
			}
		})
	}
}

// TestUpstreamArchives: every third-party chart Chart.yaml pins is in ../shared.
func TestUpstreamArchives(t *testing.T) {
	if missing := missingArchives(t); len(missing) > 0 {
		t.Fatalf("missing upstream chart archives:\n  %s", strings.Join(missing, "\n  "))
	}
}

// TestUpstreamChartsRendered: the full render contains the upstream charts' own objects
// (the offline render no longer strips them).
func TestUpstreamChartsRendered(t *testing.T) {
	cases := []struct {
		variant, source string
	}{
		{"default", "strimzi/templates/060-Deployment-strimzi-cluster-operator.yaml"},
		{"default", "emqx/templates/StatefulSet.yaml"},
		{"default", "haproxy/templates/deployment.yaml"},
		{"production", "strimzi/templates/060-Deployment-strimzi-cluster-operator.yaml"},
		{"emqx-enterprise", "emqx-enterprise/templates/StatefulSet.yaml"},
	}
	for _, c := range cases {
		t.Run(c.variant+"/"+c.source, func(t *testing.T) {
			m := renderVariant(t, variantNamed(t, c.variant))
			if !strings.Contains(m, "# Source: iov-platform/charts/"+c.source) {
				t.Errorf("no object from charts/%s in the %s render", c.source, c.variant)
			}
		})
	}
}

func variantNamed(t testing.TB, name string) variant {
	t.Helper()
	for _, v := range variants(t) {
		if v.name == name {
			return v
		}
	}
	t.Fatalf("no variant %q", name)
	return variant{}
}

var (
	expectLine = regexp.MustCompile(`(?m)^# expect: (.+)$`)
	baseLine   = regexp.MustCompile(`(?m)^# base: (\S+)$`)
)

// TestRejects: every charts/testdata/bad-values/*.yaml must fail the umbrella render with
// the error its `# expect: <regex>` line names.
func TestRejects(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(chartsDir(t), "testdata", "bad-values", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no charts/testdata/bad-values/*.yaml")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m := expectLine.FindSubmatch(b)
			if m == nil {
				t.Fatalf("%s has no '# expect: <regex>' line", f)
			}
			re, err := regexp.Compile(string(m[1]))
			if err != nil {
				t.Fatal(err)
			}
			files := []string{f}
			// A file may start from a variant: "# base: production" renders over ci/production-values.yaml.
			if base := baseLine.FindSubmatch(b); base != nil {
				files = append(variantNamed(t, string(base[1])).values, f)
			}
			_, err = render(scratchUmbrella(t), files)
			if err == nil {
				t.Fatal("rendered without error")
			}
			if !re.MatchString(err.Error()) {
				t.Fatalf("error does not match /%s/:\n%v", re, err)
			}
		})
	}
}

// TestGolden: full renders of the umbrella (upstream charts included) for every umbrella
// variant, so that a change upstream or ours shows up as a diff.
func TestGolden(t *testing.T) {
	for _, v := range umbrellaVariants(t) {
		t.Run(v.name, func(t *testing.T) {
			compareGolden(t, filepath.Join(umbrellaDir(t), "testdata", "golden", v.name+".yaml"), maskGenerated(renderVariant(t, v)))
		})
	}
}

// TestChecksumConfig: each service chart's checksum/config annotation changes with its
// config.yaml and only with it.
func TestChecksumConfig(t *testing.T) {
	re := regexp.MustCompile(`(?m)^\s*checksum/config:\s*(\S+)`)
	sum := func(t *testing.T, v variant, set ...string) string {
		m, err := render(filepath.Join(chartsDir(t), v.chart), v.values, set...)
		if err != nil {
			t.Fatal(err)
		}
		s := re.FindStringSubmatch(m)
		if s == nil {
			t.Fatal("no checksum/config annotation")
		}
		return s[1]
	}
	for _, v := range variants(t) {
		if v.umbrella() {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			base := sum(t, v)
			if sum(t, v, "config.log.level=debug") == base {
				t.Error("checksum did not change with config.log.level")
			}
			if sum(t, v, "replicaCount=4") != base {
				t.Error("checksum changed without a config change")
			}
		})
	}
}

// TestInfraReference: infra/ holds the HAProxy, EMQX ExHook and Strimzi reference files
// rendered from the default values; they must match the render.
func TestInfraReference(t *testing.T) {
	objs := mustObjects(t, renderVariant(t, variantNamed(t, "default")))
	cm := find(objs, "ConfigMap", "-test-config")
	if cm == nil {
		t.Fatal("no test ConfigMap in the default render")
	}
	root := repoRoot(t)
	kafkaHead := "# Reference Strimzi Kafka + KafkaNodePools (kafka.strimzi.io/v1, KRaft) rendered by\n# charts/iov-platform with default values (release iov, namespace iov).\n# Regenerate with make chart-golden; do not edit by hand.\n"
	topicHead := "# Reference KafkaTopics derived from the service values (producer routes, downlink, consumer), rendered by\n# charts/iov-platform with default values (release iov, namespace iov).\n# Regenerate with make chart-golden; do not edit by hand.\n"
	cases := []struct {
		file string
		got  func() (string, error)
	}{
		{"infra/haproxy/haproxy.cfg", func() (string, error) { return dataKey(cm, "haproxy.cfg") }},
		{"infra/emqx/exhook.hocon", func() (string, error) { return dataKey(cm, "exhook.hocon") }},
		{"infra/strimzi/kafka.yaml", func() (string, error) { return referenceYAML(objs, kafkaHead, "Kafka", "KafkaNodePool") }},
		{"infra/strimzi/kafkatopics.yaml", func() (string, error) { return referenceYAML(objs, topicHead, "KafkaTopic") }},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			got, err := c.got()
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, filepath.Join(root, c.file), got)
		})
	}
}

func dataKey(cm object, key string) (string, error) {
	s, ok := path(cm, "data", key).(string)
	if !ok {
		return "", fmt.Errorf("no %s in ConfigMap %s", key, cm.name())
	}
	return s, nil
}

// TestMissingArchiveNamed: without ../shared, the scratch copy fails naming each missing
// archive and the dependency it is for.
func TestMissingArchiveNamed(t *testing.T) {
	t.Setenv("IOV_SHARED", t.TempDir())
	_, err := makeScratch(t)
	if err == nil {
		t.Fatal("scratch copy made without the upstream archives")
	}
	for _, want := range []string{"charts-upstream/strimzi-kafka-operator-1.2.0.tgz", "charts-upstream/emqx-5.8.9.tgz",
		"charts-upstream/emqx-enterprise-6.0.1.tgz", "charts-upstream/haproxy-1.29.0.tgz", "oci://quay.io/strimzi-helm"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

// generatedRE finds the annotation a Secret with a value generated at install carries
// (iov-platform/generated-data: <data key>), e.g. exhookOps' EMQX API key.
var generatedRE = regexp.MustCompile(`(?m)^    iov-platform/generated-data: "?([A-Za-z0-9._-]+)"?$`)

// maskGenerated replaces the data values that a render generates at random (named by the
// iov-platform/generated-data annotation of their Secret) with a fixed text, so that goldens
// stay stable.
func maskGenerated(manifest string) string {
	docs := strings.Split(manifest, "\n---")
	for i, d := range docs {
		for _, m := range generatedRE.FindAllStringSubmatch(d, -1) {
			value := regexp.MustCompile(`(?m)^(  ` + regexp.QuoteMeta(m[1]) + `: ).+$`)
			docs[i] = value.ReplaceAllString(docs[i], "${1}<generated at install>")
		}
	}
	return strings.Join(docs, "\n---")
}

func TestMaskGenerated(t *testing.T) {
	in := "kind: ConfigMap\ndata:\n  bootstrap.txt: keep\n---\nkind: Secret\nmetadata:\n  annotations:\n    iov-platform/generated-data: \"bootstrap.txt\"\ndata:\n  bootstrap.txt: aW92OnNlY3JldA==\n  other: b3RoZXI=\n"
	want := "kind: ConfigMap\ndata:\n  bootstrap.txt: keep\n---\nkind: Secret\nmetadata:\n  annotations:\n    iov-platform/generated-data: \"bootstrap.txt\"\ndata:\n  bootstrap.txt: <generated at install>\n  other: b3RoZXI=\n"
	if got := maskGenerated(in); got != want {
		t.Fatalf("maskGenerated:\n%s\nwant:\n%s", got, want)
	}
}
