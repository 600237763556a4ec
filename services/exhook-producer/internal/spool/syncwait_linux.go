//go:build linux && cgo

package spool

/*
#include "syncwait_linux.h"
*/
import "C"

import (
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// holdAvailable reports whether SyncWaitHold can be used in this build.
const holdAvailable = true

// holdSyncer makes a file durable on a helper thread (syncwait_linux.c) while the committer
// waits for it in a raw ppoll of at most bound: a raw system call keeps the committer's P, so
// the committer goes on the moment the disk is done instead of waiting in the run queue
// behind the goroutines that took the P during fsync (producer README, "Eleventh round").
// The bound limits what that costs: past it, the committer waits in the network poller
// without its P, and the next skipAfterSlow syncs skip the raw wait, so a slow or hung disk
// costs the P once, for bound, not for every sync.
type holdSyncer struct {
	c     *C.spool_syncer
	done  *os.File // the helper's done eventfd (non-blocking, in the network poller)
	bound time.Duration
	skip  int
}

// skipAfterSlow is how many syncs wait in the network poller after one that outlasted the bound.
const skipAfterSlow = 64

func newHoldSyncer(bound time.Duration) (*holdSyncer, error) {
	var cerr C.int
	c := C.spool_syncer_start(&cerr)
	if c == nil {
		return nil, fmt.Errorf("spool sync helper: %w", syscall.Errno(cerr))
	}
	return &holdSyncer{c: c, done: os.NewFile(uintptr(c.done), "spool-sync-done"), bound: bound}, nil
}

// sync returns once fd is durable, with fsync's error.
func (h *holdSyncer) sync(fd int) error {
	if rc := C.spool_syncer_post(h.c, C.int(fd)); rc != 0 {
		return fmt.Errorf("spool sync helper: %w", syscall.Errno(rc))
	}
	if h.skip > 0 || !h.waitHolding() {
		if h.skip > 0 {
			h.skip--
		} else {
			h.skip = skipAfterSlow
		}
		if err := h.waitReleased(); err != nil {
			return err
		}
	}
	if e := C.spool_syncer_err(h.c); e != 0 {
		return fmt.Errorf("fsync: %w", syscall.Errno(e))
	}
	return nil
}

// waitHolding waits for the helper's answer in raw system calls, keeping the P, for at most
// bound. It reports whether the answer came (and was consumed).
func (h *holdSyncer) waitHolding() bool {
	fd := int(h.c.done)
	deadline := time.Now().Add(h.bound)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		pfd := unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
		ts := unix.NsecToTimespec(left.Nanoseconds())
		n, _, errno := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 || n == 0 {
			return false
		}
		var v [8]byte
		r, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&v[0])), 8)
		return errno == 0 && r == 8
	}
}

// waitReleased waits for the helper's answer in the network poller, without the P.
func (h *holdSyncer) waitReleased() error {
	var v [8]byte
	if _, err := h.done.Read(v[:]); err != nil {
		return fmt.Errorf("spool sync helper: %w", err)
	}
	return nil
}

// syncs is how many fsyncs the helper has run.
func (h *holdSyncer) syncs() uint64 { return uint64(C.spool_syncer_syncs(h.c)) }

// close stops the helper and waits for its thread to exit; no sync may be in flight.
func (h *holdSyncer) close() {
	C.spool_syncer_stop(h.c)
	h.done.Close()
}

// liveHelpers is how many helper threads run (for tests).
func liveHelpers() int { return int(C.spool_syncer_live()) }
