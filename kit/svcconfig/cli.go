package svcconfig

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"
)

// CommandLine parses a service's command line — --config FILE, --check-config, --help —
// and loads its config with load. done tells the caller to exit with err without running:
// help was asked for (printed, err nil), or --check-config printed the effective config on
// out. about is the one-line description --help prints.
func CommandLine[T any](name, about string, args []string, out io.Writer, load func(path string) (T, error)) (cfg T, done bool, err error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	path := fs.String("config", "", "YAML config file (default: the embedded loopback config, which is also the annotated reference)")
	check := fs.Bool("check-config", false, "load and validate the config, print the effective config (secrets masked) and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [--config FILE] [--check-config]\n\n%s\n\nFlags:\n", name, about)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, true, nil
		}
		return cfg, true, err
	}
	if fs.NArg() > 0 {
		return cfg, true, fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	}
	cfg, err = load(*path)
	if err != nil || !*check {
		return cfg, err != nil, err
	}
	source := "the embedded default"
	if *path != "" {
		source = *path
	}
	if err := PrintEffective(out, fmt.Sprintf("%s: effective config from %s (defaults and environment applied, secrets masked)", name, source), cfg); err != nil {
		return cfg, true, err
	}
	_, err = fmt.Fprintln(out, "config ok")
	return cfg, true, err
}

// EnvOnly is a setting read only from the environment, never from YAML (credentials):
// PrintEffective lists it after the YAML, masked when Secret.
type EnvOnly struct {
	Key    string // where it belongs, e.g. registry.password
	Env    string // the variable it is read from
	Value  string
	Secret bool
}

// EnvOnlySettings is implemented by configs that have EnvOnly settings.
type EnvOnlySettings interface{ EnvOnly() []EnvOnly }

// EnvOnly lists the registry credentials.
func (r Registry) EnvOnly() []EnvOnly {
	return []EnvOnly{
		{Key: "registry.username", Env: "REGISTRY_USERNAME", Value: r.Username},
		{Key: "registry.password", Env: "REGISTRY_PASSWORD", Value: r.Password, Secret: true},
	}
}

// Masked is what PrintEffective shows instead of a secret.
const Masked = "*****"

// PrintEffective writes cfg as YAML under a comment line, title, with every secret masked:
// values of keys that name a secret (password, secret, token, credentials, private keys,
// sasl.jaas.config, ...), passwords in URLs, and the EnvOnly settings cfg lists.
func PrintEffective(w io.Writer, title string, cfg any) error {
	var doc yaml.Node
	if err := doc.Encode(cfg); err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	mask(&doc)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# %s\n", title)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	if s, ok := cfg.(EnvOnlySettings); ok {
		buf.WriteString("# from the environment only, never from YAML:\n")
		for _, e := range s.EnvOnly() {
			v := e.Value
			switch {
			case v == "":
				v = "(unset)"
			case e.Secret:
				v = Masked
			}
			fmt.Fprintf(&buf, "#   %s (%s): %s\n", e.Key, e.Env, v)
		}
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// secretWords mark a key whose value is a secret, compared lower-case as substrings.
var secretWords = []string{"password", "passwd", "secret", "token", "credential", "jaas", "private", "key.pem", "apikey", "api.key"}

// SecretKey tells whether a config or librdkafka key holds a secret.
func SecretKey(key string) bool {
	k := strings.ToLower(key)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// mask replaces, in place, secret values under secret keys and passwords in URLs.
func mask(n *yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			mask(c)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind == yaml.ScalarNode && v.Value != "" && SecretKey(k.Value) {
				v.Value, v.Tag, v.Style = Masked, "!!str", 0
				continue
			}
			mask(v)
		}
	case yaml.ScalarNode:
		if u, err := url.Parse(n.Value); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				n.Value = u.Redacted()
			}
		}
	}
}
