#!/usr/bin/env bash
# Offline tests for the Helm charts in charts/ (no network, no cluster).
#
#   tools/chart-test.sh            run every check
#   tools/chart-test.sh --update   rewrite the goldens and the infra/ reference files
#
# What is checked (each line counts as one check in the closing summary):
#   * Chart.yaml: third-party dependencies pinned, local subcharts in sync, every
#     chart in charts/ wired into the umbrella
#   * helm lint --strict of every chart (umbrella with default and production values,
#     subcharts with their defaults and each charts/<subchart>/ci/*-values.yaml)
#   * helm-unittest suites of every chart
#   * helm template of the umbrella WITHOUT the third-party charts (see below), and
#     of each subchart standalone (defaults and ci/*-values.yaml, e.g. the
#     exhook-producer spool StatefulSet)
#   * negative renders: every charts/testdata/bad-values/*.yaml must be rejected
#   * kubectl-validate of the rendered built-in kinds against Kubernetes schemas
#   * kubectl-validate of the rendered Strimzi / ServiceMonitor resources against the
#     real CRDs when provided, else against the structural subsets in
#     charts/testdata/structural-crds (and cross-resource checks)
#   * haproxy -c of the generated haproxy.cfg (DNS-free), and a behaviour test that
#     runs HAProxy on 127.0.0.1 with fake EMQX nodes (CONNECT validation, stickiness,
#     redispatch, readiness)
#   * checksum/config annotations change with the config and only with it
#   * golden renders (charts/iov-platform/testdata/golden) and infra/ reference files
#
# Offline means: CI has no internet, so the third-party dependencies of
# charts/iov-platform (strimzi-kafka-operator, emqx, haproxy) are NOT fetched and
# NOT rendered. The umbrella is rendered from a temporary copy whose Chart.yaml
# keeps only the file:// subcharts; everything this repository templates (Kafka,
# KafkaNodePool, KafkaTopic, schema registry, our services, the HAProxy config and
# the EMQX ExHook settings, both rendered through this chart's named templates) is
# covered. What the third-party charts do with their values is not.
#
# Tools: helm (tools/go.mod), kubectl-validate and helm-unittest are built from
# the Go module proxy into bin/ once and reused. haproxy comes from Debian; with
# CI=true it is installed with apt-get when missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

UPDATE=0
for arg in "$@"; do
  case "$arg" in
    --update) UPDATE=1 ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "chart-test: unknown argument $arg" >&2; exit 2 ;;
  esac
done

KUBE_VERSION="${KUBE_VERSION:-1.30.0}"              # newest schema set embedded in kubectl-validate v0.0.4
KV_VERSION="${KUBE_VERSION%.*}"                      # 1.30
RELEASE=iov
NAMESPACE=iov
KUBECTL_VALIDATE_VERSION=v0.0.4
HELM_UNITTEST_VERSION=v1.1.2
BIN="$ROOT/bin"
CHARTS="$ROOT/charts"
UMBRELLA="$CHARTS/iov-platform"
GOLDEN="$UMBRELLA/testdata/golden"
PY=/usr/bin/python3

WORK="$(mktemp -d "${TMPDIR:-/tmp}/chart-test.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
# Keep helm away from the user's repositories, cache and plugins.
export HELM_CONFIG_HOME="$WORK/helm/config" HELM_CACHE_HOME="$WORK/helm/cache" HELM_DATA_HOME="$WORK/helm/data"
export HELM_PLUGINS="$WORK/helm/plugins"
export GOWORK=off

PASS=0
FAIL=0
ok()   { PASS=$((PASS + 1)); printf 'ok    %s\n' "$1"; }
bad()  { FAIL=$((FAIL + 1)); printf 'FAIL  %s\n' "$1"; if [ -n "${2:-}" ]; then printf '%s\n' "$2" | tail -n 80 | sed 's/^/      /'; fi; }
# check NAME CMD...: run CMD, count it, show its output only when it fails.
check() {
  local name="$1" out
  shift
  if out="$("$@" 2>&1)"; then ok "$name"; else bad "$name" "$out"; fi
}
section() { printf '\n== %s\n' "$1"; }

