#!/bin/bash
# Stop the MUC bench Prosody by PID (never by name).
PIDF=/tmp/muc-bench-prosody/prosody.pid
[ -f $PIDF ] || { echo "no pidfile"; exit 0; }
PID=$(cat $PIDF)
kill "$PID" 2>/dev/null && for i in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
kill -0 "$PID" 2>/dev/null && kill -9 "$PID"
rm -f $PIDF; echo "prosody $PID stopped"
