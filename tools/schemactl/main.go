// Command schemactl is the schema workflow application teams run in CI: it lists the local
// Avro schema versions, checks the new ones against a live Confluent-compatible registry with
// the registry's compatibility API, and registers them with each subject's compatibility level
// set first. A refused version is printed with the reason and a diff, and the exit status is 1.
//
//	schemactl [--config schemas/subjects.yaml] [--registry URL] list | check | register
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/iov-platform/iov/tools/schemactl/internal/config"
	"github.com/iov-platform/iov/tools/schemactl/internal/evolve"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "schemactl:", err)
		os.Exit(1)
	}
}

const usage = `usage: schemactl [flags] list | check | register

  list      the local schema families, their versions and the subjects that carry them
  check     ask the registry whether every new local version is compatible; exit 1 if one is refused
  register  set each subject's compatibility level, then check and register its new versions

Registry credentials come from REGISTRY_USERNAME / REGISTRY_PASSWORD, or from the files
registry.usernameFile / passwordFile of the config; registry.caFile is the CA of an https
registry.

flags:
`

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("schemactl", flag.ContinueOnError)
	fs.SetOutput(out)
	path := fs.String("config", "schemas/subjects.yaml", "schemactl config: schema directory, subjects and their compatibility")
	registryURL := fs.String("registry", "", "schema registry URL (replaces registry.url of the config)")
	fs.Usage = func() {
		fmt.Fprint(out, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("want exactly one command: list, check or register")
	}
	cfg, err := config.Load(*path, *registryURL)
	if err != nil {
		return err
	}
	subjects, err := evolve.LoadSubjects(cfg)
	if err != nil {
		return err
	}
	cmd := fs.Arg(0)
	switch cmd {
	case "list":
		return evolve.List(out, cfg.Schemas, subjects)
	case "check", "register":
		if cfg.Registry.URL == "" {
			return errors.New("no registry: set registry.url in the config or pass --registry")
		}
		reg, err := evolve.NewRegistry(cfg.Registry)
		if err != nil {
			return err
		}
		if cmd == "check" {
			return evolve.CheckAll(ctx, out, reg, subjects)
		}
		return evolve.RegisterAll(ctx, out, reg, subjects)
	default:
		fs.Usage()
		return fmt.Errorf("unknown command %q", cmd)
	}
}
