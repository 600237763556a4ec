package charttest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// referenceYAML writes the objects of the given kinds without Helm's bookkeeping labels.
func referenceYAML(objs []object, head string, kinds ...string) (string, error) {
	var b bytes.Buffer
	b.WriteString(head)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	n := 0
	for _, o := range objs {
		if !slices.Contains(kinds, o.kind()) {
			continue
		}
		if l := o.labels(); l != nil {
			delete(l, "helm.sh/chart")
			delete(l, "app.kubernetes.io/managed-by")
		}
		if err := enc.Encode(map[string]any(o)); err != nil {
			return "", err
		}
		n++
	}
	if n == 0 {
		return "", fmt.Errorf("no %s rendered", strings.Join(kinds, "/"))
	}
	return b.String(), enc.Close()
}

func toInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	return 0
}

// strimziProblems are the cross-resource checks the CRD schemas cannot express.
func strimziProblems(objs []object) []string {
	var errs []string
	kafkas := map[string]object{}
	var pools, topics, users []object
	for _, o := range objs {
		if !strings.HasPrefix(o.apiVersion(), "kafka.strimzi.io/") {
			continue
		}
		if o.apiVersion() != "kafka.strimzi.io/v1" {
			errs = append(errs, fmt.Sprintf("%s %s: %s (only kafka.strimzi.io/v1 is rendered)", o.kind(), o.name(), o.apiVersion()))
		}
		if ns, _ := o.meta()["namespace"].(string); ns == "" {
			errs = append(errs, fmt.Sprintf("%s %s: no namespace", o.kind(), o.name()))
		}
		switch o.kind() {
		case "Kafka":
			kafkas[o.name()] = o
		case "KafkaNodePool":
			pools = append(pools, o)
		case "KafkaTopic":
			topics = append(topics, o)
		case "KafkaUser":
			users = append(users, o)
		}
	}
	cluster := func(o object) string { s, _ := o.labels()["strimzi.io/cluster"].(string); return s }
	for _, o := range append(append(slices.Clone(pools), topics...), users...) {
		if _, ok := kafkas[cluster(o)]; len(kafkas) > 0 && !ok {
			errs = append(errs, fmt.Sprintf("%s %s: strimzi.io/cluster=%q matches no rendered Kafka %v", o.kind(), o.name(), cluster(o), sortedKeys(kafkas)))
		}
	}
	for _, name := range sortedKeys(kafkas) {
		k := kafkas[name]
		ctrl, brok := 0, 0
		for _, p := range pools {
			if cluster(p) != name {
				continue
			}
			roles, _ := path(p, "spec", "roles").([]any)
			r := toInt(path(p, "spec", "replicas"))
			if slices.Contains(roles, any("controller")) {
				ctrl += r
			}
			if slices.Contains(roles, any("broker")) {
				brok += r
			}
			if path(p, "spec", "storage", "type") == "jbod" {
				vols, _ := path(p, "spec", "storage", "volumes").([]any)
				shared := 0
				for _, v := range vols {
					if path(v, "kraftMetadata") == "shared" {
						shared++
					}
				}
				if shared != 1 {
					errs = append(errs, fmt.Sprintf("KafkaNodePool %s: exactly one JBOD volume must hold the KRaft metadata", p.name()))
				}
			}
		}
		if ctrl < 1 || brok < 1 {
			errs = append(errs, fmt.Sprintf("Kafka %s: needs controller and broker nodes (controllers=%d, brokers=%d)", name, ctrl, brok))
		}
		if path(k, "spec", "zookeeper") != nil {
			errs = append(errs, fmt.Sprintf("Kafka %s: spec.zookeeper is not supported (KRaft only)", name))
		}
		// The services use the plain listener on 9092 unless they authenticate as KafkaUsers,
		// then the internal TLS listener on 9093 with the users' authentication type.
		var own []object
		for _, u := range users {
			if cluster(u) == name {
				own = append(own, u)
			}
		}
		ls, _ := path(k, "spec", "kafka", "listeners").([]any)
		if len(own) == 0 {
			plain := false
			for _, l := range ls {
				if toInt(path(l, "port")) == 9092 && path(l, "tls") == false && path(l, "type") == "internal" {
					plain = true
				}
			}
			if !plain {
				errs = append(errs, fmt.Sprintf("Kafka %s: the services need the internal plain listener on 9092", name))
			}
		}
		var tlsAuth any
		for _, l := range ls {
			if toInt(path(l, "port")) == 9093 && path(l, "tls") == true && path(l, "type") == "internal" {
				tlsAuth = path(l, "authentication", "type")
			}
		}
		for _, u := range own {
			if a := path(u, "spec", "authentication", "type"); a != tlsAuth {
				errs = append(errs, fmt.Sprintf("KafkaUser %s: authentication %v, but the internal TLS listener on 9093 of Kafka %s authenticates with %v", u.name(), a, name, tlsAuth))
			}
			if path(u, "spec", "authorization") != nil && path(k, "spec", "kafka", "authorization", "type") != "simple" {
				errs = append(errs, fmt.Sprintf("KafkaUser %s: has ACLs, but Kafka %s has no simple authorization", u.name(), name))
			}
		}
		for _, tp := range topics {
			if r := path(tp, "spec", "replicas"); cluster(tp) == name && r != nil && toInt(r) > brok {
				errs = append(errs, fmt.Sprintf("KafkaTopic %s: replicas %d > %d brokers", tp.name(), toInt(r), brok))
			}
		}
	}
	seen := map[string]string{}
	for _, tp := range topics {
		n, _ := path(tp, "spec", "topicName").(string)
		if n == "" {
			n = tp.name()
		}
		if prev, ok := seen[n]; ok {
			errs = append(errs, fmt.Sprintf("topic %s declared twice (%s, %s)", n, prev, tp.name()))
		}
		seen[n] = tp.name()
	}
	return errs
}

