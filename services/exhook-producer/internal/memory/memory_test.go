package memory

import (
	"errors"
	"math"
	"os"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/iov-platform/iov/services/exhook-producer/internal/config"
)

func failing(err error) memlimit.Provider { return func() (uint64, error) { return 0, err } }

func TestSetLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name       string
		env        string
		mem        config.Memory
		container  memlimit.Provider
		want       int64
		wantSource string
		wantErr    bool
	}{
		{"ratio of the container's", "", config.Memory{LimitRatio: 0.8}, memlimit.Limit(256 * mib), 256 * mib * 8 / 10, "container", false},
		{"bytes win over the container's", "", config.Memory{LimitBytes: 100 * mib, LimitRatio: 0.8}, memlimit.Limit(256 * mib), 100 * mib, "memory.limitBytes", false},
		{"GOMEMLIMIT wins over both", "64MiB", config.Memory{LimitBytes: 100 * mib, LimitRatio: 0.8}, memlimit.Limit(256 * mib), 64 * mib, "GOMEMLIMIT", false},
		{"ratio 0: none", "", config.Memory{}, memlimit.Limit(256 * mib), math.MaxInt64, "none", false},
		{"no container limit: none", "", config.Memory{LimitRatio: 0.8}, failing(memlimit.ErrNoLimit), math.MaxInt64, "none", false},
		{"not in a cgroup: none", "", config.Memory{LimitRatio: 0.8}, failing(memlimit.ErrNoCgroup), math.MaxInt64, "none", false},
		{"unreadable cgroup: an error", "", config.Memory{LimitRatio: 0.8}, failing(errors.New("permission denied")), math.MaxInt64, "none", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prev := debug.SetMemoryLimit(-1)
			t.Cleanup(func() { debug.SetMemoryLimit(prev) })
			debug.SetMemoryLimit(math.MaxInt64)
			t.Setenv("GOMEMLIMIT", tc.env)
			t.Setenv("AUTOMEMLIMIT", "") // restored after the test; unset during it
			os.Unsetenv("AUTOMEMLIMIT")
			if tc.env != "" { // the runtime reads GOMEMLIMIT at start; stand in for it
				debug.SetMemoryLimit(tc.want)
			}
			got, err := SetLimit(tc.mem, tc.container)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want one: %v", err, tc.wantErr)
			}
			if got.Bytes != tc.want || got.Source != tc.wantSource {
				t.Fatalf("limit %d from %s, want %d from %s", got.Bytes, got.Source, tc.want, tc.wantSource)
			}
			if inForce := debug.SetMemoryLimit(-1); inForce != tc.want {
				t.Fatalf("runtime limit %d, want %d", inForce, tc.want)
			}
		})
	}
}
