// Command bench measures what an ExHook call costs the server: the do-nothing floor server
// (cmd/floor, the cost of gRPC alone) and the exhook producer binary in each delivery mode
// (async, sync, spool), every one run the same way. The server is a fresh child process
// pinned to one core (taskset -c, --server-cpus); the load tool and the in-process Kafka +
// registry run in this process, which make bench pins to the other core. Per server:
//
//  1. a warm-up load (excluded);
//  2. a closed-loop run (each vehicle publishes its next message when the last one was
//     answered): the server's msg/s, and its CPU per message from /proc/<pid>/stat
//     (utime+stime) across the run;
//  3. a fixed-rate run (load.Options.Rate, open loop) at --rate-fraction (default 50%) of
//     the rate the closed loop reached, so the latency is the server's, not queueing. The
//     latency that counts is the server's own measure of each call (kit/calltime: from its
//     headers read to its handler's answer, read from the server's /metrics before and after
//     the run): the load tool and the in-process Kafka share one core, and what they add
//     on the client side (also shown: the load's send lag and its latency from the actual
//     send) would swamp a millisecond;
//  4. a burst: --burst-vehicles (default 10 000) vehicles publishing at once, all in flight
//     together, for the peak RSS at that many concurrent calls (the floor's at the end;
//     --burst-modes, default async and sync).
//
// Our producer's runs are verified from Kafka (lost, duplicates, per-vehicle order); the exit
// status is non-zero when any of them erred, lost, duplicated or reordered a message. Three
// tables close the run: CPU per message with the ratios to the floor, the fixed-rate
// latencies, and memory with the verification.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/iov-platform/iov/kit/cli"
	"github.com/iov-platform/iov/tools/devkit/load"
	"github.com/iov-platform/iov/tools/devkit/procstat"
	"github.com/iov-platform/iov/tools/devkit/readiness"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

func main() {
	cli.Main("bench", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdout) })
}

// producerConfig is our producer's config for one mode: one route, keyed by the vehicle id in
// the topic, the shipped default's Kafka properties.
const producerConfig = `
grpc: {listenAddress: %q}
http: {listenAddress: %q}
log: {level: warn, format: text}
kafka:
  bootstrapServers: %q
  properties: {linger.ms: "20"}
registry: {url: %q}
spool: {dir: %q}
memory: {limitBytes: %d}
routes:
  - {name: %[7]s, filter: "bench/+/%[7]s", kafkaTopic: bench.%[7]s, key: {from: topic-segment, segment: 1}, payload: json, delivery: %[7]s}
`

const floorName = "floor"

type config struct {
	producer, floor              string
	serverCPUs, profileDir       string
	vehicles, messages, pool     int
	warmup, payload              int
	burstVehicles, burstMessages int
	rateMessages                 int
	memoryLimit                  int64
	rateFraction                 float64
	requestTimeout               time.Duration
	modes, burstModes            []string
}