// TestStrimziConsistency runs the cross-resource checks on every render with Strimzi resources.
func TestStrimziConsistency(t *testing.T) {
	for _, v := range umbrellaVariants(t) {
		t.Run(v.name, func(t *testing.T) {
			objs := mustObjects(t, renderVariant(t, v))
			if find(objs, "Kafka", "") == nil {
				t.Fatal("no Kafka rendered")
			}
			if errs := strimziProblems(objs); len(errs) > 0 {
				t.Error(strings.Join(errs, "\n"))
			}
		})
	}
}

// secure is a spec.kafka with only the TLS listener on 9093 with the given authentication,
// and simple authorization when authz.
func secure(auth string, authz bool) map[string]any {
	k := map[string]any{"listeners": []any{map[string]any{"name": "tls", "port": 9093, "tls": true, "type": "internal",
		"authentication": map[string]any{"type": auth}}}}
	if authz {
		k["authorization"] = map[string]any{"type": "simple"}
	}
	return k
}

// user is a KafkaUser of cluster k with the given authentication, with an ACL when acls.
func user(auth string, acls bool) object {
	spec := map[string]any{"authentication": map[string]any{"type": auth}}
	if acls {
		spec["authorization"] = map[string]any{"type": "simple", "acls": []any{map[string]any{
			"resource": map[string]any{"type": "topic", "name": "t"}, "operations": []any{"Write"}}}}
	}
	return object{"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaUser",
		"metadata": map[string]any{"name": "u", "namespace": "n", "labels": map[string]any{"strimzi.io/cluster": "k"}}, "spec": spec}
}

