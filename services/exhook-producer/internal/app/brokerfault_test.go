package app_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iov-platform/iov/services/exhook-producer/internal/config"
	"github.com/iov-platform/iov/tools/devkit/kafkacluster"
	"github.com/iov-platform/iov/tools/devkit/kafkacluster/kafkatest"
	"github.com/iov-platform/iov/tools/devkit/load"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

// The broker fault tests run the producer in-process against a real 3-node Kafka (KRaft,
// combined nodes), topics at RF=3 and min.insync.replicas=2, with one route per delivery mode
// driven at the same time by the EMQX simulator (load.Run), inject one broker fault in the
// middle of the load, and then verify from Kafka what EMQX was told:
//
//   - lost (acknowledged to EMQX, absent from Kafka) is 0 for sync and spool, and measured
//     for async;
//   - duplicates are 0 for async and sync (the idempotent producer) unless the producer took
//     a new epoch (exhook_kafka_producer_idempotence_resets_total) or was replaced after a
//     fatal error: records in flight then may be written twice (librdkafka issue #4953,
//     kafkasink's TestResetWritesAnInFlightRecordTwice); measured for spool (its shipper
//     re-sends after a failed delivery: at-least-once);
//   - no record is read back twice at the same offset (that would be the verifier's fault);
//   - per-vehicle order holds in every mode;
//   - the time to recover is the longest time a vehicle went without an acknowledgement.
//
// Run one with: IOV_REAL_KAFKA=1 go test -race -run 'TestBrokerFaults/kill-leader' ./internal/app/
// IOV_FAULT_REPORT=file appends one line per fault and mode to file (for the README table).

var faultModes = []string{"async", "sync", "spool"}

func faultTopic(mode string) string { return "iov.fault." + mode }