func parse(args []string) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var c config
	fs.StringVar(&c.producer, "producer", "bin/exhook-producer", "exhook-producer binary")
	fs.StringVar(&c.floor, "floor", "bin/floor", "the do-nothing ExHook server binary")
	fs.StringVar(&c.profileDir, "profile-dir", "", "write our producer's pprof CPU and allocation profiles per mode here (<mode>.cpu.pprof, <mode>.allocs.pprof), and each server's memory at its resident peak (<mode or floor>.mempeak/peak.txt, heap.pprof)")
	fs.StringVar(&c.serverCPUs, "server-cpus", "1", "taskset -c list the server runs on (\"\": not pinned)")
	fs.IntVar(&c.vehicles, "vehicles", 500, "simulated vehicles (each publishes in sequence, all in parallel)")
	fs.IntVar(&c.messages, "messages", 20, "messages per vehicle per run")
	fs.IntVar(&c.pool, "pool", 8, "gRPC connections (EMQX exhook pool_size)")
	fs.IntVar(&c.warmup, "warmup", 2, "warm-up messages per vehicle before the measured runs (0: none)")
	fs.IntVar(&c.payload, "payload-bytes", 200, "approximate JSON payload size")
	fs.IntVar(&c.burstVehicles, "burst-vehicles", 10000, "vehicles publishing at once in the last run per server, for the peak RSS with that many calls in flight (0: no burst)")
	fs.IntVar(&c.burstMessages, "burst-messages", 2, "messages per vehicle in the burst")
	fs.Int64Var(&c.memoryLimit, "memory-limit-bytes", 0, "our producer's memory.limitBytes (Go's memory limit; 0: none, as outside a container)")
	fs.Float64Var(&c.rateFraction, "rate-fraction", 0.5, "fixed-rate run: this fraction of the closed loop's msg/s (0: no fixed-rate run)")
	fs.IntVar(&c.rateMessages, "rate-messages", 60, "messages per vehicle in the fixed-rate run (a few seconds, so that one hiccup of the shared machine is not the p99)")
	fs.DurationVar(&c.requestTimeout, "request-timeout", 5*time.Second, "per-call deadline, like EMQX request_timeout")
	modes := fs.String("modes", "async,sync,spool", "producer delivery modes to measure after the floor, in order")
	burstModes := fs.String("burst-modes", "async,sync", "the modes that get the burst too, among -modes (the floor gets it whenever -burst-vehicles is set)")
	if err := cli.Parse(fs, args); err != nil {
		return c, err
	}
	var problems []error
	if c.vehicles <= 0 || c.messages <= 0 || c.rateMessages <= 0 || c.pool <= 0 || c.warmup < 0 {
		problems = append(problems, errors.New("-vehicles, -messages, -rate-messages and -pool must be positive, -warmup not negative"))
	}
	if c.memoryLimit < 0 {
		problems = append(problems, errors.New("-memory-limit-bytes must not be negative"))
	}
	if c.burstVehicles < 0 || c.burstMessages <= 0 {
		problems = append(problems, errors.New("-burst-vehicles must not be negative, -burst-messages must be positive"))
	}
	if c.rateFraction < 0 || c.rateFraction >= 1 {
		problems = append(problems, fmt.Errorf("-rate-fraction %v: want 0 <= f < 1", c.rateFraction))
	}
	for m := range strings.SplitSeq(*modes, ",") {
		if !slices.Contains([]string{"async", "sync", "spool"}, m) {
			problems = append(problems, fmt.Errorf("-modes: unknown %q (async, sync, spool)", m))
		}
		c.modes = append(c.modes, m)
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "burst-modes" })
	for m := range strings.SplitSeq(*burstModes, ",") {
		switch {
		case m == "":
		case slices.Contains(c.modes, m):
			c.burstModes = append(c.burstModes, m)
		case explicit: // the default names the modes it wants only if they are measured
			problems = append(problems, fmt.Errorf("-burst-modes: %q is not among -modes", m))
		}
	}
	return c, errors.Join(problems...)
}

