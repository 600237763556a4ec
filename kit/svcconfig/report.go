package svcconfig

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Parse decodes data strictly into cfg, which already holds the defaults, then calls finish
// (environment overrides, per-field defaults, validation) and returns every problem at once:
// unknown keys and wrongly typed values together with finish's validation errors. Only a
// YAML syntax error stops before finish, since then nothing was decoded. An empty document
// is an empty config: the defaults, then finish.
func Parse[T any](data []byte, cfg *T, finish func(*T) error) error {
	err := Decode(data, cfg)
	var te *yaml.TypeError
	switch {
	case err == nil || errors.Is(err, io.EOF):
		return finish(cfg)
	case errors.As(err, &te):
		// yaml.v3 decoded everything else; a field it could not set keeps its default.
		errs := make([]error, 0, len(te.Errors)+1)
		for _, e := range te.Errors {
			errs = append(errs, fmt.Errorf("parse yaml: %s", e))
		}
		return errors.Join(append(errs, finish(cfg))...)
	}
	return err
}

// Prefix puts prefix before every problem of err: each error of an errors.Join (nested ones
// too) gets its own "prefix: " so that a list of problems reads one per line, each saying
// where it is. nil stays nil.
func Prefix(prefix string, err error) error {
	if err == nil {
		return nil
	}
	if errs := joined(err); errs != nil {
		out := make([]error, len(errs))
		for i, e := range errs {
			out[i] = Prefix(prefix, e)
		}
		return errors.Join(out...)
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// joined returns the errors err lists one per line (an errors.Join), or nil. An error with
// several wrapped errors on one line (fmt.Errorf("%w: %w")) is one problem, not a list.
func joined(err error) []error {
	u, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return nil
	}
	errs := u.Unwrap()
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	if len(errs) == 0 || strings.Join(msgs, "\n") != err.Error() {
		return nil
	}
	return errs
}
