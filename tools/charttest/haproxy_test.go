package charttest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/pires/go-proxyproto"
	"helm.sh/helm/v3/pkg/chart/loader"

	"github.com/iov-platform/iov/tools/devkit/emqxsim"
)

func haproxyBin(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("haproxy is not installed (Debian: apt-get install -y haproxy; make deps does it)")
	}
	return p
}

// haproxyConfig is the haproxy.cfg of a render: the one in the HAProxy chart's own
// ConfigMap (what is deployed), which must equal the test hook's copy.
func haproxyConfig(t *testing.T, v variant) string {
	t.Helper()
	objs := mustObjects(t, renderVariant(t, v))
	test := find(objs, "ConfigMap", "-test-config")
	deployed := find(objs, "ConfigMap", "-haproxy")
	if test == nil || deployed == nil {
		t.Fatal("no HAProxy ConfigMap or test ConfigMap rendered")
	}
	want, err := dataKey(test, "haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	got, err := dataKey(deployed, "haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(got) != strings.TrimSpace(want) {
		t.Fatalf("the HAProxy chart's ConfigMap differs from the tested config:\n%s", diff(want, got))
	}
	return want
}

// TestHAProxyConfigCheck: `haproxy -c` accepts the config of every umbrella render;
// unresolvable EMQX pod names are expected offline (init-addr none), any other warning fails.
func TestHAProxyConfigCheck(t *testing.T) {
	bin := haproxyBin(t)
	for _, v := range umbrellaVariants(t) {
		t.Run(v.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "haproxy.cfg")
			if err := os.WriteFile(f, []byte(haproxyConfig(t, v)), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "-c", "-f", f).CombinedOutput()
			if err != nil {
				t.Fatalf("haproxy -c: %v\n%s", err, out)
			}
			for _, line := range strings.Split(string(out), "\n") {
				if (strings.Contains(line, "[WARNING]") || strings.Contains(line, "[ALERT]")) && !strings.Contains(line, "could not resolve address") {
					t.Errorf("haproxy -c: %s", line)
				}
			}
		})
	}
}

// fakeEMQX is one EMQX node as HAProxy sees it: the MQTT broker test double
// (emqxsim) behind a listener that, like EMQX's listener with proxy_protocol = true,
// requires a PROXY protocol header and closes the connection without one; and the
// node status API on its own port (200, or 503 while unhealthy).
type fakeEMQX struct {
	idx     int
	broker  *emqxsim.Broker
	mqtt    net.Listener
	status  *httptest.Server
	healthy atomic.Bool

	mu       sync.Mutex
	accepted int
	sources  []string // PROXY header source addresses, in accept order
}

func startFakeEMQX(t *testing.T, idx int) *fakeEMQX {
	t.Helper()
	b, err := emqxsim.StartBroker(emqxsim.BrokerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &fakeEMQX{idx: idx, broker: b, mqtt: &proxyproto.Listener{Listener: l, ReadHeaderTimeout: 3 * time.Second}}
	n.healthy.Store(true)
	n.status = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !n.healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(n.status.Close)
	t.Cleanup(func() { _ = n.mqtt.Close() })
	go n.serve()
	return n
}

func (n *fakeEMQX) serve() {
	for {
		c, err := n.mqtt.Accept()
		if err != nil {
			return
		}
		go n.forward(c.(*proxyproto.Conn))
	}
}

// forward reads the PROXY header (the first Read fails without one) and then pipes the
// connection to the broker.
func (n *fakeEMQX) forward(c *proxyproto.Conn) {
	defer c.Close()
	first := make([]byte, 1)
	if _, err := io.ReadFull(c, first); err != nil {
		return
	}
	h := c.ProxyHeader()
	if h == nil {
		return
	}
	n.mu.Lock()
	n.accepted++
	n.sources = append(n.sources, fmt.Sprintf("v%d %s", h.Version, h.SourceAddr))
	n.mu.Unlock()
	up, err := net.Dial("tcp", n.broker.Addr())
	if err != nil {
		return
	}
	defer up.Close()
	if _, err := up.Write(first); err != nil {
		return
	}
	go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
	_, _ = io.Copy(up, c)
}

func (n *fakeEMQX) snapshot() (int, []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.accepted, append([]string(nil), n.sources...)
}

func (n *fakeEMQX) mqttPort() int   { return n.mqtt.Addr().(*net.TCPAddr).Port }
func (n *fakeEMQX) statusPort() int { return n.status.Listener.Addr().(*net.TCPAddr).Port }

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// haproxyRig runs the generated config on loopback in front of three fake EMQX nodes.
type haproxyRig struct {
	t         *testing.T
	nodes     []*fakeEMQX
	byServer  map[string]*fakeEMQX
	mqttAddr  string
	statsBase string
	statsURI  string
}

func mustSub(t *testing.T, cfg, pattern, repl string) string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	if !re.MatchString(cfg) {
		t.Fatalf("generated haproxy.cfg has no match for %s", pattern)
	}
	return re.ReplaceAllString(cfg, repl)
}