func run(ctx context.Context, args []string, out io.Writer) error {
	c, err := parse(args)
	if err != nil {
		return err
	}
	var topics []string
	for _, m := range c.modes {
		topics = append(topics, "bench."+m)
	}
	st, err := stack.Start(stack.Options{Partitions: 6, Topics: topics})
	if err != nil {
		return err
	}
	defer st.Close()

	fmt.Fprintf(out, "bench: %d vehicles x %d messages per run over %d connections, payload ~%dB, %d warm-up messages per vehicle; server on CPUs %q, fixed rate %.0f%% of the closed loop's, %d messages per vehicle; burst %d vehicles x %d messages; producer memory.limitBytes %d\n",
		c.vehicles, c.messages, c.pool, c.payload, c.warmup, c.serverCPUs, 100*c.rateFraction, c.rateMessages, c.burstVehicles, c.burstMessages, c.memoryLimit)
	fmt.Fprintf(os.Stderr, "bench: %s ...\n", floorName)
	floor, err := startFloor(ctx, c)
	if err != nil {
		return err
	}
	floorExit := "running"
	defer func() {
		if floorExit == "running" {
			floor.stop(5 * time.Second)
		}
	}()
	fr, err := measure(ctx, st, c, floorName, floor, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", floorName, err)
	}
	results := []result{fr}
	var failed error
	for _, mode := range c.modes {
		fmt.Fprintf(os.Stderr, "bench: %s ...\n", mode)
		srv, err := startProducer(ctx, c, st, mode)
		if err != nil {
			return fmt.Errorf("%s: %w", mode, err)
		}
		r, err := measure(ctx, st, c, mode, srv, floor)
		r.exit = srv.stop(30 * time.Second)
		if err != nil {
			return fmt.Errorf("%s: %w", mode, err)
		}
		results = append(results, r)
		for _, rep := range []load.Report{r.closed, r.open, r.burst} {
			if rep.Sent > 0 && !rep.OK() {
				failed = errors.Join(failed, fmt.Errorf("%s: errors=%d lost=%d duplicates=%d out_of_order=%d (first error: %s)",
					mode, rep.Errors, rep.Lost, rep.Duplicates, rep.OutOfOrder, rep.FirstError))
			}
		}
	}
	if c.burstVehicles > 0 {
		fmt.Fprintf(os.Stderr, "bench: %s burst ...\n", floorName)
		if results[0].burst, results[0].burstRSS, err = burst(ctx, st, c, floorName, floor); err != nil {
			return fmt.Errorf("%s burst: %w", floorName, err)
		}
	}
	floorExit = floor.stop(5 * time.Second)
	results[0].exit = floorExit
	printTable(out, results)
	return failed
}

// result is one server's measurement.
type result struct {
	name               string
	closed, open       load.Report
	cpuClosed, cpuOpen time.Duration // server CPU over each run
	offered            float64       // the fixed-rate run's offered msg/s
	// The floor run right after, closed loop and at the same fixed rate (ours only), so a
	// ratio compares two runs a few seconds apart on the shared machine.
	floorClosed, floorOpen       load.Report
	floorCPUClosed, floorCPUOpen time.Duration
	// The servers' own measure of the fixed-rate calls: this server's and the floor's.
	inServer, floorInServer callTimes
	peakRSS                 int64       // VmHWM after the closed-loop and fixed-rate runs
	burst                   load.Report // --burst-vehicles at once
	burstRSS                int64       // VmHWM after the burst
	exit                    string
}

func perMsg(cpu time.Duration, rep load.Report) time.Duration {
	if rep.Acked == 0 {
		return 0
	}
	return cpu / time.Duration(rep.Acked)
}

