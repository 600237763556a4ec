// Command exhook-reload makes EMQX load an ExHook server again (OnProviderLoaded on every
// node) through EMQX's REST API, and checks that every node is connected with
// message.publish registered for the expected scope. Run it after a change of the
// producer's hooks.scope (the chart's post-install/post-upgrade Job does); route changes
// inside the scope need no reload.
//
// Credentials: -api-key-file, a file in EMQX's api_key.bootstrap_file format
// (key:secret:role; the chart mounts the Secret EMQX loads its keys from), or
// EMQX_API_KEY and EMQX_API_SECRET.
//
// Modes:
//
//	(default)   reload, then check; exit 1 when a node did not load it or the scope differs
//	-ensure     reload only when EMQX has the server loaded with another scope than -scope,
//	            then wait (within -timeout) until every node reports it connected with
//	            -scope; idempotent, so the chart's post-install/post-upgrade Job runs it on
//	            every release and it costs one GET when nothing changed
//	-status     only check (GET), change nothing; exit 1 as above
//	-serve ADDR serve /metrics (the server's state read from EMQX at every scrape),
//	            /healthz and /ready on ADDR until SIGTERM: EMQX exports no ExHook metric to
//	            Prometheus, so this is what the IoVExHookNotLoaded alert reads
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iov-platform/iov/kit/cli"
	"github.com/iov-platform/iov/kit/logging"
	"github.com/iov-platform/iov/kit/ops"
	"github.com/iov-platform/iov/services/exhook-producer/internal/emqxapi"
)

func main() {
	cli.Main("exhook-reload", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdout, os.Stderr) })
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("exhook-reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: exhook-reload [-ensure | -status | -serve ADDR] [flags]")
		fmt.Fprintln(stderr, "Reloads EMQX's ExHook server through EMQX's REST API and checks that every node loaded it.")
		fs.PrintDefaults()
	}
	base := fs.String("emqx", "http://127.0.0.1:18083", "EMQX REST API base URL")
	name := fs.String("name", "iov", "ExHook server name in EMQX")
	scope := fs.String("scope", "", "comma-separated topic filters message.publish must be registered for (empty: do not check)")
	keyFile := fs.String("api-key-file", "", "file in EMQX's api_key.bootstrap_file format (key:secret[:role]); default: EMQX_API_KEY and EMQX_API_SECRET")
	timeout := fs.Duration("timeout", time.Minute, "overall time limit (with -serve: per scrape, default 5s)")
	statusOnly := fs.Bool("status", false, "only check the server's state on every node, do not reload")
	ensure := fs.Bool("ensure", false, "reload only when EMQX registered another scope than -scope, then wait until every node is connected with it")
	serve := fs.String("serve", "", "serve /metrics, /healthz and /ready on this address until SIGTERM (status exporter)")
	logFormat := fs.String("log-format", "text", "log format of -serve: json or text")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if modes := btoi(*statusOnly) + btoi(*ensure) + btoi(*serve != ""); modes > 1 {
		return errors.New("-ensure, -status and -serve exclude each other")
	}
	c, err := client(*base, *keyFile)
	if err != nil {
		return err
	}
	var want []string
	if *scope != "" {
		want = strings.Split(*scope, ",")
	}
	if *serve != "" {
		log, err := logging.New("info", *logFormat, "exhook-reload", stderr)
		if err != nil {
			return err
		}
		perScrape := 5 * time.Second // below Prometheus' default scrape timeout (10s)
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "timeout" {
				perScrape = *timeout
			}
		})
		return serveStatus(ctx, *serve, emqxapi.NewCollector(c, *name, want, perScrape, log), log)
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if *ensure {
		if len(want) == 0 {
			return errors.New("-ensure needs -scope")
		}
		s, reloaded, err := c.Ensure(ctx, *name, want, 2*time.Second)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "exhook server %s connected on %d node(s) with message.publish topics %q (reloaded: %v)\n", s.Name, len(s.NodeStatus), want, reloaded)
		return nil
	}
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
	fmt.Fprintf(stdout, "exhook server %s %s on %d node(s); message.publish topics %q\n", s.Name, verb, len(s.NodeStatus), topics)
	return nil
}

// client builds the REST client, with the credentials from keyFile or the environment.
func client(base, keyFile string) (*emqxapi.Client, error) {
	c := &emqxapi.Client{BaseURL: base, APIKey: os.Getenv("EMQX_API_KEY"), APISecret: os.Getenv("EMQX_API_SECRET")}
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, err
		}
		if c.APIKey, c.APISecret, err = emqxapi.ParseBootstrap(b); err != nil {
			return nil, fmt.Errorf("%s: %w", keyFile, err)
		}
	}
	if c.APIKey == "" || c.APISecret == "" {
		return nil, errors.New("no API key: set -api-key-file, or EMQX_API_KEY and EMQX_API_SECRET")
	}
	return c, nil
}

// serveStatus serves the collector's metrics on addr until ctx ends, then shuts the HTTP
// server down within 5 s.
func serveStatus(ctx context.Context, addr string, col *emqxapi.Collector, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	srv, err := ops.Listen(addr, ops.NewState(nil), reg)
	if err != nil {
		return err
	}
	log.Info("status exporter listening", "addr", srv.Addr(), "server", col.Name)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("status exporter stopping", "timeout", "5s")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown http: %w", err)
	}
	return <-errc
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
