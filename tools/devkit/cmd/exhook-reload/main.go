// Command exhook-reload makes EMQX load an ExHook server again (OnProviderLoaded on every
// node) through EMQX's REST API, and checks that every node is connected with
// message.publish registered for the expected scope. Run it after a change of the
// producer's hooks.scope (e.g. as a Helm post-upgrade Job); route changes inside the scope
// need no reload. The API key and secret come from EMQX_API_KEY and EMQX_API_SECRET
// (mount them from a Secret). With -status it changes nothing and only checks (exit 1 when
// a node is not connected: EMQX exports no ExHook metrics to Prometheus, so this is what
// an alert probe can run).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/iov-platform/iov/tools/devkit/emqxapi"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "exhook-reload:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("exhook-reload", flag.ContinueOnError)
	base := fs.String("emqx", "http://127.0.0.1:18083", "EMQX REST API base URL")
	name := fs.String("name", "iov", "ExHook server name in EMQX")
	scope := fs.String("scope", "", "comma-separated topic filters message.publish must be registered for afterwards (empty: do not check)")
	timeout := fs.Duration("timeout", time.Minute, "overall time limit")
	statusOnly := fs.Bool("status", false, "only check the server's state on every node, do not reload")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := &emqxapi.Client{BaseURL: *base, APIKey: os.Getenv("EMQX_API_KEY"), APISecret: os.Getenv("EMQX_API_SECRET")}
	if c.APIKey == "" || c.APISecret == "" {
		return errors.New("EMQX_API_KEY and EMQX_API_SECRET must be set")
	}
	var want []string
	if *scope != "" {
		want = strings.Split(*scope, ",")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	call, verb := c.Reload, "reloaded"
	if *statusOnly {
		call, verb = c.Status, "connected"
	}
	s, err := call(ctx, *name)
	if err != nil {
		return err
	}
	if err := emqxapi.Check(s, want); err != nil {
		return err
	}
	topics, _ := s.Topics("message.publish")
	fmt.Printf("exhook server %s %s on %d node(s); message.publish topics %q\n", s.Name, verb, len(s.NodeStatus), topics)
	return nil
}
