package main

// table.go: the rounds' values, each ratio taken within its pair (a server's run and the
// floor's of the same kind right before it), summed up as the median with [min–max] over the
// rounds, and printed with each round's values below.

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iov-platform/iov/tools/devkit/load"
	"github.com/iov-platform/iov/tools/devkit/stats"
)

// spread is the median of a set of values with their minimum and maximum.
type spread struct {
	med, lo, hi float64
	n           int
}

// spreadOf sums up xs (left unchanged); an even count's median is the mean of the middle two.
func spreadOf(xs []float64) spread {
	if len(xs) == 0 {
		return spread{}
	}
	return spread{med: stats.Median(xs), lo: slices.Min(xs), hi: slices.Max(xs), n: len(xs)}
}

// format writes the median, and [min–max] when there is more than one value.
func (s spread) format(f func(float64) string) string {
	switch s.n {
	case 0:
		return "-"
	case 1:
		return f(s.med)
	}
	return fmt.Sprintf("%s [%s–%s]", f(s.med), f(s.lo), f(s.hi))
}

// perMsg is a run's server CPU per acknowledged message.
func perMsg(cpu time.Duration, acked int) (time.Duration, bool) {
	if acked <= 0 || cpu <= 0 {
		return 0, false
	}
	return cpu / time.Duration(acked), true
}

func (s sample) perMsg() (time.Duration, bool)          { return perMsg(s.cpu, s.rep.Acked) }
func (s sample) perMsgDelivered() (time.Duration, bool) { return perMsg(s.cpuDelivered, s.rep.Acked) }

// busy is the share of one core the server (cpu) and this process (loadCPU: the load tool,
// Kafka and the registry) used over the run: a closed loop whose server is well under 100%
// was bound by something else than the server's core.
func (s sample) busy() (server, load float64, ok bool) {
	e := s.rep.Elapsed.Seconds()
	return s.cpu.Seconds() / e, s.loadCPU.Seconds() / e, e > 0 && s.cpu > 0
}

// cpuRatio is the server's CPU per message over the floor's in the same pair.
func (p pair) cpuRatio() (float64, bool) {
	a, okA := p.srv.perMsg()
	b, okB := p.floor.perMsg()
	return float64(a) / float64(b), okA && okB
}

// deliveredRatio is the server's CPU per message until its records were read back over the
// floor's CPU per message in the same pair.
func (p pair) deliveredRatio() (float64, bool) {
	a, okA := p.srv.perMsgDelivered()
	b, okB := p.floor.perMsg()
	return float64(a) / float64(b), okA && okB
}

// rateRatio is the server's msg/s over the floor's in the same pair.
func (p pair) rateRatio() (float64, bool) {
	a, b := p.srv.rep.Rate(), p.floor.rep.Rate()
	return a / b, a > 0 && b > 0
}

// addedP99 is the server's own p99 over the floor's in the same fixed-rate pair.
func (p pair) addedP99() (time.Duration, bool) {
	a, okA := p.srv.in.quantile(.99)
	b, okB := p.floor.in.quantile(.99)
	return a - b, okA && okB
}

// vsPeer is ours over the peer's in the same round, each over the floor of its own pair: CPU
// per message, the same to Kafka, and closed-loop msg/s. Rounds are matched by their index.
func vsPeer(ours, peer round) (cpu, delivered, rate float64, okCPU, okDelivered, okRate bool) {
	oc, ok1 := ours.closed.cpuRatio()
	pc, ok2 := peer.closed.cpuRatio()
	od, ok3 := ours.closed.deliveredRatio()
	pd, ok4 := peer.closed.deliveredRatio()
	or, ok5 := ours.closed.rateRatio()
	pr, ok6 := peer.closed.rateRatio()
	return oc / pc, od / pd, or / pr, ok1 && ok2, ok3 && ok4, ok5 && ok6
}

// collect is f over the rounds, the ones where it has no value left out.
func collect(rounds []round, f func(round) (float64, bool)) []float64 {
	var out []float64
	for _, rd := range rounds {
		if v, ok := f(rd); ok {
			out = append(out, v)
		}
	}
	return out
}

func durationOf(f func(round) (time.Duration, bool)) func(round) (float64, bool) {
	return func(rd round) (float64, bool) {
		d, ok := f(rd)
		return float64(d), ok
	}
}

