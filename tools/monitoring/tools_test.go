package monitoring

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const (
	rulesFile     = "../../charts/iov-platform/files/prometheus-rules.yaml"
	rulesTestFile = "testdata/rules_test.yaml"
	repoRoot      = "../.."
)

var (
	toolsOnce  sync.Once
	toolsPaths map[string]string
	toolsErr   error
)

// promTool returns the path of prometheus or promtool, building them on first use with
// tools/prometheus-tools.sh (progress goes to stderr; `make monitoring-test` shows it).
func promTool(t *testing.T, name string) string {
	t.Helper()
	toolsOnce.Do(func() {
		cmd := exec.Command("bash", filepath.Join(repoRoot, "tools", "prometheus-tools.sh"))
		cmd.Stderr = os.Stderr
		var out bytes.Buffer
		cmd.Stdout = &out
		if toolsErr = cmd.Run(); toolsErr != nil {
			return
		}
		toolsPaths = map[string]string{}
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok {
				toolsPaths[k] = v
			}
		}
	})
	if toolsErr != nil {
		t.Fatalf("tools/prometheus-tools.sh: %v", toolsErr)
	}
	p, ok := toolsPaths[name]
	if !ok {
		t.Fatalf("tools/prometheus-tools.sh printed no path for %s", name)
	}
	return p
}

// sharedDir is ../shared beside the repository (IOV_SHARED overrides it), where the real
// CRDs are.
func sharedDir() string {
	if d := os.Getenv("IOV_SHARED"); d != "" {
		return d
	}
	return filepath.Join(repoRoot, "..", "shared")
}
