#!/bin/sh
# run.sh BIN PORT BOOTSTRAP TOPIC [queue|direct]: renders config.yaml.tmpl (beside this
# script) into the working directory, where go_emqx_exhook reads config.yaml, then execs BIN
# (the same process, so bench measures the bridge's own CPU). For bench's --peer:
#   --peer 'sarama=tools/devkit/peer/run.sh /tmp/peer/go_emqx_exhook {port} {bootstrap} {topic}'
set -eu
[ $# -ge 4 ] || { echo "usage: run.sh BIN PORT BOOTSTRAP TOPIC [queue|direct]" >&2; exit 2; }
bin=$1 port=$2 bootstrap=$3 topic=$4 method=${5:-queue}
case $method in queue|direct) ;; *) echo "run.sh: sendMethod $method: queue or direct" >&2; exit 2 ;; esac
sed -e "s|@PORT@|$port|" -e "s|@BOOTSTRAP@|$bootstrap|" -e "s|@TOPIC@|$topic|" -e "s|@SEND_METHOD@|$method|" \
	"$(dirname "$0")/config.yaml.tmpl" >config.yaml
exec "$bin"
