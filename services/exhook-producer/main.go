// Command exhook-producer is EMQX's ExHook gRPC server: it forwards MQTT messages and client
// lifecycle events to Kafka as Avro records registered in a schema registry.
package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/iov-platform/iov/kit/logging"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/iov-platform/iov/services/exhook-producer/internal/app"
	"github.com/iov-platform/iov/services/exhook-producer/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "exhook-producer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("exhook-producer", flag.ContinueOnError)
	path := fs.String("config", "", "YAML config file (default: the embedded loopback config)")
	check := fs.Bool("check-config", false, "validate the config, print it and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if *check {
		fmt.Printf("config ok: %d routes, kafka %s, registry %s\n", len(cfg.Routes), cfg.Kafka.BootstrapServers, cfg.Registry.URL)
		return nil
	}
	log, err := logging.New(cfg.Log.Level, cfg.Log.Format, "exhook-producer", os.Stderr)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	a, err := app.New(cfg, log)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
