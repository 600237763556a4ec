package main

import (
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/iov-platform/iov/kit/calltime"
)

func TestParse(t *testing.T) {
	c, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.vehicles != 500 || c.messages != 20 || c.rateMessages != 60 || c.pool != 8 || c.rateFraction != 0.5 || c.rate != 0 || c.serverCPUs != "1" ||
		strings.Join(c.modes, ",") != "async,sync,spool" || strings.Join(c.burstModes, ",") != "async,sync" || c.burstVehicles != 10000 {
		t.Fatalf("defaults %+v", c)
	}
	if c, err := parse([]string{"--modes", "spool,async"}); err != nil || strings.Join(c.burstModes, ",") != "async" {
		t.Fatalf("the default burst modes among -modes spool,async: %v, %v", c.burstModes, err)
	}
	if c.rounds != 1 || len(c.peers) != 0 || c.peerVerifyWait != 5*time.Second {
		t.Fatalf("defaults: rounds %d, peers %v, peer verify wait %s", c.rounds, c.peers, c.peerVerifyWait)
	}
	c, err = parse([]string{"--rounds", "3", "--peer", "sarama=run.sh {port} {topic}", "--peer", "b-2=x = y"})
	if err != nil || c.rounds != 3 || len(c.peers) != 2 || c.peers[0] != (peer{"sarama", "run.sh {port} {topic}"}) || c.peers[1] != (peer{"b-2", "x = y"}) {
		t.Fatalf("rounds and peers: %+v, %v", c, err)
	}
	for _, bad := range []string{"nocommand", "=cmd", "Upper=cmd", "a b=cmd", "x=  "} {
		if _, err := parse([]string{"--peer", bad}); err == nil {
			t.Errorf("-peer %q accepted", bad)
		}
	}
	// Every problem at once.
	_, err = parse([]string{"--vehicles", "0", "--rate-fraction", "1", "--rate", "-1", "--modes", "async,bogus", "--burst-modes", "spool", "--burst-vehicles", "-1", "--memory-limit-bytes", "-5",
		"--rounds", "0", "--peer", "floor=x", "--peer", "p=x", "--peer", "p=y", "--peer", "sync=z"})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"-vehicles", "-rounds", "-rate-fraction 1", "-rate -1", `unknown "bogus"`, `-burst-modes: "spool" is not among`, "-burst-vehicles", "-memory-limit-bytes",
		`name "floor" is taken`, `name "p" is taken`, `name "sync" is taken`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// hist is a call-time histogram with n calls at each of the given bucket indexes.
func hist(at map[int]uint64) callTimes {
	ct := callTimes{bounds: calltime.Buckets, cum: make([]uint64, len(calltime.Buckets))}
	for i := range ct.bounds {
		if i > 0 {
			ct.cum[i] = ct.cum[i-1]
		}
		ct.cum[i] += at[i]
		ct.count += at[i]
	}
	return ct
}

func TestCallTimeQuantiles(t *testing.T) {
	b := calltime.Buckets
	for _, tc := range []struct {
		name   string
		at     map[int]uint64
		q      float64
		want   time.Duration
		wantOK bool
	}{
		{"none", nil, .99, 0, false},
		{"all in the first bucket: from 0", map[int]uint64{0: 100}, .50, seconds(b[0] / 2), true},
		{"interpolated in the bucket", map[int]uint64{0: 50, 10: 50}, .75, seconds(b[9] + (b[10]-b[9])/2), true},
		{"p99 in the tail bucket", map[int]uint64{0: 98, 40: 2}, .99, seconds(b[39] + (b[40]-b[39])/2), true},
		{"above the last bound", map[int]uint64{0: 1}, 1, seconds(b[0]), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := hist(tc.at).quantile(tc.q)
			if ok != tc.wantOK || (got-tc.want).Abs() > time.Microsecond/10 {
				t.Fatalf("quantile(%v) = %s, %v; want %s, %v", tc.q, got, ok, tc.want, tc.wantOK)
			}
		})
	}
	over := hist(map[int]uint64{0: 1})
	over.count++ // one call above the last bound
	if _, ok := over.quantile(1); ok {
		t.Fatal("a quantile above the last bound reported as known")
	}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// A run's calls are the second scrape's minus the first's.
func TestCallTimesSince(t *testing.T) {
	before := hist(map[int]uint64{3: 5})
	after := hist(map[int]uint64{3: 5, 30: 7})
	d, err := after.since(before)
	if err != nil {
		t.Fatal(err)
	}
	if d.count != 7 || d.cum[29] != 0 || d.cum[30] != 7 {
		t.Fatalf("since: count %d, cum[29] %d, cum[30] %d", d.count, d.cum[29], d.cum[30])
	}
	if _, err := before.since(after); err == nil {
		t.Fatal("a histogram that went back (a restarted server) was accepted")
	}
}

// The histogram the bench reads is the one the servers serve (kit/calltime over promhttp).
func TestScrapeCallTimes(t *testing.T) {
	reg := prometheus.NewRegistry()
	rec := calltime.New(reg)
	srv := grpc.NewServer(rec.ServerOptions()...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	hs := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer hs.Close()
	before, err := scrapeCallTimes(context.Background(), hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	const calls = 4
	for range calls {
		if _, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	var d callTimes
	for deadline := time.Now().Add(5 * time.Second); d.count < calls && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		after, err := scrapeCallTimes(context.Background(), hs.URL)
		if err != nil {
			t.Fatal(err)
		}
		if d, err = after.since(before); err != nil {
			t.Fatal(err)
		}
	}
	if d.count != calls || len(d.bounds) != len(calltime.Buckets) {
		t.Fatalf("%d calls in %d buckets, want %d in %d", d.count, len(d.bounds), calls, len(calltime.Buckets))
	}
	if p, ok := d.quantile(.5); !ok || p <= 0 {
		t.Fatalf("p50 %s, %v", p, ok)
	}
}