// TestStrimziProblemsDetected proves the checks above can fail.
func TestStrimziProblemsDetected(t *testing.T) {
	base := func() []object {
		return []object{
			{"apiVersion": "kafka.strimzi.io/v1", "kind": "Kafka", "metadata": map[string]any{"name": "k", "namespace": "n"},
				"spec": map[string]any{"kafka": map[string]any{"listeners": []any{map[string]any{"port": 9092, "tls": false, "type": "internal"}}}}},
			{"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaNodePool", "metadata": map[string]any{"name": "p", "namespace": "n", "labels": map[string]any{"strimzi.io/cluster": "k"}},
				"spec": map[string]any{"replicas": 3, "roles": []any{"controller", "broker"}, "storage": map[string]any{"type": "ephemeral"}}},
			{"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic", "metadata": map[string]any{"name": "t", "namespace": "n", "labels": map[string]any{"strimzi.io/cluster": "k"}},
				"spec": map[string]any{"replicas": 3}},
			{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "placeholder", "namespace": "n"}},
		}
	}
	if errs := strimziProblems(base()); len(errs) > 0 {
		t.Fatalf("consistent set reported: %v", errs)
	}
	secured := base()
	secured[0]["spec"].(map[string]any)["kafka"] = secure("scram-sha-512", true)
	secured[3] = user("scram-sha-512", true)
	if errs := strimziProblems(secured); len(errs) > 0 {
		t.Fatalf("consistent secured set reported: %v", errs)
	}
	cases := []struct {
		name    string
		breakIt func([]object)
		want    string
	}{
		{"v1beta2", func(o []object) { o[0]["apiVersion"] = "kafka.strimzi.io/v1beta2" }, "only kafka.strimzi.io/v1"},
		{"no namespace", func(o []object) { delete(o[2].meta(), "namespace") }, "no namespace"},
		{"wrong cluster", func(o []object) { o[2].labels()["strimzi.io/cluster"] = "x" }, "matches no rendered Kafka"},
		{"no controller", func(o []object) { o[1]["spec"].(map[string]any)["roles"] = []any{"broker"} }, "needs controller and broker"},
		{"zookeeper", func(o []object) { o[0]["spec"].(map[string]any)["zookeeper"] = map[string]any{} }, "KRaft only"},
		{"no plain listener", func(o []object) { o[0]["spec"].(map[string]any)["kafka"] = map[string]any{} }, "plain listener on 9092"},
		{"replicas", func(o []object) { o[2]["spec"].(map[string]any)["replicas"] = 4 }, "replicas 4 > 3 brokers"},
		{"user without TLS listener", func(o []object) { o[3] = user("scram-sha-512", false) }, "authenticates with <nil>"},
		{"user of another authentication", func(o []object) {
			o[0]["spec"].(map[string]any)["kafka"] = secure("tls", true)
			o[3] = user("scram-sha-512", false)
		}, "authentication scram-sha-512, but"},
		{"ACLs without authorization", func(o []object) {
			o[0]["spec"].(map[string]any)["kafka"] = secure("scram-sha-512", false)
			o[3] = user("scram-sha-512", true)
		}, "has no simple authorization"},
		{"users without plain listener", func(o []object) { o[0]["spec"].(map[string]any)["kafka"] = secure("scram-sha-512", true) }, "plain listener on 9092"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			objs := base()
			c.breakIt(objs)
			errs := strimziProblems(objs)
			if !strings.Contains(strings.Join(errs, "\n"), c.want) {
				t.Errorf("want a problem containing %q, got %v", c.want, errs)
			}
		})
	}
}

// TestKafkaVersionSupported: the Kafka version each variant renders is one the Strimzi
// operator it installs runs (its STRIMZI_KAFKA_IMAGES list; Strimzi 1.1+ refuses 4.1.x).
func TestKafkaVersionSupported(t *testing.T) {
	for _, v := range umbrellaVariants(t) {
		t.Run(v.name, func(t *testing.T) {
			objs := mustObjects(t, renderVariant(t, v))
			dep, k := find(objs, "Deployment", "strimzi-cluster-operator"), find(objs, "Kafka", "")
			if dep == nil || k == nil {
				t.Fatal("no Strimzi operator Deployment or Kafka rendered")
			}
			var images string
			for _, e := range path(path(dep, "spec", "template", "spec", "containers").([]any)[0], "env").([]any) {
				if path(e, "name") == "STRIMZI_KAFKA_IMAGES" {
					images, _ = path(e, "value").(string)
				}
			}
			var supported []string
			for _, line := range strings.Fields(images) {
				supported = append(supported, strings.SplitN(line, "=", 2)[0])
			}
			version := fmt.Sprint(path(k, "spec", "kafka", "version"))
			if !slices.Contains(supported, version) {
				t.Errorf("Kafka %s is not among the versions the rendered Strimzi operator runs: %v", version, supported)
			}
		})
	}
}
