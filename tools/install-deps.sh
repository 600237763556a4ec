#!/usr/bin/env bash
# Installs the Debian packages the build and tests use, if missing. Idempotent; needs root
# (CI runs as root). Go modules come from the module proxy on first build.
set -euo pipefail

need=()
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v haproxy >/dev/null || need+=(haproxy)
command -v gcc >/dev/null || need+=(gcc)
# Real-Kafka tests (tools/kafka): Maven resolves the broker, Java 17 runs it.
command -v mvn >/dev/null || need+=(maven)
[ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ] || command -v java >/dev/null || need+=(openjdk-17-jre-headless)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "install-deps: apt-get install ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
