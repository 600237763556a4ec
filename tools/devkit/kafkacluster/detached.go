package kafkacluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StateFile is written into Options.Dir by a detached start: the bootstrap list, for
// scripts (`. dir/cluster.env`).
const StateFile = "cluster.env"

// WriteState records the cluster's addresses in Dir/cluster.env.
func (c *Cluster) WriteState() error {
	s := fmt.Sprintf("KAFKA_BOOTSTRAP=%s\nKAFKA_NODES=%d\n", c.Bootstrap(), len(c.Nodes))
	if err := os.WriteFile(filepath.Join(c.opts.Dir, StateFile), []byte(s), 0o644); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// StopDetached stops the nodes a detached start left running in dir (SIGTERM, SIGKILL after
// grace), and says which it stopped. A node already gone is not an error.
func StopDetached(dir string, grace time.Duration) ([]int, error) {
	pidFiles, _ := filepath.Glob(filepath.Join(dir, "node-*", "pid"))
	var pids []int
	for _, f := range pidFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || !isBroker(pid) {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGCONT)
		if err := syscall.Kill(pid, syscall.SIGTERM); err == nil {
			pids = append(pids, pid)
		}
	}
	deadline := time.Now().Add(grace)
	var errs []error
	for _, pid := range pids {
		for isBroker(pid) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if isBroker(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			errs = append(errs, fmt.Errorf("pid %d ignored SIGTERM for %s; killed", pid, grace))
		}
	}
	_ = os.Remove(filepath.Join(dir, StateFile))
	return pids, errors.Join(errs...)
}

// isBroker reports whether pid is a live Kafka node (not a reused pid).
func isBroker(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if f := strings.Fields(string(st)); len(f) > 2 && f[2] == "Z" {
			return false
		}
	}
	return bytes.Contains(b, []byte("kafka.Kafka"))
}
