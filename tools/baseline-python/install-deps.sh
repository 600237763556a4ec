#!/usr/bin/env bash
# Prepares what the baseline Python exhook bridge runs on, and prints the interpreter to run
# it with on stdout (everything else goes to stderr):
#   - protoc (Debian's protobuf-compiler; the bridge generates its message classes at start),
#     installed with apt-get when missing (needs root; CI runs as root);
#   - a virtual environment with requirements.txt (the seed's grpcio, kafka-python and
#     protobuf, pinned), cached outside the repository under
#     ${IOV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/iov-platform}/baseline-python/, one per
#     interpreter version and requirements content, and reused while it imports cleanly.
# The venv is built from the first of $BASELINE_PYTHON, python3.11, python3 (pyenv's on this
# kind of machine) and /usr/bin/python3 that is CPython 3.8-3.11: the pinned grpcio has no
# wheels for newer versions.
#
#   tools/baseline-python/install-deps.sh                  # install if needed, print the python
#   tools/baseline-python/install-deps.sh --print-python   # only print where it is / will be
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
cache="${IOV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/iov-platform}/baseline-python"

say() { echo "baseline-python install-deps: $*" >&2; }

pick_python() {
  local c v
  for c in ${BASELINE_PYTHON:-} python3.11 python3 /usr/bin/python3; do
    command -v "$c" >/dev/null 2>&1 || continue
    v="$("$c" -c 'import sys; print("%d.%d" % sys.version_info[:2]) if sys.implementation.name == "cpython" and (3, 8) <= sys.version_info[:2] <= (3, 11) else None' 2>/dev/null || true)"
    if [ -n "$v" ] && [ "$v" != None ]; then
      echo "$c $v"
      return 0
    fi
  done
  return 1
}

if ! found="$(pick_python)"; then
  say "no CPython 3.8-3.11 found (tried \$BASELINE_PYTHON, python3.11, python3, /usr/bin/python3); set BASELINE_PYTHON"
  exit 1
fi
base="${found% *}"
version="${found#* }"
key="$(sha256sum "$req" | cut -c1-12)"
venv="$cache/py$version-$key"
python="$venv/bin/python"

if [ "${1:-}" = --print-python ]; then
  echo "$python"
  exit 0
fi

if ! command -v protoc >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    say "missing protoc; run as root or: sudo apt-get install -y protobuf-compiler"
    exit 1
  fi
  say "apt-get install protobuf-compiler"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends protobuf-compiler >/dev/null
fi

ok() { [ -x "$python" ] && "$python" -c 'import grpc, kafka, google.protobuf' 2>/dev/null; }
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 # one installer at a time (make test and make compare may start together)
if ! ok; then
  say "creating $venv from $base (Python $version): $(grep '==' "$req" | tr '\n' ' ')"
  rm -rf "$venv"
  trap 'rm -rf "$venv"' ERR
  "$base" -m venv "$venv" >&2
  # The pinned versions have wheels for this interpreter: never build from source.
  "$python" -m pip install --quiet --disable-pip-version-check --no-input \
    --only-binary=:all: -r "$req" >&2
  trap - ERR
  ok || { say "$python cannot import grpc, kafka and google.protobuf"; rm -rf "$venv"; exit 1; }
fi
echo "$python"
