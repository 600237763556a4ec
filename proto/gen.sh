#!/usr/bin/env bash
# Regenerates the Go code for every .proto file under proto/.
#
#   bash proto/gen.sh           regenerate in place (what `make proto` runs)
#   bash proto/gen.sh --check   regenerate into a temp dir and fail if the
#                               committed files differ (`make proto-check`)
#
# The protoc plugins are pinned in tools/go.mod and built into <repo>/bin.
# protoc itself comes from the OS; its version is stamped into the header of
# every generated file, so the check ignores that one line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROTO_DIR="${ROOT}/proto"
BIN_DIR="${ROOT}/bin"

mode="generate"
case "${1:-}" in
  "") ;;
  --check) mode="check" ;;
  -h|--help)
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

if ! command -v protoc >/dev/null 2>&1; then
  cat >&2 <<'MSG'
error: protoc not found in PATH.
Install it with:
    sudo apt-get install -y protobuf-compiler     # Debian/Ubuntu
    brew install protobuf                         # macOS
MSG
  exit 1
fi

# Build the pinned plugins (go build is a cheap no-op when nothing changed).
mkdir -p "${BIN_DIR}"
(
  cd "${ROOT}/tools"
  GOWORK=off go build -o "${BIN_DIR}/" \
    google.golang.org/protobuf/cmd/protoc-gen-go \
    google.golang.org/grpc/cmd/protoc-gen-go-grpc
)

# All .proto files, relative to proto/ (which is the import root).
mapfile -t PROTOS < <(cd "${PROTO_DIR}" && find . -name '*.proto' -not -path './.*' | sed 's|^\./||' | LC_ALL=C sort)
if [[ ${#PROTOS[@]} -eq 0 ]]; then
  echo "error: no .proto files under ${PROTO_DIR}" >&2
  exit 1
fi

run_protoc() {
  local out="$1"
  (
    cd "${PROTO_DIR}"
    protoc \
      --proto_path=. \
      --plugin=protoc-gen-go="${BIN_DIR}/protoc-gen-go" \
      --plugin=protoc-gen-go-grpc="${BIN_DIR}/protoc-gen-go-grpc" \
      --go_out="${out}" --go_opt=paths=source_relative \
      --go-grpc_out="${out}" --go-grpc_opt=paths=source_relative \
      "${PROTOS[@]}"
  )
}

if [[ "${mode}" == "generate" ]]; then
  run_protoc "${PROTO_DIR}"
  echo "generated Go code for ${#PROTOS[@]} proto file(s) (protoc $(protoc --version | awk '{print $2}'))"
  exit 0
fi

# --check
TMP="$(mktemp -d)"
trap 'rm -rf "${TMP}"' EXIT
mkdir -p "${TMP}/gen"
run_protoc "${TMP}/gen"

# Drop the protoc version line from the generated headers:
#   protoc-gen-go:       "// \tprotoc        v3.21.12"
#   protoc-gen-go-grpc:  "// - protoc             v3.21.12"
normalise() {
  sed -E '/^\/\/[[:space:]]+(-[[:space:]]+)?protoc[[:space:]]+(v|\(unknown\))/d' "$1"
}

list_generated() {
  (cd "$1" && find . -type f \( -name '*.pb.go' \) -not -path './.*' | sed 's|^\./||' | LC_ALL=C sort)
}

stale=0
want="$(list_generated "${TMP}/gen")"
have="$(list_generated "${PROTO_DIR}")"
if [[ "${want}" != "${have}" ]]; then
  echo "generated file set differs (- committed, + expected):" >&2
  diff <(printf '%s\n' "${have}") <(printf '%s\n' "${want}") >&2 || true
  stale=1
fi

while IFS= read -r f; do
  [[ -z "${f}" ]] && continue
  if [[ ! -f "${PROTO_DIR}/${f}" ]]; then
    continue # already reported above
  fi
  if ! diff -u --label "committed/proto/${f}" --label "generated/proto/${f}" \
      <(normalise "${PROTO_DIR}/${f}") <(normalise "${TMP}/gen/${f}") >&2; then
    stale=1
  fi
done <<<"${want}"

if [[ ${stale} -ne 0 ]]; then
  echo "error: generated code is stale: run make proto" >&2
  exit 1
fi
echo "generated code is up to date (${#PROTOS[@]} proto file(s))"
