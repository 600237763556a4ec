#!/usr/bin/env bash
# outage-backlog.sh PRODUCER [MESSAGES_PER_VEHICLE]
#
# The producer's cost while Kafka is down and async records queue: starts bin/devstack
# (Kafka + registry) on CPU 0 and PRODUCER (a binary or a wrapper that execs one, run with
# the embedded config, so its async route) on CPU 1, warms up, stops the devstack, then
# sends 1000 vehicles x MESSAGES_PER_VEHICLE (default 80) messages with bin/loadgen and
# prints the producer's CPU per message (utime+stime from /proc), its peak RSS and its GC
# counters. Needs `make build` and free ports 8080, 8081, 9000, 9092.
set -euo pipefail
producer=$1
msgs=${2:-80}
bin=$(cd "$(dirname "$0")/.." && pwd)/bin
log=$(mktemp -d)
taskset -c 0 "$bin/devstack" >"$log/devstack.log" 2>&1 &
ds=$!
sleep 2
taskset -c 1 "$producer" >"$log/producer.log" 2>&1 &
pp=$!
trap 'kill -9 $pp $ds 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf localhost:8080/ready >/dev/null && break; sleep 0.2; done
taskset -c 0 "$bin/loadgen" -vehicles 100 -messages 5 -kafka "" >/dev/null
kill "$ds"
wait "$ds" 2>/dev/null || true
sleep 7 # the producer sees Kafka unreachable
ticks() { awk '{print $14 + $15}' "/proc/$pp/stat"; }
t0=$(ticks)
# Past librdkafka's queue cap (queue.buffering.max.messages) calls wait and fail at their
# deadline: the run still reports, so the rest of the figures are printed too.
taskset -c 0 "$bin/loadgen" -vehicles 1000 -messages "$msgs" -kafka "" | grep '^loadgen:' || true
t1=$(ticks)
hz=$(getconf CLK_TCK)
awk -v d=$((t1 - t0)) -v hz="$hz" -v n=$((1000 * msgs)) 'BEGIN {printf "cpu per message %.1f us over %d messages\n", d * 1e6 / hz / n, n}'
grep VmHWM "/proc/$pp/status"
curl -s localhost:8080/metrics | grep -E '^go_gc_duration_seconds_count|^go_memstats_heap_inuse_bytes'
