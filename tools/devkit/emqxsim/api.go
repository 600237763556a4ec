package emqxsim

// api.go: the slice of EMQX's REST API (apps/emqx_exhook/src/emqx_exhook_api.erl) that
// re-enables an ExHook server: GET and PUT /api/v5/exhooks/{name}, behind an API key.

import (
	"encoding/json"
	"net/http"
	"strings"
)

// APIHandler serves GET and PUT /api/v5/exhooks/{name} for this broker's single ExHook
// server, named name, to clients authenticating with key and secret. A PUT reloads the
// server (Reload) and answers once the load is done.
func (b *Broker) APIHandler(name, key, secret string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v5/exhooks/{name}", func(w http.ResponseWriter, r *http.Request) {
		if k, s, ok := r.BasicAuth(); !ok || k != key || s != secret {
			writeAPI(w, http.StatusUnauthorized, map[string]any{"code": "BAD_API_KEY_OR_SECRET", "message": "Check api_key/api_secret"})
			return
		}
		if r.PathValue("name") != name {
			writeAPI(w, http.StatusNotFound, map[string]any{"code": "NOT_FOUND", "message": "Server not found"})
			return
		}
		switch r.Method {
		case http.MethodGet:
		case http.MethodPut:
			var conf map[string]any
			if err := json.NewDecoder(r.Body).Decode(&conf); err != nil || conf["name"] != name || conf["url"] == nil {
				writeAPI(w, http.StatusBadRequest, map[string]any{"code": "BAD_REQUEST", "message": "Bad Request"})
				return
			}
			n := b.Loads()
			b.Reload()
			b.waitLoads(r.Context(), n+1)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		writeAPI(w, http.StatusOK, b.serverInfo(name))
	})
	return mux
}

func (b *Broker) serverInfo(name string) map[string]any {
	b.hmu.RLock()
	defer b.hmu.RUnlock()
	status := "connecting"
	if b.pool != nil {
		status = "connected"
	}
	var hooks []map[string]any
	for h, topics := range b.hooks {
		params := map[string]any{}
		if strings.HasPrefix(h, "message.") {
			params["topics"] = topics
		}
		hooks = append(hooks, map[string]any{"name": h, "params": params})
	}
	return map[string]any{
		"name": name, "enable": true, "url": "http://" + b.opts.HookAddr,
		"request_timeout": b.opts.RequestTimeout.String(), "failed_action": b.opts.FailedAction,
		"auto_reconnect": b.opts.AutoReconnect.String(), "pool_size": b.opts.PoolSize,
		"metrics":     map[string]any{"succeed": 0, "failed": 0, "rate": 0, "max_rate": 0},
		"node_status": []map[string]any{{"node": b.opts.Node, "status": status}},
		"hooks":       hooks,
	}
}

func writeAPI(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
