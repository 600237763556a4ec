// Command exhook-producer is EMQX's ExHook gRPC server: it forwards MQTT messages and client
// lifecycle events to Kafka as Avro records registered in a schema registry.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/iov-platform/iov/kit/kafkawait"
	"github.com/iov-platform/iov/kit/logging"
	"github.com/iov-platform/iov/kit/svcconfig"
	"github.com/iov-platform/iov/services/exhook-producer/internal/app"
	"github.com/iov-platform/iov/services/exhook-producer/internal/config"
	"github.com/iov-platform/iov/services/exhook-producer/internal/memory"
	"github.com/iov-platform/iov/services/exhook-producer/internal/stackshrink"
)

func main() {
	// First, while the process has no other goroutine or open file: the runtime reads
	// GODEBUG only at start, so this starts the process again with stack shrinking off
	// (internal/stackshrink: the gRPC stream workers keep their stacks).
	if err := stackshrink.Reexec(); err != nil {
		fmt.Fprintf(os.Stderr, "exhook-producer: %v; running with stack shrinking on, without stream workers\n", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, svcconfig.Prefix("exhook-producer", err)) // one line per problem
		os.Exit(1)
	}
}

const about = "EMQX's ExHook gRPC server: forwards MQTT messages and client events to Kafka as Avro records."

func run(ctx context.Context, args []string) error {
	cfg, done, err := svcconfig.CommandLine("exhook-producer", about, args, os.Stdout, config.Load)
	if done || err != nil {
		return err
	}
	log, err := logging.New(cfg.Log.Level, cfg.Log.Format, "exhook-producer", os.Stderr)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	if err := kafkawait.Report(log); err != nil {
		return err
	}
	limit, err := memory.SetLimit(cfg.Memory, memlimit.FromCgroup)
	if err != nil {
		return err
	}
	log.Info("go memory limit", "bytes", limit.Bytes, "source", limit.Source)
	stopProfiles, err := startProfiles()
	if err != nil {
		return err
	}
	defer func() {
		if perr := stopProfiles(); perr != nil {
			log.Error("profiles not written", "err", perr)
		}
	}()
	a, err := app.New(cfg, log)
	if err != nil {
		return svcconfig.DevStackHint(err)
	}
	return svcconfig.DevStackHint(a.Run(ctx))
}
