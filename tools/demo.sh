#!/usr/bin/env bash
# make demo: build every binary (with progress: the first build is long), then run bin/demo,
# which runs the whole platform on the embedded default configs, prints the measured
# figures, stops everything in order and fails when the figures disagree.
#   VEHICLES  simulated vehicles (default 200)
#   MESSAGES  messages per vehicle and route (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}

echo "demo: building into $BIN (the first build downloads Go modules and compiles librdkafka's cgo bindings: minutes; later builds take seconds)"
start=$SECONDS
n=0
status=1
# GOFLAGS=-v lists every package as it is compiled: counted here as progress.
while IFS= read -r line; do
  case $line in
    "build-status "*) status=${line#build-status } ;;
    "build "*) echo "demo: [$((SECONDS - start))s] $line" ;;
    *" "* | "#"*) echo "$line" ;; # compiler and download messages
    *) n=$((n + 1)); if ((n % 50 == 0)); then echo "demo: [$((SECONDS - start))s]   $n packages compiled"; fi ;;
  esac
done < <(GOFLAGS="${GOFLAGS:+$GOFLAGS }-v" make --no-print-directory BIN="$BIN" build 2>&1; echo "build-status $?")
if [ "$status" != 0 ]; then
  echo "demo: build failed" >&2
  exit 1
fi
echo "demo: [$((SECONDS - start))s] build done ($n packages compiled)"

exec "$BIN/demo" --bin "$BIN" --vehicles "${VEHICLES:-200}" --messages "${MESSAGES:-10}"
