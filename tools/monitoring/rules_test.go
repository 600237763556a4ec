package monitoring

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert  string            `yaml:"alert"`
			Record string            `yaml:"record"`
			Expr   string            `yaml:"expr"`
			For    string            `yaml:"for"`
			Labels map[string]string `yaml:"labels"`
			Annot  map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return rf
}

// TestRulesCheck runs `promtool check rules` on the chart's rule file.
func TestRulesCheck(t *testing.T) {
	out, err := exec.Command(promTool(t, "promtool"), "check", "rules", rulesFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	n := 0
	for _, g := range readRules(t).Groups {
		n += len(g.Rules)
	}
	if want := "SUCCESS: " + strconv.Itoa(n) + " rules found"; !strings.Contains(string(out), want) {
		t.Fatalf("promtool check rules: want %q in\n%s", want, out)
	}
}

// TestRulesUnit runs the promtool unit tests (testdata/rules_test.yaml).
func TestRulesUnit(t *testing.T) {
	out, err := exec.Command(promTool(t, "promtool"), "test", "rules", rulesTestFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules did not report SUCCESS:\n%s", out)
	}
}

// TestEveryAlertIsTested: every alert has a unit test where it fires and one where it stays
// silent, every alert has a severity, a summary and a runbook link to charts/MONITORING.md
// with a section for it, and the unit tests name no alert the rules do not have.
func TestEveryAlertIsTested(t *testing.T) {
	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var tf struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &tf); err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	doc, err := os.ReadFile(filepath.Join(repoRoot, "charts", "MONITORING.md"))
	if err != nil {
		t.Fatal(err)
	}
	alerts := map[string]bool{}
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = true
			if !fires[r.Alert] {
				t.Errorf("%s: no unit test where it fires", r.Alert)
			}
			if !silent[r.Alert] {
				t.Errorf("%s: no unit test where it stays silent", r.Alert)
			}
			if r.Labels["severity"] == "" || r.Annot["summary"] == "" {
				t.Errorf("%s: needs a severity label and a summary", r.Alert)
			}
			anchor := strings.ToLower(r.Alert)
			if !strings.HasSuffix(r.Annot["runbook_url"], "charts/MONITORING.md#"+anchor) {
				t.Errorf("%s: runbook_url %q does not point at charts/MONITORING.md#%s", r.Alert, r.Annot["runbook_url"], anchor)
			}
			if !strings.Contains(string(doc), "\n### "+r.Alert+"\n") {
				t.Errorf("%s: charts/MONITORING.md has no \"### %s\" runbook section", r.Alert, r.Alert)
			}
		}
	}
	for a := range fires {
		if !alerts[a] {
			t.Errorf("unit tests name %s, which is not an alert of %s", a, rulesFile)
		}
	}
}

// TestPrometheusRuleMatchesCRD validates the PrometheusRule the chart renders (the rule
// file as spec, templates/monitoring.yaml) against the real CRD's openAPIV3Schema
// (prometheus-operator v0.93.0, ../shared/crds). Unknown fields fail too: the API server
// would prune them silently, so every object schema without x-kubernetes-preserve-unknown-fields
// is made closed before compiling it.
func TestPrometheusRuleMatchesCRD(t *testing.T) {
	crdPath := filepath.Join(sharedDir(), "crds", "monitoring.coreos.com_prometheusrules.yaml")
	b, err := os.ReadFile(crdPath)
	if err != nil {
		t.Fatalf("%v (set IOV_SHARED to the folder holding crds/)", err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Name   string `yaml:"name"`
				Schema struct {
					OpenAPIV3Schema map[string]any `yaml:"openAPIV3Schema"`
				} `yaml:"schema"`
			} `yaml:"versions"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	for _, v := range crd.Spec.Versions {
		if v.Name == "v1" {
			schema = v.Schema.OpenAPIV3Schema
		}
	}
	if schema == nil {
		t.Fatalf("%s: no v1 schema", crdPath)
	}
	closeObjects(schema)
	c := jsonschema.NewCompiler()
	if err := c.AddResource("prometheusrule.json", toJSONValue(t, schema)); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("prometheusrule.json")
	if err != nil {
		t.Fatal(err)
	}

	spec, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var specDoc any
	if err := yaml.Unmarshal(spec, &specDoc); err != nil {
		t.Fatal(err)
	}
	obj := map[string]any{
		"apiVersion": "monitoring.coreos.com/v1",
		"kind":       "PrometheusRule",
		"metadata":   map[string]any{"name": "iov-alerts", "labels": map[string]any{"app.kubernetes.io/component": "monitoring"}},
		"spec":       specDoc,
	}
	if err := sch.Validate(toJSONValue(t, obj)); err != nil {
		t.Fatalf("PrometheusRule from %s does not match %s:\n%v", rulesFile, crdPath, err)
	}

	// The check must catch a misspelt field.
	bad := toJSONValue(t, obj).(map[string]any)
	g := bad["spec"].(map[string]any)["groups"].([]any)[0].(map[string]any)
	g["rules"].([]any)[0].(map[string]any)["keepFiringFor"] = "5m"
	if err := sch.Validate(bad); err == nil {
		t.Fatal("a rule with an unknown field (keepFiringFor) validated")
	}
}

// closeObjects sets additionalProperties: false on every object schema that lists its
// properties and neither allows other fields nor preserves unknown ones.
func closeObjects(s map[string]any) {
	if props, ok := s["properties"].(map[string]any); ok {
		_, hasAP := s["additionalProperties"]
		if preserve, _ := s["x-kubernetes-preserve-unknown-fields"].(bool); !hasAP && !preserve {
			s["additionalProperties"] = false
		}
		for _, p := range props {
			if m, ok := p.(map[string]any); ok {
				closeObjects(m)
			}
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if m, ok := s[k].(map[string]any); ok {
			closeObjects(m)
		}
	}
	for _, k := range []string{"anyOf", "allOf", "oneOf"} {
		if l, ok := s[k].([]any); ok {
			for _, e := range l {
				if m, ok := e.(map[string]any); ok {
					closeObjects(m)
				}
			}
		}
	}
}

// toJSONValue turns a YAML-decoded value into what jsonschema expects (JSON numbers).
func toJSONValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}
