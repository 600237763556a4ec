// Command loadgen calls an ExHook provider exactly as EMQX does (gRPC connection pool,
// OnProviderLoaded, one synchronous OnMessagePublish per message, each vehicle in sequence)
// for N simulated vehicles, then reads the Kafka topic back and prints a summary:
// sent, acked, consumed, lost. It exits 1 if anything acknowledged was lost, duplicated or
// reordered, or if a call failed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/iov-platform/iov/kit/cli"
	"github.com/iov-platform/iov/tools/devkit/load"
)

func main() {
	cli.Main("loadgen", func(ctx context.Context) error { return run(ctx, os.Args[1:]) })
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var o load.Options
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:9000", "ExHook provider gRPC address")
	fs.IntVar(&o.Vehicles, "vehicles", 100, "simulated vehicles (each publishes in sequence)")
	fs.IntVar(&o.Messages, "messages", 20, "messages per vehicle")
	fs.IntVar(&o.Pool, "pool", 8, "gRPC connections, like EMQX exhook pool_size")
	fs.DurationVar(&o.RequestTimeout, "timeout", 5*time.Second, "per-call deadline, like EMQX request_timeout")
	fs.StringVar(&o.TopicTemplate, "topic", "vehicles/%s/telemetry", "MQTT topic, %s = vehicle id")
	fs.IntVar(&o.PayloadBytes, "payload-bytes", 200, "approximate JSON payload size")
	qos := fs.Uint("qos", 1, "MQTT QoS")
	fs.StringVar(&o.Bootstrap, "kafka", "127.0.0.1:9092", "Kafka bootstrap to verify against (empty: no verification)")
	fs.StringVar(&o.RegistryURL, "registry", "http://127.0.0.1:8081", "schema registry URL for decoding")
	fs.StringVar(&o.KafkaTopic, "kafka-topic", "iov.vehicle.telemetry", "Kafka topic the route writes to")
	fs.DurationVar(&o.VerifyWait, "verify-wait", 60*time.Second, "how long to wait for records to show up in Kafka")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.QoS = uint32(*qos)
	rep, err := load.Run(ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
			return err
		}
	} else {
		rep.Print(os.Stdout, "loadgen")
	}
	if !rep.OK() {
		return fmt.Errorf("run failed: errors=%d lost=%d duplicates=%d out_of_order=%d", rep.Errors, rep.Lost, rep.Duplicates, rep.OutOfOrder)
	}
	return nil
}
