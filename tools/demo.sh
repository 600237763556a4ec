#!/usr/bin/env bash
# The whole uplink on one machine with the embedded defaults: in-process Kafka + schema
# registry (devstack), exhook-producer and sample-consumer with their built-in loopback
# configs, and the EMQX-like load tool. Prints the load summary and what the consumer saw.
# Expects `make build` to have filled bin/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}
VEHICLES=${VEHICLES:-200}
MESSAGES=${MESSAGES:-10}
LOGS=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo: logs in $LOGS"
}
trap cleanup EXIT

wait_for() { # url name
  for _ in $(seq 1 150); do
    if curl -fsS "$1" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "demo: $2 did not become ready; log:" >&2
  tail -20 "$LOGS/$2.log" >&2
  exit 1
}
for port in 9092 8081 9000 8080 8088; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "demo: port $port is already in use; stop whatever listens there first" >&2
    exit 1
  fi
done

"$BIN/devstack" >"$LOGS/devstack.log" 2>&1 & pids+=($!)
wait_for http://127.0.0.1:8081/subjects devstack
echo "demo: kafka 127.0.0.1:9092 and schema registry http://127.0.0.1:8081 up (in-process fakes)"

"$BIN/exhook-producer" >"$LOGS/exhook-producer.log" 2>&1 & pids+=($!)
wait_for http://127.0.0.1:8080/ready exhook-producer
echo "demo: exhook-producer serving gRPC on 127.0.0.1:9000"

"$BIN/sample-consumer" >"$LOGS/sample-consumer.log" 2>&1 & pids+=($!)
wait_for http://127.0.0.1:8088/ready sample-consumer
echo "demo: sample-consumer reading iov.vehicle.* in group iov-sample-consumer"

echo "demo: $VEHICLES vehicles x $MESSAGES telemetry messages (async route), then events (sync route)"
"$BIN/loadgen" --vehicles "$VEHICLES" --messages "$MESSAGES" --topic 'vehicles/%s/telemetry' --kafka-topic iov.vehicle.telemetry
"$BIN/loadgen" --vehicles "$VEHICLES" --messages "$MESSAGES" --topic 'vehicles/%s/events/door' --kafka-topic iov.vehicle.events

want=$((2 * VEHICLES * MESSAGES))
got=0
for _ in $(seq 1 100); do
  got=$(curl -fsS http://127.0.0.1:8088/metrics | awk '/^consumer_records_total\{.*result="handled"/ {s += $2} END {print s + 0}')
  [ "$got" -ge "$want" ] && break
  sleep 0.3
done
echo "demo: sample-consumer handled $got of $want records; last lines of its log:"
tail -3 "$LOGS/sample-consumer.log"
if [ "$got" -lt "$want" ]; then
  echo "demo: FAILED: consumer handled $got, want $want" >&2
  exit 1
fi
echo "demo: OK: sent=$want consumed=$got lost=0"
