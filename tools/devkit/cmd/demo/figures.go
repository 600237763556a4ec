package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/iov-platform/iov/tools/devkit/load"
)

// routeFigures are the measured figures of one route of the uplink.
type routeFigures struct {
	Route, KafkaTopic string
	Load              load.Report // sent, acknowledged, errors; in Kafka, lost, duplicates, reordered
	Consumed          int         // records the sample consumer handled from KafkaTopic
}

// check reports every way the figures disagree: a failed call, an acknowledged message
// missing from Kafka, duplicated or reordered there, or Kafka and the consumer disagreeing.
func (f routeFigures) check() error {
	var errs []error
	add := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{f.Route}, a...)...))
	}
	r := f.Load
	if !r.Verified {
		add("not verified in Kafka")
	}
	if r.Errors > 0 || r.Acked != r.Sent {
		add("%d of %d messages acknowledged, %d hook errors (first: %s)", r.Acked, r.Sent, r.Errors, r.FirstError)
	}
	if r.Lost > 0 || r.Consumed != r.Acked {
		add("%d acknowledged, %d in Kafka, %d lost", r.Acked, r.Consumed, r.Lost)
	}
	if r.Duplicates > 0 {
		add("%d duplicates in Kafka", r.Duplicates)
	}
	if r.OutOfOrder > 0 {
		add("%d records out of order for their vehicle", r.OutOfOrder)
	}
	if f.Consumed != r.Consumed {
		add("%d records in Kafka, the consumer handled %d", r.Consumed, f.Consumed)
	}
	return errors.Join(errs...)
}

// total sums the figures of every route.
func total(figs []routeFigures) routeFigures {
	t := routeFigures{Route: "total"}
	for _, f := range figs {
		t.Load.Sent += f.Load.Sent
		t.Load.Acked += f.Load.Acked
		t.Load.Errors += f.Load.Errors
		t.Load.Consumed += f.Load.Consumed
		t.Load.Lost += f.Load.Lost
		t.Load.Duplicates += f.Load.Duplicates
		t.Load.OutOfOrder += f.Load.OutOfOrder
		t.Consumed += f.Consumed
	}
	return t
}

// printFigures writes the figures as a table, one row per route and the total.
func printFigures(w io.Writer, figs []routeFigures) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "route\tsent\tacknowledged\tin Kafka\tconsumed\tlost\tduplicates\treordered\thook errors\tmsg/s\tp99\t")
	for _, f := range append(figs, total(figs)) {
		rate, p99 := "", ""
		if f.Load.Elapsed > 0 {
			rate, p99 = fmt.Sprintf("%.0f", f.Load.Rate()), f.Load.P99.Round(100*time.Microsecond).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n", f.Route, f.Load.Sent, f.Load.Acked, f.Load.Consumed,
			f.Consumed, f.Load.Lost, f.Load.Duplicates, f.Load.OutOfOrder, f.Load.Errors, rate, p99)
	}
	tw.Flush()
}
