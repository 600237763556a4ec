//go:build linux && cgo

package kafkawait

/*
#cgo LDFLAGS: -Wl,--wrap=rd_kafka_queue_poll -Wl,--wrap=rd_kafka_queue_destroy
#include <stdint.h>
extern int kafkawait_enabled;
extern uint64_t kafkawait_queue_count(void);
*/
import "C"

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	// The wrapped functions are librdkafka's, linked in by confluent-kafka-go.
	_ "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

var envErr = configure(os.Getenv(EnvVar))

// Mode reports how confluent-kafka-go's pollers wait: ModeNetpoll, or ModeBlocking when
// IOV_KAFKA_POLL=blocking turned the wrapper off. The error names a value of IOV_KAFKA_POLL
// that is neither (the wrapper then stays on).
func Mode() (string, error) {
	if C.kafkawait_enabled == 0 {
		return ModeBlocking, envErr
	}
	return ModeNetpoll, envErr
}

// configure sets the wrapper from IOV_KAFKA_POLL's value v, before any client exists.
func configure(v string) error {
	on, err := parse(v)
	C.kafkawait_enabled = 0
	if on {
		C.kafkawait_enabled = 1
	}
	return err
}

// ReadStats returns the counts so far.
func ReadStats() Stats {
	return Stats{Waits: waits.Load(), Queues: uint64(C.kafkawait_queue_count())}
}

var (
	waits atomic.Uint64
	mu    sync.Mutex
	files = map[C.int]*os.File{} // read ends of the queues' pipes, once waited on
)

//export kafkawaitGoWait
func kafkawaitGoWait(fd C.int, ms C.int) {
	mu.Lock()
	f := files[fd]
	if f == nil {
		f = os.NewFile(uintptr(fd), "rdkafka-queue") // non-blocking: Go's network poller
		files[fd] = f
	}
	mu.Unlock()
	waits.Add(1)
	var b [64]byte
	_ = f.SetReadDeadline(time.Now().Add(time.Duration(ms) * time.Millisecond))
	_, _ = f.Read(b[:]) // a wake-up, a deadline, or the pipe closed: the caller polls again
}

//export kafkawaitGoRelease
func kafkawaitGoRelease(fd C.int) {
	mu.Lock()
	f := files[fd]
	delete(files, fd)
	mu.Unlock()
	if f != nil {
		_ = f.Close()
		return
	}
	_ = syscall.Close(int(fd))
}