func usF(v float64) string    { return us(time.Duration(v)) }
func msF(v float64) string    { return fmt.Sprintf("%.2fms", v/float64(time.Millisecond)) }
func xF(v float64) string     { return fmt.Sprintf("%.2fx", v) }
func countF(v float64) string { return fmt.Sprintf("%.0f", v) }
func pctF(v float64) string   { return fmt.Sprintf("%.0f%%", 100*v) }
func mibF(v float64) string   { return mib(int64(v)) }

func closedCPU(rd round) (time.Duration, bool)    { return rd.closed.srv.perMsg() }
func closedCPUDel(rd round) (time.Duration, bool) { return rd.closed.srv.perMsgDelivered() }
func closedX(rd round) (float64, bool)            { return rd.closed.cpuRatio() }
func closedRate(rd round) (float64, bool)         { r := rd.closed.srv.rep.Rate(); return r, r > 0 }
func closedRateX(rd round) (float64, bool)        { return rd.closed.rateRatio() }
func closedBusy(rd round) (float64, bool)         { v, _, ok := rd.closed.srv.busy(); return v, ok }
func closedLoadBusy(rd round) (float64, bool)     { _, v, ok := rd.closed.srv.busy(); return v, ok }
func closedP99(rd round) (time.Duration, bool) {
	return rd.closed.srv.rep.P99, rd.closed.srv.rep.Acked > 0
}
func openRate(rd round) (float64, bool)           { r := rd.open.srv.rep.Rate(); return r, r > 0 }
func openCPU(rd round) (time.Duration, bool)      { return rd.open.srv.perMsg() }
func openX(rd round) (float64, bool)              { return rd.open.cpuRatio() }
func openP50(rd round) (time.Duration, bool)      { return rd.open.srv.in.quantile(.50) }
func openP99(rd round) (time.Duration, bool)      { return rd.open.srv.in.quantile(.99) }
func openFloorP99(rd round) (time.Duration, bool) { return rd.open.floor.in.quantile(.99) }
func openAdded(rd round) (time.Duration, bool)    { return rd.open.addedP99() }
func openSentP99(rd round) (time.Duration, bool) {
	return rd.open.srv.rep.SentP99, rd.open.srv.rep.Acked > 0
}
func openFloorSentP99(rd round) (time.Duration, bool) {
	return rd.open.floor.rep.SentP99, rd.open.floor.rep.Acked > 0
}
func openSendLag(rd round) (time.Duration, bool) {
	return rd.open.srv.rep.SendLagP99, rd.open.srv.rep.Acked > 0
}
func peak(rd round) (float64, bool)      { return float64(rd.peakRSS), rd.peakRSS > 0 }
func burstPeak(rd round) (float64, bool) { return float64(rd.burstRSS), rd.burstRSS > 0 }
func burstRate(rd round) (float64, bool) { r := rd.burst.Rate(); return r, rd.burstRSS > 0 && r > 0 }

// floorRounds are the floor's halves of every pair, as rounds of the floor's own.
func floorRounds(servers []*result) []round {
	var out []round
	for _, r := range servers {
		for _, rd := range r.rounds {
			out = append(out, round{closed: pair{srv: rd.closed.floor}, open: pair{srv: rd.open.floor}})
		}
	}
	return out
}

// orDash is v formatted, or "-" without a value.
func orDash[T any](v T, ok bool, f func(T) string) string {
	if !ok {
		return "-"
	}
	return f(v)
}

