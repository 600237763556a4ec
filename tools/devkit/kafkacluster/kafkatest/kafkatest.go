// Package kafkatest starts a real Kafka cluster (kafkacluster) for a test and stops it when
// the test ends. Real-Kafka tests are slow (a JVM per node), so they run only when
// IOV_REAL_KAFKA=1 (make test-kafka sets it); otherwise they are skipped.
package kafkatest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iov-platform/iov/tools/devkit/kafkacluster"
)

// EnvVar enables the real-Kafka tests.
const EnvVar = "IOV_REAL_KAFKA"

// Skip skips t unless real-Kafka tests are enabled.
func Skip(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvVar) != "1" {
		t.Skipf("real Kafka test: set %s=1 (make test-kafka)", EnvVar)
	}
}

// Start skips t unless enabled, then starts a cluster in a temporary directory and stops it
// at cleanup. When the test failed, the tail of each node's log is shown.
func Start(t testing.TB, opts kafkacluster.Options) *kafkacluster.Cluster {
	t.Helper()
	Skip(t)
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	c, err := kafkacluster.Start(context.Background(), opts)
	if err != nil {
		showLogs(t, opts.Dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			showLogs(t, opts.Dir)
		}
	})
	return c
}

func showLogs(t testing.TB, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "node-*", "logs", "server.log"))
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		var errs []string
		for _, l := range lines {
			if strings.Contains(l, " ERROR ") {
				errs = append(errs, l)
			}
		}
		t.Logf("%s: %d lines, %d ERROR; last ERROR lines:\n%s", f, len(lines), len(errs), strings.Join(errs[max(0, len(errs)-10):], "\n"))
	}
}

// SecureCluster is a cluster with a SASL_SSL listener (SCRAM-SHA-512) and the CA that signed
// its certificate.
type SecureCluster struct {
	*kafkacluster.Cluster
	CAFile string // PEM CA certificate for clients' ssl.ca.location
}

// ClientProperties are the librdkafka settings of a SCRAM-SHA-512 over TLS client.
func (s *SecureCluster) ClientProperties(user, password string) map[string]string {
	return map[string]string{
		"security.protocol": "SASL_SSL",
		"sasl.mechanisms":   "SCRAM-SHA-512",
		"sasl.username":     user,
		"sasl.password":     password,
		"ssl.ca.location":   s.CAFile,
	}
}

// StartSecure is Start with a SASL_SSL listener: a CA and a server certificate for 127.0.0.1
// are generated for the test, and the SCRAM-SHA-512 users are created at format time.
func StartSecure(t testing.TB, nodes int, users, properties map[string]string) *SecureCluster {
	t.Helper()
	Skip(t)
	dir := t.TempDir()
	caPEM, certPEM, keyPEM, err := NewCertificates()
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	c := Start(t, kafkacluster.Options{Nodes: nodes, Dir: filepath.Join(dir, "cluster"), Properties: properties,
		Secure: &kafkacluster.Secure{CertPEM: certPEM, KeyPEM: keyPEM, Users: users}})
	return &SecureCluster{Cluster: c, CAFile: caFile}
}
