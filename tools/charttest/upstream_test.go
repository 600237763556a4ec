package charttest

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/cli/values"
)

// emqxEditions are the two EMQX variants: the values key of each and how to switch to it.
var emqxEditions = []struct {
	key, image string
	switchTo   []string
}{
	{"emqx", "emqx/emqx:5.8.9", nil},
	{"emqx-enterprise", "emqx/emqx-enterprise:6.0.1", []string{"ci/emqx-enterprise-values.yaml"}},
}

// TestEMQXExhookConfig: the ExHook and PROXY-listener settings reach EMQX in both
// editions: they are in the EMQX chart's env ConfigMap that the StatefulSet loads, and
// the enable flag "false" is written as "false" (EMQX would otherwise default to enabled).
func TestEMQXExhookConfig(t *testing.T) {
	for _, ed := range emqxEditions {
		for _, enable := range []string{"true", "false"} {
			t.Run(ed.key+"/enable="+enable, func(t *testing.T) {
				var files []string
				for _, f := range ed.switchTo {
					files = append(files, filepath.Join(umbrellaDir(t), f))
				}
				// --set parses the value as a YAML boolean: refused, the string form is supported.
				if _, err := render(scratchUmbrella(t), files, ed.key+".emqxConfig.EMQX_EXHOOK__SERVERS__1__ENABLE="+enable); err == nil {
					t.Fatalf("--set ENABLE=%s (a YAML boolean) rendered; the schema must refuse it", enable)
				}
				m, err := renderOpts(scratchUmbrella(t), &values.Options{ValueFiles: files,
					StringValues: []string{ed.key + ".emqxConfig.EMQX_EXHOOK__SERVERS__1__ENABLE=" + enable}})
				if err != nil {
					t.Fatal(err)
				}
				objs := mustObjects(t, m)
				env := find(objs, "ConfigMap", "-emqx-env")
				sts := find(objs, "StatefulSet", "-emqx")
				if env == nil || sts == nil {
					t.Fatal("no EMQX env ConfigMap or StatefulSet rendered")
				}
				want := map[string]string{
					"EMQX_EXHOOK__SERVERS__1__ENABLE":                      enable,
					"EMQX_EXHOOK__SERVERS__1__NAME":                        "iov",
					"EMQX_EXHOOK__SERVERS__1__URL":                         "http://iov-exhook-producer:9000",
					"EMQX_EXHOOK__SERVERS__1__FAILED_ACTION":               "ignore",
					"EMQX_LISTENERS__TCP__HAPROXY__BIND":                   "1884",
					"EMQX_LISTENERS__TCP__HAPROXY__PROXY_PROTOCOL":         "true",
					"EMQX_LISTENERS__TCP__HAPROXY__PROXY_PROTOCOL_TIMEOUT": "3s",
				}
				for k, v := range want {
					if got := path(env, "data", k); got != v {
						t.Errorf("%s: %s = %v, want %q", env.name(), k, got, v)
					}
				}
				c := path(sts, "spec", "template", "spec", "containers").([]any)[0]
				if img := path(c, "image"); img != ed.image {
					t.Errorf("EMQX image %v, want %s", img, ed.image)
				}
				from := fmt.Sprint(path(c, "envFrom"))
				if !strings.Contains(from, env.name()) {
					t.Errorf("StatefulSet envFrom %s does not load ConfigMap %s", from, env.name())
				}
				if sts.name() != "iov-emqx" {
					t.Errorf("StatefulSet %s, want iov-emqx (HAProxy and the downlink address it)", sts.name())
				}
			})
		}
	}
}

// TestEMQXChartDropsBooleanFalse documents the upstream defect the schema guards
// against: with schema validation skipped, a YAML boolean false never reaches EMQX.
func TestEMQXChartDropsBooleanFalse(t *testing.T) {
	vals, err := valuesFrom(nil, []string{"emqx.emqxConfig.EMQX_EXHOOK__SERVERS__1__ENABLE=false"})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.Load(scratchUmbrella(t))
	if err != nil {
		t.Fatal(err)
	}
	ch.Schema = nil // what a render without our schema would do
	for _, d := range ch.Dependencies() {
		if d.Name() == "emqx" {
			d.Schema = nil
		}
	}
	m, err := renderChart(ch, vals)
	if err != nil {
		t.Fatal(err)
	}
	env := find(mustObjects(t, m), "ConfigMap", "-emqx-env")
	if env == nil {
		t.Fatal("no EMQX env ConfigMap")
	}
	if v := path(env, "data", "EMQX_EXHOOK__SERVERS__1__ENABLE"); v != nil {
		t.Fatalf("the EMQX chart wrote ENABLE=%v for a boolean false; the schema's string-only rule may be relaxed", v)
	}
}

// TestStrimziOperatorResources: the operator Deployment gets exactly the resources our
// values set (Helm merges maps, so a missing key would keep Strimzi's own limit).
func TestStrimziOperatorResources(t *testing.T) {
	for _, v := range umbrellaVariants(t) {
		t.Run(v.name, func(t *testing.T) {
			vals, err := valuesFrom(append([]string{filepath.Join(umbrellaDir(t), "values.yaml")}, v.values...), nil)
			if err != nil {
				t.Fatal(err)
			}
			want := path(vals, "strimzi", "resources")
			dep := find(mustObjects(t, renderVariant(t, v)), "Deployment", "strimzi-cluster-operator")
			if dep == nil {
				t.Fatal("no strimzi-cluster-operator Deployment")
			}
			got := path(path(dep, "spec", "template", "spec", "containers").([]any)[0], "resources")
			if !reflect.DeepEqual(stringify(got), stringify(want)) {
				t.Errorf("operator resources %v, values say %v", got, want)
			}
			for _, k := range []string{"cpu", "memory"} {
				if path(want, "limits", k) == nil || path(want, "requests", k) == nil {
					t.Errorf("strimzi.resources must set requests and limits of %s explicitly", k)
				}
			}
		})
	}
}

func stringify(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = stringify(e)
		}
		return out
	default:
		return fmt.Sprint(x)
	}
}