func startHAProxy(t *testing.T, cfg string) *haproxyRig {
	t.Helper()
	bin := haproxyBin(t)
	r := &haproxyRig{t: t, byServer: map[string]*fakeEMQX{}}
	for i := range 3 {
		r.nodes = append(r.nodes, startFakeEMQX(t, i))
	}
	m := regexp.MustCompile(`(?m)^    stats uri (\S+)$`).FindStringSubmatch(cfg)
	if m == nil {
		t.Fatal("no stats uri in the generated haproxy.cfg")
	}
	r.statsURI = m[1]
	mqttPort, statsPort := freePort(t), freePort(t)
	r.mqttAddr = fmt.Sprintf("127.0.0.1:%d", mqttPort)
	r.statsBase = fmt.Sprintf("http://127.0.0.1:%d", statsPort)
	cfg = mustSub(t, cfg, `(frontend mqtt\n    bind ):\d+`, fmt.Sprintf("${1}127.0.0.1:%d", mqttPort))
	cfg = mustSub(t, cfg, `(frontend stats\n    mode http\n    bind ):\d+`, fmt.Sprintf("${1}127.0.0.1:%d", statsPort))
	cfg = regexp.MustCompile(`(frontend mqtts\n    bind ):\d+`).ReplaceAllString(cfg, fmt.Sprintf("${1}127.0.0.1:%d", freePort(t)))
	cfg = mustSub(t, cfg, `inter \S+`, "inter 200ms")
	cfg = mustSub(t, cfg, `(?m)^    maxconn \d+$`, "    maxconn 1000") // production maxconn needs a large nofile limit
	cfg = mustSub(t, cfg, `tcp-request inspect-delay \S+`, "tcp-request inspect-delay 2s")
	cfg = mustSub(t, cfg, `(?m)^    log stdout.*$`, "    log stderr format raw local0 info")
	server := regexp.MustCompile(`(?m)^    server (\S+) \S+?:(\d+)( send-proxy-v2)?$`)
	if !server.MatchString(cfg) {
		t.Fatal("no server lines in the generated haproxy.cfg")
	}
	cfg = server.ReplaceAllStringFunc(cfg, func(line string) string {
		s := server.FindStringSubmatch(line)
		name, proxy := s[1], s[3]
		i, _ := strconv.Atoi(name[strings.LastIndex(name, "-")+1:])
		if i >= len(r.nodes) || proxy == "" {
			// Slots beyond the three nodes, and the TLS passthrough backend (not tested here).
			return fmt.Sprintf("    server %s 127.0.0.1:%d port %d disabled", name, freePort(t), freePort(t))
		}
		r.byServer[name] = r.nodes[i]
		return fmt.Sprintf("    server %s 127.0.0.1:%d%s port %d", name, r.nodes[i].mqttPort(), proxy, r.nodes[i].statusPort())
	})
	f := filepath.Join(t.TempDir(), "haproxy-behaviour.cfg")
	if err := os.WriteFile(f, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-db", "-f", f)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy output:\n%s\nconfig:\n%s", out.String(), cfg)
		}
	})
	return r
}

