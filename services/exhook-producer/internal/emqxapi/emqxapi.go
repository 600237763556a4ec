// Package emqxapi re-enables an ExHook server through EMQX 5's REST API, so that EMQX calls
// OnProviderLoaded again on every node and takes the provider's new hook list: EMQX reads
// the hooks only when it loads the server (its start, or the server enabled or updated),
// never when the provider restarts.
//
// The endpoints are EMQX's own (apps/emqx_exhook/src/emqx_exhook_api.erl, v5.8.6):
// GET /api/v5/exhooks/{name} answers the server's raw config merged with metrics,
// node_metrics, node_status and hooks; PUT /api/v5/exhooks/{name} with the config updates
// the server, which emqx_exhook_mgr turns into restart_server (unload, then load) on every
// node, and answers the same view (404 unknown server, 400 bad config). Authentication is
// an EMQX API key and secret as HTTP basic auth.
package emqxapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Client calls one EMQX cluster's REST API.
type Client struct {
	BaseURL   string // e.g. http://emqx-dashboard:18083
	APIKey    string
	APISecret string
	HTTP      *http.Client // default: 30s timeout
}

// Server is EMQX's view of an ExHook server after the update.
type Server struct {
	Name       string       `json:"name"`
	Enable     bool         `json:"enable"`
	URL        string       `json:"url"`
	NodeStatus []NodeStatus `json:"node_status"`
	Hooks      []Hook       `json:"hooks"`
}

// NodeStatus is one node's state of the server: connected, connecting, disconnected,
// disabled or error.
type NodeStatus struct {
	Node   string `json:"node"`
	Status string `json:"status"`
}

// Hook is one registered hook; message.* hooks carry params.topics.
type Hook struct {
	Name   string         `json:"name"`
	Params map[string]any `json:"params"`
}

// Topics lists the topic filters of a message.* hook.
func (h Hook) Topics() []string {
	list, _ := h.Params["topics"].([]any)
	var out []string
	for _, t := range list {
		if s, ok := t.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// Topics returns the topics registered for hook, and whether it is registered at all.
func (s Server) Topics(hook string) ([]string, bool) {
	for _, h := range s.Hooks {
		if h.Name == hook {
			return h.Topics(), true
		}
	}
	return nil, false
}

// Registered reports whether hook is registered for exactly topics, in that order (EMQX
// keeps the provider's order).
func (s Server) Registered(hook string, topics []string) bool {
	got, ok := s.Topics(hook)
	return ok && slices.Equal(got, topics)
}

// notConfig are the fields of the GET answer that are not part of the server's config.
var notConfig = []string{"metrics", "node_metrics", "node_status", "hooks"}

// Reload puts the ExHook server name's current config back, unchanged, which makes every
// node unload and load it again (OnProviderLoaded).
func (c *Client) Reload(ctx context.Context, name string) (Server, error) {
	path := "/api/v5/exhooks/" + url.PathEscape(name)
	var conf map[string]any
	if err := c.do(ctx, http.MethodGet, path, nil, &conf); err != nil {
		return Server{}, err
	}
	for _, k := range notConfig {
		delete(conf, k)
	}
	body, err := json.Marshal(conf)
	if err != nil {
		return Server{}, fmt.Errorf("encode exhook %s config: %w", name, err)
	}
	var s Server
	if err := c.do(ctx, http.MethodPut, path, body, &s); err != nil {
		return Server{}, err
	}
	return s, nil
}

// Status reads the ExHook server name as every node sees it (GET, no change).
func (c *Client) Status(ctx context.Context, name string) (Server, error) {
	var s Server
	if err := c.do(ctx, http.MethodGet, "/api/v5/exhooks/"+url.PathEscape(name), nil, &s); err != nil {
		return Server{}, err
	}
	return s, nil
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("emqx api %s %s: %w", method, path, err)
	}
	req.SetBasicAuth(c.APIKey, c.APISecret)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("emqx api %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("emqx api %s %s: read: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Code, Message string }
		_ = json.Unmarshal(data, &e)
		if e.Message == "" {
			e.Message = strings.TrimSpace(string(data))
		}
		return fmt.Errorf("emqx api %s %s: %s %s: %s", method, path, resp.Status, e.Code, e.Message)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("emqx api %s %s: decode: %w", method, path, err)
	}
	return nil
}

// ErrNotLoaded is returned by Check when a node has not loaded the server.
var ErrNotLoaded = errors.New("exhook server not connected on every node")

// Check reports whether every node has the server connected and message.publish registered
// for exactly scope (when scope is not empty).
func Check(s Server, scope []string) error {
	var bad []string
	for _, n := range s.NodeStatus {
		if n.Status != "connected" {
			bad = append(bad, n.Node+"="+n.Status)
		}
	}
	if len(s.NodeStatus) == 0 || len(bad) > 0 {
		return fmt.Errorf("%w: %v", ErrNotLoaded, bad)
	}
	if len(scope) == 0 {
		return nil
	}
	if !s.Registered("message.publish", scope) {
		got, _ := s.Topics("message.publish")
		return fmt.Errorf("message.publish registered for %q, want %q", got, scope)
	}
	return nil
}

// ParseBootstrap reads the first API key of a file in EMQX's api_key.bootstrap_file format
// (apps/emqx_management/src/emqx_mgmt_auth.erl, v5.8.9 and e6.0.1): one `key:secret` or
// `key:secret:role` a line, blank lines skipped. The same file that EMQX loads at start
// gives the client its credentials, so the two cannot disagree.
func ParseBootstrap(data []byte) (key, secret string, err error) {
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, rest, ok := strings.Cut(line, ":")
		s, _, _ := strings.Cut(rest, ":")
		if !ok || k == "" || s == "" {
			return "", "", errors.New("api key file: first line is not key:secret[:role]")
		}
		return k, s, nil
	}
	return "", "", errors.New("api key file: no key:secret line")
}

// Ensure makes EMQX register message.publish for scope: it reloads the server only when EMQX
// has hooks registered and message.publish is not registered for exactly scope (a reload
// unloads and loads the server on every node, a short moment without hooks, so a server
// already on the scope is left alone), then polls every poll until every node reports the
// server connected with scope, or ctx ends. A server with no hooks yet is not loaded: its
// nodes (the producer was not ready when they started) load it at their next
// auto_reconnect, which brings the producer's current scope; Ensure waits for them. It
// reports whether it reloaded.
func (c *Client) Ensure(ctx context.Context, name string, scope []string, poll time.Duration) (Server, bool, error) {
	if len(scope) == 0 {
		return Server{}, false, errors.New("ensure: no scope to ensure")
	}
	s, err := c.Status(ctx, name)
	if err != nil {
		return Server{}, false, err
	}
	reloaded := false
	if len(s.Hooks) > 0 && !s.Registered("message.publish", scope) {
		if s, err = c.Reload(ctx, name); err != nil {
			return Server{}, false, err
		}
		reloaded = true
	}
	for {
		checkErr := Check(s, scope)
		if checkErr == nil {
			return s, reloaded, nil
		}
		select {
		case <-ctx.Done():
			return s, reloaded, fmt.Errorf("%w (gave up: %w)", checkErr, ctx.Err())
		case <-time.After(poll):
		}
		next, err := c.Status(ctx, name)
		if err != nil {
			if ctx.Err() != nil { // the deadline passed during the GET: say what was still missing
				return s, reloaded, fmt.Errorf("%w (gave up: %w)", checkErr, ctx.Err())
			}
			return Server{}, reloaded, err
		}
		s = next
	}
}
