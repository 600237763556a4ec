// Command devstack runs an in-process Kafka (franz-go kfake) and schema registry (srfake) on
// fixed loopback ports until interrupted: the embedded backing services of `make demo`.
// For development and tests only.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/iov-platform/iov/kit/cli"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

func main() {
	cli.Main("devstack", func(ctx context.Context) error { return run(ctx, os.Args[1:]) })
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	kafkaPort := fs.Int("kafka-port", 9092, "Kafka listener port on 127.0.0.1")
	registry := fs.String("registry", "127.0.0.1:8081", "schema registry listen address")
	partitions := fs.Int("partitions", 6, "partitions per topic")
	topics := fs.String("topics", "iov.vehicle.telemetry,iov.vehicle.events,iov.vehicle.raw,iov.vehicle.status,iov.deadletter,iov.consumer.deadletter",
		"comma-separated topics to create up front (others are auto-created)")
	dataDir := fs.String("data-dir", "", "persist Kafka records here (default: memory only)")
	enforce := fs.Bool("enforce-compat", false, "make the registry refuse incompatible schemas as Confluent's does (srfake alone accepts all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := stack.Start(stack.Options{
		KafkaPort: *kafkaPort, RegistryAddr: *registry, Partitions: int32(*partitions),
		Topics: strings.Split(*topics, ","), DataDir: *dataDir, EnforceCompat: *enforce,
	})
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Printf("devstack ready: kafka=%s registry=%s\n", st.KafkaBootstrap(), st.RegistryURL())
	<-ctx.Done()
	fmt.Println("devstack stopping")
	return nil
}
