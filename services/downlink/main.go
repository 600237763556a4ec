// Command downlink sends applications' commands to vehicles: it consumes Avro VehicleCommand
// records from Kafka, publishes each to the vehicle's MQTT command topic through EMQX (MQTT 5,
// QoS 1, correlation data = command id) and records SENT / EXPIRED / FAILED CommandStatus
// events; EMQX's delivery and the vehicle's ack and response arrive through the exhook
// producer on the same status topic.
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
	"github.com/iov-platform/iov/services/downlink/internal/app"
	"github.com/iov-platform/iov/services/downlink/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, svcconfig.Prefix("downlink", err)) // one line per problem
		os.Exit(1)
	}
}

const about = "Sends applications' commands from Kafka to vehicles over MQTT 5 through EMQX and records their status events."

func run(ctx context.Context, args []string) error {
	cfg, done, err := svcconfig.CommandLine("downlink", about, args, os.Stdout, config.Load)
	if done || err != nil {
		return err
	}
	log, err := logging.New(cfg.Log.Level, cfg.Log.Format, "downlink", os.Stderr)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	if err := kafkawait.Report(log); err != nil {
		return err
	}
	a, err := app.New(cfg, log)
	if err != nil {
		return svcconfig.DevStackHint(err)
	}
	return svcconfig.DevStackHint(a.Run(ctx))
}
