package svcconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

// readSecret reads a mounted secret (a Kubernetes Secret key, a file): its content without
// one trailing newline.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
}

// ApplyPropertyFiles sets each librdkafka setting of files (setting -> file) in *props to the
// file's content, read now: how a password from a mounted Secret (Strimzi's KafkaUser
// Secret key "password") reaches sasl.password without being written in YAML. A setting
// given both ways, or a file that cannot be read, is an error; every one is reported.
func ApplyPropertyFiles(section string, props *map[string]string, files map[string]string) error {
	var errs []error
	for _, key := range sortedKeys(files) {
		if _, ok := (*props)[key]; ok {
			errs = append(errs, fmt.Errorf("%s.propertyFiles.%s: also set in %s.properties; set it once", section, key, section))
			continue
		}
		v, err := readSecret(files[key])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.propertyFiles.%s: %w", section, key, err))
			continue
		}
		if *props == nil {
			*props = map[string]string{}
		}
		(*props)[key] = v
	}
	return errors.Join(errs...)
}

// checkPEM tells whether path holds at least one PEM certificate.
func checkPEM(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return pool, nil
}

// validateAccess checks the registry's TLS and credential settings.
func (r Registry) validateAccess() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if r.CAFile != "" {
		if !strings.HasPrefix(r.URL, "https://") {
			add("registry.caFile needs an https:// registry.url")
		}
		if _, err := checkPEM(r.CAFile); err != nil {
			add("registry.caFile: %w", err)
		}
	}
	if (r.UsernameFile == "") != (r.PasswordFile == "") {
		add("registry: usernameFile and passwordFile go together")
	}
	if r.UsernameFile != "" && r.Username != "" {
		add("registry: credentials from REGISTRY_USERNAME and from usernameFile; use one")
	}
	for key, f := range map[string]string{"registry.usernameFile": r.UsernameFile, "registry.passwordFile": r.PasswordFile} {
		if f != "" {
			if _, err := readSecret(f); err != nil {
				add("%s: %w", key, err)
			}
		}
	}
	return errors.Join(errs...)
}

// HTTPClient is the client to reach the registry with: it verifies an https registry
// against caFile (system roots without it) and, with usernameFile/passwordFile, sends basic
// auth read from those files at each request, so a rotated Secret is used without a
// restart. (REGISTRY_USERNAME / REGISTRY_PASSWORD are set by the registry client itself.)
func (r Registry) HTTPClient() (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if r.CAFile != "" {
		pool, err := checkPEM(r.CAFile)
		if err != nil {
			return nil, fmt.Errorf("registry.caFile: %w", err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	var rt http.RoundTripper = tr
	if r.UsernameFile != "" {
		rt = basicAuthFiles{base: tr, userFile: r.UsernameFile, passFile: r.PasswordFile}
	}
	return &http.Client{Transport: rt, Timeout: 5 * time.Second}, nil // srclient's own timeout
}

type basicAuthFiles struct {
	base               http.RoundTripper
	userFile, passFile string
}

func (b basicAuthFiles) RoundTrip(req *http.Request) (*http.Response, error) {
	user, err := readSecret(b.userFile)
	if err != nil {
		return nil, fmt.Errorf("registry credentials: %w", err)
	}
	pass, err := readSecret(b.passFile)
	if err != nil {
		return nil, fmt.Errorf("registry credentials: %w", err)
	}
	req = req.Clone(req.Context())
	req.SetBasicAuth(user, pass)
	return b.base.RoundTrip(req)
}
