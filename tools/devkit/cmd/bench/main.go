// Command bench measures what an ExHook call costs the server: the do-nothing floor server
// (cmd/floor, the cost of gRPC alone), the exhook producer binary in each delivery mode
// (async, sync, spool) and any peer bridge given with --peer, every one run the same way.
// The servers are child processes pinned to one core (taskset -c, --server-cpus); the load
// tool and the in-process Kafka + registry run in this process, which make bench pins to the
// other core. The floor runs for the whole bench; the others are started afresh in each of
// --rounds rounds, one after the other. Per server and round:
//
//  1. a warm-up load (excluded);
//  2. a closed-loop pair (each vehicle publishes its next message when the last one was
//     answered): the floor, then the server, each run's msg/s and its server's CPU per
//     message from /proc/<pid>/stat (utime+stime) across the run; the ratios to the floor
//     are taken within the pair, a few seconds apart on the shared machine;
//  3. a fixed-rate pair (load.Options.Rate, open loop) at --rate-fraction (default 50%) of
//     the rate the server's closed loop reached, the floor first, so the latency is the
//     server's, not queueing. The latency that counts is the server's own measure of each
//     call (kit/calltime: from its headers read to its handler's answer, read from the
//     server's /metrics before and after the run; peers have none): the load tool and the
//     in-process Kafka share one core, and what they add on the client side (also shown: the
//     load's send lag and its latency from the actual send) would swamp a millisecond;
//  4. a burst: --burst-vehicles (default 10 000) vehicles publishing at once, all in flight
//     together, for the peak RSS at that many concurrent calls (--burst-modes, default async
//     and sync, and every peer; the floor's once, at the end).
//
// The tables give per server the median over the rounds with [min–max], and each round's
// values below them. Our producer's runs are verified from Kafka (lost, duplicates,
// per-vehicle order); the exit status is non-zero when any of them erred, lost, duplicated or
// reordered a message. A peer's runs are counted from its topic (records of the run against
// answered messages: lost, duplicates; it keys by message id, so no order) and reported, not
// judged.
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
	rateMessages, rounds         int
	memoryLimit                  int64
	rateFraction, rate           float64
	requestTimeout               time.Duration
	peerVerifyWait               time.Duration
	modes, burstModes            []string
	peers                        []peer
}

