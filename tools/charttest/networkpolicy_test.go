package charttest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// podTemplates are the labels and container ports of every pod the render creates: workload
// pod templates, Job pod templates and bare Pods (helm tests).
type podTemplate struct {
	owner  string
	labels map[string]any
	ports  map[string]int // container port name -> number
}

func podTemplates(objs []object) []podTemplate {
	var out []podTemplate
	for _, o := range objs {
		var meta, spec any
		switch o.kind() {
		case "Deployment", "StatefulSet", "DaemonSet", "Job":
			meta, spec = path(o, "spec", "template", "metadata"), path(o, "spec", "template", "spec")
		case "Pod":
			meta, spec = o["metadata"], o["spec"]
		default:
			continue
		}
		pt := podTemplate{owner: o.kind() + "/" + o.name(), ports: map[string]int{}}
		pt.labels, _ = path(meta, "labels").(map[string]any)
		containers, _ := path(spec, "containers").([]any)
		for _, c := range containers {
			ports, _ := path(c, "ports").([]any)
			for _, p := range ports {
				if n, ok := path(p, "name").(string); ok {
					pt.ports[n], _ = path(p, "containerPort").(int)
				}
			}
		}
		out = append(out, pt)
	}
	return out
}

// matches reports whether every label of the selector is on the pod.
func matches(sel map[string]any, labels map[string]any) bool {
	for k, v := range sel {
		if fmt.Sprint(labels[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

// TestNetworkPolicies checks every rendered NetworkPolicy against the rest of the render, so
// that a label renamed in our charts or upstream (EMQX's pod labels) cannot silently open or
// close a path: the policy selects at least one pod of the render, no selector or peer is
// empty, every pod-selector peer in the namespace selects a pod of the render (Strimzi's
// pods, made by the operator, are matched against the Kafka resource and its listener ports
// instead), and every named port exists on the selected pods. The production variants must
// have a policy for each service and the registry.
func TestNetworkPolicies(t *testing.T) {
	for _, v := range umbrellaVariants(t) {
		t.Run(v.name, func(t *testing.T) {
			objs := mustObjects(t, renderVariant(t, v))
			pods := podTemplates(objs)
			kafkaPorts := map[string][]int{} // Kafka cluster -> listener ports
			for _, o := range objs {
				if o.kind() == "Kafka" {
					ls, _ := path(o, "spec", "kafka", "listeners").([]any)
					for _, l := range ls {
						p, _ := path(l, "port").(int)
						kafkaPorts[o.name()] = append(kafkaPorts[o.name()], p)
					}
				}
			}
			selected := func(sel map[string]any) []podTemplate {
				var out []podTemplate
				for _, p := range pods {
					if matches(sel, p.labels) {
						out = append(out, p)
					}
				}
				return out
			}
			var names []string
			for _, np := range objs {
				if np.kind() != "NetworkPolicy" {
					continue
				}
				names = append(names, np.name())
				where := "NetworkPolicy " + np.name()
				sel, _ := path(np, "spec", "podSelector", "matchLabels").(map[string]any)
				if len(sel) == 0 {
					t.Errorf("%s: empty podSelector", where)
					continue
				}
				targets := selected(sel)
				if len(targets) == 0 {
					t.Errorf("%s: podSelector %v selects no pod of the render", where, sel)
					continue
				}
				if !slices.Equal(toStrings(path(np, "spec", "policyTypes")), []string{"Ingress", "Egress"}) {
					t.Errorf("%s: policyTypes %v, want [Ingress Egress]", where, path(np, "spec", "policyTypes"))
				}
				for _, dir := range []string{"ingress", "egress"} {
					peerKey := map[string]string{"ingress": "from", "egress": "to"}[dir]
					rules, _ := path(np, "spec", dir).([]any)
					for i, r := range rules {
						rule := fmt.Sprintf("%s %s rule %d", where, dir, i)
						peers, _ := path(r, peerKey).([]any)
						ports, _ := path(r, "ports").([]any)
						if len(peers) == 0 || len(ports) == 0 {
							t.Errorf("%s: no peers or no ports (allows everyone or every port)", rule)
							continue
						}
						// Named ports must exist on the pods the port applies to: the policy's own
						// pods for ingress, the peers' pods for egress.
						for _, p := range ports {
							name, ok := path(p, "port").(string)
							if !ok || dir != "ingress" {
								continue
							}
							for _, pod := range targets {
								if _, ok := pod.ports[name]; !ok {
									t.Errorf("%s: port %q is not a container port of %s", rule, name, pod.owner)
								}
							}
						}
						for j, peer := range peers {
							checkPeer(t, fmt.Sprintf("%s peer %d", rule, j), peer, dir, ports, selected, kafkaPorts)
						}
					}
				}
			}
			if strings.HasPrefix(v.name, "production") {
				for _, want := range []string{"iov-exhook-producer", "iov-sample-consumer", "iov-downlink", "iov-schema-registry"} {
					if !slices.Contains(names, want) {
						t.Errorf("no NetworkPolicy %s in the %s render (have %v)", want, v.name, names)
					}
				}
			}
			t.Logf("%d NetworkPolicies: %v", len(names), names)
		})
	}
}

func checkPeer(t *testing.T, where string, peer any, dir string, ports []any, selected func(map[string]any) []podTemplate, kafkaPorts map[string][]int) {
	t.Helper()
	pod, hasPod := path(peer, "podSelector", "matchLabels").(map[string]any)
	ns, hasNS := path(peer, "namespaceSelector", "matchLabels").(map[string]any)
	cidr, _ := path(peer, "ipBlock", "cidr").(string)
	switch {
	case hasNS:
		if len(ns) == 0 || (path(peer, "podSelector") != nil && len(pod) == 0) {
			t.Errorf("%s: empty selector in %v", where, peer)
		}
	case hasPod:
		if len(pod) == 0 {
			t.Errorf("%s: empty podSelector", where)
			return
		}
		if cluster, ok := pod["strimzi.io/cluster"]; ok {
			lp, known := kafkaPorts[fmt.Sprint(cluster)]
			if !known {
				t.Errorf("%s: strimzi.io/cluster %v is no Kafka of the render", where, cluster)
			}
			for _, p := range ports {
				if n, _ := path(p, "port").(int); !slices.Contains(lp, n) {
					t.Errorf("%s: port %v is not a listener port of Kafka %v (%v)", where, path(p, "port"), cluster, lp)
				}
			}
			return
		}
		peers := selected(pod)
		if len(peers) == 0 {
			t.Errorf("%s: podSelector %v selects no pod of the render", where, pod)
		}
		if dir == "egress" {
			for _, p := range ports {
				n, isNum := path(p, "port").(int)
				for _, pt := range peers {
					found := false
					for _, cp := range pt.ports {
						found = found || (isNum && cp == n)
					}
					if !found {
						t.Errorf("%s: port %v is not a container port of %s", where, path(p, "port"), pt.owner)
					}
				}
			}
		}
	case cidr != "":
	default:
		t.Errorf("%s: empty peer %v", where, peer)
	}
}
