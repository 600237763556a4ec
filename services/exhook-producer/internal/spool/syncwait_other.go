//go:build !linux || !cgo

package spool

import (
	"errors"
	"time"
)

// holdAvailable reports whether SyncWaitHold can be used in this build: it needs Linux and cgo.
const holdAvailable = false

type holdSyncer struct{}

var errHoldUnavailable = errors.New("spool.syncWait hold needs Linux and cgo")

func newHoldSyncer(time.Duration) (*holdSyncer, error) { return nil, errHoldUnavailable }

func (*holdSyncer) sync(int) error { return errHoldUnavailable }
func (*holdSyncer) syncs() uint64  { return 0 }
func (*holdSyncer) close()         {}
func liveHelpers() int             { return 0 }
