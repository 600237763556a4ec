package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/iov-platform/iov/tools/devkit/testpki"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const platformConfig = "../../schemas/subjects.yaml"

func TestListGolden(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--config", platformConfig, "list"}, &out); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "list.golden")
	if *update {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("list differs from %s (go test -update rewrites it after a schema change):\n%s", path, out.String())
	}
}

// TestPlatformSubjectsRegisterAndCheckOnSrfake runs the CLI as CI would on the repository's
// own schemas: register, then check finds everything up to date.
func TestPlatformSubjectsRegisterAndCheckOnSrfake(t *testing.T) {
	fake := srfake.New()
	srv := httptest.NewServer(fake.Handler())
	defer func() {
		srv.Close()
		fake.Close()
	}()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--config", platformConfig, "--registry", srv.URL, "check"}, &out); err != nil {
		t.Fatalf("check before register: %v\n%s", err, out.String())
	}
	if n := strings.Count(out.String(), "not in the registry yet"); n != 6 {
		t.Fatalf("want 6 new subjects, got %d:\n%s", n, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"--config", platformConfig, "--registry", srv.URL, "register"}, &out); err != nil {
		t.Fatalf("register: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"set      iov.vehicle.telemetry-value: compatibility BACKWARD (was registry default BACKWARD)",
		"added    iov.vehicle.telemetry-value: vehicle_message v1 as version 1",
		"added    iov.vehicle.telemetry-value: vehicle_message v2 as version 2",
		"added    iov.vehicle.command-status-value: command_status v1 as version 1",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("register output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"--config", platformConfig, "--registry", srv.URL, "check"}, &out); err != nil {
		t.Fatalf("check after register: %v\n%s", err, out.String())
	}
	if n := strings.Count(out.String(), "up to date"); n != 6 {
		t.Fatalf("want 6 subjects up to date, got %d:\n%s", n, out.String())
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", []string{"--config", platformConfig}, "want exactly one command"},
		{"unknown command", []string{"--config", platformConfig, "deploy"}, `unknown command "deploy"`},
		{"no registry", []string{"--config", writeConfig(t, "schemas: "+filepath.Join(mustAbs(t, "../../schemas/avro"))+"\nsubjects: [{name: a-value, schema: client_event}]\n"), "check"},
			"no registry"},
		{"unknown family", []string{"--config", writeConfig(t, "schemas: "+mustAbs(t, "../../schemas/avro")+"\nsubjects: [{name: a-value, schema: nope}]\n"), "list"},
			`subject a-value: schema "nope"`},
		{"bad config", []string{"--config", writeConfig(t, "subjects: []\nextra: 1\n"), "list"}, "field extra not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "subjects.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestRegisterOverTLSWithCredentialFiles: the schema Job's way in (the chart mounts the
// registry CA and the credentials Secret): an https registry checked against
// registry.caFile, basic auth from usernameFile / passwordFile. A wrong password is refused.
func TestRegisterOverTLSWithCredentialFiles(t *testing.T) {
	ca, err := testpki.NewCA("registry CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueValid("127.0.0.1", testpki.Server)
	if err != nil {
		t.Fatal(err)
	}
	fake := srfake.New()
	defer fake.Close()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "schemas" || p != "registry-pw" {
			http.Error(w, `{"error_code":401,"message":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		fake.Handler().ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	schemasDir, err := filepath.Abs("../../schemas/avro")
	if err != nil {
		t.Fatal(err)
	}
	config := func(password string) string {
		return write("subjects.yaml", fmt.Sprintf(`registry: {url: %q, caFile: %q, usernameFile: %q, passwordFile: %q}
schemas: %q
subjects:
  - {name: iov.vehicle.status-value, schema: client_event}
`, srv.URL, write("ca.crt", string(ca.PEM)), write("username", "schemas\n"), write("password", password+"\n"), schemasDir))
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--config", config("registry-pw"), "register"}, &out); err != nil {
		t.Fatalf("register over https with credential files: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "added    iov.vehicle.status-value: client_event v1 as version 1") {
		t.Fatalf("register output:\n%s", out.String())
	}
	out.Reset()
	err = run(context.Background(), []string{"--config", config("wrong"), "check"}, &out)
	if err == nil || !strings.Contains(err.Error()+out.String(), "401") {
		t.Fatalf("a wrong password was not refused with 401: %v\n%s", err, out.String())
	}
}