func faultConfig(t *testing.T, bootstrap, registry, spoolDir string) *config.Config {
	t.Helper()
	var routes strings.Builder
	for _, m := range faultModes {
		fmt.Fprintf(&routes, "  - {name: %s, filter: \"vehicles/+/%s\", kafkaTopic: %s, key: {from: topic-segment, segment: 1}, payload: json, delivery: %s}\n",
			m, m, faultTopic(m), m)
	}
	cfg, err := config.Parse(fmt.Appendf(nil, `
grpc: {listenAddress: "127.0.0.1:0"}
http: {listenAddress: "127.0.0.1:0"}
log: {level: warn, format: text}
kafka:
  bootstrapServers: %q
  syncTimeout: 4s
  properties: {linger.ms: "5", statistics.interval.ms: "200"}
registry: {url: %q}
shutdown: {drainTimeout: 30s}
spool: {dir: %q, maxBytes: 268435456, whenFull: reject}
topics: {status: %s, deadLetter: %s}
routes:
%s`, bootstrap, registry, spoolDir, statusTopic, deadTopic, routes.String()))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// brokerFault injects a fault into the cluster and undoes it; it returns when the cluster is
// whole again.
type brokerFault func(ctx context.Context, t *testing.T, c *kafkacluster.Cluster) error

// sessionTimeout is the brokers' broker.session.timeout.ms (Kafka's default, 9s).
const sessionTimeout = 9 * time.Second

var brokerFaults = []struct {
	name  string
	fault brokerFault
}{
	{"kill-leader", func(ctx context.Context, t *testing.T, c *kafkacluster.Cluster) error {
		leader, err := c.Leader(ctx, faultTopic("sync"), 0)
		if err != nil {
			return err
		}
		t.Logf("SIGKILL node %d (leader of %s/0)", leader, faultTopic("sync"))
		if err := c.Node(leader).Kill(); err != nil {
			return err
		}
		time.Sleep(10 * time.Second)
		return c.Node(leader).Start(ctx)
	}},
	{"pause-broker", func(ctx context.Context, t *testing.T, c *kafkacluster.Cluster) error {
		leader, err := c.Leader(ctx, faultTopic("sync"), 0)
		if err != nil {
			return err
		}
		pause := sessionTimeout + 6*time.Second
		t.Logf("SIGSTOP node %d (leader of %s/0) for %s", leader, faultTopic("sync"), pause)
		if err := c.Node(leader).Pause(); err != nil {
			return err
		}
		time.Sleep(pause)
		if err := c.Node(leader).Resume(); err != nil {
			return err
		}
		return c.WaitReady(ctx)
	}},
	{"restart-all", func(ctx context.Context, t *testing.T, c *kafkacluster.Cluster) error {
		t.Log("stopping every node")
		if killed := c.Stop(); len(killed) > 0 {
			t.Logf("nodes %v killed after %s without a quorum to approve their shutdown", killed, kafkacluster.QuorumGrace)
		}
		time.Sleep(3 * time.Second)
		return c.Restart(ctx)
	}},
	{"restart-controller", func(ctx context.Context, t *testing.T, c *kafkacluster.Cluster) error {
		ctl, err := c.ActiveController(ctx)
		if err != nil {
			return err
		}
		t.Logf("restarting node %d (active controller)", ctl)
		if err := c.Node(ctl).Stop(); err != nil {
			return err
		}
		return c.Node(ctl).Start(ctx)
	}},
}

func TestBrokerFaults(t *testing.T) {
	kafkatest.Skip(t)
	for _, bf := range brokerFaults {
		t.Run(bf.name, func(t *testing.T) { runBrokerFault(t, bf.name, bf.fault) })
	}
}

func runBrokerFault(t *testing.T, name string, fault brokerFault) {
	c := kafkatest.Start(t, kafkacluster.Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var specs []kafkacluster.TopicSpec
	for _, topic := range []string{faultTopic("async"), faultTopic("sync"), faultTopic("spool"), statusTopic, deadTopic} {
		specs = append(specs, kafkacluster.TopicSpec{Name: topic, Partitions: 3, ReplicationFactor: 3,
			Configs: map[string]string{"min.insync.replicas": "2"}})
	}
	if err := c.CreateTopics(ctx, specs...); err != nil {
		t.Fatal(err)
	}
	st, err := stack.Start(stack.Options{Bootstrap: c.Bootstrap()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	h := start(t, faultConfig(t, st.KafkaBootstrap(), st.RegistryURL(), t.TempDir()), st)

	// Each vehicle publishes 300 messages 50 ms apart: ~15s of load without faults, so the
	// fault, injected 4s in, happens while every mode is busy.
	reports := make([]load.Report, len(faultModes))
	errs := make([]error, len(faultModes))
	var wg sync.WaitGroup
	for i, mode := range faultModes {
		wg.Go(func() {
			reports[i], errs[i] = load.Run(ctx, load.Options{
				Addr: h.app.GRPCAddr(), Vehicles: 8, Messages: 300, Interval: 50 * time.Millisecond,
				Pool: 4, RequestTimeout: 5 * time.Second, QoS: 1,
				TopicTemplate: "vehicles/%s/" + mode,
				Bootstrap:     st.KafkaBootstrap(), RegistryURL: st.RegistryURL(), KafkaTopic: faultTopic(mode),
				VerifyWait: 3 * time.Minute,
			})
		})
	}
	time.Sleep(4 * time.Second)
	faultAt := time.Now()
	if err := fault(ctx, t, c); err != nil {
		t.Fatalf("fault %s: %v", name, err)
	}
	t.Logf("cluster whole again %s after the fault", time.Since(faultAt).Round(time.Millisecond))
	wg.Wait()
	time.Sleep(time.Second) // statistics.interval.ms: the resets counted so far show
	metrics := get(t, "http://"+h.app.HTTPAddr()+"/metrics")
	resets, recoveries := counter(t, metrics, "exhook_kafka_producer_idempotence_resets_total", "main"),
		counter(t, metrics, "exhook_kafka_producer_recoveries_total", "main")

	for i, mode := range faultModes {
		if errs[i] != nil {
			t.Fatalf("%s: %v", mode, errs[i])
		}
		r := reports[i]
		line := fmt.Sprintf("fault=%s mode=%s sent=%d acked=%d errors=%d in_kafka=%d lost=%d duplicates=%d out_of_order=%d longest_stall=%s",
			name, mode, r.Sent, r.Acked, r.Errors, r.Consumed, r.Lost, r.Duplicates, r.OutOfOrder, r.LongestStall.Round(100*time.Millisecond))
		if mode != "spool" {
			line += fmt.Sprintf(" resets=%v recoveries=%v", resets, recoveries)
		}
		t.Log(line)
		for _, d := range r.DuplicateAt {
			t.Logf("%s: duplicate: %s", mode, d)
		}
		appendReport(t, line)
		if r.Acked == 0 {
			t.Errorf("%s: nothing acknowledged", mode)
		}
		if r.ReadTwice != 0 {
			t.Errorf("%s: the verifier read %d records twice at the same offset", mode, r.ReadTwice)
		}
		if r.OutOfOrder != 0 {
			t.Errorf("%s: %d records out of per-vehicle order", mode, r.OutOfOrder)
		}
		switch mode {
		case "sync", "spool":
			if r.Lost != 0 {
				t.Errorf("%s: %d acknowledged messages lost", mode, r.Lost)
			}
		}
		switch mode {
		case "async", "sync":
			if r.Duplicates != 0 && resets == 0 && recoveries == 0 {
				t.Errorf("%s: %d duplicates, yet the producer kept its epoch and was not replaced", mode, r.Duplicates)
			}
		case "spool":
			if r.Errors != 0 {
				t.Errorf("spool: %d calls failed; the spool acknowledges from disk whatever Kafka does", r.Errors)
			}
		}
	}
	if err := h.stop(t); err != nil {
		t.Errorf("producer shutdown after %s: %v", name, err)
	}
}

func appendReport(t *testing.T, line string) {
	path := os.Getenv("IOV_FAULT_REPORT")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Errorf("fault report: %v", err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339), line)
}

// counter reads the value of a counter with label producer from a /metrics page.
func counter(t *testing.T, metrics, name, producer string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `\{producer="` + producer + `"\} (\S+)$`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("%s{producer=%q} not in /metrics", name, producer)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