// printTables writes the closed loop (CPU per message, msg/s and their ratios to the floor),
// ours against each peer, the fixed rate (latencies), and memory with the verification; each
// as medians with [min–max] over the rounds, then every round's values.
func printTables(out io.Writer, fl *result, servers []*result) {
	fr := floorRounds(servers)
	sp := func(rounds []round, f func(round) (float64, bool), format func(float64) string) string {
		return spreadOf(collect(rounds, f)).format(format)
	}
	rounds := 0
	for _, r := range servers {
		rounds = max(rounds, len(r.rounds))
	}
	fmt.Fprintf(out, "\nmedian [min–max] over %d rounds; a ratio is taken within its pair (the server's run and the floor's of the same kind right before it)\n\n", rounds)

	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "closed loop\tCPU/msg\tx floor\tmsg/s\tx floor\tCPU/msg to Kafka\tp99\tserver busy\tload busy\t")
	fmt.Fprintf(tw, "%s\t%s\t-\t%s\t-\t-\t%s\t%s\t%s\t\n", floorName, sp(fr, durationOf(closedCPU), usF), sp(fr, closedRate, countF), sp(fr, durationOf(closedP99), msF),
		sp(fr, closedBusy, pctF), sp(fr, closedLoadBusy, pctF))
	for _, r := range servers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.name, sp(r.rounds, durationOf(closedCPU), usF), sp(r.rounds, closedX, xF),
			sp(r.rounds, closedRate, countF), sp(r.rounds, closedRateX, xF), sp(r.rounds, durationOf(closedCPUDel), usF), sp(r.rounds, durationOf(closedP99), msF),
			sp(r.rounds, closedBusy, pctF), sp(r.rounds, closedLoadBusy, pctF))
	}
	tw.Flush()
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  per round\tCPU/msg\tfloor's\tx floor\tmsg/s\tfloor's\tx floor\tCPU/msg to Kafka\tbusy (server, load)\tfloor's\t")
	for _, r := range servers {
		for i, rd := range r.rounds {
			fc, okF := rd.closed.floor.perMsg()
			cx, okX := closedX(rd)
			rx, okR := closedRateX(rd)
			c, okC := closedCPU(rd)
			cd, okD := closedCPUDel(rd)
			fmt.Fprintf(tw, "  %s r%d\t%s\t%s\t%s\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t\n", r.name, i+1, orDash(c, okC, us), orDash(fc, okF, us), orDash(cx, okX, xF),
				rd.closed.srv.rep.Rate(), rd.closed.floor.rep.Rate(), orDash(rx, okR, xF), orDash(cd, okD, us), busyF(rd.closed.srv), busyF(rd.closed.floor))
		}
	}
	tw.Flush()

	var peers, ours []*result
	for _, r := range servers {
		if r.peer {
			peers = append(peers, r)
		} else {
			ours = append(ours, r)
		}
	}
	for _, p := range peers {
		fmt.Fprintln(out)
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "against %s, closed loop\tCPU/msg x %s\tto Kafka x %s\tmsg/s x %s\t| per round (CPU, to Kafka, msg/s)\t\n", p.name, p.name, p.name, p.name)
		for _, o := range ours {
			var per []string
			var cv, dv, rv []float64
			for i := range min(len(o.rounds), len(p.rounds)) {
				c, d, r, okC, okD, okR := vsPeer(o.rounds[i], p.rounds[i])
				if okC {
					cv = append(cv, c)
				}
				if okD {
					dv = append(dv, d)
				}
				if okR {
					rv = append(rv, r)
				}
				per = append(per, fmt.Sprintf("r%d %s %s %s", i+1, orDash(c, okC, xF), orDash(d, okD, xF), orDash(r, okR, xF)))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t| %s\t\n", o.name, spreadOf(cv).format(xF), spreadOf(dv).format(xF), spreadOf(rv).format(xF), strings.Join(per, "; "))
		}
		tw.Flush()
	}
	fmt.Fprintln(out)

	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fixed rate\tmsg/s\tCPU/msg\tx floor\tin-server p50\tin-server p99\tfloor's p99\tadded p99\t| client p99 from send\tfloor's\tsend lag p99\t")
	fmt.Fprintf(tw, "%s\t%s\t%s\t-\t%s\t%s\t-\t-\t| %s\t-\t%s\t\n", floorName, sp(fr, openRate, countF), sp(fr, durationOf(openCPU), usF),
		sp(fr, durationOf(openP50), usF), sp(fr, durationOf(openP99), usF), sp(fr, durationOf(openSentP99), msF), sp(fr, durationOf(openSendLag), msF))
	for _, r := range servers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t| %s\t%s\t%s\t\n", r.name, sp(r.rounds, openRate, countF), sp(r.rounds, durationOf(openCPU), usF),
			sp(r.rounds, openX, xF), sp(r.rounds, durationOf(openP50), usF), sp(r.rounds, durationOf(openP99), usF), sp(r.rounds, durationOf(openFloorP99), usF),
			sp(r.rounds, durationOf(openAdded), msF), sp(r.rounds, durationOf(openSentP99), msF), sp(r.rounds, durationOf(openFloorSentP99), msF), sp(r.rounds, durationOf(openSendLag), msF))
	}
	tw.Flush()
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  per round\toffered\tCPU/msg\tx floor\tin-server p99\tfloor's p99\tadded p99\t| client p99 from send\tfloor's\t")
	for _, r := range servers {
		for i, rd := range r.rounds {
			c, okC := openCPU(rd)
			x, okX := openX(rd)
			p99, ok99 := openP99(rd)
			f99, okF := openFloorP99(rd)
			a, okA := openAdded(rd)
			fmt.Fprintf(tw, "  %s r%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t| %s\t%s\t\n", r.name, i+1, rd.offered, orDash(c, okC, us), orDash(x, okX, xF),
				orDash(p99, ok99, us), orDash(f99, okF, us), orDash(float64(a), okA, msF), msF(float64(rd.open.srv.rep.SentP99)), msF(float64(rd.open.floor.rep.SentP99)))
		}
	}
	tw.Flush()
	fmt.Fprintln(out)

	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "memory\tpeak RSS\tpeak RSS, burst\tburst msg/s\t| lost\tdup\torder\terrors\t")
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t| -\t-\t-\t%d\t\n", floorName, mib(fl.peakRSS), orDash(fl.burstRSS, fl.burstRSS > 0, mib),
		orDash(fl.burst.Rate(), fl.burstRSS > 0, func(v float64) string { return countF(v) }), fl.burst.Errors)
	for _, r := range servers {
		lost, dup, order, errs := 0, 0, 0, 0
		verified := false
		for _, rd := range r.rounds {
			for _, rep := range []load.Report{rd.closed.srv.rep, rd.open.srv.rep, rd.burst} {
				lost, dup, order, errs = lost+rep.Lost, dup+rep.Duplicates, order+rep.OutOfOrder, errs+rep.Errors
				verified = verified || rep.Verified
			}
		}
		l, d, o := "-", "-", "-"
		if verified {
			l, d, o = fmt.Sprint(lost), fmt.Sprint(dup), fmt.Sprint(order)
			if r.peer {
				o = "n/a"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t| %s\t%s\t%s\t%d\t\n", r.name, sp(r.rounds, peak, mibF), sp(r.rounds, burstPeak, mibF), sp(r.rounds, burstRate, countF), l, d, o, errs)
	}
	tw.Flush()
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  per round\tpeak RSS\tpeak RSS, burst\tburst msg/s\t| lost, closed/fixed/burst\tdup\terrors\texit\t")
	for _, r := range servers {
		for i, rd := range r.rounds {
			var lost []string
			dup, errs := 0, 0
			for _, rep := range []load.Report{rd.closed.srv.rep, rd.open.srv.rep, rd.burst} {
				lost = append(lost, fmt.Sprint(rep.Lost))
				dup, errs = dup+rep.Duplicates, errs+rep.Errors
			}
			fmt.Fprintf(tw, "  %s r%d\t%s\t%s\t%s\t| %s\t%d\t%d\t%s\t\n", r.name, i+1, mib(rd.peakRSS), orDash(rd.burstRSS, rd.burstRSS > 0, mib),
				orDash(rd.burst.Rate(), rd.burstRSS > 0, countF), strings.Join(lost, "/"), dup, errs, rd.exit)
		}
	}
	tw.Flush()
	fmt.Fprintf(out, "bench: %s: server %s\n", floorName, fl.exit)
	fmt.Fprintln(out, "bench: CPU/msg is the server's utime+stime from the first call to the last answer / acknowledged messages; to Kafka: until the records were read back (the work after the answer, and the idle wait for the read)")
	fmt.Fprintln(out, "bench: busy: the share of one core the server (its CPU over the run's wall time) and this process (the load tool, Kafka and the registry, on the other core) used in the closed loop; a server well under 100% was not bound by its core")
	fmt.Fprintln(out, "bench: x floor: over the floor's run of the same kind right before it (CPU/msg; msg/s); fixed rate: the floor at the server's offered rate")
	if len(peers) > 0 {
		fmt.Fprintln(out, "bench: x peer: ours over the peer's of the same round, each over its own floor run (CPU/msg x floor; to Kafka x floor; msg/s x floor); a peer's order is not judged (it keys by message id)")
	}
	fmt.Fprintln(out, "bench: in-server: the server's own measure of each call (grpc_server_call_seconds: headers read to the handler's answer; within 15%; peers have none); added p99 = in-server p99 - the floor's at the same rate")
	fmt.Fprintln(out, "bench: client side (load tool and Kafka share a core): p99 from the actual send, how late the sends left (send lag)")
	fmt.Fprintln(out, "bench: peak RSS: VmHWM after the closed-loop and fixed-rate runs; burst: after the burst of vehicles publishing at once (the floor's once, at the end)")
}

// busyF is a run's server and load shares of a core, "server/load".
func busyF(s sample) string {
	srv, ld, ok := s.busy()
	if !ok {
		return "-"
	}
	return pctF(srv) + "/" + pctF(ld)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond)) }
