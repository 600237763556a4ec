package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/tools/devkit/commands"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
	"github.com/iov-platform/iov/tools/devkit/load"
	"github.com/iov-platform/iov/tools/devkit/readiness"
	"github.com/iov-platform/iov/tools/devkit/stack"
	"github.com/iov-platform/iov/tools/devkit/vehicle"
)

// The addresses of the services' embedded default configs.
const (
	kafkaPort    = 9092
	registryAddr = "127.0.0.1:8081"
	producerGRPC = "127.0.0.1:9000"
	producerHTTP = "127.0.0.1:8080"
	consumerHTTP = "127.0.0.1:8088"
	downlinkHTTP = "127.0.0.1:8089"
	brokerAddr   = "127.0.0.1:1883"

	commandsTopic = "iov.vehicle.commands"
	statusTopic   = "iov.vehicle.command-status"
)

// ports are every port the demo listens on or its services do.
var ports = []string{"127.0.0.1:9092", registryAddr, producerGRPC, producerHTTP, consumerHTTP, downlinkHTTP, brokerAddr}

// routes are the embedded producer config's routes the load goes through.
var routes = []struct{ name, mqtt, kafka, delivery string }{
	{"telemetry", "vehicles/%s/telemetry", "iov.vehicle.telemetry", "async"},
	{"events", "vehicles/%s/events/door", "iov.vehicle.events", "sync"},
}

type options struct {
	bin, logs          string
	vehicles, messages int
	downlink           bool
	stopWait           time.Duration
}

// demo is one run; what it started is stopped by shutdown, in order.
type demo struct {
	o   options
	out io.Writer

	st                           *stack.Stack
	producer, consumer, downlink *proc
	broker                       *emqxsim.Broker
	car                          *vehicle.Vehicle

	// What was measured.
	figs    []routeFigures
	events  []commands.Status
	downErr error
}

func (d *demo) say(format string, a ...any) { fmt.Fprintf(d.out, "demo: "+format+"\n", a...) }

func (d *demo) run(ctx context.Context) error {
	for _, addr := range ports {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return fmt.Errorf("%s is already in use; stop whatever listens there first (the demo needs %s)", addr, strings.Join(ports, " "))
		}
	}
	var err error
	d.st, err = stack.Start(stack.Options{KafkaPort: kafkaPort, RegistryAddr: registryAddr, Partitions: 6, Topics: []string{
		"iov.vehicle.telemetry", "iov.vehicle.events", "iov.vehicle.raw", "iov.vehicle.status", "iov.deadletter",
		"iov.consumer.deadletter", commandsTopic, statusTopic,
	}})
	if err != nil {
		return err
	}
	d.say("kafka %s and schema registry %s up (in-process kfake + srfake)", d.st.KafkaBootstrap(), d.st.RegistryURL())

	if d.producer, err = d.startService(ctx, "exhook-producer", producerHTTP); err != nil {
		return err
	}
	d.say("exhook-producer serving gRPC on %s (embedded default config)", producerGRPC)
	if d.consumer, err = d.startService(ctx, "sample-consumer", consumerHTTP); err != nil {
		return err
	}
	d.say("sample-consumer reading iov.vehicle.* in group iov-sample-consumer")

	if d.figs, err = d.uplink(ctx); err != nil {
		return err
	}
	if d.o.downlink {
		d.events, d.downErr = d.downlinkRoundTrip(ctx)
	}
	return nil
}

