// Package stackshrink turns off the Go runtime's stack shrinking for the producer's process
// (GODEBUG=gcshrinkstackoff=1), which lets gRPC's stream workers keep the stacks their calls
// grew. The runtime reads the setting only when the process starts, and //go:debug does not
// accept it, so Reexec starts the process again with it.
//
// Why: grpc-go runs each call on a new goroutine by default, which starts with a small stack
// and grows (copies) it while it reads the request, before any handler runs: 10-15% of the
// producer's CPU per async message. Stream workers (grpc.NumStreamWorkers) reuse goroutines,
// but the GC halves an idle worker's stack at each cycle, and the next call grows it again.
// With shrinking off, a worker's stack stays grown; every other goroutine of the process
// also keeps its largest stack until it exits (README, "Eighth round").
package stackshrink

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Setting is the runtime's GODEBUG setting this package looks after.
const Setting = "gcshrinkstackoff"

// lookup returns the value godebug (GODEBUG's format: comma-separated key=value) gives
// Setting, the last one winning as in the runtime, and whether it names it at all.
func lookup(godebug string) (value string, ok bool) {
	for kv := range strings.SplitSeq(godebug, ",") {
		if k, v, found := strings.Cut(strings.TrimSpace(kv), "="); found && k == Setting {
			value, ok = v, true
		}
	}
	return value, ok
}

// Off reports whether the process runs with stack shrinking off: GODEBUG, as read when the
// process started, sets gcshrinkstackoff to a positive number.
func Off() bool {
	v, _ := lookup(os.Getenv("GODEBUG"))
	n, err := strconv.Atoi(v)
	return err == nil && n > 0
}

// Reexec replaces the process with a new run of its own executable, same arguments, with
// gcshrinkstackoff=1 added to GODEBUG, unless GODEBUG already names the setting (any value:
// an operator's choice, gcshrinkstackoff=0 keeps shrinking on). It keeps the process id, so
// it is safe as a container's first process. It returns only when it did not replace the
// process: nil when GODEBUG already named the setting, or the error that stopped the exec
// (the process then runs on with shrinking on, as Go's default). Call it first in main,
// before any goroutine or file is started.
func Reexec() error {
	godebug, set := os.LookupEnv("GODEBUG")
	if _, ok := lookup(godebug); ok {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("stack shrinking: own executable: %w", err)
	}
	if set && godebug != "" {
		godebug += ","
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") })
	env = append(env, "GODEBUG="+godebug+Setting+"=1")
	if err := syscall.Exec(exe, os.Args, env); err != nil {
		return fmt.Errorf("stack shrinking: exec %s: %w", exe, err)
	}
	return nil // not reached
}
