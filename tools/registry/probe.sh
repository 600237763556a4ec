#!/usr/bin/env bash
# Tries, with the ordinary clients, to obtain a real Confluent-compatible schema registry from
# the package registries this machine reaches, and prints one line per candidate: OK, or the
# first artifact that could not be had. Nothing is installed in the repository; Maven's
# downloads go to ~/.m2, pip's to a temporary directory. See README.md for the last results.
#
#   tools/registry/probe.sh
set -uo pipefail

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

maven() { # group:artifact:version[:packaging]
  local log="$tmp/mvn.log"
  if mvn -B -q dependency:get -Dartifact="$1" >"$log" 2>&1; then
    echo OK
  else
    local why
    why="$(sed -nE \
      -e 's/.*Non-resolvable parent POM for [^ ]+ ([^ ]+) was not found.*/parent POM \1 not served/p' \
      -e 's/.*Could not (transfer|find) artifact ([^ ]+).*/\2 not served/p' \
      -e 's/.*[0-9]\) ([^ ]+:jar:[^ ]+).*/\1 not served/p' "$log" | head -1)"
    echo "${why:-failed (run mvn -X dependency:get -Dartifact=$1)}"
  fi
}

pypi() { # requirement
  if pip download --quiet --no-deps -d "$tmp/pip" "$1" >"$tmp/pip.log" 2>&1; then
    echo OK
  else
    tail -1 "$tmp/pip.log"
  fi
}

printf '%-62s %s\n' candidate result
for a in \
  io.apicurio:apicurio-registry-app:3.3.3 \
  io.apicurio:apicurio-registry-app:3.3.2 \
  io.apicurio:apicurio-registry-app:3.0.9 \
  io.apicurio:apicurio-registry-app:2.6.13.Final \
  io.confluent:kafka-schema-registry:7.9.0; do
  printf '%-62s %s\n' "maven $a" "$(maven "$a")"
done
printf '%-62s %s\n' "pypi karapace" "$(pypi karapace)"
