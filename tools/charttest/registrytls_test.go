package charttest

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"go.yaml.in/yaml/v3"

	"github.com/iov-platform/iov/kit/svcconfig"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/tools/devkit/testpki"
)

// registryTLS is what the production render says about the in-chart registry's HTTPS.
type registryTLS struct {
	secret   string   // the Certificate's Secret (keystore.p12, truststore.p12, ca.crt)
	dnsNames []string // the Certificate's dnsNames
	hostName string   // host.name of the registry's first pod
}

// TestRegistryTLSFromChart checks the in-chart registry's HTTPS in the production render and
// ties it to the services. The registry: a cert-manager Certificate with a PKCS12 keystore,
// a StatefulSet serving https from that Secret's keystore.p12 and truststore.p12 (mounted as
// a directory), forwarding to the leader over https with hostname verification, its
// host.name (the pod's name under the headless Service) covered by the certificate's
// dnsNames. Each service (producer, consumer, downlink): its rendered config names an https
// URL whose host the certificate carries and a caFile that is ca.crt of that Secret, mounted
// into the container; the service's own loader (--check-config) accepts the config with the
// mounted files laid out; and the services' registry client built from that config
// (svcconfig.Registry.HTTPClient and serde's srclient) registers and reads a schema on a
// registry stand-in (srfake) serving a certificate for those names from the CA in ca.crt,
// and is refused by one whose certificate comes from another CA and by one whose
// certificate, from the right CA, names another host. The stand-in models the registry's
// REST API behind Go's TLS; the Confluent image itself (Jetty reading the PKCS12 keystore)
// does not run here: charts/README.md, "Schema registry security", says what was checked instead.
func TestRegistryTLSFromChart(t *testing.T) {
	objs := mustObjects(t, renderVariant(t, variantNamed(t, "production")))
	reg := checkRegistryTLSRender(t, objs)

	ca, err := testpki.NewCA("registry issuer")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testpki.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	good, err := ca.IssueValid(reg.dnsNames[0], testpki.Server, reg.dnsNames[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	// The leader's certificate names every pod under the headless Service: a follower
	// forwarding to host.name verifies it (ssl.endpoint.identification.algorithm=https).
	if err := good.TLS.Leaf.VerifyHostname(reg.hostName); err != nil {
		t.Errorf("host.name %s is not covered by the certificate's dnsNames %v: %v", reg.hostName, reg.dnsNames, err)
	}
	foreign, err := other.IssueValid(reg.dnsNames[0], testpki.Server, reg.dnsNames[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	misnamed, err := ca.IssueValid("not-the-registry", testpki.Server)
	if err != nil {
		t.Fatal(err)
	}

	const user, pass = "iov-producer", "s3cret"
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	servers := map[string]*countingServer{
		"right CA":           startRegistry(t, good, auth),
		"another CA":         startRegistry(t, foreign, auth),
		"right CA, misnamed": startRegistry(t, misnamed, auth),
	}

	_, secrets := strimziSecrets(t, objs)
	secrets[reg.secret]["ca.crt"] = string(ca.PEM) // cert-manager's ca.crt: the issuer's CA
	bins := serviceBins(t)
	for _, svc := range kafkaServices {
		t.Run(svc, func(t *testing.T) {
			cm := find(objs, "ConfigMap", "-"+svc)
			podSpec := workloadPodSpec(t, objs, svc)
			cfgYAML, err := dataKey(cm, "config.yaml")
			if err != nil {
				t.Fatal(err)
			}
			var cfg struct {
				Registry svcconfig.Registry `yaml:"registry"`
			}
			if err := yaml.Unmarshal([]byte(cfgYAML), &cfg); err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(cfg.Registry.URL)
			if err != nil {
				t.Fatal(err)
			}
			if u.Scheme != "https" || !slices.Contains(reg.dnsNames, u.Hostname()) {
				t.Fatalf("registry.url %s: want https to a name of the registry's certificate %v", cfg.Registry.URL, reg.dnsNames)
			}
			container := path(podSpec, "containers").([]any)[0]
			files := laySecretMounts(t, podSpec, container, secrets, true)
			if src := files[cfg.Registry.CAFile]; src != [2]string{reg.secret, "ca.crt"} {
				t.Fatalf("registry.caFile %q comes from Secret/key %v, want ca.crt of the registry's certificate Secret %s", cfg.Registry.CAFile, src, reg.secret)
			}

			// The service's own loader on the config, with the mounted files under root.
			root, moved := mountUnder(t, files, secrets, cfgYAML)
			f := filepath.Join(root, "config.yaml")
			if err := os.WriteFile(f, []byte(moved), 0o644); err != nil {
				t.Fatal(err)
			}
			check := exec.Command(filepath.Join(bins, svc), "--check-config", "--config", f)
			check.Env = append(os.Environ(), containerEnv(container)...)
			out, err := check.CombinedOutput()
			if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "config ok") {
				t.Fatalf("%s refuses the rendered config.yaml (%v):\n%s", svc, err, out)
			}
			if err := yaml.Unmarshal([]byte(moved), &cfg); err != nil {
				t.Fatal(err)
			}

			for name, srv := range servers {
				t.Run(name, func(t *testing.T) {
					before := srv.requests.Load()
					id, err := registerThrough(t, cfg.Registry, user, pass, srv.addr, svc)
					switch {
					case name == "right CA" && err != nil:
						t.Fatalf("the rendered config cannot reach the registry: %v", err)
					case name == "right CA":
						t.Logf("registered schema id %d over https", id)
					case err == nil:
						t.Fatalf("registered schema id %d on a registry whose certificate it must refuse", id)
					case name == "another CA" && !strings.Contains(err.Error(), "x509: certificate signed by unknown authority"):
						t.Fatalf("refused, but not for the unknown CA: %v", err)
					case name == "right CA, misnamed" && !strings.Contains(err.Error(), "x509: certificate is valid for not-the-registry, not "+u.Hostname()):
						t.Fatalf("refused, but not for the name: %v", err)
					default:
						if n := srv.requests.Load() - before; n != 0 {
							t.Fatalf("the refused registry still received %d requests", n)
						}
						t.Logf("refused: %v", err)
					}
				})
			}
		})
	}
}

// checkRegistryTLSRender checks the registry's side of the production render and returns it.
func checkRegistryTLSRender(t *testing.T, objs []object) registryTLS {
	t.Helper()
	cert := find(objs, "Certificate", "-schema-registry")
	sts := find(objs, "StatefulSet", "-schema-registry")
	if cert == nil || sts == nil {
		t.Fatal("the production render has no registry Certificate or StatefulSet")
	}
	var reg registryTLS
	reg.secret = fmt.Sprint(path(cert, "spec", "secretName"))
	reg.dnsNames = toStrings(path(cert, "spec", "dnsNames"))
	if len(reg.dnsNames) == 0 {
		t.Fatal("registry Certificate without dnsNames")
	}
	if path(cert, "spec", "keystores", "pkcs12", "create") != true {
		t.Fatal("registry Certificate does not ask cert-manager for the PKCS12 keystore the registry reads")
	}
	pw := [2]string{fmt.Sprint(path(cert, "spec", "keystores", "pkcs12", "passwordSecretRef", "name")),
		fmt.Sprint(path(cert, "spec", "keystores", "pkcs12", "passwordSecretRef", "key"))}

	podSpec := path(sts, "spec", "template", "spec")
	c := path(podSpec, "containers").([]any)[0]
	env := map[string]string{}
	envRef := map[string][2]string{}
	for _, e := range path(c, "env").([]any) {
		n := fmt.Sprint(path(e, "name"))
		if v, ok := path(e, "value").(string); ok {
			env[n] = v
		}
		if r := path(e, "valueFrom", "secretKeyRef"); r != nil {
			envRef[n] = [2]string{fmt.Sprint(path(r, "name")), fmt.Sprint(path(r, "key"))}
		}
	}
	for k, want := range map[string]string{
		"SCHEMA_REGISTRY_LISTENERS":                             "https://0.0.0.0:8081",
		"SCHEMA_REGISTRY_INTER_INSTANCE_PROTOCOL":               "https",
		"SCHEMA_REGISTRY_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM": "https",
		"SCHEMA_REGISTRY_SSL_KEYSTORE_TYPE":                     "PKCS12",
		"SCHEMA_REGISTRY_SSL_TRUSTSTORE_TYPE":                   "PKCS12",
		"SCHEMA_REGISTRY_SSL_KEYSTORE_RELOAD":                   "true",
	} {
		if env[k] != want {
			t.Errorf("registry env %s = %q, want %q", k, env[k], want)
		}
	}
	for _, k := range []string{"SCHEMA_REGISTRY_SSL_KEYSTORE_PASSWORD", "SCHEMA_REGISTRY_SSL_KEY_PASSWORD", "SCHEMA_REGISTRY_SSL_TRUSTSTORE_PASSWORD"} {
		if envRef[k] != pw {
			t.Errorf("registry env %s from Secret/key %v, cert-manager encrypts the stores with %v", k, envRef[k], pw)
		}
	}
	// keystore.p12 and truststore.p12: the keys cert-manager adds to the Secret for
	// keystores.pkcs12.create (the truststore holds the issuer's CA).
	secrets := map[string]map[string]string{reg.secret: {"keystore.p12": "", "truststore.p12": "", "ca.crt": "", "tls.crt": "", "tls.key": ""}}
	files := laySecretMounts(t, podSpec, c, secrets, false)
	for _, k := range []string{"SCHEMA_REGISTRY_SSL_KEYSTORE_LOCATION", "SCHEMA_REGISTRY_SSL_TRUSTSTORE_LOCATION"} {
		want := [2]string{reg.secret, filepath.Base(env[k])}
		if files[env[k]] != want || !strings.HasSuffix(env[k], ".p12") {
			t.Errorf("registry env %s = %s, from Secret/key %v, want a .p12 key of %s", k, env[k], files[env[k]], reg.secret)
		}
	}
	if w := env["SCHEMA_REGISTRY_SSL_KEYSTORE_WATCH_LOCATION"]; w != filepath.Dir(env["SCHEMA_REGISTRY_SSL_KEYSTORE_LOCATION"])+"/..data" {
		t.Errorf("keystore watch location %q: the kubelet swaps the Secret volume's ..data link on an update", w)
	}

	// host.name: the pod's name under the StatefulSet's headless Service.
	svcName := fmt.Sprint(path(sts, "spec", "serviceName"))
	headless := find(objs, "Service", svcName)
	if headless == nil || path(headless, "spec", "clusterIP") != "None" {
		t.Fatalf("the StatefulSet's serviceName %s is not a headless Service of the render", svcName)
	}
	host := env["SCHEMA_REGISTRY_HOST_NAME"]
	if !strings.HasPrefix(host, "$(POD_NAME)."+svcName+"."+fmt.Sprint(path(sts, "metadata", "namespace"))+".svc.") {
		t.Fatalf("host.name %q is not the pod's DNS name under %s", host, svcName)
	}
	reg.hostName = strings.Replace(host, "$(POD_NAME)", sts.name()+"-0", 1)
	return reg
}

// workloadPodSpec is the pod template of the service's Deployment or StatefulSet.
func workloadPodSpec(t *testing.T, objs []object, svc string) any {
	t.Helper()
	for _, kind := range []string{"Deployment", "StatefulSet"} {
		if o := find(objs, kind, "-"+svc); o != nil {
			return path(o, "spec", "template", "spec")
		}
	}
	t.Fatalf("no %s workload rendered", svc)
	return nil
}

// mountUnder writes each mounted file (laySecretMounts' map) under a temporary root with its
// Secret key's content, and returns the root and cfgYAML with every mounted file's path moved
// under it, so a service's own loader can read the config as the pod would.
func mountUnder(t *testing.T, files map[string][2]string, secrets map[string]map[string]string, cfgYAML string) (root, moved string) {
	t.Helper()
	root = t.TempDir()
	var pairs []string
	paths := slices.Sorted(maps.Keys(files))
	slices.SortStableFunc(paths, func(a, b string) int { return len(b) - len(a) }) // longest first: no path moved inside another
	for _, f := range paths {
		dst := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		src := files[f]
		if err := os.WriteFile(dst, []byte(secrets[src[0]][src[1]]), 0o600); err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, f, dst)
	}
	return root, strings.NewReplacer(pairs...).Replace(cfgYAML)
}

// laySecretMounts maps every file the container sees from a Secret volume (mountPath/path)
// to its Secret and key. A Secret the render mounts but secrets does not model is fatal when
// all is set (secrets are all the pod mounts), else it is left out.
func laySecretMounts(t *testing.T, podSpec, container any, secrets map[string]map[string]string, all bool) map[string][2]string {
	t.Helper()
	vols := map[string]map[string][2]string{} // volume -> path -> (Secret, key)
	for _, v := range path(podSpec, "volumes").([]any) {
		s := path(v, "secret")
		if s == nil {
			continue
		}
		name := fmt.Sprint(path(s, "secretName"))
		data, ok := secrets[name]
		if !ok && !all {
			continue
		}
		if !ok {
			t.Fatalf("volume %v mounts Secret %s, which this render does not generate (%v)", path(v, "name"), name, sortedKeys(secrets))
		}
		items := map[string][2]string{}
		if its, _ := path(s, "items").([]any); len(its) > 0 {
			for _, it := range its {
				key := fmt.Sprint(path(it, "key"))
				if _, ok := data[key]; !ok {
					t.Fatalf("volume %v projects key %s, not in Secret %s (keys %v)", path(v, "name"), key, name, sortedKeys(data))
				}
				items[fmt.Sprint(path(it, "path"))] = [2]string{name, key}
			}
		} else {
			for key := range data {
				items[key] = [2]string{name, key}
			}
		}
		vols[fmt.Sprint(path(v, "name"))] = items
	}
	files := map[string][2]string{}
	for _, m := range path(container, "volumeMounts").([]any) {
		items, ok := vols[fmt.Sprint(path(m, "name"))]
		if !ok {
			continue
		}
		if path(m, "subPath") != nil {
			t.Errorf("Secret volume %v mounted with a subPath: a renewed Secret would never reach the pod", path(m, "name"))
		}
		for p, src := range items {
			files[filepath.Join(fmt.Sprint(path(m, "mountPath")), p)] = src
		}
	}
	return files
}

// countingServer is a registry stand-in over TLS that counts the HTTP requests reaching it
// (a refused TLS handshake never becomes one).
type countingServer struct {
	addr     string
	requests atomic.Int64
}

// startRegistry serves srfake (basic auth wantAuth) over TLS with leaf's certificate.
func startRegistry(t *testing.T, leaf *testpki.Leaf, wantAuth string) *countingServer {
	t.Helper()
	cs := &countingServer{}
	h := srfake.NewRegistry(srfake.WithAuth(wantAuth)).Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cs.addr = srv.Listener.Addr().String()
	return cs
}

// registerThrough builds the registry client as the services do (svcconfig's HTTPClient
// and serde's srclient) from r, dials addr for the URL's host, registers a schema under a
// subject named after svc and reads it back by id.
func registerThrough(t *testing.T, r svcconfig.Registry, user, pass, addr, svc string) (int, error) {
	t.Helper()
	hc, err := r.HTTPClient()
	if err != nil {
		return 0, err
	}
	tr, ok := hc.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("registry transport %T, want *http.Transport (no usernameFile in the chart's config)", hc.Transport)
	}
	host := strings.TrimPrefix(strings.TrimPrefix(r.URL, "https://"), "http://")
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		if a != host {
			return nil, fmt.Errorf("dial %s: only %s is routed in this test", a, host)
		}
		return d.DialContext(ctx, network, addr)
	}
	c := serde.NewRegistry(r.URL, user, pass, srclient.WithClient(hc))
	s, err := c.CreateSchema(svc+"-tls-check-value", `"string"`, srclient.Avro)
	if err != nil {
		return 0, err
	}
	got, err := c.GetSchema(s.ID())
	if err != nil {
		return 0, err
	}
	if got.Schema() != `"string"` {
		return 0, fmt.Errorf("schema %d reads back as %q", s.ID(), got.Schema())
	}
	return s.ID(), nil
}

// connectProxy is an HTTP CONNECT proxy that tunnels only host (the in-chart registry's
// Service name, which does not resolve here) to addr: a child process reaches the
// registry by its rendered URL through HTTPS_PROXY, with TLS end to end.
func connectProxy(t *testing.T, host, addr string) string {
	t.Helper()
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || r.Host != host {
			http.Error(w, "only CONNECT "+host, http.StatusForbidden)
			return
		}
		up, err := net.Dial("tcp", addr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		_, _ = conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = io.Copy(up, buf); up.Close() }()
		go func() { defer wg.Done(); _, _ = io.Copy(conn, up); conn.Close() }()
	}))
	t.Cleanup(func() { srv.Close(); wg.Wait() })
	return srv.URL
}
