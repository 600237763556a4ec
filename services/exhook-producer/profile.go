package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/iov-platform/iov/kit/mempeak"
)

// Profiling for performance work, off unless asked for: EXHOOK_CPUPROFILE=file writes a pprof
// CPU profile of the whole run, EXHOOK_ALLOCPROFILE=file the allocations (pprof "allocs":
// alloc_space/alloc_objects since start, inuse_* at exit), both when the process stops;
// EXHOOK_MEMPEAK=dir the memory at its resident peak (kit/mempeak: peak.txt, heap.pprof).
// make bench --profile-dir sets them; read them with `go tool pprof`.
const (
	envCPUProfile   = "EXHOOK_CPUPROFILE"
	envAllocProfile = "EXHOOK_ALLOCPROFILE"
	envMemPeak      = "EXHOOK_MEMPEAK"
)

// startProfiles starts what the environment asks for and returns the function that writes
// the profiles out.
func startProfiles() (stop func() error, err error) {
	var cpu *os.File
	if path := os.Getenv(envCPUProfile); path != "" {
		if cpu, err = os.Create(path); err != nil {
			return nil, fmt.Errorf("%s: %w", envCPUProfile, err)
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return nil, fmt.Errorf("%s: %w", envCPUProfile, err)
		}
	}
	stopPeak := func() {}
	if dir := os.Getenv(envMemPeak); dir != "" {
		stop, err := mempeak.Watch(context.Background(), dir, 10*time.Millisecond)
		if err != nil {
			if cpu != nil {
				pprof.StopCPUProfile()
				cpu.Close()
			}
			return nil, fmt.Errorf("%s: %w", envMemPeak, err)
		}
		stopPeak = stop // the last peak's files whole before exit
	}
	allocs := os.Getenv(envAllocProfile)
	return func() error {
		stopPeak()
		var errs []error
		if cpu != nil {
			pprof.StopCPUProfile()
			errs = append(errs, cpu.Close())
		}
		if allocs != "" {
			errs = append(errs, writeProfile("allocs", allocs))
		}
		return errors.Join(errs...)
	}, nil
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("%s profile: %w", name, err)
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("%s profile: %w", name, err)
	}
	return f.Close()
}
