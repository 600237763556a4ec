// Command compare runs, in one run on this machine, the baseline Python exhook bridge
// (tools/baseline-python: grpcio + kafka-python) and our exhook-producer binary against the
// same in-process Kafka, drives each with the same EMQX-like load (load.Run) and prints, for
// each, msg/s, p50/p99 hook latency, peak RSS (VmHWM) and CPU of the server process, what was
// lost in Kafka, and the ratios between the two.
//
// Each (server, mode) pair gets a fresh server process and its own Kafka topic, a warm-up
// load that is verified and excluded from the numbers, then the measured load. The servers
// run one after the other, never at the same time. Both are verified by load's verifier: our
// producer's records as Avro envelopes, the bridge's through bridgeEnvelope (its JSON
// envelope), so lost, duplicated and reordered counts are exact for both.
//
// The exit status is non-zero when our producer errs or loses anything; what the Python
// bridge loses is reported, not treated as a failure of the tool.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iov-platform/iov/kit/cli"
	"github.com/iov-platform/iov/tools/devkit/load"
	"github.com/iov-platform/iov/tools/devkit/procstat"
	"github.com/iov-platform/iov/tools/devkit/stack"
	"github.com/iov-platform/iov/tools/devkit/stats"
)

func main() {
	cli.Main("compare", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdout) })
}

type config struct {
	producer, python, bridge   string
	vehicles, messages, pool   int
	payload, warmup, pyWorkers int
	rounds                     int
	requestTimeout, verifyWait time.Duration
	modes                      []string
}

const (
	mqttTopic  = "compare/%s/telemetry"
	mqttFilter = "compare/+/telemetry"
	nameOurs   = "exhook-producer"
	namePython = "python-bridge"
)

var semantics = map[string]string{
	"async": "async for both: our route `delivery: async` answers EMQX once librdkafka has queued the record; " +
		"the bridge answers once kafka-python's send() has queued it (no future.get). Both acks=all, keyed by vehicle; " +
		"Kafka is read back afterwards to count what was lost.",
	"sync": "sync for both: our route `delivery: sync` answers after Kafka acknowledged the record; " +
		"the bridge (--sync) answers after future.get(timeout) returned. Both acks=all, keyed by vehicle.",
}

func kafkaTopic(server, mode string) string { return "compare." + server + "." + mode }

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	var c config
	fs.StringVar(&c.producer, "producer", "bin/exhook-producer", "exhook-producer binary")
	fs.StringVar(&c.python, "python", "/usr/bin/python3", "Python interpreter with grpcio, kafka-python and protobuf (tools/baseline-python/install-deps.sh prints its venv's)")
	fs.StringVar(&c.bridge, "bridge", "tools/baseline-python/exhook_bridge.py", "the baseline Python bridge")
	fs.IntVar(&c.vehicles, "vehicles", 1000, "simulated vehicles (each publishes in sequence, all in parallel)")
	fs.IntVar(&c.messages, "messages", 10, "messages per vehicle (measured run)")
	fs.IntVar(&c.pool, "pool", 8, "gRPC connections, like EMQX exhook pool_size")
	fs.IntVar(&c.payload, "payload-bytes", 200, "approximate JSON payload size")
	fs.IntVar(&c.warmup, "warmup", 1, "warm-up messages per vehicle before the measured rounds (0: none)")
	fs.IntVar(&c.rounds, "rounds", 3, "measured rounds per server and mode; the table shows the median of each figure")
	fs.IntVar(&c.pyWorkers, "python-workers", 10, "the bridge's gRPC thread pool size (--workers)")
	fs.DurationVar(&c.requestTimeout, "request-timeout", 5*time.Second, "per-call deadline, like EMQX request_timeout")
	fs.DurationVar(&c.verifyWait, "verify-wait", 30*time.Second, "how long to wait for records to show up in Kafka")
	sync := fs.Bool("sync", false, "also compare sync delivery (our `delivery: sync` vs the bridge's --sync)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if c.vehicles <= 0 || c.messages <= 0 || c.pool <= 0 || c.rounds <= 0 || c.warmup < 0 || c.pyWorkers <= 0 {
		return errors.New("-vehicles, -messages, -pool, -rounds and -python-workers must be positive, -warmup not negative")
	}
	c.modes = []string{"async"}
	if *sync {
		c.modes = append(c.modes, "sync")
	}
	for _, f := range []string{c.producer, c.python, c.bridge} {
		if _, err := os.Stat(f); err != nil {
			return err
		}
	}
	if out, err := exec.Command(c.python, "-c", "import grpc, kafka, google.protobuf").CombinedOutput(); err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return fmt.Errorf("%s cannot import grpc, kafka and google.protobuf (%s); run tools/baseline-python/install-deps.sh", c.python, lines[len(lines)-1])
	}
	if _, err := exec.LookPath("protoc"); err != nil {
		return errors.New("the bridge needs protoc; run tools/baseline-python/install-deps.sh")
	}

	var topics []string
	for _, m := range c.modes {
		topics = append(topics, kafkaTopic("python", m), kafkaTopic("ours", m))
	}
	st, err := stack.Start(stack.Options{Partitions: 6, Topics: topics})
	if err != nil {
		return err
	}
	defer st.Close()

	fmt.Fprintf(out, "compare: %d vehicles x %d messages per round, %d rounds per server and mode (+%d warm-up per vehicle), pool %d, payload ~%dB, request timeout %s\n",
		c.vehicles, c.messages, c.rounds, c.warmup, c.pool, c.payload, c.requestTimeout)
	fmt.Fprintf(out, "compare: one server at a time on this machine, each a fresh process with its own Kafka topic on the same in-process Kafka; bridge workers %d\n", c.pyWorkers)
	var results []result
	var failed error
	for _, mode := range c.modes {
		fmt.Fprintf(out, "compare: %s\n", semantics[mode])
		for _, name := range []string{namePython, nameOurs} {
			fmt.Fprintf(os.Stderr, "compare: %s %s ...\n", name, mode)
			r, err := measure(ctx, st, c, name, mode)
			if err != nil {
				return fmt.Errorf("%s %s: %w", name, mode, err)
			}
			results = append(results, r)
			if name == nameOurs && !r.ok() {
				failed = errors.Join(failed, fmt.Errorf("%s %s: errors=%d lost=%d duplicates=%d out_of_order=%d (first error: %s)",
					name, mode, r.errors, r.lost, r.duplicates, r.outOfOrder, r.firstError))
			}
		}
	}
	printResults(out, results)
	return failed
}

