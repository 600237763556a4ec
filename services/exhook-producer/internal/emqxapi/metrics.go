package emqxapi

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names of the status exporter (exhook-reload -serve).
const (
	MetricAPIUp        = "exhook_emqx_api_up"
	MetricServerLoaded = "exhook_emqx_server_loaded"
	MetricScopeMatches = "exhook_emqx_server_scope_matches"
)

// Collector asks EMQX for the ExHook server's state at every scrape (one GET
// /api/v5/exhooks/{name}, bounded by Timeout) and exports it, so that Prometheus sees
// what EMQX itself does not export: EMQX 5.8 and 6.0 have no ExHook metric on their
// Prometheus endpoint. Reading at scrape time means a value is never older than the
// scrape.
//
//	exhook_emqx_api_up                     1 when EMQX answered the GET, else 0
//	exhook_emqx_server_loaded{node}        1 when the node reports the server connected,
//	                                       0 for connecting, disconnected, disabled, error
//	exhook_emqx_server_scope_matches       1 when message.publish is registered for exactly
//	                                       Scope (only with a Scope)
type Collector struct {
	Client  *Client
	Name    string        // ExHook server name
	Scope   []string      // expected message.publish topics; empty: not checked
	Timeout time.Duration // per scrape; default 5s
	Log     *slog.Logger  // probe failures and state changes; default: discarded

	up, loaded, scope *prometheus.Desc
	mu                sync.Mutex
	last              string // last logged state, to log changes only
}

// NewCollector returns a Collector for server name.
func NewCollector(c *Client, name string, scope []string, timeout time.Duration, log *slog.Logger) *Collector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	constLabels := prometheus.Labels{"server": name}
	return &Collector{
		Client: c, Name: name, Scope: scope, Timeout: timeout, Log: log,
		up: prometheus.NewDesc(MetricAPIUp,
			"1 when EMQX's REST API answered the last status read of the ExHook server, else 0.", nil, constLabels),
		loaded: prometheus.NewDesc(MetricServerLoaded,
			"1 when the EMQX node reports the ExHook server connected (loaded), else 0.", []string{"node"}, constLabels),
		scope: prometheus.NewDesc(MetricScopeMatches,
			"1 when EMQX has message.publish registered for exactly the expected hook scope, else 0.", nil, constLabels),
	}
}

// Describe sends the descriptors.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.loaded
	if len(c.Scope) > 0 {
		ch <- c.scope
	}
}

// Collect reads the server's state from EMQX and sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	s, err := c.Client.Status(ctx, c.Name)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		c.logState(slog.LevelWarn, "emqx api not answering", slog.String("err", err.Error()))
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	var notLoaded []string
	for _, n := range s.NodeStatus {
		v := 0.0
		if n.Status == "connected" {
			v = 1
		} else {
			notLoaded = append(notLoaded, n.Node+"="+n.Status)
		}
		ch <- prometheus.MustNewConstMetric(c.loaded, prometheus.GaugeValue, v, n.Node)
	}
	scopeOK := true
	if len(c.Scope) > 0 {
		scopeOK = s.Registered("message.publish", c.Scope)
		ch <- prometheus.MustNewConstMetric(c.scope, prometheus.GaugeValue, map[bool]float64{true: 1, false: 0}[scopeOK])
	}
	switch {
	case len(s.NodeStatus) == 0:
		c.logState(slog.LevelWarn, "exhook server on no node")
	case len(notLoaded) > 0:
		c.logState(slog.LevelWarn, "exhook server not loaded on every node", slog.String("nodes", strings.Join(notLoaded, " ")))
	case !scopeOK:
		got, _ := s.Topics("message.publish")
		c.logState(slog.LevelWarn, "exhook server registered another scope",
			slog.String("registered", strings.Join(got, " ")), slog.String("want", strings.Join(c.Scope, " ")))
	default:
		c.logState(slog.LevelInfo, "exhook server loaded", slog.Int("nodes", len(s.NodeStatus)))
	}
}

// logState logs msg when it differs from the last state logged: one line per change, not
// one per scrape. Two scrapes may collect at once, hence the lock.
func (c *Collector) logState(level slog.Level, msg string, attrs ...slog.Attr) {
	c.mu.Lock()
	changed := msg != c.last
	c.last = msg
	c.mu.Unlock()
	if changed {
		c.Log.LogAttrs(context.Background(), level, msg, append([]slog.Attr{slog.String("server", c.Name)}, attrs...)...)
	}
}
