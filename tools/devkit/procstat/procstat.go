// Package procstat reads a process's CPU time and resident memory from /proc, for the tools
// that measure a server from outside (bench, compare).
package procstat

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Status is what is read from /proc/<pid>/status, in bytes.
type Status struct {
	VmHWM, VmRSS int64
}

// ReadStatus reads /proc/<pid>/status.
func ReadStatus(pid int) (Status, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Status{}, err
	}
	defer f.Close()
	return ParseStatus(f)
}

// ParseStatus reads the VmHWM (peak resident set) and VmRSS lines ("VmHWM:   63416 kB").
func ParseStatus(r io.Reader) (Status, error) {
	var st Status
	var seen int
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmHWM":
			dst = &st.VmHWM
		case "VmRSS":
			dst = &st.VmRSS
		default:
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return st, fmt.Errorf("proc status: malformed %s line %q", key, sc.Text())
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 {
			return st, fmt.Errorf("proc status: malformed %s line %q", key, sc.Text())
		}
		*dst = n * 1024
		seen++
	}
	if err := sc.Err(); err != nil {
		return st, err
	}
	if seen != 2 {
		return st, errors.New("proc status: no VmHWM/VmRSS (kernel thread or exited process?)")
	}
	return st, nil
}

// userHZ is the unit of the tick counts in /proc/<pid>/stat (USER_HZ, 100 on Linux's
// mainstream architectures; it is part of the user-space ABI, not CONFIG_HZ).
const userHZ = 100

// CPU is the user+system CPU time process pid has used so far.
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return ParseStatCPU(string(b))
}

// ParseStatCPU returns utime+stime of a /proc/<pid>/stat line, whose second field (the
// command name, in parentheses) may itself contain spaces and parentheses.
func ParseStatCPU(line string) (time.Duration, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no command name in %q", line)
	}
	f := strings.Fields(line[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields after the command name", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("proc stat: bad tick count %q", s)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}