# ---------------------------------------------------------------- tools
section "tools"
stamp_ok() { [ -x "$1" ] && [ -f "$1.version" ] && [ "$(cat "$1.version")" = "$2" ]; }
build_tools() {
  mkdir -p "$BIN"
  local helm_version
  helm_version="$(awk '$1 == "helm.sh/helm/v3" {print $2}' tools/go.mod)"
  if [ -z "$helm_version" ]; then echo "helm.sh/helm/v3 is not required by tools/go.mod" >&2; return 1; fi
  if ! stamp_ok "$BIN/helm" "$helm_version"; then
    echo "building helm $helm_version (tools/go.mod) ..."
    (cd tools && go build -o "$BIN/helm" -ldflags "-X helm.sh/helm/v3/internal/version.version=$helm_version" helm.sh/helm/v3/cmd/helm)
    echo "$helm_version" > "$BIN/helm.version"
  fi
  if ! stamp_ok "$BIN/kubectl-validate" "$KUBECTL_VALIDATE_VERSION"; then
    # Built in its own module (go install pkg@version): its pinned Kubernetes
    # libraries do not build against the newer ones helm pulls into tools/go.mod.
    echo "building kubectl-validate $KUBECTL_VALIDATE_VERSION ..."
    GOFLAGS=-buildvcs=false GOBIN="$BIN" go install "sigs.k8s.io/kubectl-validate@$KUBECTL_VALIDATE_VERSION"
    echo "$KUBECTL_VALIDATE_VERSION" > "$BIN/kubectl-validate.version"
  fi
  if ! stamp_ok "$BIN/helm-unittest" "$HELM_UNITTEST_VERSION"; then
    # helm-unittest has replace directives, so `go install @version` refuses it:
    # build it inside its (read-only) module directory from the module cache.
    echo "building helm-unittest $HELM_UNITTEST_VERSION ..."
    local dir
    dir="$(go mod download -json "github.com/helm-unittest/helm-unittest@$HELM_UNITTEST_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    (cd "$dir" && GOFLAGS="-mod=readonly -buildvcs=false" go build -o "$BIN/helm-unittest" \
      -ldflags "-X github.com/helm-unittest/helm-unittest/internal/build.version=${HELM_UNITTEST_VERSION#v}" ./cmd/helm-unittest)
    echo "$HELM_UNITTEST_VERSION" > "$BIN/helm-unittest.version"
  fi
}
check "build helm, kubectl-validate, helm-unittest into bin/" build_tools
HELM="$BIN/helm"

# helm-unittest as an offline helm plugin: a plugin.yaml pointing at the binary.
mkdir -p "$HELM_PLUGINS/unittest"
ln -sf "$BIN/helm-unittest" "$HELM_PLUGINS/unittest/untt"
cat > "$HELM_PLUGINS/unittest/plugin.yaml" <<EOF
name: unittest
version: "${HELM_UNITTEST_VERSION#v}"
usage: unittest for helm charts
description: helm-unittest ${HELM_UNITTEST_VERSION} built from the Go module proxy
ignoreFlags: false
platformCommand:
  - command: \$HELM_PLUGIN_DIR/untt
EOF

ensure_haproxy() {
  if command -v haproxy >/dev/null 2>&1; then return 0; fi
  if [ "${CI:-}" = "true" ]; then
    echo "installing haproxy (CI) ..."
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
  else
    echo "haproxy is not installed; run: sudo apt-get install -y haproxy" >&2
    return 1
  fi
}
check "haproxy available" ensure_haproxy
HAVE_HAPROXY=0
command -v haproxy >/dev/null 2>&1 && HAVE_HAPROXY=1
if [ -x "$HELM" ]; then
  echo "helm $("$HELM" version --template '{{.Version}}'), kubectl-validate $KUBECTL_VALIDATE_VERSION, helm-unittest $HELM_UNITTEST_VERSION, $( [ $HAVE_HAPROXY = 1 ] && haproxy -v | awk 'NR==1' || echo 'no haproxy')"
else
  echo "chart-test: helm could not be built; cannot continue"
  echo "chart-test: $PASS passed, $((FAIL + 1)) failed"
  exit 1
fi

# Python helpers (Debian python3 + python3-yaml).
cat > "$WORK/split.py" <<'PY'
"""split.py RENDER OUTDIR: write native.yaml (built-in kinds) and crs.yaml (custom resources)."""
import sys, yaml
CUSTOM = ("kafka.strimzi.io", "monitoring.coreos.com")
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
native = [d for d in docs if d["apiVersion"].split("/")[0] not in CUSTOM]
crs = [d for d in docs if d["apiVersion"].split("/")[0] in CUSTOM]
yaml.safe_dump_all(native, open(sys.argv[2] + "/native.yaml", "w"), sort_keys=False)
yaml.safe_dump_all(crs, open(sys.argv[2] + "/crs.yaml", "w"), sort_keys=False)
print(f"{len(native)} built-in, {len(crs)} custom resources")
PY
cat > "$WORK/extract.py" <<'PY'
"""extract.py RENDER KIND OUT: haproxy.cfg / exhook.hocon from the test ConfigMap,
strimzi-kafka / strimzi-topics as reference YAML without Helm bookkeeping labels."""
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
what, out = sys.argv[2], sys.argv[3]
def clean(d):
    labels = d["metadata"].get("labels", {})
    for k in ("helm.sh/chart", "app.kubernetes.io/managed-by"):
        labels.pop(k, None)
    return d
if what in ("haproxy.cfg", "exhook.hocon"):
    cms = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-test-config")]
    if not cms or what not in cms[0].get("data", {}):
        sys.exit(f"no {what} in the rendered test ConfigMap")
    open(out, "w").write(cms[0]["data"][what])
