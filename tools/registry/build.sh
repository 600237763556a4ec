#!/usr/bin/env bash
# Builds the real schema registry (Apicurio Registry, pom.xml beside this file) once and prints
# the runnable jar's path on stdout; everything else goes to stderr. The build runs in a cache
# directory outside the repository,
#   ${IOV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/iov-platform}/registry/<hash of pom + src>/,
# Maven's downloads go to ~/.m2. A second call prints the cached jar at once.
#
#   java -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port=PORT -jar "$(tools/registry/build.sh)"
#   # Confluent API: http://127.0.0.1:PORT/apis/ccompat/v7
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${IOV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/iov-platform}/registry"
key="$(cd "$here" && cat pom.xml $(find src -type f | sort) | sha256sum | cut -c1-12)"
dir="$cache/apicurio-$key"
jar="$dir/target/registry-1-runner.jar"

say() { echo "registry build: $*" >&2; }

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 # one build at a time
if [ ! -f "$jar" ]; then
  command -v mvn >/dev/null || { say "needs Maven (apt-get install maven) and a JDK 17"; exit 1; }
  say "building Apicurio Registry in $dir (first time: a few minutes, ~500 artifacts from Maven Central)"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp -r "$here/pom.xml" "$here/src" "$dir/"
  if ! (cd "$dir" && mvn -B -q -DskipTests package >"$dir/build.log" 2>&1); then
    say "build failed; last lines of $dir/build.log:"
    tail -20 "$dir/build.log" >&2
    exit 1
  fi
fi
echo "$jar"
