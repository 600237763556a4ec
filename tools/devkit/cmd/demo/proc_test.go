package main

import (
	"strings"
	"testing"
	"time"
)

func TestProcStop(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, script string
		want         string // prefix of what stop says
	}{
		{"stops on SIGTERM", "echo started; exec sleep 30", "signal: terminated after "},
		{"exits 0 on SIGTERM", "trap 'exit 0' TERM; echo started; sleep 30 & wait", "exit 0 after "},
		{"ignores SIGTERM: killed at the limit", "trap '' TERM; echo started; while :; do sleep 0.05; done", "KILLED: still running 300ms after SIGTERM"},
		{"already gone", "echo started; exit 3", "had already exited: exit status 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := startProc("p", "/bin/sh", dir, "-c", tc.script)
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(p.tail(1), "started") { // the trap is set before the echo
				if time.Now().After(deadline) {
					t.Fatal("the script did not start")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if strings.HasPrefix(tc.want, "had already") {
				<-p.exited
			}
			if got := p.stop(300 * time.Millisecond); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("stop = %q, want %q...", got, tc.want)
			}
		})
	}
}
