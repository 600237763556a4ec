package app_test

// losswindow_test.go: what a producer rolling restart or scale-down under load costs, with
// EMQX's ExHook client simulated in both of its connection-loss behaviours (emqxsim gun1 for
// EMQX <= 5.8.8, gun2 for >= 5.8.9), two replicas behind a Service stand-in, sync and spool
// routes. "Lost" is a message EMQX published (it does whether the hook call succeeded or
// failed) whose record is not in Kafka.

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/iov-platform/iov/services/exhook-producer/internal/app"
	"github.com/iov-platform/iov/services/exhook-producer/internal/config"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
	"github.com/iov-platform/iov/tools/devkit/load"
	"github.com/iov-platform/iov/tools/devkit/service"
	"github.com/iov-platform/iov/tools/devkit/stack"
)


// replica is one producer pod.
type replica struct {
	app    *app.App
	cancel context.CancelFunc
	done   chan error
}

func replicaConfig(t *testing.T, st *stack.Stack, spoolDir string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(fmt.Appendf(nil, `
grpc: {listenAddress: "127.0.0.1:0"}
http: {listenAddress: "127.0.0.1:0"}
log: {level: warn, format: text}
kafka:
  bootstrapServers: %q
  syncTimeout: 3s
  properties: {linger.ms: "1", message.timeout.ms: "60000"}
registry: {url: %q}
shutdown: {drainTimeout: 10s}
topics: {status: %s, deadLetter: %s}
spool: {dir: %q}
hooks: {scope: ["vehicles/#"]}
routes:
  - {name: events, filter: "vehicles/+/events", kafkaTopic: %s, key: {from: topic-segment, segment: 1}, payload: json, delivery: sync}
  - {name: spooled, filter: "vehicles/+/spooled", kafkaTopic: %s, key: {from: topic-segment, segment: 1}, payload: json, delivery: spool}
`, st.KafkaBootstrap(), st.RegistryURL(), statusTopic, deadTopic, spoolDir, eventsTopic, spoolTopic))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startReplica(t *testing.T, st *stack.Stack, spoolDir string) *replica {
	t.Helper()
	a, err := app.New(replicaConfig(t, st, spoolDir), logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{app: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	waitReady(t, a.HTTPAddr())
	return r
}

// terminate is SIGTERM and waiting for the pod to exit.
func (r *replica) terminate(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("replica drain: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("replica did not stop within 30s")
	}
}

type lossRun struct {
	mode     emqxsim.Mode
	scenario string // rolling-restart | scale-down
}

func TestLossWindows(t *testing.T) {
	if testing.Short() {
		t.Skip("loss-window measurement")
	}
	st, err := stack.Start(stack.Options{Partitions: 4, Topics: []string{eventsTopic, spoolTopic, statusTopic, deadTopic}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	for _, tc := range []lossRun{
		{emqxsim.ModeGun1, "rolling-restart"}, {emqxsim.ModeGun1, "scale-down"},
		{emqxsim.ModeGun2, "rolling-restart"}, {emqxsim.ModeGun2, "scale-down"},
	} {
		t.Run(string(tc.mode)+"/"+tc.scenario, func(t *testing.T) { lossWindow(t, st, tc) })
	}
}

func lossWindow(t *testing.T, st *stack.Stack, tc lossRun) {
	// Scaled from EMQX's defaults (request_timeout 5s, gun retry_timeout 5s): same ratio.
	const requestTimeout, retryInterval = 2 * time.Second, 2 * time.Second
	svc, err := service.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	dirs := []string{t.TempDir(), t.TempDir()} // a StatefulSet's volumes: pod-0, pod-1
	pods := []*replica{startReplica(t, st, dirs[0]), startReplica(t, st, dirs[1])}
	endpoints := func() {
		var addrs []string
		for _, p := range pods {
			if p != nil {
				addrs = append(addrs, p.app.GRPCAddr())
			}
		}
		svc.SetEndpoints(addrs...)
	}
	endpoints()
	defer func() {
		for _, p := range pods {
			if p != nil {
				p.terminate(t)
			}
		}
	}()

	sim, err := emqxsim.Dial(emqxsim.Options{Addr: svc.Addr(), PoolSize: 8, RequestTimeout: requestTimeout, Mode: tc.mode, RetryInterval: retryInterval})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()

	const vehicles, messages, interval = 40, 60, 100 * time.Millisecond // ~6s of load per vehicle
	reports := make([]load.Report, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, route := range []struct{ template, topic string }{
		{"vehicles/%s/events", eventsTopic}, {"vehicles/%s/spooled", spoolTopic},
	} {
		wg.Go(func() {
			reports[i], errs[i] = load.Run(context.Background(), load.Options{
				Client: sim, Vehicles: vehicles, Messages: messages, Interval: interval, QoS: 1,
				TopicTemplate: route.template, KafkaTopic: route.topic,
				Bootstrap: st.KafkaBootstrap(), RegistryURL: st.RegistryURL(), VerifyWait: 20 * time.Second,
			})
		})
	}

	start := time.Now()
	time.Sleep(time.Second)
	switch tc.scenario {
	case "rolling-restart": // StatefulSet order: the highest ordinal first, one pod at a time
		for i := len(pods) - 1; i >= 0; i-- {
			old := pods[i]
			pods[i] = nil
			endpoints()
			old.terminate(t)
			pods[i] = startReplica(t, st, dirs[i])
			endpoints()
		}
	case "scale-down":
		old := pods[1]
		pods[1] = nil
		endpoints()
		old.terminate(t)
	}
	restart := time.Since(start)
	wg.Wait()
	for i, name := range []string{"sync", "spool"} {
		if errs[i] != nil {
			t.Fatalf("%s: %v", name, errs[i])
		}
		r := reports[i]
		t.Logf("%s %s %s: sent=%d hook_ok=%d hook_failed=%d in_kafka=%d lost=%d duplicates=%d out_of_order=%d (restart took %s) first error: %s",
			tc.mode, tc.scenario, name, r.Sent, r.Acked, r.Errors, r.Sent-r.RoutedLost, r.RoutedLost, r.Duplicates, r.OutOfOrder, restart.Round(time.Millisecond), r.FirstError)
		if os.Getenv("LOSSWINDOW_REPORT") != "" {
			fmt.Printf("LOSSWINDOW mode=%s scenario=%s delivery=%s sent=%d hook_failed=%d lost=%d duplicates=%d out_of_order=%d\n",
				tc.mode, tc.scenario, name, r.Sent, r.Errors, r.RoutedLost, r.Duplicates, r.OutOfOrder)
		}
	}
}
