#!/usr/bin/env bash
# Build the chart test tools once into a cache directory outside bin/, so that
# `make clean` does not force a rebuild (kubectl-validate and helm-unittest take
# several minutes each on a 2-core machine).
#
#   tools/chart-tools.sh          build what is missing, print the cache directory
#   tools/chart-tools.sh --dir    only print the cache directory
#
# Cache: $IOV_CHART_TOOLS (default ${XDG_CACHE_HOME:-$HOME/.cache}/iov-platform/chart-tools),
# one file per tool and version: kubectl-validate-v0.0.4, helm-unittest-v1.1.2, and
# cert-manager's Certificate CRD (cert-manager-crds-v1.21.2/, from its Go module's
# deploy/crds/) for kubectl-validate, since ../shared/crds does not carry it.
# Helm itself is not built: the Go tests in tools/charttest use Helm's Go SDK.
set -euo pipefail

KUBECTL_VALIDATE_VERSION=v0.0.4
HELM_UNITTEST_VERSION=v1.1.2
CERT_MANAGER_VERSION=v1.21.2
DIR="${IOV_CHART_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/iov-platform/chart-tools}"

if [ "${1:-}" = "--dir" ]; then echo "$DIR"; exit 0; fi
mkdir -p "$DIR"
export GOWORK=off GOFLAGS=-buildvcs=false

# progress NAME: print a line every 100 packages `go build -v` reports.
progress() {
  awk -v tool="$1" '{ n++; if (n % 100 == 0) { printf "  %s: %d packages compiled\n", tool, n; fflush() } }
    END { printf "  %s: %d packages compiled, linking done\n", tool, n }'
}

kv="$DIR/kubectl-validate-$KUBECTL_VALIDATE_VERSION"
if [ ! -x "$kv" ]; then
  echo "chart-tools: building kubectl-validate $KUBECTL_VALIDATE_VERSION into $DIR (first time only, several minutes) ..."
  # Its own module (go install pkg@version): its pinned Kubernetes libraries do
  # not build against the newer ones Helm pulls in.
  tmp="$(mktemp -d "$DIR/.build.XXXXXX")"
  GOBIN="$tmp" go install -v "sigs.k8s.io/kubectl-validate@$KUBECTL_VALIDATE_VERSION" 2>&1 | progress kubectl-validate
  mv "$tmp/kubectl-validate" "$kv"
  rmdir "$tmp"
fi

hu="$DIR/helm-unittest-$HELM_UNITTEST_VERSION"
if [ ! -x "$hu" ]; then
  echo "chart-tools: building helm-unittest $HELM_UNITTEST_VERSION into $DIR (first time only, several minutes) ..."
  # helm-unittest has replace directives, so `go install @version` refuses it:
  # build it inside its (read-only) module directory from the module cache.
  src="$(go mod download -json "github.com/helm-unittest/helm-unittest@$HELM_UNITTEST_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  (cd "$src" && GOFLAGS="-mod=readonly -buildvcs=false" go build -v -o "$hu.tmp" \
    -ldflags "-X github.com/helm-unittest/helm-unittest/internal/build.version=${HELM_UNITTEST_VERSION#v}" ./cmd/helm-unittest) 2>&1 | progress helm-unittest
  mv "$hu.tmp" "$hu"
fi
cm="$DIR/cert-manager-crds-$CERT_MANAGER_VERSION"
if [ ! -f "$cm/cert-manager.io_certificates.yaml" ]; then
  echo "chart-tools: fetching cert-manager $CERT_MANAGER_VERSION's Certificate CRD into $cm ..."
  src="$(go mod download -json "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  mkdir -p "$cm.tmp"
  cp "$src/deploy/crds/cert-manager.io_certificates.yaml" "$cm.tmp/"
  chmod 0644 "$cm.tmp/"*
  rm -rf "$cm" && mv "$cm.tmp" "$cm"
fi
echo "$DIR"
