package charttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/iov-platform/iov/tools/devkit/testpki"
)

// producerBinary is the producer built by serviceBins (once per test binary).
func producerBinary(t *testing.T) string {
	t.Helper()
	return filepath.Join(serviceBins(t), "exhook-producer")
}

// TestProducerConfigFromChart ties the chart to the service: the producer's config.yaml from
// every render that has one is accepted by the producer's own loader (`exhook-producer
// --check-config`), and every file the effective config names for the gRPC listener's TLS
// (certFile, keyFile, clientCAFile) is a key of a Secret mounted as a directory (no subPath)
// into the producer container, at exactly that path. Variants with TLS on must name all three
// files (mutual TLS) and, with cert-manager, the Certificate's Secret is the mounted one.
func TestProducerConfigFromChart(t *testing.T) {
	bin := producerBinary(t)
	tlsVariants := 0
	for _, v := range variants(t) {
		if !v.umbrella() && v.chart != "exhook-producer" {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			objs := mustObjects(t, renderVariant(t, v))
			cm := find(objs, "ConfigMap", "-exhook-producer")
			if cm == nil {
				t.Skip("no producer in this render")
			}
			cfg, err := dataKey(cm, "config.yaml")
			if err != nil {
				t.Fatal(err)
			}
			// The loader reads the files the config names (Kafka password, registry CA): lay
			// every mounted Secret file out under root, as the pod would see it.
			mounted := producerSecretFiles(t, objs)
			root := t.TempDir()
			moved := layOutSecretFiles(t, root, mounted, cfg)
			f := filepath.Join(root, "config.yaml")
			if err := os.WriteFile(f, []byte(moved), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "--check-config", "--config", f).CombinedOutput()
			if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "config ok") {
				t.Fatalf("the producer refuses the rendered config.yaml (%v):\n%s\nconfig.yaml:\n%s", err, out, moved)
			}
			var eff struct {
				GRPC struct {
					TLS struct {
						CertFile     string `yaml:"certFile"`
						KeyFile      string `yaml:"keyFile"`
						ClientCAFile string `yaml:"clientCAFile"`
					} `yaml:"tls"`
				} `yaml:"grpc"`
			}
			body := strings.TrimSuffix(strings.TrimSpace(string(out)), "config ok")
			if err := yaml.Unmarshal([]byte(body), &eff); err != nil {
				t.Fatalf("effective config: %v\n%s", err, out)
			}
			files := map[string]string{}
			for k, f := range map[string]string{"certFile": eff.GRPC.TLS.CertFile, "keyFile": eff.GRPC.TLS.KeyFile, "clientCAFile": eff.GRPC.TLS.ClientCAFile} {
				files[k] = strings.TrimPrefix(f, root)
			}
			if files["certFile"] == "" {
				for k, f := range files {
					if f != "" {
						t.Errorf("grpc.tls.%s is %s without certFile", k, f)
					}
				}
				return
			}
			tlsVariants++
			for k, f := range files {
				if f == "" {
					t.Errorf("grpc.tls.%s is empty; the chart's TLS variants run mutual TLS", k)
					continue
				}
				secret, ok := mounted[f]
				if !ok {
					t.Errorf("grpc.tls.%s %s is not a mounted Secret key (mounted: %v)", k, f, sortedKeys(mounted))
					continue
				}
				t.Logf("grpc.tls.%s %s <- Secret %s", k, f, secret)
			}
			if c := find(objs, "Certificate", "-exhook-producer-grpc"); c != nil {
				want, _ := path(c, "spec", "secretName").(string)
				if mounted[files["certFile"]] != want || mounted[files["keyFile"]] != want {
					t.Errorf("certFile/keyFile come from Secret %s/%s, the Certificate writes %s", mounted[files["certFile"]], mounted[files["keyFile"]], want)
				}
			}
		})
	}
	if tlsVariants == 0 {
		t.Error("no variant renders the producer with TLS")
	}
}

// producerSecretFiles maps each file the producer container sees from a Secret volume to the
// Secret's name. Secret volumes mounted with subPath are reported as errors: the kubelet never
// updates such a file, so a renewed certificate would not reach the producer.
func producerSecretFiles(t *testing.T, objs []object) map[string]string {
	t.Helper()
	var spec any
	for _, kind := range []string{"Deployment", "StatefulSet"} {
		if o := find(objs, kind, "-exhook-producer"); o != nil {
			spec = path(o, "spec", "template", "spec")
		}
	}
	if spec == nil {
		t.Fatal("no producer Deployment or StatefulSet")
	}
	type secretVol struct {
		name string
		keys []string // nil: every key; cert-manager and kubernetes.io/tls Secrets hold these
	}
	vols := map[string]secretVol{}
	for _, v := range path(spec, "volumes").([]any) {
		name, _ := path(v, "name").(string)
		sn, ok := path(v, "secret", "secretName").(string)
		if !ok {
			continue
		}
		sv := secretVol{name: sn}
		if items, ok := path(v, "secret", "items").([]any); ok {
			for _, it := range items {
				sv.keys = append(sv.keys, path(it, "path").(string))
			}
		} else {
			sv.keys = []string{"tls.crt", "tls.key", "ca.crt"}
		}
		vols[name] = sv
	}
	out := map[string]string{}
	c := path(spec, "containers").([]any)[0]
	for _, m := range path(c, "volumeMounts").([]any) {
		sv, ok := vols[path(m, "name").(string)]
		if !ok {
			continue
		}
		if sp, _ := path(m, "subPath").(string); sp != "" {
			t.Errorf("Secret %s is mounted with subPath %s: a renewal never reaches the pod", sv.name, sp)
			continue
		}
		for _, k := range sv.keys {
			out[strings.TrimSuffix(path(m, "mountPath").(string), "/")+"/"+k] = sv.name
		}
	}
	return out
}

// layOutSecretFiles writes test material for every mounted Secret file under root (a
// password for a key named password, a private key for *.key, a CA certificate for anything
// else) and returns cfg with each of those paths moved under root.
func layOutSecretFiles(t *testing.T, root string, mounted map[string]string, cfg string) string {
	t.Helper()
	ca, err := testpki.NewCA("charttest-ca")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueValid("charttest", testpki.Server)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range sortedKeys(mounted) {
		content := ca.PEM
		switch {
		case filepath.Base(f) == "password":
			content = []byte("test-password")
		case strings.HasSuffix(f, ".key"):
			content = leaf.KeyPEM
		case filepath.Base(f) == "tls.crt" || filepath.Base(f) == "user.crt":
			content = leaf.CertPEM
		}
		dst := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, content, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg = strings.ReplaceAll(cfg, f, dst)
	}
	return cfg
}
