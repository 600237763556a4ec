package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/iov-platform/iov/tools/devkit/load"
)

func good() routeFigures {
	return routeFigures{Route: "telemetry", KafkaTopic: "t", Consumed: 100,
		Load: load.Report{Sent: 100, Acked: 100, Verified: true, Consumed: 100, Elapsed: time.Second}}
}

func TestFiguresCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*routeFigures)
		want   []string // error lines; nil: agree
	}{
		{"agree", func(*routeFigures) {}, nil},
		{"not verified", func(f *routeFigures) { f.Load.Verified = false }, []string{"telemetry: not verified in Kafka"}},
		{"hook errors", func(f *routeFigures) {
			f.Load.Acked, f.Load.Errors, f.Load.FirstError, f.Load.Consumed, f.Consumed = 98, 2, "DEADLINE_EXCEEDED", 98, 98
		}, []string{"telemetry: 98 of 100 messages acknowledged, 2 hook errors (first: DEADLINE_EXCEEDED)"}},
		{"lost", func(f *routeFigures) { f.Load.Consumed, f.Load.Lost, f.Consumed = 97, 3, 97 }, []string{"telemetry: 100 acknowledged, 97 in Kafka, 3 lost"}},
		{"duplicates and reordering", func(f *routeFigures) { f.Load.Duplicates, f.Load.OutOfOrder = 1, 2 }, []string{
			"telemetry: 1 duplicates in Kafka", "telemetry: 2 records out of order for their vehicle"}},
		{"consumer behind", func(f *routeFigures) { f.Consumed = 90 }, []string{"telemetry: 100 records in Kafka, the consumer handled 90"}},
		{"consumer saw more", func(f *routeFigures) { f.Consumed = 101 }, []string{"telemetry: 100 records in Kafka, the consumer handled 101"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := good()
			tc.change(&f)
			err := f.check()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("disagree: %v", err)
				}
				return
			}
			if err == nil || err.Error() != strings.Join(tc.want, "\n") {
				t.Fatalf("check = %v, want:\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestPrintFigures(t *testing.T) {
	a, b := good(), good()
	b.Route, b.Load.Lost, b.Load.Consumed, b.Consumed = "events", 1, 99, 99
	var out bytes.Buffer
	printFigures(&out, []routeFigures{a, b})
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), out.String())
	}
	for i, want := range [][]string{
		{"route", "sent", "acknowledged", "in", "Kafka", "consumed", "lost", "duplicates", "reordered", "hook", "errors", "msg/s", "p99"},
		{"telemetry", "100", "100", "100", "100", "0", "0", "0", "0", "100", "0s"},
		{"events", "100", "100", "99", "99", "1", "0", "0", "0", "100", "0s"},
		{"total", "200", "200", "199", "199", "1", "0", "0", "0"},
	} {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("line %d: %q, want %q", i, got, want)
		}
	}
}
