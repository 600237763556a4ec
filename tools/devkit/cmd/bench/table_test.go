package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iov-platform/iov/tools/devkit/load"
)

func TestSpreadOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		xs   []float64
		want spread
		text string
	}{
		{"none", nil, spread{}, "-"},
		{"one", []float64{1.5}, spread{med: 1.5, lo: 1.5, hi: 1.5, n: 1}, "1.50x"},
		{"odd, unsorted", []float64{3, 1, 2}, spread{med: 2, lo: 1, hi: 3, n: 3}, "2.00x [1.00x–3.00x]"},
		{"even: the mean of the middle two", []float64{4, 1, 2, 10}, spread{med: 3, lo: 1, hi: 10, n: 4}, "3.00x [1.00x–10.00x]"},
		{"an outlier moves the range, not the median", []float64{1.6, 1.5, 9, 1.7, 1.4}, spread{med: 1.6, lo: 1.4, hi: 9, n: 5}, "1.60x [1.40x–9.00x]"},
		{"negative values (an added p99 below the floor's)", []float64{-1, 2, -3}, spread{med: -1, lo: -3, hi: 2, n: 3}, "-1.00x [-3.00x–2.00x]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.xs)
			got := spreadOf(tc.xs)
			if got != tc.want {
				t.Fatalf("spreadOf(%v) = %+v, want %+v", tc.xs, got, tc.want)
			}
			if !slices.Equal(in, tc.xs) {
				t.Fatalf("spreadOf reordered its input: %v, was %v", tc.xs, in)
			}
			if s := got.format(xF); s != tc.text {
				t.Fatalf("format = %q, want %q", s, tc.text)
			}
		})
	}
}

// smp is a run of acked messages in elapsed that took the server cpu.
func smp(acked int, elapsed, cpu time.Duration) sample {
	return sample{rep: load.Report{Acked: acked, Sent: acked, Elapsed: elapsed, Verified: true}, cpu: cpu, cpuDelivered: cpu}
}

func TestPairRatios(t *testing.T) {
	for _, tc := range []struct {
		name             string
		p                pair
		wantCPU, wantMsg float64
		okCPU, okMsg     bool
	}{
		{"against its own floor", pair{srv: smp(1000, time.Second, 60*time.Millisecond), floor: smp(1000, time.Second/2, 40*time.Millisecond)}, 1.5, 0.5, true, true},
		{"per message, not per run", pair{srv: smp(500, time.Second, 30*time.Millisecond), floor: smp(1000, time.Second, 30*time.Millisecond)}, 2, 0.5, true, true},
		{"nothing answered", pair{srv: smp(0, time.Second, 30*time.Millisecond), floor: smp(1000, time.Second, 30*time.Millisecond)}, 0, 0, false, false},
		{"no floor run", pair{srv: smp(1000, time.Second, 30*time.Millisecond)}, 0, 0, false, false},
		{"no CPU read (a server that used none is a broken measure)", pair{srv: smp(1000, time.Second, 0), floor: smp(1000, time.Second, 30*time.Millisecond)}, 0, 1, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, okC := tc.p.cpuRatio()
			m, okM := tc.p.rateRatio()
			if okC != tc.okCPU || (okC && math.Abs(c-tc.wantCPU) > 1e-9) {
				t.Errorf("cpuRatio = %v, %v; want %v, %v", c, okC, tc.wantCPU, tc.okCPU)
			}
			if okM != tc.okMsg || (okM && math.Abs(m-tc.wantMsg) > 1e-9) {
				t.Errorf("rateRatio = %v, %v; want %v, %v", m, okM, tc.wantMsg, tc.okMsg)
			}
		})
	}
	// added p99: the server's own p99 over the floor's in the same fixed-rate pair
	// (calltime.Buckets[20] is 327µs, [40] 5.36ms; the 990th of 1000 calls is the top of
	// bucket 0 for both here, 20µs).
	p := pair{srv: sample{in: hist(map[int]uint64{0: 980, 40: 20})}, floor: sample{in: hist(map[int]uint64{0: 980, 20: 20})}}
	a, ok := p.addedP99()
	s99, _ := p.srv.in.quantile(.99)
	f99, _ := p.floor.in.quantile(.99)
	if !ok || a != s99-f99 || a < 4*time.Millisecond {
		t.Fatalf("addedP99 = %s, %v (server %s, floor %s)", a, ok, s99, f99)
	}
	if _, ok := (pair{srv: p.srv}).addedP99(); ok {
		t.Fatal("added p99 without the floor's measure")
	}
}