// measure runs srv through warm-up, closed loop and fixed rate; with floor set, the floor
// server then gets the same fixed-rate load, as the reference at that rate.
func measure(ctx context.Context, st *stack.Stack, c config, name string, srv, floor *child) (res result, err error) {
	res.name = name
	opts := load.Options{
		Addr: srv.addr, Vehicles: c.vehicles, Pool: c.pool, RequestTimeout: c.requestTimeout,
		TopicTemplate: "bench/%s/" + name, PayloadBytes: c.payload, QoS: 1,
	}
	if name != floorName {
		opts.Bootstrap, opts.RegistryURL, opts.KafkaTopic = st.KafkaBootstrap(), st.RegistryURL(), "bench."+name
	}
	if c.warmup > 0 {
		w := opts
		w.Messages, w.Bootstrap = c.warmup, ""
		if _, err := load.Run(ctx, w); err != nil {
			return res, fmt.Errorf("warm-up: %w", err)
		}
	}
	opts.Messages = c.messages
	if res.closed, res.cpuClosed, err = measured(ctx, srv, opts); err != nil {
		return res, fmt.Errorf("closed loop: %w", err)
	}
	if floor != nil {
		f := opts
		f.Addr, f.Bootstrap = floor.addr, ""
		if res.floorClosed, res.floorCPUClosed, err = measured(ctx, floor, f); err != nil {
			return res, fmt.Errorf("floor closed loop: %w", err)
		}
	}
	if rate := res.closed.Rate() * c.rateFraction; rate > 0 {
		opts.Rate, opts.Messages, res.offered = rate, c.rateMessages, rate
		if res.open, res.cpuOpen, res.inServer, err = measuredInServer(ctx, srv, opts); err != nil {
			return res, fmt.Errorf("fixed rate: %w", err)
		}
		if floor != nil {
			f := opts
			f.Addr, f.Bootstrap = floor.addr, ""
			if res.floorOpen, res.floorCPUOpen, res.floorInServer, err = measuredInServer(ctx, floor, f); err != nil {
				return res, fmt.Errorf("floor at the fixed rate: %w", err)
			}
		}
	}
	ps, err := procstat.ReadStatus(srv.pid())
	if err != nil {
		return res, err
	}
	res.peakRSS = ps.VmHWM
	if slices.Contains(c.burstModes, name) && c.burstVehicles > 0 { // the floor's comes last: it serves as the reference until then
		if res.burst, res.burstRSS, err = burst(ctx, st, c, name, srv); err != nil {
			return res, fmt.Errorf("burst: %w", err)
		}
	}
	return res, nil
}

// measuredInServer is measured with the server's own call-time histogram read before and
// after the run.
func measuredInServer(ctx context.Context, srv *child, opts load.Options) (load.Report, time.Duration, callTimes, error) {
	before, err := scrapeCallTimes(ctx, srv.metrics)
	if err != nil {
		return load.Report{}, 0, callTimes{}, err
	}
	rep, cpu, err := measured(ctx, srv, opts)
	if err != nil {
		return rep, cpu, callTimes{}, err
	}
	after, err := scrapeCallTimes(ctx, srv.metrics)
	if err != nil {
		return rep, cpu, callTimes{}, err
	}
	in, err := after.since(before)
	return rep, cpu, in, err
}

// burst has --burst-vehicles publish at once (verified from Kafka for ours) and returns the
// server's VmHWM after it.
func burst(ctx context.Context, st *stack.Stack, c config, name string, srv *child) (load.Report, int64, error) {
	opts := load.Options{
		Addr: srv.addr, Vehicles: c.burstVehicles, Messages: c.burstMessages, Pool: c.pool, RequestTimeout: c.requestTimeout,
		TopicTemplate: "bench/%s/" + name, PayloadBytes: c.payload, QoS: 1,
	}
	if name != floorName {
		opts.Bootstrap, opts.RegistryURL, opts.KafkaTopic = st.KafkaBootstrap(), st.RegistryURL(), "bench."+name
	}
	rep, err := load.Run(ctx, opts)
	if err != nil {
		return rep, 0, err
	}
	ps, err := procstat.ReadStatus(srv.pid())
	if err != nil {
		return rep, 0, err
	}
	return rep, ps.VmHWM, nil
}

// measured is one load run and the server CPU it took until the last answer (before the
// Kafka verification, whose wait would otherwise add the idle producer's CPU).
func measured(ctx context.Context, srv *child, opts load.Options) (load.Report, time.Duration, error) {
	cpu0, err := procstat.CPU(srv.pid())
	if err != nil {
		return load.Report{}, 0, err
	}
	var cpu1 time.Duration
	var cpuErr error
	opts.Answered = func() { cpu1, cpuErr = procstat.CPU(srv.pid()) }
	rep, err := load.Run(ctx, opts)
	if err != nil {
		return rep, 0, err
	}
	return rep, cpu1 - cpu0, cpuErr
}

