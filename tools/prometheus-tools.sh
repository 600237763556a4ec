#!/usr/bin/env bash
# Build prometheus and promtool once, from github.com/prometheus/prometheus at a pinned
# version, into a cache directory outside bin/ (like the chart tools), so that `make clean`
# does not force the rebuild: the first build compiles ~1 500 packages and takes many
# minutes on a 2-core machine. Progress is printed while it builds.
#
#   tools/prometheus-tools.sh          build what is missing, print each tool's path
#                                      (prometheus=<path>, promtool=<path>; progress on stderr)
#   tools/prometheus-tools.sh --dir    only print the cache directory
#
# Cache: $IOV_PROMETHEUS_TOOLS (default ${XDG_CACHE_HOME:-$HOME/.cache}/iov-platform/prometheus-tools),
# one file per tool and version: prometheus-v0.316.0, promtool-v0.316.0.
#
# Built with -tags remove_all_sd: only the file and HTTP service discoveries are compiled
# in (the tests use static targets), which leaves out the cloud SDKs.
set -euo pipefail

PROMETHEUS_VERSION=v0.316.0
DIR="${IOV_PROMETHEUS_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/iov-platform/prometheus-tools}"

if [ "${1:-}" = "--dir" ]; then echo "$DIR"; exit 0; fi
mkdir -p "$DIR"
export GOWORK=off GOFLAGS=-buildvcs=false

if [ ! -x "$DIR/prometheus-$PROMETHEUS_VERSION" ] || [ ! -x "$DIR/promtool-$PROMETHEUS_VERSION" ]; then
  echo "prometheus-tools: building prometheus and promtool $PROMETHEUS_VERSION into $DIR (first time only, many minutes) ..." >&2
  # Built inside the (read-only) module directory so that upstream's own go.mod/go.sum
  # pin every dependency.
  src="$(go mod download -json "github.com/prometheus/prometheus@$PROMETHEUS_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  tmp="$(mktemp -d "$DIR/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  # go build -v names each package as it compiles it: print a line every 100 (and every
  # line that is not a package path, i.e. compiler errors).
  (cd "$src" && GOFLAGS="-mod=readonly -buildvcs=false" go build -v -tags remove_all_sd -o "$tmp/" \
    -ldflags "-X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v}" \
    ./cmd/prometheus ./cmd/promtool) 2>&1 |
    awk '/ |^#/ { print; fflush(); next } { n++; if (n % 100 == 0) { printf "  prometheus-tools: %d packages compiled\n", n; fflush() } }
      END { printf "  prometheus-tools: %d packages compiled, linking done\n", n }' >&2
  mv "$tmp/prometheus" "$DIR/prometheus-$PROMETHEUS_VERSION"
  mv "$tmp/promtool" "$DIR/promtool-$PROMETHEUS_VERSION"
fi
echo "prometheus=$DIR/prometheus-$PROMETHEUS_VERSION"
echo "promtool=$DIR/promtool-$PROMETHEUS_VERSION"
