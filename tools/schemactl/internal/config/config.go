// Package config reads schemactl's YAML: where the schema tree is, which registry subject
// carries which schema family, and the compatibility level each subject must have.
package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/riferrei/srclient"

	"github.com/iov-platform/iov/kit/svcconfig"
)

// Config is schemactl's configuration.
type Config struct {
	Registry svcconfig.Registry `yaml:"registry"`
	// Schemas is the schema tree (<family>/v<N>.avsc), relative to the config file.
	Schemas string `yaml:"schemas"`
	// Compatibility is the level of every subject that does not set its own.
	Compatibility srclient.CompatibilityLevel `yaml:"compatibility"`
	Subjects      []Subject                   `yaml:"subjects"`
}

// Subject maps a registry subject to the schema family it carries.
type Subject struct {
	Name          string                      `yaml:"name"`
	Schema        string                      `yaml:"schema"`
	Compatibility srclient.CompatibilityLevel `yaml:"compatibility"`
}

var levels = []srclient.CompatibilityLevel{
	srclient.None, srclient.Backward, srclient.BackwardTransitive, srclient.Forward,
	srclient.ForwardTransitive, srclient.Full, srclient.FullTransitive,
}

// Load reads path; the schema tree is resolved against path's directory. registryURL, when
// set, replaces registry.url; credentials come from REGISTRY_USERNAME / REGISTRY_PASSWORD.
func Load(path, registryURL string) (*Config, error) {
	cfg, err := svcconfig.Load(path, nil, func(data []byte) (*Config, error) {
		return Parse(data, registryURL)
	})
	if err != nil {
		return nil, err
	}
	if !filepath.IsAbs(cfg.Schemas) {
		cfg.Schemas = filepath.Join(filepath.Dir(path), cfg.Schemas)
	}
	return cfg, nil
}

// Parse decodes and validates data, reporting every problem at once. The registry URL is
// only checked when set: listing needs no registry.
func Parse(data []byte, registryURL string) (*Config, error) {
	cfg := &Config{Compatibility: srclient.Backward}
	if err := svcconfig.Decode(data, cfg); err != nil {
		return nil, err
	}
	if registryURL != "" {
		cfg.Registry.URL = registryURL
	}
	cfg.Registry.CredentialsFromEnv()
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if cfg.Registry.URL != "" {
		if err := cfg.Registry.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.Schemas == "" {
		add("schemas: the schema directory is required")
	}
	if !slices.Contains(levels, cfg.Compatibility) {
		add("compatibility %q: want one of %v", cfg.Compatibility, levels)
	}
	if len(cfg.Subjects) == 0 {
		add("subjects: at least one subject is required")
	}
	seen := map[string]bool{}
	for i, s := range cfg.Subjects {
		switch {
		case s.Name == "":
			add("subjects[%d].name is required", i)
		case seen[s.Name]:
			add("subjects[%d].name %q: listed twice", i, s.Name)
		}
		seen[s.Name] = true
		if s.Schema == "" {
			add("subjects[%d].schema is required", i)
		}
		if s.Compatibility != "" && !slices.Contains(levels, s.Compatibility) {
			add("subjects[%d].compatibility %q: want one of %v", i, s.Compatibility, levels)
		}
		if s.Compatibility == "" {
			cfg.Subjects[i].Compatibility = cfg.Compatibility
		}
	}
	return cfg, errors.Join(errs...)
}
