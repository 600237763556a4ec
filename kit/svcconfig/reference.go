package svcconfig

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// CheckReference tells whether ref, a service's embedded default YAML, is the annotated
// reference of its config: every key of cfg (the config loaded from ref, so that defaults
// show) is written in ref, and every key in ref has a comment, above it or on its line, at
// one of its occurrences at least (a list's items share their keys). Keys below a free
// prefix (e.g. kafka.properties, whose keys are the user's) are not checked.
func CheckReference(ref []byte, cfg any, free ...string) error {
	var doc, eff yaml.Node
	if err := yaml.Unmarshal(ref, &doc); err != nil {
		return fmt.Errorf("parse reference: %w", err)
	}
	if err := eff.Encode(cfg); err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	written, effective := map[string]bool{}, map[string]bool{}
	keyPaths(&doc, "", false, written)
	keyPaths(&eff, "", false, effective)
	isFree := func(p string) bool {
		return slices.ContainsFunc(free, func(f string) bool { return strings.HasPrefix(p, f+".") })
	}
	var errs []error
	for _, p := range sorted(effective) {
		if _, ok := written[p]; !ok && !isFree(p) {
			errs = append(errs, fmt.Errorf("%s: not in the reference", p))
		}
	}
	for _, p := range sorted(written) {
		if !written[p] && !isFree(p) {
			errs = append(errs, fmt.Errorf("%s: no comment", p))
		}
	}
	return errors.Join(errs...)
}

// keyPaths records every key path under n ("a.b", list items as "a[].b") and whether one of
// its occurrences has a comment; a key of a flow mapping ({a: 1}) shares its parent's.
func keyPaths(n *yaml.Node, prefix string, parentCommented bool, paths map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			keyPaths(c, prefix, false, paths)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			keyPaths(c, prefix+"[]", parentCommented || c.HeadComment != "" || c.LineComment != "", paths)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + k.Value
			}
			commented := k.HeadComment != "" || k.LineComment != "" || v.LineComment != "" ||
				(n.Style&yaml.FlowStyle != 0 && parentCommented)
			paths[p] = paths[p] || commented
			keyPaths(v, p, commented, paths)
		}
	}
}

func sorted(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
