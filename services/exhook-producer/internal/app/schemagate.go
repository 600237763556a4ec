package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riferrei/srclient"

	"github.com/iov-platform/iov/kit/ops"
	"github.com/iov-platform/iov/kit/svcconfig"
	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/services/exhook-producer/internal/hook"
)

// schemaGate resolves the schema ids the producer writes with.
//
// With autoRegister the producer registers its schemas itself and a failure stops New. Without
// (production: schemas go through schemactl in CI and a pre-install Job), a schema that is not
// registered yet does not stop the process: readiness stays 503 and names the subject and the
// missing version, the lookups are retried with backoff, and gRPC is served only once every
// schema resolved, so EMQX never meets a producer that cannot encode.
type schemaGate struct {
	reg          serde.Registry
	autoRegister bool
	state        *ops.State
	log          *slog.Logger

	mu      sync.Mutex
	pending []*lazyEncoder
	cond    string // readiness condition now set, "" when none
}

// Retry bounds of the lookups while a schema is missing.
const (
	schemaRetryMin = 500 * time.Millisecond
	schemaRetryMax = 5 * time.Second
)

func newSchemaGate(reg serde.Registry, autoRegister bool, state *ops.State, log *slog.Logger) *schemaGate {
	return &schemaGate{reg: reg, autoRegister: autoRegister, state: state, log: log}
}

// encoder returns def's encoder under subject. Without autoRegister a lookup failure is not an
// error: the encoder is pending until wait resolves it.
func (g *schemaGate) encoder(subject string, def schemas.Definition) (hook.Encoder, error) {
	enc, err := serde.NewEncoder(g.reg, subject, def, g.autoRegister)
	if err == nil {
		return enc, nil
	}
	if g.autoRegister {
		return nil, err
	}
	l := &lazyEncoder{subject: subject, def: def, err: err}
	g.mu.Lock()
	g.pending = append(g.pending, l)
	g.mu.Unlock()
	g.report() // readiness names the missing schema from the first request on; wait logs it
	return l, nil
}

// wait returns nil once every pending schema resolved, or ctx's error.
func (g *schemaGate) wait(ctx context.Context) error {
	for attempt := 1; !g.resolve(attempt == 1); attempt++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(svcconfig.Backoff(schemaRetryMin, schemaRetryMax, attempt)):
		}
	}
	return nil
}

// resolve looks up every pending schema once and reports whether none is left.
func (g *schemaGate) resolve(first bool) bool {
	g.mu.Lock()
	pending, prev := g.pending, g.cond
	g.mu.Unlock()
	var left []*lazyEncoder
	for _, l := range pending {
		enc, err := serde.NewEncoder(g.reg, l.subject, l.def, false)
		if err != nil {
			l.setErr(err)
			left = append(left, l)
			continue
		}
		l.enc.Store(enc)
		g.log.Info("schema registered; resolved", "subject", l.subject, "schema", l.def.Name, "version", l.def.Version, "schema_id", enc.ID())
	}
	g.mu.Lock()
	g.pending = left
	g.mu.Unlock()
	if cond := g.report(); cond != "" && (first || cond != prev) {
		g.log.Warn("not ready: waiting for schemas", "reason", cond)
	}
	return len(left) == 0
}

// report turns the pending schemas into one readiness condition, replacing the previous one,
// and returns it.
func (g *schemaGate) report() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var missing, failed []string
	for _, l := range g.pending {
		if text, notFound := l.problem(); notFound {
			missing = append(missing, text)
		} else {
			failed = append(failed, text)
		}
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "schema not registered (registry.autoRegister is false: register it with schemactl): "+strings.Join(missing, ", "))
	}
	if len(failed) > 0 {
		parts = append(parts, "schema lookup failed: "+strings.Join(failed, ", "))
	}
	cond := strings.Join(parts, "; ")
	if cond != g.cond {
		if g.cond != "" {
			g.state.Set(g.cond, false)
		}
		if cond != "" {
			g.state.Set(cond, true)
		}
		g.cond = cond
	}
	return cond
}

// lazyEncoder encodes once its schema resolved; before, it refuses.
type lazyEncoder struct {
	subject string
	def     schemas.Definition
	enc     atomic.Pointer[serde.Encoder]

	mu  sync.Mutex
	err error // last lookup failure
}

func (l *lazyEncoder) setErr(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
}

// problem describes the last lookup failure and whether it was "not registered" (the
// registry's subject-not-found 40401 or schema-not-found 40403).
func (l *lazyEncoder) problem() (string, bool) {
	l.mu.Lock()
	err := l.err
	l.mu.Unlock()
	var se srclient.Error
	if errors.As(err, &se) && (se.Code == 40401 || se.Code == 40403) {
		return fmt.Sprintf("subject %s has no %s v%d", l.subject, l.def.Name, l.def.Version), true
	}
	return fmt.Sprintf("subject %s, %s v%d: %v", l.subject, l.def.Name, l.def.Version, err), false
}

func (l *lazyEncoder) Encode(v any) ([]byte, error) {
	enc := l.enc.Load()
	if enc == nil {
		return nil, fmt.Errorf("%s v%d not registered under subject %s", l.def.Name, l.def.Version, l.subject)
	}
	return enc.Encode(v)
}
