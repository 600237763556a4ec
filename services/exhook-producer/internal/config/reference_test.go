package config

import (
	"testing"

	"github.com/iov-platform/iov/kit/svcconfig"
)

// The embedded default is the annotated reference the README promises: every key, with a
// comment.
func TestDefaultIsTheAnnotatedReference(t *testing.T) {
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if err := svcconfig.CheckReference(Default, cfg, "kafka.properties"); err != nil {
		t.Fatalf("default.yaml is not the full annotated reference:\n%v", err)
	}
}