// printTable writes the results (the floor's own first) in three tables: the closed loop's
// CPU per message with each mode's ratio to the floor's in the run right after it; the fixed
// rate's latencies, the servers' own measure first, against the floor's at the same rate;
// memory, and the verification from Kafka.
func printTable(out io.Writer, results []result) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "closed loop\tCPU/msg\tx floor\tmsg/s per core\tmsg/s\tp50\tp99\t")
	for _, r := range results {
		cc := perMsg(r.cpuClosed, r.closed)
		xc := "-"
		if r.name != floorName {
			xc = ratio(cc, perMsg(r.floorCPUClosed, r.floorClosed))
		}
		perCore := "-"
		if cc > 0 {
			perCore = fmt.Sprintf("%.0f", float64(time.Second)/float64(cc))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t\n", r.name, us(cc), xc, perCore, r.closed.Rate(), us(r.closed.P50), us(r.closed.P99))
	}
	tw.Flush()
	fmt.Fprintln(out)

	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fixed rate\tmsg/s\tCPU/msg\tx floor\tin-server p50\tin-server p99\tfloor's p99\tadded p99\t| client p99 from send\tfloor's\tsend lag p99\tp99 from schedule\t")
	for _, r := range results {
		co := perMsg(r.cpuOpen, r.open)
		xo, floorP99, added, floorSent := "-", "-", "-", "-"
		p50, ok50 := r.inServer.quantile(.50)
		p99, ok99 := r.inServer.quantile(.99)
		if r.name != floorName && r.floorOpen.Acked > 0 {
			xo = ratio(co, perMsg(r.floorCPUOpen, r.floorOpen))
			floorSent = us(r.floorOpen.SentP99)
			if f99, ok := r.floorInServer.quantile(.99); ok {
				floorP99 = us(f99)
				if ok99 {
					added = us(p99 - f99)
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t| %s\t%s\t%s\t%s\t\n", r.name, r.open.Rate(), us(co), xo,
			orDash(p50, ok50), orDash(p99, ok99), floorP99, added, us(r.open.SentP99), floorSent, us(r.open.SendLagP99), us(r.open.P99))
	}
	tw.Flush()
	fmt.Fprintln(out)

	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "memory\tpeak RSS\tpeak RSS, burst\tburst msg/s\t| lost\tdup\torder\terrors\t")
	for _, r := range results {
		lost, dup, order := "-", "-", "-"
		if r.closed.Verified {
			lost = fmt.Sprint(r.closed.Lost + r.open.Lost + r.burst.Lost)
			dup = fmt.Sprint(r.closed.Duplicates + r.open.Duplicates + r.burst.Duplicates)
			order = fmt.Sprint(r.closed.OutOfOrder + r.open.OutOfOrder + r.burst.OutOfOrder)
		}
		burstRSS, burstRate := "-", "-"
		if r.burstRSS > 0 {
			burstRSS, burstRate = mib(r.burstRSS), fmt.Sprintf("%.0f", r.burst.Rate())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t| %s\t%s\t%s\t%d\t\n", r.name, mib(r.peakRSS), burstRSS, burstRate,
			lost, dup, order, r.closed.Errors+r.open.Errors+r.burst.Errors)
	}
	tw.Flush()
	for _, r := range results {
		fmt.Fprintf(out, "bench: %s: fixed rate offered %.0f msg/s; server %s\n", r.name, r.offered, r.exit)
	}
	fmt.Fprintln(out, "bench: CPU/msg is the server's utime+stime from the first call to the last answer / acknowledged messages; msg/s per core = 1 s / CPU/msg")
	fmt.Fprintln(out, "bench: x floor: CPU/msg over the floor's in a run of the same kind right after the mode's")
	fmt.Fprintln(out, "bench: in-server: the server's own measure of each call (grpc_server_call_seconds: headers read to the handler's answer; within 15%); the floor is run at each mode's rate right after it, added p99 = in-server p99 - the floor's")
	fmt.Fprintln(out, "bench: client side (load tool and Kafka share a core): p99 from the actual send, how late the sends left (send lag), and p99 from the scheduled send")
	fmt.Fprintln(out, "bench: peak RSS: VmHWM after the closed-loop and fixed-rate runs; burst: after the burst of vehicles publishing at once")
}

func orDash(d time.Duration, ok bool) string {
	if !ok {
		return "-"
	}
	return us(d)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func ratio(a, b time.Duration) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", float64(a)/float64(b))
}

func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond)) }