elif what == "strimzi-kafka":
    sel = [clean(d) for d in docs if d["kind"] in ("Kafka", "KafkaNodePool")]
    head = "# Reference Strimzi Kafka + KafkaNodePools (kafka.strimzi.io/v1, KRaft) rendered by\n# charts/iov-platform with default values (release iov, namespace iov).\n# Regenerate with tools/chart-test.sh --update; do not edit by hand.\n"
    open(out, "w").write(head + yaml.safe_dump_all(sel, sort_keys=False))
elif what == "strimzi-topics":
    sel = [clean(d) for d in docs if d["kind"] == "KafkaTopic"]
    head = "# Reference KafkaTopics derived from the service values (producer routes, downlink, consumer), rendered by\n# charts/iov-platform with default values (release iov, namespace iov).\n# Regenerate with tools/chart-test.sh --update; do not edit by hand.\n"
    open(out, "w").write(head + yaml.safe_dump_all(sel, sort_keys=False))
else:
    sys.exit("unknown extract " + what)
PY
cat > "$WORK/strimzi_checks.py" <<'PY'
"""strimzi_checks.py CRS: cross-resource checks the CRD schemas cannot express."""
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
errors = []
kafkas = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Kafka"}
pools = [d for d in docs if d["kind"] == "KafkaNodePool"]
topics = [d for d in docs if d["kind"] == "KafkaTopic"]
for d in docs:
    if d["apiVersion"].startswith("kafka.strimzi.io/") and d["apiVersion"] != "kafka.strimzi.io/v1":
        errors.append(f"{d['kind']} {d['metadata']['name']}: {d['apiVersion']} (only kafka.strimzi.io/v1 is rendered)")
    if d["apiVersion"].startswith("kafka.strimzi.io/") and not d["metadata"].get("namespace"):
        errors.append(f"{d['kind']} {d['metadata']['name']}: no namespace")
for d in pools + topics:
    c = d["metadata"].get("labels", {}).get("strimzi.io/cluster")
    if kafkas and c not in kafkas:
        errors.append(f"{d['kind']} {d['metadata']['name']}: strimzi.io/cluster={c!r} matches no rendered Kafka {sorted(kafkas)}")
for name, k in kafkas.items():
    mine = [p for p in pools if p["metadata"]["labels"].get("strimzi.io/cluster") == name]
    ctrl = sum(p["spec"]["replicas"] for p in mine if "controller" in p["spec"]["roles"])
    brok = sum(p["spec"]["replicas"] for p in mine if "broker" in p["spec"]["roles"])
    if ctrl < 1 or brok < 1:
        errors.append(f"Kafka {name}: needs controller and broker nodes (controllers={ctrl}, brokers={brok})")
    if "zookeeper" in k["spec"]:
        errors.append(f"Kafka {name}: spec.zookeeper is not supported (KRaft only)")
    plain = [l for l in k["spec"]["kafka"]["listeners"] if l["port"] == 9092 and not l["tls"] and l["type"] == "internal"]
    if not plain:
        errors.append(f"Kafka {name}: the services need the internal plain listener on 9092")
    for p in mine:
        vols = p["spec"]["storage"].get("volumes", [])
        if p["spec"]["storage"]["type"] == "jbod" and sum(1 for v in vols if v.get("kraftMetadata") == "shared") != 1:
            errors.append(f"KafkaNodePool {p['metadata']['name']}: exactly one JBOD volume must hold the KRaft metadata")
    for t in topics:
        if t["metadata"]["labels"].get("strimzi.io/cluster") == name and t["spec"].get("replicas", 1) > brok:
            errors.append(f"KafkaTopic {t['metadata']['name']}: replicas {t['spec']['replicas']} > {brok} brokers")
seen = {}
for t in topics:
    n = t["spec"].get("topicName", t["metadata"]["name"])
    if n in seen:
        errors.append(f"topic {n} declared twice ({seen[n]}, {t['metadata']['name']})")
    seen[n] = t["metadata"]["name"]
if errors:
    print("\n".join(errors)); sys.exit(1)
print(f"{len(kafkas)} Kafka, {len(pools)} KafkaNodePool, {len(topics)} KafkaTopic consistent")
PY
cat > "$WORK/haproxy_behaviour.py" <<'PY'
"""haproxy_behaviour.py CFG WORKDIR: run the generated HAProxy config on 127.0.0.1
against three fake EMQX nodes (MQTT listener + HTTP status API each) and check
the MQTT behaviour. Only loopback addresses are used; everything is time-bounded."""
import re, socket, subprocess, sys, threading, time, os, http.client

