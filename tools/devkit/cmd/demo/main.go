// Command demo runs the whole platform on this machine on the services' embedded default
// configs and checks what it measured: the in-process Kafka and schema registry on
// 127.0.0.1:9092 / :8081, the exhook producer, the sample consumer and the downlink as child
// processes, the EMQX-like load through the producer's async and sync routes (verified in
// Kafka by the load tool), then one downlink round trip through the EMQX test double
// (emqxsim) to a simulated vehicle that answers. It prints the measured figures, stops
// everything in order (vehicle, downlink, broker, consumer, producer, Kafka), each step
// bounded, and fails when the figures disagree. Ctrl-C stops it the same way within seconds.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/iov-platform/iov/kit/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	go func() { // after the first Ctrl-C the demo stops in order; a second one kills it
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) { // --help printed the usage: exit 0
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.bin, "bin", "bin", "directory holding exhook-producer, sample-consumer and downlink")
	fs.IntVar(&o.vehicles, "vehicles", 200, "simulated vehicles (make demo: VEHICLES)")
	fs.IntVar(&o.messages, "messages", 10, "messages per vehicle and route (make demo: MESSAGES)")
	fs.BoolVar(&o.downlink, "downlink", true, "also run the downlink round trip")
	fs.DurationVar(&o.stopWait, "stop-wait", 5*time.Second, "how long each process may take to stop after SIGTERM before it is killed")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if o.vehicles <= 0 || o.messages <= 0 {
		return errors.New("--vehicles and --messages must be positive")
	}
	for _, b := range []string{"exhook-producer", "sample-consumer", "downlink"} {
		if _, err := os.Stat(filepath.Join(o.bin, b)); err != nil {
			return fmt.Errorf("%w (run make build)", err)
		}
	}
	logs, err := os.MkdirTemp("", "iov-demo-")
	if err != nil {
		return err
	}
	o.logs = logs
	d := &demo{o: o, out: out}
	err = d.run(ctx)
	d.shutdown()
	fmt.Fprintf(out, "demo: logs in %s\n", logs)
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	if err != nil {
		return err
	}
	return d.report()
}