// result is one (server, mode) measurement over its rounds.
type result struct {
	server, mode string
	rounds       []load.Report

	// Summary of the rounds: medians of rate and latencies, the rate's range, sums of counts.
	rate, rateMin, rateMax float64
	p50, p99, max          time.Duration
	acked, errors          int
	firstError             string

	// Kafka check of the measured rounds (sums).
	lost, duplicates, outOfOrder int
	peakRSS                      int64         // bytes, VmHWM of the server process
	cpu                          time.Duration // server CPU (user+sys) over the measured rounds
	exit                         string        // how the server stopped
	stats                        string        // the bridge's own counters at exit
}

func (r result) ok() bool {
	return r.errors == 0 && r.lost == 0 && r.duplicates == 0 && r.outOfOrder == 0
}

func (r result) cpuPerMsg() time.Duration {
	if r.acked == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.acked)
}

// summarize fills the summary fields from the rounds.
func (r *result) summarize() {
	var rates []float64
	var p50s, p99s, maxs []time.Duration
	r.acked, r.errors, r.firstError = 0, 0, ""
	for _, rep := range r.rounds {
		rates = append(rates, rep.Rate())
		p50s, p99s, maxs = append(p50s, rep.P50), append(p99s, rep.P99), append(maxs, rep.Max)
		r.acked += rep.Acked
		r.errors += rep.Errors
		if r.firstError == "" {
			r.firstError = rep.FirstError
		}
	}
	r.rate, r.p50, r.p99, r.max = stats.Median(rates), stats.Median(p50s), stats.Median(p99s), stats.Median(maxs)
	if len(rates) > 0 {
		r.rateMin, r.rateMax = slices.Min(rates), slices.Max(rates)
	}
}

