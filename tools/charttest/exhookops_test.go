package charttest

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestExhookOpsWiring: in both EMQX editions, rendered with the upstream EMQX charts,
//   - EMQX gets the ExHook settings of the values (auto_reconnect 5s, not EMQX's 60s);
//   - EMQX loads its API keys from the file of the Secret the chart generates
//     (EMQX_API_KEY__BOOTSTRAP_FILE is where the StatefulSet mounts that Secret's key), and
//     the reload Job and the status exporter read the same Secret key (-api-key-file);
//   - the generated file is one `key:secret:administrator` line, the format EMQX's
//     emqx_mgmt_auth:init_bootstrap_file accepts (v5.8.9, e6.0.1);
//   - the Job and the exporter call the EMQX Service's dashboard port, and check the scope
//     the producer's config.yaml registers (hooks.scope).
func TestExhookOpsWiring(t *testing.T) {
	for _, ed := range emqxEditions {
		t.Run(ed.key, func(t *testing.T) {
			objs := renderEdition(t, ed.switchTo, "monitoring-values.yaml")
			env := find(objs, "ConfigMap", "-emqx-env")
			sts := find(objs, "StatefulSet", "-emqx")
			svc := find(objs, "Service", "iov-emqx")
			secret := find(objs, "Secret", "-emqx-api-key")
			job := find(objs, "Job", "-exhook-ops-reload")
			exporter := find(objs, "Deployment", "-exhook-ops-status")
			producerCM := find(objs, "ConfigMap", "iov-exhook-producer")
			for what, o := range map[string]object{"EMQX env ConfigMap": env, "EMQX StatefulSet": sts, "EMQX Service": svc,
				"API key Secret": secret, "reload Job": job, "status exporter": exporter, "producer ConfigMap": producerCM} {
				if o == nil {
					t.Fatalf("no %s rendered", what)
				}
			}

			for k, v := range map[string]string{
				"EMQX_EXHOOK__SERVERS__1__AUTO_RECONNECT":  "5s",
				"EMQX_EXHOOK__SERVERS__1__REQUEST_TIMEOUT": "5s",
				"EMQX_EXHOOK__SERVERS__1__POOL_SIZE":       "8",
			} {
				if got := path(env, "data", k); got != v {
					t.Errorf("%s = %v, want %q", k, got, v)
				}
			}

			// The file EMQX loads is the generated Secret's key, mounted into the EMQX pod.
			bootstrap, _ := path(env, "data", "EMQX_API_KEY__BOOTSTRAP_FILE").(string)
			if got := secretFileAt(t, sts, "emqx", bootstrap); got != secret.name()+"/bootstrap.txt" {
				t.Errorf("EMQX_API_KEY__BOOTSTRAP_FILE %q is %q in the EMQX pod, want Secret %s key bootstrap.txt", bootstrap, got, secret.name())
			}
			raw, _ := path(secret, "data", "bootstrap.txt").(string)
			content, err := base64.StdEncoding.DecodeString(raw)
			if err != nil {
				t.Fatalf("Secret data bootstrap.txt: %v", err)
			}
			fields := strings.Split(strings.TrimSuffix(string(content), "\n"), ":")
			if len(fields) != 3 || fields[0] != "iov-exhook-ops" || len(fields[1]) != 40 || fields[2] != "administrator" {
				t.Errorf("bootstrap file %q, want iov-exhook-ops:<40 characters>:administrator", content)
			}

			scope := producerScope(t, producerCM)
			dashboard := fmt.Sprintf("http://%s:%v", svc.name(), servicePort(svc, "dashboard"))
			for _, w := range []object{job, exporter} {
				c := path(w, "spec", "template", "spec", "containers").([]any)[0]
				args := toStrings(path(c, "args"))
				keyFile := flagValue(args, "-api-key-file")
				if got := secretFileAt(t, w, path(c, "name").(string), keyFile); got != secret.name()+"/bootstrap.txt" {
					t.Errorf("%s %s: -api-key-file %q is %q, want Secret %s key bootstrap.txt", w.kind(), w.name(), keyFile, got, secret.name())
				}
				if got := flagValue(args, "-emqx"); got != dashboard {
					t.Errorf("%s %s: -emqx %q, want the EMQX Service's dashboard port %s", w.kind(), w.name(), got, dashboard)
				}
				if got := flagValue(args, "-scope"); got != strings.Join(scope, ",") {
					t.Errorf("%s %s: -scope %q, want the producer's hooks.scope %q", w.kind(), w.name(), got, scope)
				}
				if u, err := url.Parse(flagValue(args, "-emqx")); err != nil || u.Host == "" {
					t.Errorf("%s %s: -emqx is not a URL: %v", w.kind(), w.name(), err)
				}
			}
		})
	}
}

// secretFileAt returns "<secret>/<key>" for the file at file in container of the pod
// template of workload, or "" when no Secret volume item lies there.
func secretFileAt(t *testing.T, workload object, container, file string) string {
	t.Helper()
	spec := path(workload, "spec", "template", "spec")
	var mounts []any
	for _, c := range path(spec, "containers").([]any) {
		if path(c, "name") == container {
			mounts, _ = path(c, "volumeMounts").([]any)
		}
	}
	vols, _ := path(spec, "volumes").([]any)
	for _, m := range mounts {
		dir, _ := path(m, "mountPath").(string)
		rel, ok := strings.CutPrefix(file, strings.TrimSuffix(dir, "/")+"/")
		if !ok {
			continue
		}
		for _, v := range vols {
			if path(v, "name") != path(m, "name") || path(v, "secret") == nil {
				continue
			}
			items, _ := path(v, "secret", "items").([]any)
			for _, it := range items {
				if path(it, "path") == rel {
					return fmt.Sprintf("%v/%v", path(v, "secret", "secretName"), path(it, "key"))
				}
			}
			if len(items) == 0 {
				return fmt.Sprintf("%v/%s", path(v, "secret", "secretName"), rel)
			}
		}
	}
	return ""
}

// producerScope reads hooks.scope from the producer's rendered config.yaml.
func producerScope(t *testing.T, cm object) []string {
	t.Helper()
	cfg, _ := path(cm, "data", "config.yaml").(string)
	docs, err := parseObjects(cfg)
	if err != nil || len(docs) != 1 {
		t.Fatalf("producer config.yaml: %v", err)
	}
	scope := toStrings(path(docs[0], "hooks", "scope"))
	if len(scope) == 0 {
		t.Fatal("producer config.yaml has no hooks.scope")
	}
	return scope
}

func servicePort(svc object, name string) any {
	for _, p := range path(svc, "spec", "ports").([]any) {
		if path(p, "name") == name {
			return path(p, "port")
		}
	}
	return nil
}

// flagValue returns the argument after flag in args.
func flagValue(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// renderEdition renders the umbrella in full with the umbrella's ci/<file> values and then
// the values files that switch to an EMQX edition (emqxEditions' switchTo), and parses it.
func renderEdition(t *testing.T, switchTo []string, ciFiles ...string) []object {
	t.Helper()
	var files []string
	for _, f := range ciFiles {
		files = append(files, filepath.Join(umbrellaDir(t), "ci", f))
	}
	for _, f := range switchTo {
		files = append(files, filepath.Join(umbrellaDir(t), f))
	}
	m, err := render(scratchUmbrella(t), files)
	if err != nil {
		t.Fatal(err)
	}
	return mustObjects(t, m)
}
