package charttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/iov-platform/iov/tools/devkit/testpki"
)

// kafkaServices are the services that reach Kafka as their own KafkaUser (the registry's
// Kafka settings are the image's environment, checked by helm-unittest).
var kafkaServices = []string{"exhook-producer", "sample-consumer", "downlink"}

var (
	serviceBinsOnce sync.Once
	serviceBinsDir  string
	serviceBinsErr  error
)

// serviceBins builds the three service binaries once per test binary.
func serviceBins(t *testing.T) string {
	t.Helper()
	serviceBinsOnce.Do(func() {
		root := repoRoot(t)
		dir, err := os.MkdirTemp("", "charttest-bin-")
		if err != nil {
			serviceBinsErr = err
			return
		}
		scratchDirs = append(scratchDirs, dir)
		args := []string{"build", "-o", dir + string(filepath.Separator)}
		for _, s := range kafkaServices {
			args = append(args, "./services/"+s)
		}
		build := exec.Command("go", args...)
		build.Dir = root
		build.Env = append(os.Environ(), "GOWORK="+filepath.Join(root, "go.work"))
		if out, err := build.CombinedOutput(); err != nil {
			serviceBinsErr = fmt.Errorf("go %v: %v\n%s", args, err, out)
			return
		}
		serviceBinsDir = dir
	})
	if serviceBinsErr != nil {
		t.Fatal(serviceBinsErr)
	}
	return serviceBinsDir
}

// strimziSecrets models the Secrets Strimzi (and cert-manager) generate for the render: the cluster CA
// Secret <cluster>-cluster-ca-cert (ca.crt, ca.p12, ca.password) and one Secret per
// KafkaUser, named after it (scram-sha-512: password, sasl.jaas.config; tls: ca.crt,
// user.crt, user.key, user.p12, user.password). Values are usable test material: PEM
// certificates and a key a TLS client accepts.
func strimziSecrets(t *testing.T, objs []object) (cluster string, secrets map[string]map[string]string) {
	t.Helper()
	k := find(objs, "Kafka", "")
	if k == nil {
		t.Fatal("no Kafka rendered")
	}
	cluster = k.name()
	ca, err := testpki.NewCA(cluster + "-cluster-ca")
	if err != nil {
		t.Fatal(err)
	}
	clients, err := testpki.NewCA(cluster + "-clients-ca")
	if err != nil {
		t.Fatal(err)
	}
	secrets = map[string]map[string]string{
		cluster + "-cluster-ca-cert": {"ca.crt": string(ca.PEM), "ca.p12": "binary", "ca.password": "p12-password"},
	}
	// cert-manager writes each Certificate's Secret (the hook's TLS): tls.crt, tls.key, ca.crt.
	for _, c := range objs {
		if c.kind() != "Certificate" {
			continue
		}
		leaf, err := ca.IssueValid(c.name(), testpki.Server)
		if err != nil {
			t.Fatal(err)
		}
		secrets[fmt.Sprint(path(c, "spec", "secretName"))] = map[string]string{"tls.crt": string(leaf.CertPEM), "tls.key": string(leaf.KeyPEM), "ca.crt": string(ca.PEM)}
	}
	for _, u := range objs {
		if u.kind() != "KafkaUser" {
			continue
		}
		switch auth := path(u, "spec", "authentication", "type"); auth {
		case "scram-sha-512":
			pw := "pw-of-" + u.name()
			secrets[u.name()] = map[string]string{"password": pw,
				"sasl.jaas.config": fmt.Sprintf(`org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";`, u.name(), pw)}
		case "tls":
			leaf, err := clients.IssueValid(u.name(), testpki.Client)
			if err != nil {
				t.Fatal(err)
			}
			secrets[u.name()] = map[string]string{"ca.crt": string(clients.PEM), "user.crt": string(leaf.CertPEM),
				"user.key": string(leaf.KeyPEM), "user.p12": "binary", "user.password": "p12-password"}
		default:
			t.Fatalf("KafkaUser %s: authentication %v", u.name(), auth)
		}
	}
	return cluster, secrets
}

// TestServiceConfigsWithKafkaAuth renders the production values (SCRAM-SHA-512) and the same
// with mutual TLS, and for each service mounts the Secrets the pod would get, as Strimzi
// would fill them, under a scratch root, then runs the service's own config loader
// (`--check-config`) on its rendered config.yaml with the mount paths moved under that root.
// It checks that the config names exactly the mounted Secret keys (password or certificate
// and key of the service's KafkaUser, ca.crt of the cluster CA), that the loader accepts
// it, and that the password is not printed.
func TestServiceConfigsWithKafkaAuth(t *testing.T) {
	prod := variantNamed(t, "production")
	for _, auth := range []string{"scram-sha-512", "tls"} {
		t.Run(auth, func(t *testing.T) {
			manifest, err := render(scratchUmbrella(t), prod.values, "global.iov.kafkaAuthentication="+auth)
			if err != nil {
				t.Fatal(err)
			}
			objs := mustObjects(t, manifest)
			cluster, secrets := strimziSecrets(t, objs)
			bins := serviceBins(t)
			for _, svc := range kafkaServices {
				t.Run(svc, func(t *testing.T) {
					checkServiceKafkaAuth(t, objs, auth, cluster, secrets, svc, filepath.Join(bins, svc))
				})
			}
		})
	}
}

