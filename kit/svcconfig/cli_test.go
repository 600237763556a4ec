package svcconfig

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secretConfig has secrets in YAML and in the environment.
type secretConfig struct {
	Registry registry          `yaml:"registry"`
	Props    map[string]string `yaml:"properties"`
	List     []string          `yaml:"list"`
}

func (c secretConfig) EnvOnly() []EnvOnly { return c.Registry.EnvOnly() }

func TestPrintEffectiveMasksSecrets(t *testing.T) {
	cfg := secretConfig{
		Registry: registry{Registry: Registry{URL: "https://alice:hunter2@sr:8081", Username: "bob", Password: "s3cret"}, AutoRegister: true},
		Props: map[string]string{
			"sasl.password":                  "pw1",
			"ssl.key.password":               "pw2",
			"sasl.jaas.config":               "org.apache.kafka... password=\"pw3\";",
			"sasl.oauthbearer.client.secret": "pw4",
			"security.protocol":              "SASL_SSL",
			"sasl.username":                  "svc",
			"ssl.key.pem":                    "-----BEGIN PRIVATE KEY-----",
		},
		List: []string{"mqtt://u:pw5@host:1883", "plain"},
	}
	var out bytes.Buffer
	if err := PrintEffective(&out, "effective", cfg); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, secret := range []string{"hunter2", "s3cret", "pw1", "pw2", "pw3", "pw4", "pw5", "PRIVATE"} {
		if strings.Contains(got, secret) {
			t.Errorf("secret %q printed:\n%s", secret, got)
		}
	}
	for _, want := range []string{
		"# effective\n",
		"url: https://alice:xxxxx@sr:8081\n",
		"autoRegister: true\n",
		"sasl.password: '*****'\n",
		"security.protocol: SASL_SSL\n",
		"sasl.username: svc\n",
		"- mqtt://u:xxxxx@host:1883\n",
		"- plain\n",
		"#   registry.username (REGISTRY_USERNAME): bob\n",
		"#   registry.password (REGISTRY_PASSWORD): *****\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
	out.Reset()
	if err := PrintEffective(&out, "unset", secretConfig{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "#   registry.password (REGISTRY_PASSWORD): (unset)\n") {
		t.Errorf("unset password:\n%s", out.String())
	}
}

func loadTest(path string) (*testConfig, error) {
	return Load(path, []byte("log: {level: info, format: text}\n"), func(data []byte) (*testConfig, error) {
		cfg := defaultConfig()
		return cfg, Parse(data, cfg, finish)
	})
}

func TestCommandLine(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("log: {level: loud}\nnope: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		wantDone bool
		wantErr  string   // "" for none
		wantOut  []string // substrings of out
	}{
		{"run", nil, false, "", nil},
		{"help", []string{"--help"}, true, "", []string{"Usage: svc [--config FILE] [--check-config]", "what svc does", "-check-config"}},
		{"short help", []string{"-h"}, true, "", []string{"Usage: svc"}},
		{"check", []string{"--check-config"}, true, "", []string{"# svc: effective config from the embedded default", "format: text", "drainTimeout: 1s", "config ok\n"}},
		{"bad flag", []string{"--nope"}, true, "flag provided but not defined: -nope", nil},
		{"extra argument", []string{"x.yaml"}, true, `unexpected arguments ["x.yaml"] (see --help)`, nil},
		{"bad config", []string{"--config", bad, "--check-config"}, true,
			"config " + bad + ": parse yaml: line 2: field nope not found in type svcconfig.testConfig\n" +
				"config " + bad + `: log.level "loud": want debug, info, warn or error`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			cfg, done, err := CommandLine("svc", "what svc does", tc.args, &out, loadTest)
			if done != tc.wantDone {
				t.Errorf("done %v", done)
			}
			if got := errString(err); got != tc.wantErr {
				t.Errorf("error %q, want %q", got, tc.wantErr)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("no %q in:\n%s", w, out.String())
				}
			}
			if tc.name == "run" && (cfg == nil || cfg.Log.Format != "text" || out.Len() != 0) {
				t.Errorf("run: cfg %+v, out %q", cfg, out.String())
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestSecretKey(t *testing.T) {
	for key, want := range map[string]bool{
		"sasl.password": true, "ssl.keystore.password": true, "sasl.oauthbearer.client.secret": true, "sasl.jaas.config": true,
		"ssl.key.pem": true, "Password": true, "apiKey": true,
		"sasl.username": false, "security.protocol": false, "url": false, "keyFile": false, "linger.ms": false,
	} {
		if got := SecretKey(key); got != want {
			t.Errorf("SecretKey(%q) = %v", key, got)
		}
	}
}