cfg_src, work = sys.argv[1], sys.argv[2]
results = []
def report(name, okv, detail=""):
    results.append(okv)
    print(("ok    " if okv else "FAIL  ") + name + (("  -- " + detail) if detail and not okv else ""))

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def connect_packet(cid):
    cid_b = cid.encode()
    var = b"\x00\x04MQTT\x04\x02\x00\x3c"
    payload = len(cid_b).to_bytes(2, "big") + cid_b
    rem = len(var) + len(payload)
    assert rem < 128
    return bytes([0x10, rem]) + var + payload

class FakeNode:
    def __init__(self, idx):
        self.idx, self.clients, self.healthy = idx, [], True
        self.mqtt = socket.socket(); self.mqtt.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.mqtt.bind(("127.0.0.1", 0)); self.mqtt.listen(64)
        self.http = socket.socket(); self.http.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.http.bind(("127.0.0.1", 0)); self.http.listen(64)
        self.mqtt_port, self.http_port = self.mqtt.getsockname()[1], self.http.getsockname()[1]
        self.conns, self.accepted = [], 0
        for target in (self.serve_mqtt, self.serve_http):
            threading.Thread(target=target, daemon=True).start()
    def serve_mqtt(self):
        while True:
            try: c, _ = self.mqtt.accept()
            except OSError: return
            self.accepted += 1
            c.settimeout(5)
            try:
                data = c.recv(512)
                if data and data[0] == 0x10:
                    n = int.from_bytes(data[12:14], "big")
                    self.clients.append(data[14:14 + n].decode())
                    c.sendall(b"\x20\x02\x00\x00")
                    self.conns.append(c)
                else:
                    c.close()
            except OSError:
                c.close()
    def serve_http(self):
        while True:
            try: c, _ = self.http.accept()
            except OSError: return
            try:
                c.settimeout(2); c.recv(1024)
                if self.healthy:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                else:
                    c.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            c.close()

nodes = [FakeNode(i) for i in range(3)]
mqtt_port, stat_port = free_port(), free_port()
cfg = open(cfg_src).read()
STATS_URI = re.search(r"(?m)^    stats uri (\S+)$", cfg).group(1)
m = re.search(r"frontend mqtt\n    bind :(\d+)", cfg); assert m, "no mqtt frontend"
cfg = cfg.replace(f"frontend mqtt\n    bind :{m.group(1)}", f"frontend mqtt\n    bind 127.0.0.1:{mqtt_port}")
m = re.search(r"frontend stats\n    mode http\n    bind :(\d+)", cfg); assert m, "no stats frontend"
cfg = cfg.replace(f"    bind :{m.group(1)}", f"    bind 127.0.0.1:{stat_port}")
cfg = re.sub(r"(frontend mqtts\n    bind ):\d+", lambda mm: mm.group(1) + f"127.0.0.1:{free_port()}", cfg)
cfg = re.sub(r"inter \S+", "inter 200ms", cfg)
cfg = re.sub(r"(?m)^    maxconn \d+$", "    maxconn 1000", cfg)   # production maxconn needs a large nofile limit
cfg = re.sub(r"tcp-request inspect-delay \S+", "tcp-request inspect-delay 2s", cfg)
cfg = re.sub(r"(?m)^    log stdout.*$", "    log stderr format raw local0 info", cfg)
servers = re.findall(r"(?m)^    server (\S+) \S+$", cfg)
by_name = {}
def server_line(mm):
    name = mm.group(1)
    i = int(name.rsplit("-", 1)[1])
    if i >= len(nodes):
        return f"    server {name} 127.0.0.1:{free_port()} port {free_port()} disabled"
    by_name[name] = nodes[i]
    return f"    server {name} 127.0.0.1:{nodes[i].mqtt_port} port {nodes[i].http_port}"
