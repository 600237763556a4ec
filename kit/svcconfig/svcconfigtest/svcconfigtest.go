// Package svcconfigtest holds the checks every service's tests run against its command line
// and its embedded default config.
package svcconfigtest

import (
	"context"
	"testing"

	"github.com/iov-platform/iov/kit/svcconfig"
)

// CommandLine checks a service's run(ctx, args): --help and -h are not errors, and
// --check-config accepts the embedded default (printing it and returning without running).
func CommandLine(t *testing.T, run func(context.Context, []string) error) {
	t.Helper()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"--check-config"}} {
		if err := run(context.Background(), args); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// Reference checks that def, the embedded default, is the annotated reference: every key of
// the config load("") returns, each with a comment (svcconfig.CheckReference); keys under
// kafka.properties are the user's.
func Reference[T any](t *testing.T, def []byte, load func(string) (T, error)) {
	t.Helper()
	cfg, err := load("")
	if err != nil {
		t.Fatal(err)
	}
	if err := svcconfig.CheckReference(def, cfg, "kafka.properties", "kafka.propertyFiles"); err != nil {
		t.Fatalf("the embedded default is not the full annotated reference:\n%v", err)
	}
}
