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
