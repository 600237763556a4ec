package gomaxprocs

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary a helper process (TestMain) that calls Ensure and prints
// "GOMAXPROCS before, after, source".
const helperEnv = "IOV_GOMAXPROCS_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		before := runtime.GOMAXPROCS(0)
		s := Ensure()
		fmt.Printf("%d %d %s\n", before, runtime.GOMAXPROCS(0), s.Source)
		if s.Procs != runtime.GOMAXPROCS(0) {
			fmt.Printf("Setting.Procs %d\n", s.Procs)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHelper starts the helper with env added (GOMAXPROCS removed from the inherited
// environment first) and, with cpus, an affinity mask of only those CPUs (the child inherits
// the mask of the thread that forks it), and returns its line.
func runHelper(t *testing.T, cpus []int, env ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOMAXPROCS=") })
	cmd.Env = append(cmd.Env, append(env, helperEnv+"=1")...)
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Locked and never unlocked: the thread, whose mask is changed, ends with the goroutine.
		runtime.LockOSThread()
		if cpus != nil {
			var set unix.CPUSet
			for _, c := range cpus {
				set.Set(c)
			}
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				done <- result{err: fmt.Errorf("sched_setaffinity: %w", err)}
				return
			}
		}
		out, err := cmd.Output()
		done <- result{out, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("helper: %v\n%s", r.err, r.out)
	}
	return strings.TrimSpace(string(r.out))
}

func TestEnsure(t *testing.T) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	var allowed []int
	for c := range 1024 {
		if set.IsSet(c) {
			allowed = append(allowed, c)
		}
	}
	one := allowed[:1]
	tests := []struct {
		name string
		cpus []int
		env  []string
		want string
	}{
		{"one CPU: raised", one, nil, "1 2 " + SourceRaised},
		{"one CPU, the operator's 1 kept", one, []string{"GOMAXPROCS=1"}, "1 1 " + SourceEnv},
		{"one CPU, the operator's 3 kept", one, []string{"GOMAXPROCS=3"}, "3 3 " + SourceEnv},
		{"one CPU, a value the runtime ignores: raised", one, []string{"GOMAXPROCS=all"}, "1 2 " + SourceRaised},
		{"one CPU, zero is no value: raised", one, []string{"GOMAXPROCS=0"}, "1 2 " + SourceRaised},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := runHelper(t, tc.cpus, tc.env...); got != tc.want {
				t.Fatalf("helper printed %q, want %q (GOMAXPROCS before, after, source)", got, tc.want)
			}
		})
	}
	// The default kept: every CPU this test may use (the runtime's default may also count a
	// cgroup quota, but never below Min).
	t.Run("every CPU: the default kept", func(t *testing.T) {
		if len(allowed) < Min {
			t.Skipf("this process may use %d CPU", len(allowed))
		}
		got := runHelper(t, nil)
		var before, after int
		var source string
		if _, err := fmt.Sscanf(got, "%d %d", &before, &after); err != nil {
			t.Fatalf("helper printed %q: %v", got, err)
		}
		source = strings.SplitN(got, " ", 3)[2]
		if before < Min || after != before || source != SourceDefault {
			t.Fatalf("helper printed %q, want the default (at least %d) kept, source %q", got, Min, SourceDefault)
		}
	})
}
