package stackshrink

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// helperEnv makes the test binary a helper process (TestMain) that calls Reexec and says
// what the process it ends up in runs with.
const helperEnv = "IOV_STACKSHRINK_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		helper()
		return
	}
	os.Exit(m.Run())
}

// helper prints one "start" line per process start, calls Reexec, and prints whether a
// grown stack survived garbage collections in the process it ends up in.
func helper() {
	fmt.Printf("start pid=%d off=%v godebug=%s\n", os.Getpid(), Off(), os.Getenv("GODEBUG"))
	if err := Reexec(); err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(2)
	}
	fmt.Printf("kept=%v\n", grownStackKept())
	os.Exit(0)
}

// grownStackKept grows a goroutine's stack to about 1 MiB, parks it at a shallow depth and
// collects garbage ten times: with shrinking on, each cycle halves the idle stack.
func grownStackKept() bool {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.StackInuse
	grown, done := make(chan struct{}), make(chan struct{})
	go func() {
		deep(1 << 20)
		close(grown)
		<-done
	}()
	<-grown
	for range 10 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	close(done)
	return ms.StackInuse >= before+512<<10
}

// deep uses about n bytes of stack.
//
//go:noinline
func deep(n int) byte {
	var frame [1024]byte
	frame[n%len(frame)] = byte(n)
	if n <= len(frame) {
		return frame[0]
	}
	return deep(n-len(frame)) + frame[n%len(frame)]
}

func TestReexec(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		godebug *string // nil: no GODEBUG in the environment
		starts  []string
		kept    bool
	}{
		{"no GODEBUG: started again with the setting", nil,
			[]string{"off=false godebug=", "off=true godebug=gcshrinkstackoff=1"}, true},
		{"other settings kept", ptr("madvdontneed=1"),
			[]string{"off=false godebug=madvdontneed=1", "off=true godebug=madvdontneed=1,gcshrinkstackoff=1"}, true},
		{"an operator's 0 is kept: shrinking on", ptr("gcshrinkstackoff=0"),
			[]string{"off=false godebug=gcshrinkstackoff=0"}, false},
		{"already off: not started again", ptr("gcshrinkstackoff=1"),
			[]string{"off=true godebug=gcshrinkstackoff=1"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") })
			env = append(env, helperEnv+"=1")
			if tc.godebug != nil {
				env = append(env, "GODEBUG="+*tc.godebug)
			}
			cmd := exec.Command(exe)
			cmd.Env = env
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			var starts, pids []string
			kept := ""
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				line := sc.Text()
				switch {
				case strings.HasPrefix(line, "start "):
					pid, rest, _ := strings.Cut(strings.TrimPrefix(line, "start "), " ")
					pids, starts = append(pids, pid), append(starts, rest)
				case strings.HasPrefix(line, "kept="):
					kept = strings.TrimPrefix(line, "kept=")
				}
			}
			if !slices.Equal(starts, tc.starts) {
				t.Fatalf("starts %q, want %q\n%s", starts, tc.starts, out)
			}
			if len(slices.Compact(pids)) != 1 {
				t.Fatalf("process ids %q: the exec must keep the process", pids)
			}
			if kept != fmt.Sprint(tc.kept) {
				t.Fatalf("grown stack kept: %q, want %v\n%s", kept, tc.kept, out)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestOff(t *testing.T) {
	for godebug, want := range map[string]bool{
		"":                                      false,
		"gcshrinkstackoff=1":                    true,
		"gcshrinkstackoff=2":                    true,
		"gcshrinkstackoff=0":                    false,
		"gcshrinkstackoff=x":                    false,
		"madvdontneed=1, gcshrinkstackoff=1":    true,
		"gcshrinkstackoff=1,gcshrinkstackoff=0": false, // the last wins, as in the runtime
		"gcshrinkstackoff":                      false,
		"xgcshrinkstackoff=1":                   false,
	} {
		t.Setenv("GODEBUG", godebug)
		if got := Off(); got != want {
			t.Errorf("GODEBUG=%q: Off() = %v, want %v", godebug, got, want)
		}
	}
}