func TestVsPeerMatchesRounds(t *testing.T) {
	ms := time.Millisecond
	// rd: 1000 messages; the server's CPU to the last answer and to Kafka, the floor's
	rd := func(srvCPU, srvDelivered, floorCPU time.Duration, srvElapsed, floorElapsed time.Duration) round {
		s := smp(1000, srvElapsed, srvCPU)
		s.cpuDelivered = srvDelivered
		return round{closed: pair{srv: s, floor: smp(1000, floorElapsed, floorCPU)}}
	}
	for _, tc := range []struct {
		name                    string
		ours, peer              round
		wantCPU, wantDel, wantM float64
		ok                      bool
	}{
		// ours 60/40 = 1.5x the floor, the peer 50/25 = 2x its floor: 0.75x the peer's CPU
		// although ours took more µs; msg/s 0.5x its floor against the peer's 0.25x: 2x
		{"each over its own floor", rd(60*ms, 60*ms, 40*ms, 2*time.Second, time.Second),
			rd(50*ms, 50*ms, 25*ms, 4*time.Second, time.Second), 0.75, 0.75, 2, true},
		// a peer that answers at once and sends later: 1x its floor to the answer, 4x to
		// Kafka; ours 1.5x both
		{"work after the answer", rd(30*ms, 30*ms, 20*ms, time.Second, time.Second),
			rd(20*ms, 80*ms, 20*ms, time.Second, time.Second), 1.5, 0.375, 1, true},
		{"a peer round without answers", rd(30*ms, 30*ms, 20*ms, time.Second, time.Second), round{}, 0, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, d, m, okC, okD, okM := vsPeer(tc.ours, tc.peer)
			if okC != tc.ok || okD != tc.ok || okM != tc.ok {
				t.Fatalf("ok %v %v %v, want %v", okC, okD, okM, tc.ok)
			}
			if tc.ok && (math.Abs(c-tc.wantCPU) > 1e-9 || math.Abs(d-tc.wantDel) > 1e-9 || math.Abs(m-tc.wantM) > 1e-9) {
				t.Fatalf("vsPeer = %v, %v, %v; want %v, %v, %v", c, d, m, tc.wantCPU, tc.wantDel, tc.wantM)
			}
		})
	}
}

