package config

import (
	"testing"

	"github.com/iov-platform/iov/kit/svcconfig/svcconfigtest"
)

// default.yaml is the annotated reference the README promises: every key, with a comment.
func TestDefaultIsTheAnnotatedReference(t *testing.T) { svcconfigtest.Reference(t, Default, Load) }