func (r *haproxyRig) statusCode(p string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(r.statsBase + p)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// serverStatus is the status column of the stats CSV for backend/server.
func (r *haproxyRig) serverStatus(backend, server string) string {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(r.statsBase + r.statsURI + ";csv")
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	rd := csv.NewReader(resp.Body)
	rd.FieldsPerRecord = -1
	rows, err := rd.ReadAll()
	if err != nil {
		return "?"
	}
	for _, row := range rows {
		if len(row) > 17 && row[0] == backend && row[1] == server {
			return row[17]
		}
	}
	return "?"
}

func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

// mqttSession is one vehicle connected through HAProxy.
type mqttSession struct {
	client *paho.Client
	conn   net.Conn
	owner  *fakeEMQX
	source string // the PROXY header the owner received
}

func (s *mqttSession) close() {
	_ = s.client.Disconnect(&paho.Disconnect{ReasonCode: 0})
	_ = s.conn.Close()
}

// connect opens an MQTT 5 session through HAProxy and finds the node it landed on
// (connections are made one at a time, so the node whose accept count grew owns it).
func (r *haproxyRig) connect(clientID string) (*mqttSession, error) {
	before := make([]int, len(r.nodes))
	for i, n := range r.nodes {
		before[i], _ = n.snapshot()
	}
	conn, err := net.DialTimeout("tcp", r.mqttAddr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true})
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("connect %s: %w", clientID, err)
	}
	if ack.ReasonCode != 0 {
		_ = conn.Close()
		return nil, fmt.Errorf("connect %s: CONNACK reason %d", clientID, ack.ReasonCode)
	}
	s := &mqttSession{client: c, conn: conn}
	for i, n := range r.nodes {
		if got, sources := n.snapshot(); got == before[i]+1 {
			s.owner, s.source = n, sources[len(sources)-1]
		}
	}
	if s.owner == nil {
		s.close()
		return nil, fmt.Errorf("connect %s: no node saw the connection", clientID)
	}
	return s, nil
}

func (r *haproxyRig) serverOf(n *fakeEMQX) string {
	for name, m := range r.byServer {
		if m == n {
			return name
		}
	}
	return ""
}

// TestHAProxyBehaviour runs the production haproxy.cfg on loopback against three EMQX
// test doubles and checks what vehicles see: CONNECT validation, PROXY protocol v2 with
// the vehicle's address, client-id stickiness, spreading, health checks through the
// status API, failover and readiness. The subtests run in order on one HAProxy.
func TestHAProxyBehaviour(t *testing.T) {
	cfg := haproxyConfig(t, variantNamed(t, "production"))
	r := startHAProxy(t, cfg)

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"HAProxy starts with the generated config and /healthz answers 200", func(t *testing.T) {
			if !waitFor(10*time.Second, func() bool { return r.statusCode("/healthz") == 200 }) {
				t.Fatalf("/healthz = %d", r.statusCode("/healthz"))
			}
		}},
		{"/ready is 200 once EMQX nodes pass the status-API check", func(t *testing.T) {
			if !waitFor(10*time.Second, func() bool { return r.statusCode("/ready") == 200 }) {
				t.Fatalf("/ready = %d", r.statusCode("/ready"))
			}
			// Wait until every node is up, so that leastconn sees all three.
			for name := range r.byServer {
				if !waitFor(10*time.Second, func() bool { return strings.HasPrefix(r.serverStatus("emqx_mqtt", name), "UP") }) {
					t.Fatalf("%s is %s", name, r.serverStatus("emqx_mqtt", name))
				}
			}
		}},
		{"non-MQTT first packet is rejected before reaching EMQX", func(t *testing.T) {
			before := 0
			for _, n := range r.nodes {
				c, _ := n.snapshot()
				before += c
			}
			c, err := net.DialTimeout("tcp", r.mqttAddr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(c)
			after := 0
			for _, n := range r.nodes {
				c, _ := n.snapshot()
				after += c
			}
			if len(b) != 0 || after != before {
				t.Fatalf("got %q back, EMQX accepted %d connections", b, after-before)
			}
		}},
		{"valid MQTT CONNECT is forwarded with a PROXY v2 header carrying the vehicle's address", func(t *testing.T) {
			s, err := r.connect("vin-A")
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			if want := "v2 " + s.conn.LocalAddr().String(); s.source != want {
				t.Fatalf("EMQX got PROXY header %q, want %q (the vehicle's address, not HAProxy's)", s.source, want)
			}
		}},
		{"same client identifier sticks to the same EMQX node; new clients spread", func(t *testing.T) {
			first, err := r.connect("vin-A")
			if err != nil {
				t.Fatal(err)
			}
			owner := first.owner
			first.close()
			var held []*mqttSession
			defer func() {
				for _, s := range held {
					s.close()
				}
			}()
			spread := map[int]bool{}
			for _, id := range []string{"vin-B", "vin-C", "vin-D", "vin-E"} {
				s, err := r.connect(id)
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, s)
				spread[s.owner.idx] = true
			}
			for range 4 {
				s, err := r.connect("vin-A")
				if err != nil {
					t.Fatal(err)
				}
				s.close()
				if s.owner != owner {
					t.Fatalf("vin-A moved from node %d to node %d", owner.idx, s.owner.idx)
				}
			}
			if len(spread) < 2 {
				t.Fatalf("new clients all went to one node: %v", spread)
			}
		}},
		{"a failing EMQX status API takes the node out of rotation and the sticky client moves", func(t *testing.T) {
			s, err := r.connect("vin-A")
			if err != nil {
				t.Fatal(err)
			}
			s.close()
			owner := s.owner
			owner.healthy.Store(false)
			name := r.serverOf(owner)
			if !waitFor(10*time.Second, func() bool { return strings.HasPrefix(r.serverStatus("emqx_mqtt", name), "DOWN") }) {
				t.Fatalf("%s is %s", name, r.serverStatus("emqx_mqtt", name))
			}
			moved, err := r.connect("vin-A")
			if err != nil {
				t.Fatal(err)
			}
			moved.close()
			if moved.owner == owner {
				t.Fatalf("vin-A stayed on the failed node %d", owner.idx)
			}
		}},
		{"/ready turns 503 when no EMQX node is up", func(t *testing.T) {
			for _, n := range r.nodes {
				n.healthy.Store(false)
			}
			if !waitFor(10*time.Second, func() bool { return r.statusCode("/ready") == 503 }) {
				t.Fatalf("/ready = %d", r.statusCode("/ready"))
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			return // later steps depend on the earlier ones
		}
	}
}