// The table's median ratio is the median of the rounds' ratios, each within its pair, never
// the ratio of the medians; the rounds follow, and ours against the peer goes round by round.
func TestTablesMedianOfPairRatios(t *testing.T) {
	ms := time.Millisecond
	rd := func(srvCPU, floorCPU time.Duration, lost int) round {
		r := round{
			closed:  pair{srv: smp(1000, time.Second, srvCPU), floor: smp(1000, time.Second/2, floorCPU)},
			open:    pair{srv: smp(500, time.Second, 2*srvCPU), floor: smp(500, time.Second, 2*floorCPU)},
			offered: 500, peakRSS: 40 << 20, burstRSS: 60 << 20,
			burst: load.Report{Acked: 2000, Sent: 2000, Elapsed: time.Second, Verified: true, Lost: lost},
			exit:  "exit 0",
		}
		r.closed.srv.rep.Verified = true
		return r
	}
	// async's pairs: 40/20 = 2x, 45/30 = 1.5x, 90/50 = 1.8x. Median of the ratios 1.8x; the
	// ratio of the medians (45/30) would be 1.5x.
	async := &result{name: "async", rounds: []round{rd(40*ms, 20*ms, 0), rd(45*ms, 30*ms, 0), rd(90*ms, 50*ms, 0)}}
	// the peer: 30/20 = 1.5x, 60/30 = 2x, 50/50 = 1x; it lost 7 messages in its second burst
	peerR := &result{name: "sarama", peer: true, rounds: []round{rd(30*ms, 20*ms, 0), rd(60*ms, 30*ms, 7), rd(50*ms, 50*ms, 0)}}
	fl := &result{name: floorName, peakRSS: 20 << 20, burstRSS: 150 << 20, burst: load.Report{Acked: 100, Elapsed: time.Second}, exit: "exit 0"}
	var b strings.Builder
	printTables(&b, fl, []*result{async, peerR})
	text := b.String()
	// rows are the lines whose first cell is name and, with round set, whose second is it
	// ("r1"); without, the summary rows (the second cell is not a round).
	rows := func(name, round string) []string {
		var out []string
		for line := range strings.SplitSeq(text, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != name {
				continue
			}
			isRound := len(f[1]) == 2 && f[1][0] == 'r' && f[1][1] >= '1' && f[1][1] <= '9'
			if (round == "" && !isRound) || f[1] == round {
				out = append(out, line)
			}
		}
		return out
	}
	summary := rows("async", "")
	if len(summary) != 4 { // closed loop, against sarama, fixed rate, memory
		t.Fatalf("%d async rows, want 4:\n%s", len(summary), text)
	}
	for i, wants := range [][]string{
		{"45µs [40µs–90µs]", "1.80x [1.50x–2.00x]", "0.50x [0.50x–0.50x]"},
		// ours over the peer, round by round: 2/1.5, 1.5/2, 1.8/1
		{"1.33x [0.75x–1.80x]", "r1 1.33x 1.33x 1.00x; r2 0.75x 0.75x 1.00x; r3 1.80x 1.80x 1.00x"},
		{"1.80x [1.50x–2.00x]"}, // fixed rate: 160/80, 180/120, 360/200 µs per message
		{"40.0 MiB [40.0 MiB–40.0 MiB]", "60.0 MiB [60.0 MiB–60.0 MiB]", "| 0"},
	} {
		for _, want := range wants {
			if !strings.Contains(summary[i], want) {
				t.Errorf("async row %q lacks %q", summary[i], want)
			}
		}
	}
	for i, want := range []string{"2.00x", "1.50x", "1.80x"} {
		rr := rows("async", fmt.Sprintf("r%d", i+1))
		if len(rr) != 3 { // closed loop, fixed rate, memory
			t.Fatalf("round %d: %d rows, want 3:\n%s", i+1, len(rr), text)
		}
		for _, row := range rr[:2] {
			if !strings.Contains(row, want) {
				t.Errorf("round %d row %q lacks %q", i+1, row, want)
			}
		}
	}
	peerRows := rows("sarama", "")
	if len(peerRows) != 3 || !strings.Contains(peerRows[2], "| 7") || !strings.Contains(peerRows[2], "n/a") {
		t.Errorf("the peer's rows (closed loop, fixed rate, memory) should count its 7 lost and leave its order unjudged: %q", peerRows)
	}
	if r2 := rows("sarama", "r2"); len(r2) != 3 || !strings.Contains(r2[2], "0/0/7") {
		t.Errorf("the peer's second round should show its losses by run: %q", r2)
	}
	// the floor's row: the median of its halves of all six pairs (20, 30, 50, 20, 30, 50 ms
	// per 1000 messages)
	if f := rows(floorName, ""); len(f) != 3 || !strings.Contains(f[0], "30µs [20µs–50µs]") {
		t.Errorf("floor rows %q", f)
	}
}

func TestBusy(t *testing.T) {
	for _, tc := range []struct {
		name         string
		s            sample
		server, load float64
		ok           bool
		text         string
	}{
		{"a server bound elsewhere", sample{rep: load.Report{Elapsed: 2 * time.Second}, cpu: 1300 * time.Millisecond, loadCPU: 1100 * time.Millisecond}, .65, .55, true, "65%/55%"},
		{"a full core", sample{rep: load.Report{Elapsed: time.Second}, cpu: time.Second, loadCPU: 900 * time.Millisecond}, 1, .9, true, "100%/90%"},
		{"no run", sample{cpu: time.Second}, 0, 0, false, "-"},
		{"no server CPU read", sample{rep: load.Report{Elapsed: time.Second}}, 0, 0, false, "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, ld, ok := tc.s.busy()
			if ok != tc.ok || (ok && (math.Abs(server-tc.server) > 1e-9 || math.Abs(ld-tc.load) > 1e-9)) {
				t.Errorf("busy() = %v, %v, %v; want %v, %v, %v", server, ld, ok, tc.server, tc.load, tc.ok)
			}
			if got := busyF(tc.s); got != tc.text {
				t.Errorf("busyF = %q, want %q", got, tc.text)
			}
		})
	}
}
