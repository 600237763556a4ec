// Command sample-consumer is the template consumer for application teams: it reads the
// platform's Avro records from Kafka in a consumer group and hands each one, decoded into
// its Go type, to a Handler, committing offsets only after the handler succeeded.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/iov-platform/iov/kit/kafkawait"
	"github.com/iov-platform/iov/kit/logging"
	"github.com/iov-platform/iov/kit/svcconfig"
	"github.com/iov-platform/iov/services/sample-consumer/internal/app"
	"github.com/iov-platform/iov/services/sample-consumer/internal/config"
	"github.com/iov-platform/iov/services/sample-consumer/internal/consume"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, svcconfig.Prefix("sample-consumer", err)) // one line per problem
		os.Exit(1)
	}
}

const about = "The template consumer: reads the platform's Avro records from Kafka in a consumer group and hands each to a handler."

func run(ctx context.Context, args []string) error {
	cfg, done, err := svcconfig.CommandLine("sample-consumer", about, args, os.Stdout, config.Load)
	if done || err != nil {
		return err
	}
	log, err := logging.New(cfg.Log.Level, cfg.Log.Format, "sample-consumer", os.Stderr)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	if err := kafkawait.Report(log); err != nil {
		return err
	}

	// REPLACE THIS with your application's handler (see internal/consume.Handler).
	handler := consume.NewLogHandler(log)

	a, err := app.New(cfg, log, handler)
	if err != nil {
		return svcconfig.DevStackHint(err)
	}
	return svcconfig.DevStackHint(a.Run(ctx))
}
