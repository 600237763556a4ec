// Package gomaxprocs keeps at least two Ps for a service that calls librdkafka through cgo
// when it may run on one CPU only (a one-CPU affinity mask: taskset, or a Kubernetes pod with
// exclusive CPUs under the static CPU manager policy).
//
// Why: confluent-kafka-go polls librdkafka's queues from goroutines that block in C for up to
// 100 ms at a time (events, delivery reports, logs). A goroutine in a cgo call keeps its P
// until sysmon takes it back, and with GOMAXPROCS=1 no other thread waits in the network
// poller meanwhile: a request arriving then waits for sysmon (whose period backs off to
// 10 ms) before any goroutine reads it. With a second P an idle thread waits in the poller
// and reads it at once; the kernel shares the one CPU among the threads. Go's own default
// keeps two Ps for a cgroup CPU quota under 2 (runtime.defaultGOMAXPROCS) but not for an
// affinity mask of one CPU. In the producer's bench (one CPU, closed loop) GOMAXPROCS=1 left
// the server's core a third idle with calls waiting (services/exhook-producer/README.md).
package gomaxprocs

import (
	"os"
	"runtime"
	"strconv"
)

// Min is the fewest Ps Ensure leaves.
const Min = 2

// Setting is GOMAXPROCS after Ensure, and where it came from.
type Setting struct {
	Procs  int
	Source string // SourceEnv, SourceDefault or SourceRaised
}

const (
	SourceEnv     = "GOMAXPROCS environment" // the operator's value, kept as it is
	SourceDefault = "runtime default"        // CPUs and cgroup quota allowed Min or more
	SourceRaised  = "raised to the minimum"  // the default was below Min
)

// Ensure raises GOMAXPROCS to Min when the runtime's default is below it, and keeps a value
// the operator set in the GOMAXPROCS environment variable (the runtime uses it when it is a
// positive integer). Raising it stops the runtime's own updates of the default (when the
// process's CPU affinity or quota changes later), which only matter above Min.
func Ensure() Setting {
	if n, err := strconv.Atoi(os.Getenv("GOMAXPROCS")); err == nil && n > 0 {
		return Setting{Procs: runtime.GOMAXPROCS(0), Source: SourceEnv}
	}
	if n := runtime.GOMAXPROCS(0); n >= Min {
		return Setting{Procs: n, Source: SourceDefault}
	}
	runtime.GOMAXPROCS(Min)
	return Setting{Procs: Min, Source: SourceRaised}
}
