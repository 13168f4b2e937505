#!/bin/bash
# Stop the MUC bench ejabberd node, then make sure its beam PID is gone (kill by PID only).
HERE="$(cd "$(dirname "$0")" && pwd)"
PIDF=/tmp/muc-bench-ejabberd/ejabberd.pid
PID=$(cat $PIDF 2>/dev/null)
"$HERE/ejabberdctl.sh" stop
if [ -n "$PID" ]; then
  for i in $(seq 1 60); do kill -0 "$PID" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$PID" 2>/dev/null && kill -9 "$PID"
  echo "ejabberd $PID stopped"
fi
