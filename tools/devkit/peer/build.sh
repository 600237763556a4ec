#!/bin/sh
# build.sh SNAPSHOT [OUT]: builds the peer bridge go_emqx_exhook (github.com/thousmile/go_emqx_exhook,
# the sarama ExHook -> Kafka bridge that issue 10 compares with) for bench's --peer.
#
# SNAPSHOT is a copy of its repository that you already have: a git directory (bare or not;
# HEAD is exported) or a plain source tree. This script downloads no source: its module
# path (go_emqx_exhook) is not on the Go module proxy, so it cannot be a dependency of ours,
# and its code is not copied into this repository. Its dependencies come from the Go module
# proxy, pinned by its go.sum. Output in OUT (default /tmp/peer): src/ (the exported tree),
# go_emqx_exhook (the binary), COMMIT (what was built).
set -eu
[ $# -ge 1 ] || { echo "usage: build.sh SNAPSHOT [OUT]" >&2; exit 2; }
snap=$1 out=${2:-/tmp/peer}
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/src"
mkdir "$out/src"
if git -C "$snap" rev-parse --git-dir >/dev/null 2>&1; then
	commit=$(git -C "$snap" log -1 --format='%H %cI')
	git -C "$snap" archive HEAD | tar -x -C "$out/src"
else
	commit="unknown (a source tree, not a git directory: $snap)"
	cp -R "$snap"/. "$out/src"
fi
grep -q '^module go_emqx_exhook$' "$out/src/go.mod" || { echo "build.sh: $snap is not go_emqx_exhook (go.mod)" >&2; exit 1; }
(cd "$out/src" && GOWORK=off GOFLAGS=-mod=readonly go build -o "$out/go_emqx_exhook" .)
echo "$commit" >"$out/COMMIT"
here=$(cd "$(dirname "$0")" && pwd)
echo "built $out/go_emqx_exhook from $commit ($(go version | cut -d' ' -f3))"
echo "bench: --peer 'sarama=$here/run.sh $out/go_emqx_exhook {port} {bootstrap} {topic}'"
