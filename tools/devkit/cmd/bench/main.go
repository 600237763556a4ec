// Command bench measures the exhook producer binary end to end on this machine: it starts
// the in-process Kafka + registry, runs the producer as a child process, and drives it with
// the EMQX-like load (1k vehicles by default) once through an async route and once through a
// sync route, printing msg/s and p50/p99 hook latency for each. Every run is also verified
// against Kafka (lost must be 0).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/iov-platform/iov/tools/devkit/load"
	"github.com/iov-platform/iov/tools/devkit/readiness"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) { // --help printed the usage: exit 0
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

const producerConfig = `
grpc: {listenAddress: %q}
http: {listenAddress: %q}
log: {level: warn, format: text}
kafka:
  bootstrapServers: %q
  properties: {linger.ms: "5"}
registry: {url: %q}
routes:
  - {name: async, filter: "bench/+/async", kafkaTopic: bench.async, key: {from: topic-segment, segment: 1}, payload: json, delivery: async}
  - {name: sync, filter: "bench/+/sync", kafkaTopic: bench.sync, key: {from: topic-segment, segment: 1}, payload: json, delivery: sync}
`

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	bin := fs.String("producer", "bin/exhook-producer", "exhook-producer binary")
	vehicles := fs.Int("vehicles", 1000, "simulated vehicles")
	messages := fs.Int("messages", 20, "messages per vehicle per mode")
	pool := fs.Int("pool", 8, "gRPC connections")
	payload := fs.Int("payload-bytes", 200, "approximate payload size")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := stack.Start(stack.Options{Partitions: 6, Topics: []string{"bench.async", "bench.sync"}})
	if err != nil {
		return err
	}
	defer st.Close()

	grpcAddr, err := readiness.FreeAddr()
	if err != nil {
		return err
	}
	httpAddr, err := readiness.FreeAddr()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfgPath := filepath.Join(dir, "producer.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, producerConfig, grpcAddr, httpAddr, st.KafkaBootstrap(), st.RegistryURL()), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(*bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start producer: %w", err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	if err := readiness.Wait(ctx, httpAddr, nil); err != nil {
		return err
	}

	fmt.Printf("bench: %d vehicles x %d messages per mode, pool %d, payload ~%dB\n", *vehicles, *messages, *pool, *payload)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "mode\tmsg/s\tp50\tp99\tmax\tacked\terrors\tlost")
	var failed error
	for _, mode := range []string{"async", "sync"} {
		rep, err := load.Run(ctx, load.Options{
			Addr: grpcAddr, Vehicles: *vehicles, Messages: *messages, Pool: *pool, RequestTimeout: 5 * time.Second,
			TopicTemplate: "bench/%s/" + mode, PayloadBytes: *payload, QoS: 1,
			Bootstrap: st.KafkaBootstrap(), RegistryURL: st.RegistryURL(), KafkaTopic: "bench." + mode,
		})
		if err != nil {
			return fmt.Errorf("%s: %w", mode, err)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%d\t%d\t%d\n", mode, rep.Rate(), rep.P50.Round(time.Microsecond),
			rep.P99.Round(time.Microsecond), rep.Max.Round(time.Microsecond), rep.Acked, rep.Errors, rep.Lost)
		if !rep.OK() {
			failed = errors.Join(failed, fmt.Errorf("%s: errors=%d lost=%d dup=%d reordered=%d", mode, rep.Errors, rep.Lost, rep.Duplicates, rep.OutOfOrder))
		}
	}
	tw.Flush()
	return failed
}
