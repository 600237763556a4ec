// Command sample-consumer is the template consumer for application teams: it reads the
// platform's Avro records from Kafka in a consumer group and hands each one, decoded into
// its Go type, to a Handler, committing offsets only after the handler succeeded.
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

	"github.com/iov-platform/iov/services/sample-consumer/internal/app"
	"github.com/iov-platform/iov/services/sample-consumer/internal/config"
	"github.com/iov-platform/iov/services/sample-consumer/internal/consume"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sample-consumer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sample-consumer", flag.ContinueOnError)
	path := fs.String("config", "", "YAML config file (default: the embedded loopback config)")
	check := fs.Bool("check-config", false, "validate the config, print a summary and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if *check {
		fmt.Printf("config ok: group %s, topics %v, kafka %s, registry %s, dead-letter topic %q\n",
			cfg.Kafka.GroupID, cfg.Kafka.Topics, cfg.Kafka.BootstrapServers, cfg.Registry.URL, cfg.Kafka.DeadLetterTopic)
		return nil
	}
	log, err := logging.New(cfg.Log.Level, cfg.Log.Format, "sample-consumer", os.Stderr)
	if err != nil {
		return err
	}
	slog.SetDefault(log)

	// REPLACE THIS with your application's handler (see internal/consume.Handler).
	handler := consume.NewLogHandler(log)

	a, err := app.New(cfg, log, handler)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
