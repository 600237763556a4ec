package main

import (
	"strings"
	"testing"
	"time"

	"github.com/iov-platform/iov/tools/devkit/load"
)

func TestParse(t *testing.T) {
	c, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.vehicles != 500 || c.messages != 20 || c.pool != 8 || c.rateFraction != 0.5 || c.serverCPUs != "1" ||
		strings.Join(c.modes, ",") != "async,sync,spool" {
		t.Fatalf("defaults %+v", c)
	}
	// Every problem at once.
	_, err = parse([]string{"--vehicles", "0", "--rate-fraction", "1", "--modes", "async,bogus"})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"-vehicles", "-rate-fraction 1", `unknown "bogus"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestTableRatiosAgainstTheFloorRunAfter(t *testing.T) {
	rep := func(acked int, p99 time.Duration) load.Report {
		return load.Report{Acked: acked, Sent: acked, P99: p99, Elapsed: time.Second, Verified: true}
	}
	results := []result{
		{name: floorName, closed: rep(1000, time.Millisecond), cpuClosed: 20 * time.Millisecond},
		{
			name: "async", closed: rep(1000, 0), cpuClosed: 30 * time.Millisecond,
			open: rep(500, 5*time.Millisecond), cpuOpen: 30 * time.Millisecond,
			floorClosed: rep(1000, 0), floorCPUClosed: 25 * time.Millisecond, // not the first floor run's 20ms
			floorOpen: rep(500, 2*time.Millisecond), floorCPUOpen: 20 * time.Millisecond,
		},
	}
	var b strings.Builder
	printTable(&b, results)
	var row string
	for line := range strings.SplitSeq(b.String(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "async") {
			row = line
		}
	}
	// 30µs against 25µs closed, 60µs against 40µs at the fixed rate; p99 5ms against 2ms.
	for _, want := range []string{"30µs", "1.20x", "33333", "60µs", "1.50x", "2000µs", "3000µs"} {
		if !strings.Contains(row, want) {
			t.Errorf("async row %q lacks %q", row, want)
		}
	}
}
