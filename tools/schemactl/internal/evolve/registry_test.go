package evolve

import (
	"net/http/httptest"
	"testing"

	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/iov-platform/iov/tools/devkit/compatsr"
)

// strictRegistry is srfake behind compatsr: it refuses incompatible versions as Confluent's
// registry does. With check false only registration refuses (compatsr.Handler.RegisterOnly).
type strictRegistry struct {
	fake *srfake.Registry
	url  string
}

func newStrictRegistry(t *testing.T, check bool) *strictRegistry {
	t.Helper()
	fake := srfake.New()
	h := compatsr.New(fake)
	h.RegisterOnly = !check
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		fake.Close()
	})
	return &strictRegistry{fake: fake, url: srv.URL}
}
