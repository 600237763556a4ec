// Package logging builds the services' slog loggers: JSON for machines (with a fixed
// "service" key), text for people.
package logging

import (
	"fmt"
	"io"
	"log/slog"
)

// New returns a logger at level (debug, info, warn, error) in format (json, text).
func New(level, format, service string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)).With("service", service), nil
	}
	return nil, fmt.Errorf("log format %q: want json or text", format)
}
