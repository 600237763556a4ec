// Package kafkawait makes confluent-kafka-go's pollers wait for their librdkafka queue in Go's
// network poller instead of blocking in C.
//
// confluent-kafka-go polls its queues with rd_kafka_queue_poll and a timeout (100 ms for the
// producer's delivery reports and the log channel, the caller's for a consumer). A goroutine
// blocked in a cgo call keeps its P until the runtime's sysmon thread takes it back, which
// takes from 20 µs up to 10 ms. With one P (GOMAXPROCS=1, as on one CPU), nothing else runs
// in between: gRPC calls that have arrived wait, and the core idles
// (services/exhook-producer/README.md, "Ninth round").
//
// On Linux with cgo, importing this package links a wrapper around rd_kafka_queue_poll (the
// linker's --wrap). A poll with a timeout first takes what the queue holds; if it is empty,
// the queue gets a pipe that librdkafka writes to when an element arrives on the empty queue
// (rd_kafka_queue_io_event_enable), and the calling goroutine waits for the pipe in Go, at
// most 100 ms at a time (max_wait_ms in wait_linux.c), without its P. A wrapper around rd_kafka_queue_destroy turns the
// event off and closes the pipe first. What a poll returns, and when, is librdkafka's:
// the wrapper only changes where the caller waits.
//
// IOV_KAFKA_POLL=blocking in the environment turns the wrapper off at start: every poll then
// blocks in C, as without this package (IOV_KAFKA_POLL=netpoll, or unset: on). Elsewhere (not
// Linux, or no cgo) the package does nothing and Mode says so.
package kafkawait

import (
	"fmt"
	"log/slog"
)

// EnvVar turns the wrapper off when set to "blocking".
const EnvVar = "IOV_KAFKA_POLL"

// parse reads IOV_KAFKA_POLL's value: whether the wrapper is on.
func parse(v string) (on bool, err error) {
	switch v {
	case "", ModeNetpoll:
		return true, nil
	case ModeBlocking:
		return false, nil
	}
	return true, fmt.Errorf("%s=%q: want %s or %s", EnvVar, v, ModeNetpoll, ModeBlocking)
}

// Modes Mode reports.
const (
	ModeNetpoll  = "netpoll"  // pollers wait in Go's network poller
	ModeBlocking = "blocking" // pollers block in C (turned off, or not available here)
)

// Stats counts the wrapper's work since start (ReadStats).
type Stats struct {
	Waits  uint64 // waits in the network poller
	Queues uint64 // queues that got a pipe
}

// Report logs how the pollers wait (a service calls it once at start, before its first
// client) and returns the error of a bad IOV_KAFKA_POLL, for the service to stop on.
func Report(log *slog.Logger) error {
	mode, err := Mode()
	if err != nil {
		return err
	}
	log.Info("kafka pollers wait", "mode", mode, "switch", EnvVar)
	return nil
}