// child is a server process.
type child struct {
	cmd     *exec.Cmd
	addr    string // gRPC address
	metrics string // URL of its /metrics
	dir     string // removed after stop
	done    chan struct{}
	err     error // cmd.Wait's, valid after done
}

// command is bin with args, under taskset when the server is pinned.
func command(c config, bin string, args ...string) *exec.Cmd {
	if c.serverCPUs == "" {
		return exec.Command(bin, args...)
	}
	return exec.Command("taskset", append([]string{"-c", c.serverCPUs, bin}, args...)...) // taskset execs bin: same pid
}

func (s *child) start() error {
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", strings.Join(s.cmd.Args, " "), err)
	}
	s.done = make(chan struct{})
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	return nil
}

func (s *child) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM, kills after timeout and says how the process ended.
func (s *child) stop(timeout time.Duration) string {
	defer os.RemoveAll(s.dir)
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(timeout):
		_ = s.cmd.Process.Kill()
		<-s.done
		return "killed after " + timeout.String()
	}
	if s.err != nil {
		return s.err.Error()
	}
	return "exit 0"
}

// startFloor starts the floor server on a free loopback port and reads the port from its
// LISTEN line.
func startFloor(ctx context.Context, c config) (*child, error) {
	args := []string{"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"}
	if c.profileDir != "" {
		args = append(args, "--mem-peak-dir", filepath.Join(c.profileDir, floorName+".mempeak"))
	}
	s := &child{cmd: command(c, c.floor, args...)}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = os.Stderr
	if err := s.start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "METRICS "); ok {
				s.metrics = "http://" + a + "/metrics" // printed before LISTEN
			}
			if a, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok {
				addr <- a
			}
		}
	}()
	select {
	case s.addr = <-addr:
		return s, nil
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	s.stop(time.Second)
	return nil, errors.New("the floor server printed no LISTEN line")
}

// startProducer starts our producer with one route of the given delivery mode and waits until
// it is ready.
func startProducer(ctx context.Context, c config, st *stack.Stack, mode string) (*child, error) {
	grpcAddr, err := readiness.FreeAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := readiness.FreeAddr()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench")
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "producer.yaml")
	body := fmt.Appendf(nil, producerConfig, grpcAddr, httpAddr, st.KafkaBootstrap(), st.RegistryURL(), filepath.Join(dir, "spool"), c.memoryLimit, mode)
	if err := os.WriteFile(cfg, body, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &child{cmd: command(c, c.producer, "--config", cfg), addr: grpcAddr, metrics: "http://" + httpAddr + "/metrics", dir: dir}
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if c.profileDir != "" { // the producer writes them when it stops (services/exhook-producer/profile.go)
		s.cmd.Env = append(os.Environ(),
			"EXHOOK_CPUPROFILE="+filepath.Join(c.profileDir, mode+".cpu.pprof"),
			"EXHOOK_ALLOCPROFILE="+filepath.Join(c.profileDir, mode+".allocs.pprof"),
			"EXHOOK_MEMPEAK="+filepath.Join(c.profileDir, mode+".mempeak"))
	}
	if err := s.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := readiness.Wait(ctx, httpAddr, s.done); err != nil {
		s.stop(5 * time.Second)
		return nil, err
	}
	return s, nil
}
