// Package memory sets the Go runtime's memory limit from the configuration or from the
// container's memory limit.
package memory

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/iov-platform/iov/services/exhook-producer/internal/config"
)

// Limit is the limit in force and where it came from.
type Limit struct {
	Bytes  int64  // math.MaxInt64: none
	Source string // GOMEMLIMIT, memory.limitBytes, container, none
}

// SetLimit sets the limit: GOMEMLIMIT when the environment has it (the runtime read it at
// start), else m.LimitBytes, else m.LimitRatio of what container reports (memlimit.FromCgroup
// in production); none when the ratio is 0 or there is no container limit.
func SetLimit(m config.Memory, container memlimit.Provider) (Limit, error) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return Limit{Bytes: debug.SetMemoryLimit(-1), Source: "GOMEMLIMIT"}, nil
	}
	if m.LimitBytes > 0 {
		debug.SetMemoryLimit(m.LimitBytes)
		return Limit{Bytes: m.LimitBytes, Source: "memory.limitBytes"}, nil
	}
	none := Limit{Bytes: math.MaxInt64, Source: "none"}
	if m.LimitRatio <= 0 {
		debug.SetMemoryLimit(math.MaxInt64)
		return none, nil
	}
	n, err := memlimit.Set(memlimit.WithProvider(container), memlimit.WithRatio(m.LimitRatio))
	switch {
	case errors.Is(err, memlimit.ErrNoCgroup):
		return none, nil
	case err != nil:
		return none, fmt.Errorf("memory limit from the container: %w", err)
	case n == math.MaxInt64:
		return none, nil
	}
	return Limit{Bytes: n, Source: "container"}, nil
}
