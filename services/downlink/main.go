// Command downlink sends applications' commands to vehicles: it consumes Avro VehicleCommand
// records from Kafka, publishes each to the vehicle's MQTT command topic through EMQX (MQTT 5,
// QoS 1, correlation data = command id) and records SENT / EXPIRED / FAILED CommandStatus
// events; EMQX's delivery and the vehicle's ack and response arrive through the exhook
// producer on the same status topic.
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

	"github.com/iov-platform/iov/services/downlink/internal/app"
	"github.com/iov-platform/iov/services/downlink/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "downlink:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("downlink", flag.ContinueOnError)
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
		fmt.Printf("config ok: kafka %s, group %s, %s -> mqtt %s (%s), status %s, dead letters %s, registry %s\n",
			cfg.Kafka.BootstrapServers, cfg.Kafka.GroupID, cfg.Kafka.CommandsTopic, cfg.MQTT.BrokerURL, cfg.MQTT.CommandTopic,
			cfg.Kafka.StatusTopic, cfg.Kafka.DeadLetterTopic, cfg.Registry.URL)
		return nil
	}
	log, err := logging.New(cfg.Log.Level, cfg.Log.Format, "downlink", os.Stderr)
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
