package charttest

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr/srfake"
	"go.yaml.in/yaml/v3"

	"github.com/iov-platform/iov/tools/devkit/compatsr"
	"github.com/iov-platform/iov/tools/devkit/testpki"
)

// TestSchemaJobRegisters runs the schema Job of the production render as its Pod would: the
// rendered command line, the rendered subjects.yaml mounted over the image's /schemas tree
// (here the repository's schemas/avro, which the producer's Dockerfile copies there), against
// a registry that refuses incompatible versions as Confluent's does (compatsr over srfake).
// The registry serves https as the in-chart one does in production: a certificate for the
// names of the rendered Certificate, from the CA the Job's mounted ca.crt holds, reached at
// the rendered URL (through a CONNECT proxy, since the Service name does not resolve here).
// Afterwards every subject the rendered producer config writes is registered with every
// local version of its schema, and nothing else is.
func TestSchemaJobRegisters(t *testing.T) {
	objs := mustObjects(t, renderVariant(t, variantNamed(t, "production")))
	job := find(objs, "Job", "-exhook-producer-schemas-1") // revision 1: the in-chart registry's per-revision Job
	cm := find(objs, "ConfigMap", "-exhook-producer-schemas")
	prodCM := find(objs, "ConfigMap", "-exhook-producer")
	if job == nil || cm == nil || prodCM == nil {
		t.Fatal("production render lacks the schema Job, its ConfigMap or the producer's ConfigMap")
	}
	c := path(job, "spec", "template", "spec", "containers").([]any)[0]
	var command, args []string
	for _, a := range path(c, "command").([]any) {
		command = append(command, fmt.Sprint(a))
	}
	for _, a := range path(c, "args").([]any) {
		args = append(args, fmt.Sprint(a))
	}
	if !slices.Equal(command, []string{"/usr/local/bin/schemactl"}) || len(args) != 5 ||
		args[0] != "--config" || args[1] != "/schemas/subjects.yaml" || args[2] != "--registry" || args[4] != "register" {
		t.Fatalf("Job runs %v %v, want schemactl --config /schemas/subjects.yaml --registry URL register", command, args)
	}
	mount := path(c, "volumeMounts").([]any)[0]
	if path(mount, "mountPath") != args[1] {
		t.Fatalf("subjects.yaml is mounted at %v, the command reads %s", path(mount, "mountPath"), args[1])
	}
	subjectsYAML, err := dataKey(cm, fmt.Sprint(path(mount, "subPath")))
	if err != nil {
		t.Fatal(err)
	}
	// The registry is installed by the same release: an ordinary resource, not a hook (a
	// post-install hook would wait behind `helm install --wait` for a producer that is not
	// ready until the Job ran).
	if h := path(job, "metadata", "annotations", "helm.sh/hook"); h != nil {
		t.Errorf("Job is a %v hook; with the in-chart registry it must be a resource of the release", h)
	}

	// What the producer writes, from its rendered config: family -> subjects.
	cfgYAML, err := dataKey(prodCM, "config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Registry struct {
			AutoRegister bool `yaml:"autoRegister"`
		} `yaml:"registry"`
		Routes []struct {
			KafkaTopic string `yaml:"kafkaTopic"`
		} `yaml:"routes"`
		Topics struct {
			Status string `yaml:"status"`
		} `yaml:"topics"`
		Commands struct {
			Enabled     bool   `yaml:"enabled"`
			StatusTopic string `yaml:"statusTopic"`
		} `yaml:"commands"`
	}
	if err := yaml.Unmarshal([]byte(cfgYAML), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Registry.AutoRegister {
		t.Error("production values leave the producer's registry.autoRegister on")
	}
	want := map[string]string{} // subject -> schema family
	for _, r := range cfg.Routes {
		want[r.KafkaTopic+"-value"] = "vehicle_message"
	}
	want[cfg.Topics.Status+"-value"] = "client_event"
	if cfg.Commands.Enabled {
		want[cfg.Commands.StatusTopic+"-value"] = "command_status"
	}

	// The image's /schemas: the rendered subjects.yaml beside the schema tree.
	root := repoRoot(t)
	dir := t.TempDir()
	schemasDir := filepath.Join(dir, "schemas")
	if err := os.MkdirAll(schemasDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "schemas", "avro"), filepath.Join(schemasDir, "avro")); err != nil {
		t.Fatal(err)
	}
	// The registry's CA where the Job mounts it (ca.crt of the registry's certificate Secret).
	reg := checkRegistryTLSRender(t, objs)
	podSpec := path(job, "spec", "template", "spec")
	files := laySecretMounts(t, podSpec, c, map[string]map[string]string{reg.secret: {"ca.crt": ""}}, true)
	var caFile string
	for f, src := range files {
		if src == [2]string{reg.secret, "ca.crt"} {
			caFile = f
		}
	}
	if caFile == "" || !strings.Contains(subjectsYAML, "caFile: "+caFile+"}") {
		t.Fatalf("the Job mounts the registry's CA at %q; subjects.yaml must name it as registry.caFile:\n%s", caFile, subjectsYAML)
	}
	ca, err := testpki.NewCA("registry issuer")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueValid(reg.dnsNames[0], testpki.Server, reg.dnsNames[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	caPath := filepath.Join(dir, caFile)
	if err := os.MkdirAll(filepath.Dir(caPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caPath, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	subjectsYAML = strings.Replace(subjectsYAML, "caFile: "+caFile, "caFile: "+caPath, 1)
	if err := os.WriteFile(filepath.Join(schemasDir, "subjects.yaml"), []byte(subjectsYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "schemactl")
	build := exec.Command("go", "build", "-o", bin, "./tools/schemactl")
	build.Dir = root
	build.Env = append(os.Environ(), "GOWORK="+filepath.Join(root, "go.work"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build schemactl: %v\n%s", err, out)
	}

	registry := compatsr.New(srfake.New())
	tlsSrv := httptest.NewUnstartedServer(registry)
	tlsSrv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, MinVersion: tls.VersionTLS12}
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	srv := httptest.NewServer(registry) // the same registry, to inspect it afterwards
	defer srv.Close()
	u, err := url.Parse(args[3])
	if err != nil || u.Scheme != "https" {
		t.Fatalf("the Job's registry URL %q is not https", args[3])
	}
	runArgs := append([]string{}, args...)
	runArgs[1] = filepath.Join(schemasDir, "subjects.yaml")
	run := exec.Command(bin, runArgs...)
	run.Env = append(os.Environ(), "HTTPS_PROXY="+connectProxy(t, u.Host, tlsSrv.Listener.Addr().String()), "NO_PROXY=")
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("schemactl %v: %v\n%s", runArgs, err, out)
	}
	t.Logf("schemactl register:\n%s", out)

	var subjects []string
	getJSON(t, srv.URL+"/subjects", &subjects)
	slices.Sort(subjects)
	if wantSubjects := sortedKeys(want); !reflect.DeepEqual(subjects, wantSubjects) {
		t.Fatalf("registered subjects %v, the producer writes %v", subjects, wantSubjects)
	}
	for subject, family := range want {
		local, _ := filepath.Glob(filepath.Join(root, "schemas", "avro", family, "v*.avsc"))
		var versions []int
		getJSON(t, srv.URL+"/subjects/"+subject+"/versions", &versions)
		if len(versions) != len(local) || len(local) == 0 {
			t.Errorf("%s: %d versions registered, %d local versions of %s", subject, len(versions), len(local), family)
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