// report prints the measured figures and the verdict: an error when they disagree.
func (d *demo) report() error {
	if d.figs == nil {
		return nil
	}
	d.say("measured figures (load tool: sent, acknowledged, and Kafka read back; consumer: its handled counter):")
	printFigures(d.out, d.figs)
	var errs []error
	for _, f := range d.figs {
		errs = append(errs, f.check())
	}
	t := total(d.figs)
	summary := fmt.Sprintf("acknowledged=%d in_kafka=%d consumed=%d lost=%d duplicates=%d", t.Load.Acked, t.Load.Consumed, t.Consumed, t.Load.Lost, t.Load.Duplicates)
	if d.o.downlink {
		printStatuses(d.out, d.events)
		errs = append(errs, d.downErr)
		summary += fmt.Sprintf("; downlink %s %s, %s %s", onlineCmd, commands.States(commands.Of(d.events, onlineCmd)),
			offlineCmd, commands.States(commands.Of(d.events, offlineCmd)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("FAILED: %s\n%w", summary, err)
	}
	d.say("OK: %s", summary)
	return nil
}

// startService starts a service binary on its embedded default config and waits for /ready.
func (d *demo) startService(ctx context.Context, name, httpAddr string) (*proc, error) {
	p, err := startProc(name, d.o.bin+"/"+name, d.o.logs)
	if err != nil {
		return nil, err
	}
	if err := readiness.Wait(ctx, httpAddr, p.exited); err != nil {
		return p, fmt.Errorf("%s did not become ready: %w; last lines of its log:\n%s", name, err, p.tail(20))
	}
	return p, nil
}

// uplink drives each route with the load tool, which verifies Kafka, then waits for the
// consumer to have handled what Kafka holds.
func (d *demo) uplink(ctx context.Context) ([]routeFigures, error) {
	var figs []routeFigures
	for _, r := range routes {
		d.say("load: %d vehicles x %d messages on %s (route %s, delivery %s), then Kafka read back", d.o.vehicles, d.o.messages,
			strings.Replace(r.mqtt, "%s", "{vin}", 1), r.name, r.delivery)
		rep, err := load.Run(ctx, load.Options{
			Addr: producerGRPC, Vehicles: d.o.vehicles, Messages: d.o.messages, Pool: 8, RequestTimeout: 5 * time.Second,
			TopicTemplate: r.mqtt, PayloadBytes: 200, QoS: 1,
			Bootstrap: d.st.KafkaBootstrap(), RegistryURL: d.st.RegistryURL(), KafkaTopic: r.kafka, VerifyWait: 60 * time.Second,
		})
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", r.name, err)
		}
		figs = append(figs, routeFigures{Route: r.name, KafkaTopic: r.kafka, Load: rep})
	}
	// The consumer catches up; stop waiting once its count has not moved for 3 s.
	d.say("waiting for the sample consumer to catch up")
	last, still := -1, time.Now()
	for {
		total := 0
		for i := range figs {
			n, err := handled(consumerHTTP, figs[i].KafkaTopic)
			if err != nil {
				return nil, err
			}
			figs[i].Consumed = n
			total += n
		}
		done := true
		for _, f := range figs {
			done = done && f.Consumed >= f.Load.Consumed
		}
		if total != last {
			last, still = total, time.Now()
		}
		if done || time.Since(still) > 3*time.Second {
			return figs, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// handled reads consumer_records_total{topic,result="handled"} from the consumer's /metrics.
func handled(addr, topic string) (int, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("consumer metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	want := fmt.Sprintf(`topic=%q`, topic)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "consumer_records_total{") && strings.Contains(l, `result="handled"`) && strings.Contains(l, want) {
			v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			if err != nil {
				return 0, fmt.Errorf("consumer metrics line %q: %w", l, err)
			}
			return int(v), nil
		}
	}
	return 0, sc.Err()
}

// The downlink round trip: a command to an online vehicle, which answers, and one to a
// vehicle that is not connected.
const (
	onlineVIN, offlineVIN = "VIN-DEMO-1", "VIN-DEMO-2"
	onlineCmd, offlineCmd = "demo-cmd-1", "demo-cmd-2"
	wantOnline            = "SENT,DELIVERED,RESPONDED"
	wantOffline           = "SENT,FAILED"
)

func (d *demo) downlinkRoundTrip(ctx context.Context) ([]commands.Status, error) {
	delivered := make(chan string, 16) // command topics EMQX (the double) reported message.delivered for
	var err error
	d.broker, err = emqxsim.StartBroker(emqxsim.BrokerOptions{Addr: brokerAddr, HookAddr: producerGRPC, LoadTimeout: 30 * time.Second,
		Log: slog.New(slog.DiscardHandler),
		OnHook: func(c emqxsim.HookCall) {
			if c.Hook == emqxsim.HookMessageDelivered && c.Err == nil {
				select {
				case delivered <- c.Topic:
				default:
				}
			}
		}})
	if err != nil {
		return nil, fmt.Errorf("EMQX test double: %w", err)
	}
	d.say("downlink: EMQX test double (emqxsim) on mqtt://%s, calling the producer's ExHook; hooks %v", brokerAddr, d.broker.Hooks())
	if d.car, err = vehicle.Connect(d.broker.URL(), onlineVIN, 10*time.Second); err != nil {
		return nil, err
	}
	d.say("downlink: vehicle %s connected, subscribed to %s", onlineVIN, vehicle.CommandFilter(onlineVIN))
	if d.downlink, err = d.startService(ctx, "downlink", downlinkHTTP); err != nil {
		return nil, err
	}
	d.say("downlink: service consuming %s, publishing to vehicles/{vin}/commands/{id}", commandsTopic)

	answered := make(chan error, 1)
	go func() { // the vehicle executes the command and answers once EMQX reported the delivery
		select {
		case c := <-d.car.Commands():
			select {
			case <-delivered:
			case <-time.After(20 * time.Second):
			}
			d.say("downlink: vehicle %s received %s (QoS %d, correlation %q), answering on %s", onlineVIN, c.Topic, c.QoS, c.Props.CorrelationData, c.Props.ResponseTopic)
			answered <- d.car.Respond(ctx, c, []byte(`{"result":"done"}`))
		case <-ctx.Done():
			answered <- ctx.Err()
		}
	}()

	if err := d.sendCommands(ctx); err != nil {
		return nil, err
	}
	d.say("downlink: commands %s -> %s (online) and %s -> %s (not connected) written to %s", onlineCmd, onlineVIN, offlineCmd, offlineVIN, commandsTopic)
	select {
	case err := <-answered:
		if err != nil {
			return nil, err
		}
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("vehicle %s received no command within 30s", onlineVIN)
	}

	dec := serde.NewDecoder(serde.NewRegistry(d.st.RegistryURL(), "", ""))
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs, err := stack.ReadAll(ctx, d.st.KafkaBootstrap(), 0, statusTopic)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", statusTopic, err)
		}
		evs, err := commands.DecodeStatuses(dec, recs)
		if err != nil {
			return evs, err
		}
		on, off := commands.States(commands.Of(evs, onlineCmd)), commands.States(commands.Of(evs, offlineCmd))
		if on == wantOnline && off == wantOffline {
			return evs, nil
		}
		if time.Now().After(deadline) {
			return evs, fmt.Errorf("downlink: status events %s: %s (want %s), %s: %s (want %s)", onlineCmd, on, wantOnline, offlineCmd, off, wantOffline)
		}
	}
}

// sendCommands writes the two demo commands, Avro VehicleCommand records keyed by vehicle.
func (d *demo) sendCommands(ctx context.Context) error {
	reg := serde.NewRegistry(d.st.RegistryURL(), "", "")
	enc, err := serde.NewEncoder(reg, serde.TopicSubject(commandsTopic), schemas.MustLatest(schemas.VehicleCommandName), true)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(d.st.KafkaBootstrap()))
	if err != nil {
		return err
	}
	defer cl.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	by := "make-demo"
	var recs []*kgo.Record
	for _, c := range []schemas.VehicleCommand{
		{CommandID: onlineCmd, VehicleID: onlineVIN, Name: "door.lock", Params: map[string]string{"door": "all"}, IssuedAt: now, ExpiresAt: now.Add(time.Minute), IssuedBy: &by},
		{CommandID: offlineCmd, VehicleID: offlineVIN, Name: "door.lock", Params: map[string]string{"door": "all"}, IssuedAt: now, ExpiresAt: now.Add(time.Minute), IssuedBy: &by},
	} {
		b, err := enc.Encode(&c)
		if err != nil {
			return err
		}
		recs = append(recs, &kgo.Record{Topic: commandsTopic, Key: []byte(c.VehicleID), Value: b})
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("write commands: %w", err)
	}
	return nil
}

func printStatuses(w io.Writer, evs []commands.Status) {
	fmt.Fprintf(w, "demo: downlink status events on %s (want %s: %s, %s: %s):\n", statusTopic, onlineCmd, wantOnline, offlineCmd, wantOffline)
	for _, ev := range evs {
		extra := ""
		if ev.Reason != nil {
			extra = " reason=" + *ev.Reason
		}
		if len(ev.Response) > 0 {
			r, _ := json.Marshal(string(ev.Response))
			extra += " response=" + string(r)
		}
		fmt.Fprintf(w, "  %-11s %-11s %-9s source=%-8s partition=%d offset=%d%s\n", ev.CommandID, ev.VehicleID, ev.Status, ev.Source, ev.Partition, ev.Offset, extra)
	}
}

// shutdown stops what run started, in order, each step bounded, saying what it does.
func (d *demo) shutdown() {
	start := time.Now()
	defer func() { d.say("everything stopped in %s", time.Since(start).Round(10*time.Millisecond)) }()
	d.say("stopping in order: vehicle, downlink, EMQX double, consumer, producer, Kafka + registry")
	if d.car != nil {
		d.car.Close()
		d.say("stopped vehicle %s", onlineVIN)
	}
	for _, p := range []*proc{d.downlink} {
		if p != nil {
			d.say("stopped %s: %s", p.name, p.stop(d.o.stopWait))
		}
	}
	if d.broker != nil {
		_ = d.broker.Close()
		d.say("stopped EMQX double")
	}
	for _, p := range []*proc{d.consumer, d.producer} {
		if p != nil {
			d.say("stopped %s: %s", p.name, p.stop(d.o.stopWait))
		}
	}
	if d.st != nil {
		d.st.Close()
		d.say("stopped kafka and schema registry")
	}
}