func checkServiceKafkaAuth(t *testing.T, objs []object, auth, cluster string, secrets map[string]map[string]string, svc, bin string) {
	name := release + "-" + svc
	var cm, dep object
	for _, o := range objs {
		if o.name() == name && o.kind() == "ConfigMap" {
			cm = o
		}
		if o.name() == name && (o.kind() == "Deployment" || o.kind() == "StatefulSet") {
			dep = o
		}
	}
	if cm == nil || dep == nil {
		t.Fatalf("no ConfigMap or workload %s rendered", name)
	}
	cfgYAML, err := dataKey(cm, "config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	podSpec := path(dep, "spec", "template", "spec")
	container := path(podSpec, "containers").([]any)[0]

	// The mounted Secrets laid out under root; file -> (Secret, key) as the pod sees it.
	files := laySecretMounts(t, podSpec, container, secrets, true)
	root, moved := mountUnder(t, files, secrets, cfgYAML)
	type source struct{ secret, key string }
	mounted := map[string]source{}
	for f, src := range files {
		mounted[f] = source{src[0], src[1]}
	}

	// What the config names, and where it must come from.
	var cfg struct {
		Kafka struct {
			BootstrapServers string            `yaml:"bootstrapServers"`
			Properties       map[string]string `yaml:"properties"`
			PropertyFiles    map[string]string `yaml:"propertyFiles"`
		} `yaml:"kafka"`
	}
	if err := yaml.Unmarshal([]byte(cfgYAML), &cfg); err != nil {
		t.Fatal(err)
	}
	user := cfg.Kafka.Properties["sasl.username"]
	caSecret := cluster + "-cluster-ca-cert"
	want := map[string]source{"properties.ssl.ca.location": {caSecret, "ca.crt"}}
	wantProtocol := "SASL_SSL"
	if auth == "tls" {
		wantProtocol = "SSL"
		user = name // the KafkaUser of the service, <release>-<service>
		want["properties.ssl.certificate.location"] = source{user, "user.crt"}
		want["properties.ssl.key.location"] = source{user, "user.key"}
	} else {
		want["propertyFiles.sasl.password"] = source{user, "password"}
		if cfg.Kafka.Properties["sasl.mechanisms"] != "SCRAM-SHA-512" {
			t.Errorf("sasl.mechanisms = %q, want SCRAM-SHA-512", cfg.Kafka.Properties["sasl.mechanisms"])
		}
	}
	if find(objs, "KafkaUser", "") == nil || !slices.ContainsFunc(objs, func(o object) bool { return o.kind() == "KafkaUser" && o.name() == user }) {
		t.Errorf("the config authenticates as %q, but no KafkaUser of that name is rendered", user)
	}
	if got := cfg.Kafka.Properties["security.protocol"]; got != wantProtocol {
		t.Errorf("security.protocol = %q, want %s", got, wantProtocol)
	}
	if wantBootstrap := cluster + "-kafka-bootstrap:9093"; cfg.Kafka.BootstrapServers != wantBootstrap {
		t.Errorf("bootstrapServers = %q, want the TLS listener %s", cfg.Kafka.BootstrapServers, wantBootstrap)
	}
	named := map[string]string{}
	for k, v := range cfg.Kafka.PropertyFiles {
		named["propertyFiles."+k] = v
	}
	for _, k := range []string{"ssl.ca.location", "ssl.certificate.location", "ssl.key.location"} {
		if v, ok := cfg.Kafka.Properties[k]; ok {
			named["properties."+k] = v
		}
	}
	for setting, file := range named {
		got, ok := mounted[file]
		switch {
		case !ok:
			t.Errorf("%s names %s, which no mounted Secret provides (mounted: %v)", setting, file, sortedKeys(mounted))
		case got != want[setting]:
			t.Errorf("%s names %s, Secret %s key %s; want Secret %s key %s", setting, file, got.secret, got.key, want[setting].secret, want[setting].key)
		}
	}
	for setting := range want {
		if _, ok := named[setting]; !ok {
			t.Errorf("config sets no %s", setting)
		}
	}

	// The service's own loader on the config, mounted files moved under root.
	cfgFile := filepath.Join(root, "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(moved), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgFile, "--check-config")
	cmd.Env = append(os.Environ(), containerEnv(container)...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "config ok") {
		t.Fatalf("%s --check-config refused the rendered config: %v\n%s\nconfig:\n%s", svc, err, out, moved)
	}
	if pw := secrets[user]["password"]; pw != "" && strings.Contains(string(out), pw) {
		t.Errorf("%s --check-config printed the SASL password", svc)
	}
}

// containerEnv is the container's environment as the pod would get it: literal values, and
// a stand-in for each value from a Secret or the downward API.
func containerEnv(container any) []string {
	var env []string
	list, _ := path(container, "env").([]any)
	for _, e := range list {
		name := fmt.Sprint(path(e, "name"))
		if v := path(e, "value"); v != nil {
			env = append(env, name+"="+fmt.Sprint(v))
		} else {
			env = append(env, name+"=from-"+strings.ToLower(name))
		}
	}
	return env
}
