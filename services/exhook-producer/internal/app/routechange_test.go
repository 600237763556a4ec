package app_test

// routechange_test.go: what a redeploy that adds a route costs, with and without a hook
// scope. EMQX asks for the hooks only when it loads the ExHook server, never when the
// producer restarts (emqx_exhook_mgr: the reload timer runs only after a failed load; a
// working server is loaded again only when enabled or updated), so the hooks registered at
// the first load stay in force across every rollout. A reload (the server updated through
// the REST API, what exhook-reload does) is emqx_exhook_mgr:restart_server/3:
// do_unload_server (the server leaves the running list, OnProviderUnloaded) then
// do_load_server (a new channel, OnProviderLoaded): in between no hook runs.

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/iov-platform/iov/services/exhook-producer/internal/config"
	"github.com/iov-platform/iov/services/exhook-producer/internal/route"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
	"github.com/iov-platform/iov/tools/devkit/service"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

const alertsTopic = "iov.vehicle.alerts"

// TestRouteChangeWithoutReload rolls a redeploy that adds a sync route (vehicles/+/alerts)
// under load, as a Deployment does: the new pod ready and behind the Service, then the old
// one terminated. With hooks.scope vehicles/# the new route's messages reach Kafka as soon
// as the old pod is gone, with no EMQX reload, and the existing sync route loses nothing.
// Without a scope the hooks are the old route filters: every message on the new route is
// routed without reaching Kafka until the ExHook server is reloaded (exhook-reload), and the
// reload itself (unload, then load) loses what every route publishes in between; that
// count is reported.
func TestRouteChangeWithoutReload(t *testing.T) {
	st, err := stack.Start(stack.Options{Partitions: 4, Topics: []string{eventsTopic, alertsTopic, spoolTopic, telemetryTopic, statusTopic, deadTopic}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	for i, scoped := range []bool{true, false} {
		t.Run(fmt.Sprintf("scoped=%v", scoped), func(t *testing.T) { routeChange(t, st, fmt.Sprintf("RC%d", i), scoped) })
	}
}

func routeChange(t *testing.T, st *stack.Stack, prefix string, scoped bool) {
	oldCfg := replicaConfig(t, st, t.TempDir())
	newCfg := replicaConfig(t, st, t.TempDir())
	alerts := route.Config{Name: "alerts", Filter: "vehicles/+/alerts", KafkaTopic: alertsTopic,
		Key: route.KeyConfig{From: route.KeyTopicSegment, Segment: 1}, Payload: route.PayloadJSON, Delivery: route.Sync}
	alerts.ApplyDefaults()
	newCfg.Routes = append(newCfg.Routes, alerts)
	if !scoped {
		oldCfg.Hooks.Scope, newCfg.Hooks.Scope = nil, nil
	}
	for _, cfg := range []*config.Config{oldCfg, newCfg} {
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
	}

	svc, err := service.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	old := startReplicaWith(t, oldCfg)
	svc.SetEndpoints(old.app.GRPCAddr())
	b, err := emqxsim.StartBroker(emqxsim.BrokerOptions{HookAddr: svc.Addr(), RequestTimeout: 5 * time.Second})
	if err != nil {
		old.terminate(t)
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()

	f := startFleet(t, b, prefix, 4, 20*time.Millisecond, "events", "alerts")
	time.Sleep(300 * time.Millisecond)
	pod := startReplicaWith(t, newCfg)
	defer pod.terminate(t)
	svc.SetEndpoints(pod.app.GRPCAddr())
	old.terminate(t)
	rolled := time.Now()
	time.Sleep(500 * time.Millisecond)
	reloading, reloaded := time.Now(), time.Now()
	if !scoped {
		// What exhook-reload does through EMQX's API: the new route filters are registered.
		b.Reload()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for b.Loads() < 2 && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		reloaded = time.Now()
		time.Sleep(300 * time.Millisecond)
	}
	sent := f.halt(t)
	inKafka := readMessages(t, st, eventsTopic, alertsTopic)

	// New-route messages: published after the rollout and acknowledged before the reload
	// began (alertsAfter), or published after the reload was done (alertsReloaded).
	var eventsLost, alertsAfter, alertsAfterLost, alertsReloaded, reloadLost int
	for _, m := range sent {
		missing := !inKafka[m.id()]
		switch {
		case m.topic == "events" && !m.ack.Before(reloading) && !m.start.After(reloaded):
			// During the reload EMQX unloads the server, then loads it: in between the
			// hooks are gone, and every route loses what is published.
			if missing {
				reloadLost++
			}
		case m.topic == "events":
			if missing {
				eventsLost++
			}
		case m.start.After(reloaded):
			alertsReloaded++
			if missing {
				t.Errorf("%s on the new route, published after the reload, missing from Kafka", m.id())
			}
		case m.start.After(rolled) && m.ack.Before(reloading):
			alertsAfter++
			if missing {
				alertsAfterLost++
			}
		}
	}
	t.Logf("scoped=%v: %d acknowledged; existing route lost %d (%d more during the reload); new route after the rollout: %d published, %d missing from Kafka; EMQX loads %d",
		scoped, len(sent), eventsLost, reloadLost, alertsAfter, alertsAfterLost, b.Loads())
	if os.Getenv("LOSSWINDOW_REPORT") != "" {
		fmt.Printf("ROUTECHANGE scoped=%v existing_route_lost=%d existing_route_lost_in_reload=%d new_route_after_rollout=%d new_route_missing=%d emqx_loads=%d\n",
			scoped, eventsLost, reloadLost, alertsAfter, alertsAfterLost, b.Loads())
	}
	if eventsLost != 0 {
		t.Errorf("the existing sync route lost %d messages in the rollout", eventsLost)
	}
	if alertsAfter == 0 {
		t.Fatal("no message on the new route between the rollout and the end")
	}
	switch {
	case scoped && (alertsAfterLost != 0 || b.Loads() != 1):
		t.Errorf("with a hook scope: %d of %d new-route messages missing after the rollout, %d loads; want 0 and 1 load", alertsAfterLost, alertsAfter, b.Loads())
	case !scoped && (alertsAfterLost != alertsAfter || b.Loads() != 2 || alertsReloaded == 0):
		t.Errorf("without a scope: %d of %d new-route messages missing before the reload (want all), %d loads (want 2), %d after it", alertsAfterLost, alertsAfter, b.Loads(), alertsReloaded)
	}
}
