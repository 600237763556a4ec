package svcconfig

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestApplyPropertyFiles(t *testing.T) {
	pw := writeTemp(t, "password", "s3cret\n")
	props := map[string]string{"sasl.username": "u"}
	if err := ApplyPropertyFiles("kafka", &props, map[string]string{"sasl.password": pw}); err != nil {
		t.Fatal(err)
	}
	if props["sasl.password"] != "s3cret" || props["sasl.username"] != "u" {
		t.Fatalf("props %v", props)
	}
	var none map[string]string
	if err := ApplyPropertyFiles("kafka", &none, map[string]string{"sasl.password": pw}); err != nil || none["sasl.password"] != "s3cret" {
		t.Fatalf("into a nil map: %v %v", none, err)
	}

	props = map[string]string{"sasl.password": "inline"}
	err := ApplyPropertyFiles("kafka", &props, map[string]string{"sasl.password": pw, "ssl.key.password": "/nonexistent/file"})
	for _, want := range []string{"kafka.propertyFiles.sasl.password: also set in kafka.properties", "kafka.propertyFiles.ssl.key.password: open /nonexistent/file"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// TestRegistryTLSAndBasicAuthFromFiles: the registry client verifies the registry against
// caFile and sends the credentials in the files, re-read per request (a rotated Secret).
func TestRegistryTLSAndBasicAuthFromFiles(t *testing.T) {
	var wantPass atomic.Value
	wantPass.Store("pw1")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "exhook" || p != wantPass.Load().(string) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte("[]"))
	}))
	defer srv.Close()
	ca := writeTemp(t, "ca.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	userFile, passFile := writeTemp(t, "username", "exhook\n"), writeTemp(t, "password", "pw1\n")

	get := func(r Registry) int {
		t.Helper()
		c, err := r.HTTPClient()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Get(srv.URL + "/subjects")
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	r := Registry{URL: srv.URL, CAFile: ca, UsernameFile: userFile, PasswordFile: passFile}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if code := get(r); code != http.StatusOK {
		t.Fatalf("with CA and credentials: %d", code)
	}
	wantPass.Store("pw2") // the Secret is rotated: the registry first, the file after
	if code := get(r); code != http.StatusUnauthorized {
		t.Fatalf("old password after the registry changed it: %d, want 401", code)
	}
	if err := os.WriteFile(passFile, []byte("pw2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := get(r); code != http.StatusOK {
		t.Fatalf("rotated password file: %d", code)
	}
	if code := get(Registry{URL: srv.URL, UsernameFile: userFile, PasswordFile: passFile}); code != -1 {
		t.Fatalf("without the CA: %d, want a certificate error", code)
	}
	if code := get(Registry{URL: srv.URL, CAFile: ca}); code != http.StatusUnauthorized {
		t.Fatalf("without credentials: %d, want 401", code)
	}
}

func TestRegistryAccessChecks(t *testing.T) {
	notPEM := writeTemp(t, "ca.crt", "nothing")
	err := Registry{URL: "http://r:8081", CAFile: notPEM, UsernameFile: "/nonexistent/u", Username: "env"}.Validate()
	for _, want := range []string{
		"registry.caFile needs an https:// registry.url",
		"registry.caFile: " + notPEM + ": no PEM certificate",
		"registry: usernameFile and passwordFile go together",
		"registry: credentials from REGISTRY_USERNAME and from usernameFile",
		"registry.usernameFile: open /nonexistent/u",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
