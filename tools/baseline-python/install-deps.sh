#!/usr/bin/env bash
# Installs the Debian packages the baseline Python exhook bridge runs on, if missing:
# python3-grpcio, python3-kafka (kafka-python), python3-protobuf and protobuf-compiler (protoc,
# which generates the message classes at startup). Idempotent; needs root (CI runs as root).
set -euo pipefail

need=()
for pkg in python3-grpcio python3-kafka python3-protobuf protobuf-compiler; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
    need+=("$pkg")
  fi
done
check() {
  # The bridge runs on Debian's interpreter, not whatever python3 comes first on PATH.
  /usr/bin/python3 -c 'import grpc, kafka, google.protobuf' && command -v protoc >/dev/null
}
if [ ${#need[@]} -eq 0 ]; then
  check
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "baseline-python install-deps: missing ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "baseline-python install-deps: apt-get install ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
check