func parse(args []string) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var c config
	fs.StringVar(&c.producer, "producer", "bin/exhook-producer", "exhook-producer binary")
	fs.StringVar(&c.floor, "floor", "bin/floor", "the do-nothing ExHook server binary")
	fs.StringVar(&c.profileDir, "profile-dir", "", "write our producer's pprof CPU and allocation profiles per mode here (<mode>.cpu.pprof, <mode>.allocs.pprof), and each server's memory at its resident peak (<mode or floor>.mempeak/peak.txt, heap.pprof); with -rounds above 1, the last round's")
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
	fs.Float64Var(&c.rate, "rate", 0, "fixed-rate run at this many msg/s for every server instead of -rate-fraction of each one's closed loop (0: the fraction): to compare two builds' latency at one rate")
	fs.IntVar(&c.rateMessages, "rate-messages", 60, "messages per vehicle in the fixed-rate run (a few seconds, so that one hiccup of the shared machine is not the p99)")
	fs.DurationVar(&c.requestTimeout, "request-timeout", 5*time.Second, "per-call deadline, like EMQX request_timeout")
	modes := fs.String("modes", "async,sync,spool", "producer delivery modes to measure after the floor, in order")
	burstModes := fs.String("burst-modes", "async,sync", "the modes that get the burst too, among -modes (the floor and the peers get it whenever -burst-vehicles is set)")
	fs.IntVar(&c.rounds, "rounds", 1, "rounds: each mode and peer is started afresh and measured against the floor once per round (closed-loop pair, fixed-rate pair, burst); the tables give the median and range over the rounds")
	fs.Func("peer", "NAME=COMMAND: a peer ExHook server run like our modes, after them in each round (repeatable). COMMAND is split at spaces and run pinned in a fresh directory (also its working directory), where it must exec the server (the measured pid is the one started); placeholders: {listen} (127.0.0.1:PORT to serve gRPC on), {port}, {bootstrap} (Kafka), {topic} (the Kafka topic it must write), {dir}; the command itself may be a path relative to ours, its arguments must be absolute. Its records' payload must be the MQTT payload unchanged (see tools/devkit/peer)", func(v string) error {
		name, command, ok := strings.Cut(v, "=")
		if !ok || !validPeerName(name) || strings.TrimSpace(command) == "" {
			return fmt.Errorf("%q: want NAME=COMMAND, NAME of lower-case letters, digits and '-'", v)
		}
		c.peers = append(c.peers, peer{name: name, command: command})
		return nil
	})
	fs.DurationVar(&c.peerVerifyWait, "peer-verify-wait", 5*time.Second, "how long to wait for a peer's missing records in its topic (a peer may batch for a second, and may drop: ours are waited for up to 60 s)")
	if err := cli.Parse(fs, args); err != nil {
		return c, err
	}
	var problems []error
	if c.vehicles <= 0 || c.messages <= 0 || c.rateMessages <= 0 || c.pool <= 0 || c.warmup < 0 || c.rounds <= 0 {
		problems = append(problems, errors.New("-vehicles, -messages, -rate-messages, -pool and -rounds must be positive, -warmup not negative"))
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
	if c.rate < 0 {
		problems = append(problems, fmt.Errorf("-rate %v: want 0 (the fraction) or more msg/s", c.rate))
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
	seen := map[string]bool{floorName: true, "async": true, "sync": true, "spool": true}
	for _, p := range c.peers {
		if seen[p.name] {
			problems = append(problems, fmt.Errorf("-peer: the name %q is taken", p.name))
		}
		seen[p.name] = true
	}
	return c, errors.Join(problems...)
}

// peer is a --peer server.
type peer struct{ name, command string }

func validPeerName(n string) bool {
	return n != "" && strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
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
	for _, p := range c.peers {
		topics = append(topics, "bench."+p.name)
	}
	st, err := stack.Start(stack.Options{Partitions: 6, Topics: topics})
	if err != nil {
		return err
	}
	defer st.Close()

	rate := fmt.Sprintf("%.0f%% of the closed loop's", 100*c.rateFraction)
	if c.rate > 0 {
		rate = fmt.Sprintf("%.0f msg/s", c.rate)
	}
	fmt.Fprintf(out, "bench: %d rounds; %d vehicles x %d messages per run over %d connections, payload ~%dB, %d warm-up messages per vehicle; server on CPUs %q, fixed rate %s, %d messages per vehicle; burst %d vehicles x %d messages; producer memory.limitBytes %d\n",
		c.rounds, c.vehicles, c.messages, c.pool, c.payload, c.warmup, c.serverCPUs, rate, c.rateMessages, c.burstVehicles, c.burstMessages, c.memoryLimit)
	for _, p := range c.peers {
		fmt.Fprintf(out, "bench: peer %s: %s\n", p.name, p.command)
	}
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
	if c.warmup > 0 {
		w := loadOptions(c, st, floorName, floor.addr, false)
		w.Messages = c.warmup
		if _, err := load.Run(ctx, w); err != nil {
			return fmt.Errorf("%s warm-up: %w", floorName, err)
		}
	}
	var servers []*result
	for _, m := range c.modes {
		servers = append(servers, &result{name: m})
	}
	for _, p := range c.peers {
		servers = append(servers, &result{name: p.name, peer: true, command: p.command})
	}
	var failed error
	for i := range c.rounds {
		for _, r := range servers {
			fmt.Fprintf(os.Stderr, "bench: round %d/%d: %s ...\n", i+1, c.rounds, r.name)
			var srv *child
			if r.peer {
				srv, err = startPeer(ctx, c, st, peer{name: r.name, command: r.command})
			} else {
				srv, err = startProducer(ctx, c, st, r.name)
			}
			if err != nil {
				return fmt.Errorf("round %d: %s: %w", i+1, r.name, err)
			}
			rd, err := measureRound(ctx, st, c, r.name, r.peer, srv, floor)
			rd.exit = srv.stop(30 * time.Second)
			if err != nil {
				return fmt.Errorf("round %d: %s: %w", i+1, r.name, err)
			}
			r.rounds = append(r.rounds, rd)
			for _, rep := range []load.Report{rd.closed.srv.rep, rd.open.srv.rep, rd.burst} {
				if rep.Sent > 0 && !rep.OK() {
					e := fmt.Errorf("round %d: %s: errors=%d lost=%d duplicates=%d out_of_order=%d (first error: %s)",
						i+1, r.name, rep.Errors, rep.Lost, rep.Duplicates, rep.OutOfOrder, rep.FirstError)
					if r.peer { // a peer's losses are a finding about it, not a failure of ours
						fmt.Fprintf(os.Stderr, "bench: peer %v\n", e)
						continue
					}
					failed = errors.Join(failed, e)
				}
			}
		}
	}
	fl := &result{name: floorName}
	ps, err := procstat.ReadStatus(floor.pid())
	if err != nil {
		return err
	}
	fl.peakRSS = ps.VmHWM
	if c.burstVehicles > 0 {
		fmt.Fprintf(os.Stderr, "bench: %s burst ...\n", floorName)
		if fl.burst, fl.burstRSS, err = burst(ctx, st, c, floorName, false, floor); err != nil {
			return fmt.Errorf("%s burst: %w", floorName, err)
		}
	}
	floorExit = floor.stop(5 * time.Second)
	fl.exit = floorExit
	printTables(out, fl, servers)
	return failed
}

// result is one server's rounds; the floor's has none of its own (its runs are the pairs'
// floor halves) but the peak RSS, burst and exit below.
type result struct {
	name    string
	peer    bool
	command string // a peer's
	rounds  []round

	peakRSS, burstRSS int64 // the floor's
	burst             load.Report
	exit              string
}

// sample is one load run and the server CPU it took.
type sample struct {
	rep load.Report
	cpu time.Duration // from the first call to the last answer
	// from the first call to the end of the Kafka verification: also the work a server does
	// after answering (the records' delivery), plus what it spends idle during the read
	cpuDelivered time.Duration
	// this process's CPU (the load tool, Kafka and the registry, on the other core) over the
	// same span as cpu: with cpu, whether a closed loop was bound by the server's core
	loadCPU time.Duration
	in      callTimes // the server's own measure of each call (fixed rate; not peers)
}

// pair is a server's run and the floor's run of the same kind right before it.
type pair struct{ srv, floor sample }

// round is one server's measurement in one round.
type round struct {
	closed, open pair
	offered      float64     // the fixed-rate pair's offered msg/s
	peakRSS      int64       // VmHWM after the closed-loop and fixed-rate runs
	burst        load.Report // --burst-vehicles at once
	burstRSS     int64       // VmHWM after the burst
	exit         string
}

// loadOptions is a run against addr under name's MQTT topics, verified from Kafka but for the
// floor's: ours as the Avro envelope keyed by vehicle; a peer's (isPeer) as the payload
// unchanged, keyed by something else than the vehicle.
func loadOptions(c config, st *stack.Stack, name, addr string, isPeer bool) load.Options {
	opts := load.Options{
		Addr: addr, Vehicles: c.vehicles, Pool: c.pool, RequestTimeout: c.requestTimeout,
		TopicTemplate: "bench/%s/" + name, PayloadBytes: c.payload, QoS: 1,
	}
	if name != floorName {
		opts.Bootstrap, opts.RegistryURL, opts.KafkaTopic = st.KafkaBootstrap(), st.RegistryURL(), "bench."+name
	}
	if isPeer {
		opts.Extract, opts.Unkeyed, opts.VerifyWait = load.RawPayload, true, c.peerVerifyWait
	}
	return opts
}

// measureRound runs srv through warm-up, the closed-loop pair and the fixed-rate pair (the
// floor first in each), and the burst when srv gets one.
func measureRound(ctx context.Context, st *stack.Stack, c config, name string, isPeer bool, srv, floor *child) (rd round, err error) {
	opts := loadOptions(c, st, name, srv.addr, isPeer)
	fopts := loadOptions(c, st, floorName, floor.addr, false)
	if c.warmup > 0 {
		w := opts
		w.Messages, w.Bootstrap = c.warmup, ""
		if _, err := load.Run(ctx, w); err != nil {
			return rd, fmt.Errorf("warm-up: %w", err)
		}
	}
	opts.Messages, fopts.Messages = c.messages, c.messages
	if rd.closed.floor, err = measured(ctx, floor, fopts); err != nil {
		return rd, fmt.Errorf("floor closed loop: %w", err)
	}
	if rd.closed.srv, err = measured(ctx, srv, opts); err != nil {
		return rd, fmt.Errorf("closed loop: %w", err)
	}
	rate := c.rate
	if rate == 0 {
		rate = rd.closed.srv.rep.Rate() * c.rateFraction
	}
	if rate > 0 {
		opts.Rate, opts.Messages, rd.offered = rate, c.rateMessages, rate
		fopts.Rate, fopts.Messages = rate, c.rateMessages
		if rd.open.floor, err = measuredInServer(ctx, floor, fopts); err != nil {
			return rd, fmt.Errorf("floor at the fixed rate: %w", err)
		}
		if rd.open.srv, err = measuredInServer(ctx, srv, opts); err != nil {
			return rd, fmt.Errorf("fixed rate: %w", err)
		}
	}
	ps, err := procstat.ReadStatus(srv.pid())
	if err != nil {
		return rd, err
	}
	rd.peakRSS = ps.VmHWM
	if c.burstVehicles > 0 && (isPeer || slices.Contains(c.burstModes, name)) {
		if rd.burst, rd.burstRSS, err = burst(ctx, st, c, name, isPeer, srv); err != nil {
			return rd, fmt.Errorf("burst: %w", err)
		}
	}
	return rd, nil
}

// measuredInServer is measured with the server's own call-time histogram read before and
// after the run, when the server serves one.
func measuredInServer(ctx context.Context, srv *child, opts load.Options) (sample, error) {
	if srv.metrics == "" {
		return measured(ctx, srv, opts)
	}
	before, err := scrapeCallTimes(ctx, srv.metrics)
	if err != nil {
		return sample{}, err
	}
	s, err := measured(ctx, srv, opts)
	if err != nil {
		return s, err
	}
	after, err := scrapeCallTimes(ctx, srv.metrics)
	if err != nil {
		return s, err
	}
	s.in, err = after.since(before)
	return s, err
}

// burst has --burst-vehicles publish at once (verified from Kafka but for the floor) and
// returns the server's VmHWM after it.
func burst(ctx context.Context, st *stack.Stack, c config, name string, isPeer bool, srv *child) (load.Report, int64, error) {
	opts := loadOptions(c, st, name, srv.addr, isPeer)
	opts.Vehicles, opts.Messages = c.burstVehicles, c.burstMessages
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
// Kafka verification, whose wait would otherwise add the idle producer's CPU), and until the
// verification's end.
func measured(ctx context.Context, srv *child, opts load.Options) (sample, error) {
	self := os.Getpid()
	cpu0, err := procstat.CPU(srv.pid())
	if err != nil {
		return sample{}, err
	}
	load0, err := procstat.CPU(self)
	if err != nil {
		return sample{}, err
	}
	var cpu1, load1 time.Duration
	var cpuErr, loadErr error
	opts.Answered = func() {
		cpu1, cpuErr = procstat.CPU(srv.pid())
		load1, loadErr = procstat.CPU(self)
	}
	rep, err := load.Run(ctx, opts)
	if err != nil {
		return sample{rep: rep}, err
	}
	if err := errors.Join(cpuErr, loadErr); err != nil {
		return sample{rep: rep}, err
	}
	cpu2, err := procstat.CPU(srv.pid())
	return sample{rep: rep, cpu: cpu1 - cpu0, cpuDelivered: cpu2 - cpu0, loadCPU: load1 - load0}, err
}

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
	addrs, err := readiness.FreeAddrs(2) // two calls of FreeAddr can return one port twice
	if err != nil {
		return nil, err
	}
	grpcAddr, httpAddr := addrs[0], addrs[1]
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
