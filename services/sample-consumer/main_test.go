package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iov-platform/iov/kit/svcconfig/svcconfigtest"
)

func TestCommandLine(t *testing.T) { svcconfigtest.CommandLine(t, run) }

func TestBadConfigFailsBeforeStarting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "consumer.yaml")
	if err := os.WriteFile(path, []byte("kafka: {groupId: ''}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"--config", path})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "kafka.groupId is required") {
		t.Fatalf("run = %v", err)
	}
}

func TestUnknownFlag(t *testing.T) {
	if err := run(context.Background(), []string{"--nope"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}