cfg = re.sub(r"(?m)^    server (\S+) \S+$", server_line, cfg)
path = os.path.join(work, "haproxy-behaviour.cfg")
open(path, "w").write(cfg)
proc = subprocess.Popen(["haproxy", "-db", "-f", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

def stat_get(p):
    try:
        c = http.client.HTTPConnection("127.0.0.1", stat_port, timeout=2); c.request("GET", p)
        r = c.getresponse(); r.read(); return r.status
    except OSError:
        return None
def server_status(backend, server):
    try:
        c = http.client.HTTPConnection("127.0.0.1", stat_port, timeout=2)
        c.request("GET", STATS_URI + ";csv"); body = c.getresponse().read().decode()
    except OSError:
        return "?"
    for row in body.splitlines():
        f = row.split(",")
        if len(f) > 17 and f[0] == backend and f[1] == server:
            return f[17]
    return "?"
def wait_for(fn, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if fn(): return True
        time.sleep(0.1)
    return False
def mqtt_connect(cid, keep=False):
    s = socket.create_connection(("127.0.0.1", mqtt_port), timeout=5)
    s.sendall(connect_packet(cid))
    ack = s.recv(4)
    owner = None
    wait_for(lambda: any(cid in n.clients for n in nodes), 2)
    for n in nodes:
        if cid in n.clients: owner = n.idx
    if not keep: s.close()
    return ack, owner, s

try:
    report("HAProxy starts with the generated config", wait_for(lambda: stat_get("/healthz") == 200), "no /healthz")
    report("/healthz answers 200", stat_get("/healthz") == 200)
    report("/ready is 200 once EMQX nodes pass the status-API check", wait_for(lambda: stat_get("/ready") == 200), str(stat_get("/ready")))
    before = sum(n.accepted for n in nodes)
    s = socket.create_connection(("127.0.0.1", mqtt_port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    try: data = s.recv(16)
    except OSError: data = b""
    s.close()
    time.sleep(0.3)
    report("non-MQTT first packet is rejected before reaching EMQX", data == b"" and sum(n.accepted for n in nodes) == before, repr(data))
    ack, owner, _ = mqtt_connect("vin-A")
    report("valid MQTT CONNECT is forwarded (CONNACK received)", ack == b"\x20\x02\x00\x00" and owner is not None, repr(ack))
    owners = []
    held = [mqtt_connect(c, keep=True)[2] for c in ("vin-B", "vin-C", "vin-D", "vin-E")]
    for _ in range(4):
        owners.append(mqtt_connect("vin-A")[1])
    report("same client identifier sticks to the same EMQX node", set(owners) == {owner}, f"first {owner}, then {owners}")
    spread = {n.idx for n in nodes for c in n.clients if c in ("vin-B", "vin-C", "vin-D", "vin-E")}
    report("new clients are spread over the nodes (leastconn)", len(spread) >= 2, str(spread))
    for h in held: h.close()
    nodes[owner].healthy = False
    owner_name = [name for name, n in by_name.items() if n.idx == owner and "emqx" in name][0]
    report("a failing EMQX status API takes the node out of rotation",
           wait_for(lambda: server_status("emqx_mqtt", owner_name).startswith("DOWN"), 5), server_status("emqx_mqtt", owner_name))
    _, new_owner, _ = mqtt_connect("vin-A")
    report("a sticky client moves to a healthy node when its node fails", new_owner not in (None, owner), f"{owner} -> {new_owner}")
    for n in nodes: n.healthy = False
    report("/ready turns 503 when no EMQX node is up", wait_for(lambda: stat_get("/ready") == 503), str(stat_get("/ready")))
finally:
    proc.terminate()
    try: out = proc.communicate(timeout=5)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        proc.kill(); out = proc.communicate()[0].decode(errors="replace")
if not all(results):
    print("haproxy output:\n" + out[-3000:])
    sys.exit(1)
PY

# ---------------------------------------------------------------- offline copy
section "offline umbrella copy (third-party charts stripped)"
OFF="$WORK/charts"
# Our subcharts: the file:// dependencies of the umbrella (charts/<name>).
LOCAL_CHARTS=()
while IFS= read -r name; do [ -n "$name" ] && LOCAL_CHARTS+=("$name"); done < <("$PY" - "$UMBRELLA/Chart.yaml" <<'PY'
import sys, yaml
for d in yaml.safe_load(open(sys.argv[1])).get("dependencies", []):
    if str(d.get("repository", "")).startswith("file://"):
        print(d["name"])
PY
)
echo "local subcharts: ${LOCAL_CHARTS[*]}"
make_offline_copy() {
  mkdir -p "$OFF"
  cp -r "$CHARTS/iov-platform" "$OFF/"
  for c in "${LOCAL_CHARTS[@]}"; do cp -r "$CHARTS/$c" "$OFF/"; done
  rm -rf "$OFF/iov-platform/charts" "$OFF/iov-platform/Chart.lock"
  "$PY" - "$OFF/iov-platform/Chart.yaml" <<'PY'
import sys, yaml
p = sys.argv[1]
c = yaml.safe_load(open(p))
kept, dropped = [], []
for d in c.get("dependencies", []):
    (kept if str(d.get("repository", "")).startswith("file://") else dropped).append(d)
c["dependencies"] = kept
yaml.safe_dump(c, open(p, "w"), sort_keys=False)
print("NOT rendered offline (needs `helm dependency build` with network): " +
      ", ".join(f"{d['name']} {d['version']} ({d['repository']})" for d in dropped))
print("rendered offline: " + ", ".join(f"{d['name']} ({d['repository']})" for d in kept))
PY
  mkdir -p "$OFF/iov-platform/charts"
  for c in "${LOCAL_CHARTS[@]}"; do cp -r "$OFF/$c" "$OFF/iov-platform/charts/"; done
}
if out="$(make_offline_copy 2>&1)"; then
  printf '%s\n' "$out"
  ok "offline copy of charts/iov-platform with only the file:// subcharts"
else
  bad "offline copy of charts/iov-platform" "$out"
fi

check_dependencies() {
  "$PY" - "$UMBRELLA/Chart.yaml" "$CHARTS" <<'PY'
import sys, re, os, yaml
c = yaml.safe_load(open(sys.argv[1]))
errors = []
for d in c["dependencies"]:
    repo, ver = str(d["repository"]), str(d["version"])
    if repo.startswith("file://"):
        sub = yaml.safe_load(open(os.path.join(os.path.dirname(sys.argv[1]), repo[len("file://"):], "Chart.yaml")))
        if sub["name"] != d["name"] or str(sub["version"]) != ver:
            errors.append(f"{d['name']}: Chart.yaml of {repo} is {sub['name']} {sub['version']}, dependency says {ver}")
    else:
        if not re.fullmatch(r"\d+\.\d+\.\d+", ver):
            errors.append(f"{d['name']}: version {ver!r} is not pinned to an exact release")
        if not repo.startswith("https://"):
            errors.append(f"{d['name']}: repository {repo!r} is not https")
    if not d.get("condition"):
        errors.append(f"{d['name']}: no condition")
local = {str(d["repository"])[len("file://../"):] for d in c["dependencies"] if str(d["repository"]).startswith("file://../")}
for entry in sorted(os.listdir(sys.argv[2])):
    if entry != "iov-platform" and os.path.isfile(os.path.join(sys.argv[2], entry, "Chart.yaml")) and entry not in local:
        errors.append(f"charts/{entry} is not a file:// dependency of charts/iov-platform")
if errors:
    print("\n".join(errors)); sys.exit(1)
PY
}
check "Chart.yaml: third-party versions pinned, local subcharts in sync and all wired, conditions set" check_dependencies

# ---------------------------------------------------------------- lint
section "helm lint"
for c in "${LOCAL_CHARTS[@]}"; do
  check "lint $c" "$HELM" lint --strict --kube-version "$KUBE_VERSION" "$CHARTS/$c"
  for f in "$CHARTS/$c"/ci/*-values.yaml; do
    [ -f "$f" ] || continue
    check "lint $c (ci/$(basename "$f"))" "$HELM" lint --strict --kube-version "$KUBE_VERSION" -f "$f" "$CHARTS/$c"
  done
done
check "lint iov-platform (offline copy, default values)" "$HELM" lint --strict --kube-version "$KUBE_VERSION" "$OFF/iov-platform"
check "lint iov-platform (offline copy, ci/production-values.yaml)" "$HELM" lint --strict --kube-version "$KUBE_VERSION" -f "$UMBRELLA/ci/production-values.yaml" "$OFF/iov-platform"

# ---------------------------------------------------------------- unit tests
section "helm-unittest"
unittest() {
  local out
  out="$("$HELM" unittest --color=false "$@" 2>&1)" || { echo "$out"; return 1; }
  echo "$out" | grep -E '^(Tests|Test Suites):' | tr -s ' ' >&2 || true
}
run_unittest() {
  local name="$1" out
  shift
  if out="$(unittest "$@" 2>&1)"; then ok "$name ($(echo "$out" | sed -n 's/^Tests: //p'))"; else bad "$name" "$out"; fi
}
for c in "${LOCAL_CHARTS[@]}"; do
  run_unittest "helm-unittest $c" "$CHARTS/$c"
done
run_unittest "helm-unittest iov-platform" --with-subchart=false "$OFF/iov-platform"

# ---------------------------------------------------------------- render
section "render (helm template, kube $KUBE_VERSION, release $RELEASE, namespace $NAMESPACE)"
mkdir -p "$WORK/render/default" "$WORK/render/production"
render() { "$HELM" template "$RELEASE" "$OFF/iov-platform" --namespace "$NAMESPACE" --kube-version "$KUBE_VERSION" "$@"; }
render_to() { local out="$1"; shift; render "$@" > "$out"; }
check "render iov-platform with default values" render_to "$WORK/render/default/all.yaml"
check "render iov-platform with ci/production-values.yaml" render_to "$WORK/render/production/all.yaml" -f "$UMBRELLA/ci/production-values.yaml"
# Standalone renders: render/<chart> (defaults) and render/<chart>@<ci file> (ci/<x>-values.yaml).
STANDALONE=()
for chart in "${LOCAL_CHARTS[@]}"; do
  mkdir -p "$WORK/render/$chart"
  check "render $chart standalone" sh -c '"$1" template "$2" "$3" --namespace "$4" --kube-version "$5" > "$6"' _ \
    "$HELM" "$RELEASE" "$CHARTS/$chart" "$NAMESPACE" "$KUBE_VERSION" "$WORK/render/$chart/all.yaml"
  STANDALONE+=("$chart")
  for f in "$CHARTS/$chart"/ci/*-values.yaml; do
    [ -f "$f" ] || continue
    r="$chart@$(basename "$f" .yaml)"
    mkdir -p "$WORK/render/$r"
    check "render $chart standalone with ci/$(basename "$f")" sh -c '"$1" template "$2" "$3" --namespace "$4" --kube-version "$5" -f "$7" > "$6"' _ \
      "$HELM" "$RELEASE" "$CHARTS/$chart" "$NAMESPACE" "$KUBE_VERSION" "$WORK/render/$r/all.yaml" "$f"
    STANDALONE+=("$r")
  done
done

section "negative renders (charts/testdata/bad-values/*.yaml must be rejected)"
expect_rejected() {
  local file="$1" pattern out
  pattern="$(sed -n 's/^# expect: //p' "$file" | head -1)"
  [ -n "$pattern" ] || { echo "$file has no '# expect: <regex>' line"; return 1; }
  if out="$(render -f "$file" 2>&1)"; then echo "rendered without error"; return 1; fi
  if ! printf '%s' "$out" | grep -Eq -- "$pattern"; then echo "error does not match /$pattern/:"; echo "$out"; return 1; fi
}
for f in "$CHARTS"/testdata/bad-values/*.yaml; do
  check "rejects $(basename "$f" .yaml)" expect_rejected "$f"
done

# ---------------------------------------------------------------- kubectl-validate
section "kubectl-validate (Kubernetes $KV_VERSION schemas)"
CRDS_DIR=""
for cand in "${IOV_CRDS_DIR:-}" "$ROOT/../shared/crds"; do
  if [ -n "$cand" ] && [ -d "$cand" ] && ls "$cand"/*.y*ml >/dev/null 2>&1; then CRDS_DIR="$cand"; break; fi
done
if [ -n "$CRDS_DIR" ]; then
  CRD_NOTE="real CRDs from $CRDS_DIR"
else
  CRDS_DIR="$CHARTS/testdata/structural-crds"
  CRD_NOTE="structural CRD SUBSETS (charts/testdata/structural-crds; upstream Strimzi/Prometheus CRDs not available offline)"
fi
echo "custom resources are validated against: $CRD_NOTE"
kv() {
  if ! "$BIN/kubectl-validate" "$@" --version "$KV_VERSION" >/dev/null 2>&1; then
    "$BIN/kubectl-validate" "$@" --version "$KV_VERSION" -o json 2>&1 | "$PY" -c '
import json, sys
raw = sys.stdin.read()
try:
    res = json.loads(raw[: raw.rindex("}") + 1])
except ValueError:
    print(raw); sys.exit(1)
for f, items in res.items():
    for i, it in enumerate(items if isinstance(items, list) else [items]):
        if it.get("status") != "Success":
            print(f"document {i}: {it.get(\"message\", it)}")
'
    return 1
  fi
}
for r in default production "${STANDALONE[@]}"; do
  dir="$WORK/render/$r"
  [ -s "$dir/all.yaml" ] || { bad "kubectl-validate $r" "no render"; continue; }
  summary="$("$PY" "$WORK/split.py" "$dir/all.yaml" "$dir" 2>&1)" || { bad "split $r render" "$summary"; continue; }
  check "kubectl-validate $r: built-in kinds ($summary)" kv "$dir/native.yaml"
  if grep -q '^kind:' "$dir/crs.yaml"; then
    check "kubectl-validate $r: custom resources vs $( [ "$CRDS_DIR" = "$CHARTS/testdata/structural-crds" ] && echo 'structural subsets' || echo 'real CRDs')" \
      kv "$dir/crs.yaml" --local-crds "$CRDS_DIR"
    check "strimzi cross-resource checks $r" "$PY" "$WORK/strimzi_checks.py" "$dir/crs.yaml"
  fi
done

# ---------------------------------------------------------------- haproxy
section "haproxy"
haproxy_check() {
  local cfg="$1" out
  out="$(haproxy -c -f "$cfg" 2>&1)" || { echo "$out"; return 1; }
  # Unresolvable EMQX pod names are expected offline (init-addr none); any other warning fails.
  if printf '%s\n' "$out" | grep -E '\[(WARNING|ALERT)\]' | grep -v 'could not resolve address' | grep -q .; then
    echo "$out"; return 1
  fi
}
for r in default production; do
  if check "extract haproxy.cfg ($r)" "$PY" "$WORK/extract.py" "$WORK/render/$r/all.yaml" haproxy.cfg "$WORK/render/$r/haproxy.cfg"; then :; fi
  if [ "$HAVE_HAPROXY" = 1 ] && [ -s "$WORK/render/$r/haproxy.cfg" ]; then
    check "haproxy -c haproxy.cfg ($r, $(haproxy -v | awk 'NR==1 {print $3}'))" haproxy_check "$WORK/render/$r/haproxy.cfg"
  else
    bad "haproxy -c haproxy.cfg ($r)" "haproxy not available or config not extracted"
  fi
done
if [ "$HAVE_HAPROXY" = 1 ] && [ -s "$WORK/render/production/haproxy.cfg" ]; then
  if out="$(timeout 120 "$PY" "$WORK/haproxy_behaviour.py" "$WORK/render/production/haproxy.cfg" "$WORK" 2>&1)"; then
    while IFS= read -r line; do case "$line" in "ok    "*) ok "haproxy behaviour: ${line#ok    }" ;; esac; done <<< "$out"
  else
    while IFS= read -r line; do
      case "$line" in "ok    "*) ok "haproxy behaviour: ${line#ok    }" ;; "FAIL  "*) bad "haproxy behaviour: ${line#FAIL  }" ;; esac
    done <<< "$out"
    grep -q '^FAIL  ' <<< "$out" || bad "haproxy behaviour" "$out"
    printf '%s\n' "$out" | grep -v '^ok    \|^FAIL  ' | tail -n 40 | sed 's/^/      /'
  fi
else
  bad "haproxy behaviour" "haproxy not available"
fi

# ---------------------------------------------------------------- checksum annotations
section "checksum/config annotations"
checksum_of() { "$HELM" template "$RELEASE" "$CHARTS/$1" --kube-version "$KUBE_VERSION" "${@:2}" | sed -n 's/^ *checksum\/config: *//p'; }
checksum_behaviour() {
  local chart="$1" base changed same
  shift
  base="$(checksum_of "$chart" "$@")"
  changed="$(checksum_of "$chart" "$@" --set config.log.level=debug)"
  same="$(checksum_of "$chart" "$@" --set replicaCount=4)"
  [ -n "$base" ] || { echo "no checksum/config annotation"; return 1; }
  [ "$base" != "$changed" ] || { echo "checksum did not change with config.log.level"; return 1; }
  [ "$base" = "$same" ] || { echo "checksum changed without a config change"; return 1; }
}
for c in "${LOCAL_CHARTS[@]}"; do
  check "$c checksum/config follows config.yaml only" checksum_behaviour "$c"
  for f in "$CHARTS/$c"/ci/*-values.yaml; do
    [ -f "$f" ] || continue
    check "$c checksum/config follows config.yaml only (ci/$(basename "$f"))" checksum_behaviour "$c" -f "$f"
  done
done

# ---------------------------------------------------------------- goldens and infra/
section "goldens and infra/ reference files"
compare_or_update() {
  local name="$1" actual="$2" expected="$3"
  if [ "$UPDATE" = 1 ] && [ -f "$actual" ]; then
    mkdir -p "$(dirname "$expected")"
    cp "$actual" "$expected"
    ok "$name (updated ${expected#"$ROOT"/})"
  elif [ ! -f "$expected" ]; then
    bad "$name" "${expected#"$ROOT"/} is missing; run tools/chart-test.sh --update"
  elif [ ! -f "$actual" ]; then
    bad "$name" "nothing was rendered to compare"
  elif diff -u "$expected" "$actual" > "$WORK/diff.txt"; then
    ok "$name"
  else
    bad "$name" "$(head -n 60 "$WORK/diff.txt")
(if the change is intended: tools/chart-test.sh --update)"
  fi
}
if [ -s "$WORK/render/default/all.yaml" ]; then
  compare_or_update "golden default.yaml" "$WORK/render/default/all.yaml" "$GOLDEN/default.yaml"
  "$PY" "$WORK/extract.py" "$WORK/render/default/all.yaml" exhook.hocon "$WORK/exhook.hocon" || true
  "$PY" "$WORK/extract.py" "$WORK/render/default/all.yaml" strimzi-kafka "$WORK/kafka.yaml" || true
  "$PY" "$WORK/extract.py" "$WORK/render/default/all.yaml" strimzi-topics "$WORK/kafkatopics.yaml" || true
  compare_or_update "infra/haproxy/haproxy.cfg == rendered default" "$WORK/render/default/haproxy.cfg" "$ROOT/infra/haproxy/haproxy.cfg"
  compare_or_update "infra/emqx/exhook.hocon == rendered default" "$WORK/exhook.hocon" "$ROOT/infra/emqx/exhook.hocon"
  compare_or_update "infra/strimzi/kafka.yaml == rendered default" "$WORK/kafka.yaml" "$ROOT/infra/strimzi/kafka.yaml"
  compare_or_update "infra/strimzi/kafkatopics.yaml == rendered default" "$WORK/kafkatopics.yaml" "$ROOT/infra/strimzi/kafkatopics.yaml"
else
  bad "goldens and infra/" "default render missing"
fi
if [ -s "$WORK/render/production/all.yaml" ]; then
  compare_or_update "golden production.yaml" "$WORK/render/production/all.yaml" "$GOLDEN/production.yaml"
else
  bad "golden production.yaml" "production render missing"
fi

echo
echo "not validated offline: the strimzi-kafka-operator, emqx and haproxy charts' own templates (not fetched);"
echo "custom resources were validated against: $CRD_NOTE"
echo "chart-test: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
