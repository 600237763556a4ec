// Package kafkacluster runs a real Apache Kafka cluster (KRaft, every node a combined
// broker+controller) on loopback for tests and local work: 1 or 3 nodes, free ports, storage
// formatted at start, readiness waits, and per-node faults (SIGKILL, SIGSTOP/SIGCONT, stop,
// restart). The broker jars come from Maven (tools/kafka/pom.xml) into a cache outside the
// repository; see Classpath.
package kafkacluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/iov-platform/iov/tools/devkit/readiness"
)

// Options configures Start.
type Options struct {
	Nodes int    // 1 or 3; default 1
	Dir   string // data, configs and logs; required (a test's t.TempDir())
	// Heap is the JVM -Xmx of each node; default 384m.
	Heap string
	// Secure adds a SASL_SSL listener with SCRAM-SHA-512 (users created at format time).
	Secure *Secure
	// Properties override or add broker settings on every node.
	Properties map[string]string
	// Detach runs the nodes in their own session so they outlive this process (make kafka-up).
	Detach bool
	// ReadyTimeout bounds Start's and Restart's waits; default 3 minutes.
	ReadyTimeout time.Duration
}

// Secure describes the SASL_SSL listener.
type Secure struct {
	CertPEM, KeyPEM []byte            // server certificate chain and PKCS#8 key, valid for 127.0.0.1
	Users           map[string]string // SCRAM-SHA-512 user -> password
}

// Cluster is a running (or stopped) set of nodes.
type Cluster struct {
	opts      Options
	classpath string
	clusterID string
	Nodes     []*Node
}

// Start formats storage for opts.Nodes nodes and starts them, waiting until every broker is
// registered and unfenced.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Nodes == 0 {
		opts.Nodes = 1
	}
	if opts.Nodes != 1 && opts.Nodes != 3 {
		return nil, fmt.Errorf("kafkacluster: %d nodes; want 1 or 3", opts.Nodes)
	}
	if opts.Dir == "" {
		return nil, errors.New("kafkacluster: Dir is required")
	}
	if opts.Heap == "" {
		opts.Heap = "384m"
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 3 * time.Minute
	}
	cp, err := Classpath(ctx)
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, classpath: cp, clusterID: newClusterID()}
	perNode := 2
	if opts.Secure != nil {
		perNode = 3
	}
	ports, err := freePorts(opts.Nodes * perNode) // distinct across the whole cluster
	if err != nil {
		return nil, err
	}
	for i := range opts.Nodes {
		n := &Node{ID: int32(i + 1), cluster: c, dir: filepath.Join(opts.Dir, fmt.Sprintf("node-%d", i+1))}
		p := ports[i*perNode:]
		n.Port, n.ControllerPort = p[0], p[1]
		if opts.Secure != nil {
			n.SecurePort = p[2]
		}
		c.Nodes = append(c.Nodes, n)
	}
	if err := c.writeFiles(); err != nil {
		return nil, err
	}
	for _, n := range c.Nodes {
		if err := n.format(ctx); err != nil {
			return nil, err
		}
	}
	for _, n := range c.Nodes {
		if err := n.launch(); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// newClusterID is a random Kafka Uuid in its base64 form. Like Kafka's Uuid.randomUuid it
// never starts with '-', which the storage tool would take for an option.
func newClusterID() string {
	b := make([]byte, 16)
	for {
		_, _ = rand.Read(b)
		if id := base64.RawURLEncoding.EncodeToString(b); id[0] != '-' {
			return id
		}
	}
}

// freePorts are n distinct free ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	addrs, err := readiness.FreeAddrs(n)
	if err != nil {
		return nil, err
	}
	ports := make([]int, n)
	for i, addr := range addrs {
		if _, err := fmt.Sscanf(addr[strings.LastIndexByte(addr, ':')+1:], "%d", &ports[i]); err != nil {
			return nil, fmt.Errorf("free port %q: %w", addr, err)
		}
	}
	return ports, nil
}

// Bootstrap is the bootstrap.servers list of the PLAINTEXT listeners.
func (c *Cluster) Bootstrap() string {
	var s []string
	for _, n := range c.Nodes {
		s = append(s, n.Addr())
	}
	return strings.Join(s, ",")
}

// SecureBootstrap is the bootstrap.servers list of the SASL_SSL listeners ("" without Secure).
func (c *Cluster) SecureBootstrap() string {
	if c.opts.Secure == nil {
		return ""
	}
	var s []string
	for _, n := range c.Nodes {
		s = append(s, fmt.Sprintf("127.0.0.1:%d", n.SecurePort))
	}
	return strings.Join(s, ",")
}

// Dir is the cluster's directory.
func (c *Cluster) Dir() string { return c.opts.Dir }

// Node returns the node with the given id (1-based), or nil.
func (c *Cluster) Node(id int32) *Node {
	if id < 1 || int(id) > len(c.Nodes) {
		return nil
	}
	return c.Nodes[id-1]
}

// Close stops every node (as Stop) and waits for them.
func (c *Cluster) Close() { c.Stop() }

// QuorumGrace is how long Stop lets the nodes shut down cleanly. The nodes stopping last lose
// the controller quorum, and a broker without a controller to approve its controlled
// shutdown waits for one for minutes (BrokerServer.shutdown); those are killed after this.
const QuorumGrace = 20 * time.Second

