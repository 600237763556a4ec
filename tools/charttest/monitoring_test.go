package charttest

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestMonitoringVariant: the monitoring variant (ci/monitoring-values.yaml) renders what
// TestKubectlValidate then checks against the real prometheus-operator CRDs: the
// PrometheusRule whose spec is files/prometheus-rules.yaml as promtool tests it, with the
// ruleSelector labels, and one Grafana sidecar ConfigMap per dashboard JSON. The default
// render has none of them.
func TestMonitoringVariant(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(umbrellaDir(t), "files", "prometheus-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules map[string]any
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	dashboards, _ := filepath.Glob(filepath.Join(umbrellaDir(t), "files", "dashboards", "*.json"))
	if len(dashboards) == 0 {
		t.Fatal("no files/dashboards/*.json")
	}

	objs := mustObjects(t, renderVariant(t, variantNamed(t, "monitoring")))
	var prs []object
	for _, o := range objs {
		if o.kind() == "PrometheusRule" {
			prs = append(prs, o)
		}
	}
	if len(prs) != 1 {
		t.Fatalf("%d PrometheusRules rendered, want 1 (the umbrella's, from files/prometheus-rules.yaml)", len(prs))
	}
	pr := prs[0]
	if !reflect.DeepEqual(map[string]any(pr["spec"].(map[string]any)), rules) {
		t.Error("PrometheusRule spec differs from files/prometheus-rules.yaml")
	}
	if got := path(pr, "metadata", "labels", "release"); got != "kube-prometheus-stack" {
		t.Errorf("PrometheusRule label release=%v, want the ruleSelector label of the values", got)
	}
	for _, f := range dashboards {
		key := filepath.Base(f)
		name := "iov-dashboard-" + strings.TrimPrefix(strings.TrimSuffix(key, ".json"), "iov-")
		cm := find(objs, "ConfigMap", name)
		if cm == nil {
			t.Errorf("no ConfigMap %s for %s", name, key)
			continue
		}
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if path(cm, "data", key) != string(want) {
			t.Errorf("ConfigMap %s does not hold %s as generated", name, key)
		}
		if path(cm, "metadata", "labels", "grafana_dashboard") != "1" {
			t.Errorf("ConfigMap %s lacks the Grafana sidecar label grafana_dashboard: \"1\"", name)
		}
	}

	// Kafka Exporter on, with a PodMonitor on Strimzi's names for its pods.
	kafka := find(objs, "Kafka", release)
	if kafka == nil || path(kafka, "spec", "kafkaExporter") == nil {
		t.Error("monitoring render: the Kafka has no spec.kafkaExporter (kafka_consumergroup_lag)")
	}
	if pm := find(objs, "PodMonitor", "-kafka-exporter"); pm == nil {
		t.Error("no Kafka Exporter PodMonitor")
	} else if sel := path(pm, "spec", "selector", "matchLabels"); !reflect.DeepEqual(sel, map[string]any{
		"strimzi.io/cluster": kafka.name(), "strimzi.io/name": kafka.name() + "-kafka-exporter"}) {
		t.Errorf("Kafka Exporter PodMonitor selects %v", sel)
	}

	for _, o := range mustObjects(t, renderVariant(t, variantNamed(t, "default"))) {
		if strings.HasPrefix(o.apiVersion(), "monitoring.coreos.com/") || o.labels()["grafana_dashboard"] != nil {
			t.Errorf("default render (monitoring off) has %s %s", o.kind(), o.name())
		}
	}
}

// TestEMQXPodMonitor: in both editions the EMQX PodMonitor selects the pods of the EMQX
// StatefulSet the upstream chart renders, on a container port of theirs named as the
// PodMonitor's, so Prometheus finds the /api/v5/prometheus/stats targets.
func TestEMQXPodMonitor(t *testing.T) {
	for _, ed := range emqxEditions {
		t.Run(ed.key, func(t *testing.T) {
			objs := renderEdition(t, ed.switchTo, "monitoring-values.yaml")
			pm, sts := find(objs, "PodMonitor", "-emqx"), find(objs, "StatefulSet", "-emqx")
			if pm == nil || sts == nil {
				t.Fatal("no EMQX PodMonitor or StatefulSet")
			}
			podLabels, _ := path(sts, "spec", "template", "metadata", "labels").(map[string]any)
			sel, _ := path(pm, "spec", "selector", "matchLabels").(map[string]any)
			if len(sel) == 0 {
				t.Fatal("PodMonitor has an empty selector")
			}
			for k, v := range sel {
				if podLabels[k] != v {
					t.Errorf("selector %s=%v, EMQX pods have %s=%v", k, v, k, podLabels[k])
				}
			}
			ep := path(pm, "spec", "podMetricsEndpoints").([]any)[0]
			if path(ep, "path") != "/api/v5/prometheus/stats" {
				t.Errorf("path %v", path(ep, "path"))
			}
			var ports []string
			for _, p := range path(path(sts, "spec", "template", "spec", "containers").([]any)[0], "ports").([]any) {
				ports = append(ports, fmt.Sprint(path(p, "name")))
			}
			if !slices.Contains(ports, fmt.Sprint(path(ep, "port"))) {
				t.Errorf("PodMonitor port %v is not an EMQX container port %v", path(ep, "port"), ports)
			}
		})
	}
}
