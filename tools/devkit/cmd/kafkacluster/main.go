// Command kafkacluster starts and stops a real Apache Kafka cluster (KRaft, combined
// broker+controller nodes) on loopback for local work: `make kafka-up` / `make kafka-down`.
// The broker jars are resolved with Maven from tools/kafka/pom.xml into ~/.cache/iov-kafka.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/iov-platform/iov/tools/devkit/kafkacluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafkacluster:", err)
		os.Exit(1)
	}
}

const usage = `usage: kafkacluster up|down [flags]
  up    format storage and start the nodes in the background; waits until they are ready
        and writes DIR/cluster.env (KAFKA_BOOTSTRAP=...)
  down  stop the nodes started in DIR (SIGTERM, SIGKILL after --grace)
flags:`

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("kafkacluster", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), usage); fs.PrintDefaults() }
	dir := fs.String("dir", ".cache/kafka", "cluster directory (configs, data, logs, pids)")
	nodes := fs.Int("nodes", 1, "number of nodes: 1 or 3")
	heap := fs.String("heap", "384m", "JVM -Xmx per node")
	grace := fs.Duration("grace", kafkacluster.QuorumGrace, "down: how long the nodes may take to stop before SIGKILL (the last of 3 loses its quorum and would wait minutes)")
	if len(args) == 0 {
		fs.Usage()
		return errors.New("missing command")
	}
	cmd := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch cmd {
	case "up":
		if _, err := os.Stat(*dir + "/" + kafkacluster.StateFile); err == nil {
			return fmt.Errorf("a cluster is already up in %s (run down first)", *dir)
		}
		if err := os.RemoveAll(*dir); err != nil {
			return fmt.Errorf("clean %s: %w", *dir, err)
		}
		fmt.Printf("kafkacluster: resolving jars and starting %d node(s) in %s\n", *nodes, *dir)
		c, err := kafkacluster.Start(ctx, kafkacluster.Options{Nodes: *nodes, Dir: *dir, Heap: *heap, Detach: true})
		if err != nil {
			return err
		}
		if err := c.WriteState(); err != nil {
			c.Close()
			return err
		}
		fmt.Printf("kafkacluster: ready: bootstrap=%s (logs: %s/node-*/logs/server.log)\n", c.Bootstrap(), *dir)
		return nil
	case "down":
		fmt.Printf("kafkacluster: stopping the nodes in %s (grace %s)\n", *dir, *grace)
		pids, err := kafkacluster.StopDetached(*dir, *grace)
		fmt.Printf("kafkacluster: stopped %d node(s)\n", len(pids))
		return err
	default:
		fs.Usage()
		return fmt.Errorf("unknown command %q", cmd)
	}
}