// TestHAProxyPorts: the HAProxy pods and Service carry only the MQTT ports (mqtt, and
// mqtts when enabled); the chart's default http/https/stat ports are removed and the
// stats port stays off the Service.
func TestHAProxyPorts(t *testing.T) {
	want := map[string]string{"production": "mqtt,mqtts", "production-enterprise": "mqtt,mqtts"} // TLS on; every other variant: "mqtt"
	for _, v := range umbrellaVariants(t) {
		t.Run(v.name, func(t *testing.T) {
			objs := mustObjects(t, renderVariant(t, v))
			names := func(list any) string {
				var out []string
				for _, p := range list.([]any) {
					out = append(out, fmt.Sprint(path(p, "name")))
				}
				return strings.Join(out, ",")
			}
			dep, svc := find(objs, "Deployment", "-haproxy"), find(objs, "Service", "-haproxy")
			if dep == nil || svc == nil {
				t.Fatal("no HAProxy Deployment or Service")
			}
			c := path(dep, "spec", "template", "spec", "containers").([]any)[0]
			w := cmp.Or(want[v.name], "mqtt")
			if got := names(path(c, "ports")); got != w {
				t.Errorf("container ports %s, want %s", got, w)
			}
			if got := names(path(svc, "spec", "ports")); got != w {
				t.Errorf("Service ports %s, want %s", got, w)
			}
		})
	}
}

// TestHAProxyPortsWithoutNullOverrides renders every umbrella variant as Helm 4 does
// (helm/helm#32132: a null in the parent's values does not remove a subchart default):
// with every null dropped from the umbrella's values and the variant's values files, the
// HAProxy pods and Service still carry only the MQTT ports. It fails for values that
// remove the HAProxy chart's default http/https/stat ports with nulls.
func TestHAProxyPortsWithoutNullOverrides(t *testing.T) {
	for _, v := range umbrellaVariants(t) {
		t.Run(v.name, func(t *testing.T) {
			ch, err := loader.Load(scratchUmbrella(t))
			if err != nil {
				t.Fatal(err)
			}
			ch.Values = dropNulls(ch.Values)
			vals, err := valuesFrom(v.values, nil)
			if err != nil {
				t.Fatal(err)
			}
			m, err := renderChart(ch, dropNulls(vals))
			if err != nil {
				t.Fatal(err)
			}
			objs := mustObjects(t, m)
			dep, svc := find(objs, "Deployment", "-haproxy"), find(objs, "Service", "-haproxy")
			if dep == nil || svc == nil {
				t.Fatal("no HAProxy Deployment or Service")
			}
			for _, list := range [][]any{path(path(dep, "spec", "template", "spec", "containers").([]any)[0], "ports").([]any), path(svc, "spec", "ports").([]any)} {
				for _, p := range list {
					if n := fmt.Sprint(path(p, "name")); n != "mqtt" && n != "mqtts" {
						t.Errorf("HAProxy port %s rendered once null overrides are ignored", n)
					}
				}
			}
		})
	}
}

// dropNulls returns m without the keys whose value is null, at every depth.
func dropNulls(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case nil:
		case map[string]any:
			out[k] = dropNulls(x)
		default:
			out[k] = v
		}
	}
	return out
}
