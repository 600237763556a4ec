#!/usr/bin/env bash
# Builds the exhook producer against confluent-kafka-go with io-event-poller.patch applied.
# An experiment, not a dependency (services/exhook-producer/README.md, "Ninth round"): the
# patch makes the library's two pollers wait for their librdkafka queue in Go's network
# poller (rd_kafka_queue_io_event_enable on a pipe) instead of blocking in C for 100 ms.
#
# usage (from anywhere in the repository): tools/devkit/experiments/ckg-io-event/build.sh OUT
set -euo pipefail
out=$(realpath -m "${1:?usage: build.sh OUT}")
root=$(git rev-parse --show-toplevel)
here=$root/tools/devkit/experiments/ckg-io-event
mod=github.com/confluentinc/confluent-kafka-go/v2
cd "$root/services/exhook-producer"
go mod download "$mod"
dir=$(go list -m -f '{{.Dir}}' "$mod")
tmp=$(mktemp -d)
work=$root/go.work.ckg-io-event
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp" "$work" "$work.sum"' EXIT
cp -r "$dir" "$tmp/ckg"
chmod -R u+w "$tmp/ckg"
patch -s -d "$tmp/ckg" -p1 < "$here/io-event-poller.patch"
cp "$root/go.work" "$work"
if [ -f "$root/go.work.sum" ]; then cp "$root/go.work.sum" "$work.sum"; fi
echo "replace $mod => $tmp/ckg" >> "$work"
GOWORK=$work go build -o "$out" .
echo "built $out ($mod $(go list -m -f '{{.Version}}' "$mod") with io-event-poller.patch)"
