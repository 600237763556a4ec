package charttest

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestEMQXExhookTLS follows the hook's TLS through the full production renders, upstream EMQX
// charts included, for both editions: the EMQX env ConfigMap the StatefulSet loads carries the
// https URL and every SSL setting (verify_peer, the URL's host as SNI); the files they name are
// keys of a Secret the EMQX container mounts as a directory; that Secret is the one the EMQX
// client Certificate writes, from the issuer of the producer's Certificate (so its ca.crt is
// the CA that signed the producer's certificate); and the producer's Certificate names the
// host EMQX dials.
func TestEMQXExhookTLS(t *testing.T) {
	for _, name := range []string{"production", "production-enterprise"} {
		t.Run(name, func(t *testing.T) {
			objs := mustObjects(t, renderVariant(t, variantNamed(t, name)))
			env, sts := find(objs, "ConfigMap", "-emqx-env"), find(objs, "StatefulSet", "-emqx")
			server, client := find(objs, "Certificate", "-exhook-producer-grpc"), find(objs, "Certificate", "-emqx-exhook-client")
			if env == nil || sts == nil || server == nil || client == nil {
				t.Fatal("the render lacks the EMQX env ConfigMap, the EMQX StatefulSet or one of the two Certificates")
			}
			get := func(k string) string { s, _ := path(env, "data", "EMQX_EXHOOK__SERVERS__1__"+k).(string); return s }
			u, err := url.Parse(get("URL"))
			if err != nil || u.Scheme != "https" {
				t.Fatalf("EMQX's ExHook URL %q is not https", get("URL"))
			}
			if get("SSL__ENABLE") != "true" || get("SSL__VERIFY") != "verify_peer" {
				t.Errorf("SSL__ENABLE %q, SSL__VERIFY %q; want true and verify_peer (EMQX 5.8.8+/6.x default to verify_none)", get("SSL__ENABLE"), get("SSL__VERIFY"))
			}
			if get("SSL__SERVER_NAME_INDICATION") != u.Hostname() {
				t.Errorf("SNI %q, want the URL's host %q", get("SSL__SERVER_NAME_INDICATION"), u.Hostname())
			}
			if !slices.Contains(toStrings(path(server, "spec", "dnsNames")), u.Hostname()) {
				t.Errorf("the producer's Certificate does not name %s, the host EMQX dials (dnsNames %v)", u.Hostname(), path(server, "spec", "dnsNames"))
			}
			// The files EMQX reads, against the Secret volumes its container mounts.
			spec := path(sts, "spec", "template", "spec")
			secrets := map[string]string{} // volume -> Secret
			for _, v := range path(spec, "volumes").([]any) {
				if s, ok := path(v, "secret", "secretName").(string); ok {
					secrets[fmt.Sprint(path(v, "name"))] = s
				}
			}
			mounted := map[string]string{} // directory -> Secret
			c := path(spec, "containers").([]any)[0]
			for _, m := range path(c, "volumeMounts").([]any) {
				if s, ok := secrets[fmt.Sprint(path(m, "name"))]; ok && path(m, "subPath") == nil {
					mounted[strings.TrimSuffix(fmt.Sprint(path(m, "mountPath")), "/")] = s
				}
			}
			want := path(client, "spec", "secretName")
			for k, key := range map[string]string{"SSL__CACERTFILE": "ca.crt", "SSL__CERTFILE": "tls.crt", "SSL__KEYFILE": "tls.key"} {
				f := get(k)
				dir, base, _ := strings.Cut(f, "/"+key)
				if f == "" || base != "" || mounted[dir] == "" {
					t.Errorf("%s %q is not %s in a Secret the EMQX container mounts as a directory (mounted: %v)", k, f, key, mounted)
					continue
				}
				if mounted[dir] != want {
					t.Errorf("%s comes from Secret %s, EMQX's client Certificate writes %v", k, mounted[dir], want)
				}
			}
			if a, b := fmt.Sprint(path(client, "spec", "issuerRef")), fmt.Sprint(path(server, "spec", "issuerRef")); a != b {
				t.Errorf("EMQX's certificate comes from %s, the producer's from %s: EMQX's ca.crt would not be the producer's CA", a, b)
			}
			if !slices.Contains(toStrings(path(client, "spec", "usages")), "client auth") {
				t.Errorf("EMQX's certificate usages %v lack client auth", path(client, "spec", "usages"))
			}
		})
	}
}