// Stop stops every node at once, as an outage would: SIGTERM, then SIGKILL for the nodes
// still running after QuorumGrace. It returns the ids of the nodes it had to kill.
func (c *Cluster) Stop() (killed []int32) {
	for _, n := range c.Nodes {
		n.signalStop()
	}
	deadline := time.After(QuorumGrace)
	for _, n := range c.Nodes {
		if n.done == nil {
			continue
		}
		select {
		case <-n.done:
		case <-deadline:
			deadline = closedTimer
			if n.Running() {
				_ = n.cmd.Process.Signal(syscall.SIGKILL)
				killed = append(killed, n.ID)
			}
			<-n.done
		}
	}
	return killed
}

// closedTimer is a channel that is always ready: the deadline has passed for every node.
var closedTimer = func() <-chan time.Time {
	ch := make(chan time.Time)
	close(ch)
	return ch
}()

// Restart starts every stopped node and waits until the cluster is ready again.
func (c *Cluster) Restart(ctx context.Context) error {
	for _, n := range c.Nodes {
		if !n.Running() {
			if err := n.launch(); err != nil {
				return err
			}
		}
	}
	return c.WaitReady(ctx)
}

func (c *Cluster) voters() string {
	var v []string
	for _, n := range c.Nodes {
		v = append(v, fmt.Sprintf("%d@127.0.0.1:%d", n.ID, n.ControllerPort))
	}
	return strings.Join(v, ",")
}

func (c *Cluster) properties(n *Node) map[string]string {
	rf := fmt.Sprint(len(c.Nodes))
	minISR := fmt.Sprint(min(2, len(c.Nodes)))
	p := map[string]string{
		"process.roles":                                    "broker,controller",
		"node.id":                                          fmt.Sprint(n.ID),
		"controller.quorum.voters":                         c.voters(),
		"controller.listener.names":                        "CONTROLLER",
		"inter.broker.listener.name":                       "PLAINTEXT",
		"listeners":                                        fmt.Sprintf("PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", n.Port, n.ControllerPort),
		"advertised.listeners":                             fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", n.Port),
		"listener.security.protocol.map":                   "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SECURE:SASL_SSL",
		"log.dirs":                                         filepath.Join(n.dir, "data"),
		"auto.create.topics.enable":                        "true",
		"num.partitions":                                   "3",
		"default.replication.factor":                       rf,
		"min.insync.replicas":                              minISR,
		"offsets.topic.replication.factor":                 rf,
		"offsets.topic.num.partitions":                     "3",
		"transaction.state.log.replication.factor":         rf,
		"transaction.state.log.min.isr":                    minISR,
		"transaction.state.log.num.partitions":             "3",
		"share.coordinator.state.topic.replication.factor": rf,
		"share.coordinator.state.topic.min.isr":            minISR,
		"group.initial.rebalance.delay.ms":                 "0",
		"unclean.leader.election.enable":                   "false",
		// Small machine: few threads per node.
		"num.network.threads":               "2",
		"num.io.threads":                    "2",
		"background.threads":                "2",
		"num.replica.fetchers":              "1",
		"num.recovery.threads.per.data.dir": "1",
		"log.cleaner.threads":               "1",
		"log.cleaner.dedupe.buffer.size":    "4194304",
	}
	if s := c.opts.Secure; s != nil {
		p["listeners"] += fmt.Sprintf(",SECURE://127.0.0.1:%d", n.SecurePort)
		p["advertised.listeners"] += fmt.Sprintf(",SECURE://127.0.0.1:%d", n.SecurePort)
		p["listener.name.secure.sasl.enabled.mechanisms"] = "SCRAM-SHA-512"
		p["listener.name.secure.scram-sha-512.sasl.jaas.config"] = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
		p["listener.name.secure.ssl.keystore.type"] = "PEM"
		p["listener.name.secure.ssl.keystore.location"] = filepath.Join(c.opts.Dir, "tls", "server.pem")
	}
	maps.Copy(p, c.opts.Properties)
	return p
}

const log4j2 = `status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
`

func (c *Cluster) writeFiles() error {
	if s := c.opts.Secure; s != nil {
		dir := filepath.Join(c.opts.Dir, "tls")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("tls dir: %w", err)
		}
		// Kafka's PEM key store: the private key (PKCS#8) followed by the certificate chain.
		pem := slices.Concat(s.KeyPEM, s.CertPEM)
		if err := os.WriteFile(filepath.Join(dir, "server.pem"), pem, 0o600); err != nil {
			return fmt.Errorf("tls key store: %w", err)
		}
	}
	for _, n := range c.Nodes {
		if err := os.MkdirAll(filepath.Join(n.dir, "logs"), 0o755); err != nil {
			return fmt.Errorf("node dir: %w", err)
		}
		props := c.properties(n)
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(props)) {
			fmt.Fprintf(&b, "%s=%s\n", k, props[k])
		}
		if err := os.WriteFile(n.configPath(), []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("node config: %w", err)
		}
		if err := os.WriteFile(filepath.Join(n.dir, "log4j2.properties"), []byte(log4j2), 0o644); err != nil {
			return fmt.Errorf("node log config: %w", err)
		}
	}
	return nil
}