// measure starts one server, warms it up, runs and verifies the measured load, reads its
// peak RSS and CPU, and stops it.
func measure(ctx context.Context, st *stack.Stack, c config, name, mode string) (res result, err error) {
	res = result{server: name, mode: mode}
	var srv *server
	topic := kafkaTopic("ours", mode)
	if name == namePython {
		topic = kafkaTopic("python", mode)
		srv, err = startPython(ctx, pythonOptions{
			Python: c.python, Bridge: c.bridge, Bootstrap: st.KafkaBootstrap(), Topic: topic,
			Filter: mqttFilter, Workers: c.pyWorkers, Sync: mode == "sync", Log: os.Stderr,
		})
	} else {
		srv, err = startProducer(ctx, producerOptions{
			Binary: c.producer, Bootstrap: st.KafkaBootstrap(), RegistryURL: st.RegistryURL(), Topic: topic,
			Filter: mqttFilter, Delivery: mode, Log: os.Stderr,
		})
	}
	if err != nil {
		return res, err
	}
	defer func() {
		res.exit = srv.stop(60 * time.Second)
		res.stats = srv.Stats()
	}()

	opts := load.Options{
		Addr: srv.addr, Pool: c.pool, RequestTimeout: c.requestTimeout, TopicTemplate: mqttTopic,
		PayloadBytes: c.payload, QoS: 1, Vehicles: c.vehicles, VerifyWait: c.verifyWait,
		Bootstrap: st.KafkaBootstrap(), RegistryURL: st.RegistryURL(), KafkaTopic: topic,
	}
	if name == namePython {
		opts.Extract = bridgeEnvelope
	}
	if c.warmup > 0 {
		w := opts
		w.Messages = c.warmup
		rep, err := load.Run(ctx, w)
		if err != nil {
			return res, fmt.Errorf("warm-up: %w", err)
		}
		if rep.Errors > 0 {
			fmt.Fprintf(os.Stderr, "compare: %s %s warm-up: %d hook errors (first: %s)\n", name, mode, rep.Errors, rep.FirstError)
		}
	}

	cpu0, err := procstat.CPU(srv.pid())
	if err != nil {
		return res, err
	}
	opts.Messages = c.messages
	for range c.rounds {
		rep, err := load.Run(ctx, opts)
		if err != nil {
			return res, err
		}
		res.rounds = append(res.rounds, rep)
		res.lost, res.duplicates, res.outOfOrder = res.lost+rep.Lost, res.duplicates+rep.Duplicates, res.outOfOrder+rep.OutOfOrder
	}
	res.summarize()
	cpu1, err := procstat.CPU(srv.pid())
	if err != nil {
		return res, err
	}
	res.cpu = cpu1 - cpu0
	ps, err := procstat.ReadStatus(srv.pid())
	if err != nil {
		return res, err
	}
	res.peakRSS = ps.VmHWM
	return res, nil
}

// ratio is a/b, or 0 when either is not positive (nothing to compare).
func ratio(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return a / b
}

func fmtRatio(x float64) string {
	if x == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1fx", x)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func printResults(w io.Writer, results []result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "server\tmode\tmsg/s\t(range)\tp50\tp99\tmax\tacked\terrors\tlost\tdup\treordered\tpeak RSS\tCPU/msg\texit")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f-%.0f\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", r.server, r.mode,
			r.rate, r.rateMin, r.rateMax, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.max.Round(time.Microsecond),
			r.acked, r.errors, r.lost, r.duplicates, r.outOfOrder, mib(r.peakRSS), r.cpuPerMsg().Round(time.Microsecond), r.exit)
	}
	tw.Flush()
	byKey := map[string]result{}
	for _, r := range results {
		byKey[r.server+"/"+r.mode] = r
	}
	for _, r := range results {
		if r.server != nameOurs {
			continue
		}
		py, ok := byKey[namePython+"/"+r.mode]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "ratios %s: msg/s ours/python %s; python/ours: p50 %s, p99 %s, peak RSS %s, CPU/msg %s\n", r.mode,
			fmtRatio(ratio(r.rate, py.rate)),
			fmtRatio(ratio(float64(py.p50), float64(r.p50))),
			fmtRatio(ratio(float64(py.p99), float64(r.p99))),
			fmtRatio(ratio(float64(py.peakRSS), float64(r.peakRSS))),
			fmtRatio(ratio(float64(py.cpuPerMsg()), float64(r.cpuPerMsg()))))
		if !py.ok() {
			fmt.Fprintf(w, "note %s: the python bridge had errors=%d lost=%d duplicates=%d reordered=%d (first error: %s)\n", r.mode,
				py.errors, py.lost, py.duplicates, py.outOfOrder, py.firstError)
		}
	}
	fmt.Fprintln(w, "msg/s, p50, p99, max: median over the rounds (range: slowest-fastest round); latency is per hook call as the EMQX-like "+
		"client sees it, queueing included (every vehicle has one call in flight); acked/errors/lost/dup/reordered: sums over the rounds; "+
		"peak RSS: the server process's VmHWM; CPU/msg: the server process's user+sys time over the measured rounds and their Kafka checks, per acked message.")
	for _, r := range results {
		if r.stats != "" {
			fmt.Fprintf(w, "%s %s counters at exit (incl. warm-up): %s\n", r.server, r.mode, r.stats)
		}
		if r.exit != "exit 0" {
			fmt.Fprintf(w, "note: %s %s stopped with %s (want exit 0 after SIGTERM)\n", r.server, r.mode, r.exit)
		}
	}
}
