#!/bin/bash
# Start Prosody 0.12 with the MUC bench config (127.0.40.51:5222, fresh data in /tmp/muc-bench-prosody).
# Adapted from /work/shared/bench/scripts/prosody-start.sh (setpriv keeps the raised fd limit).
set -e
HERE="$(cd "$(dirname "$0")" && pwd)"
rm -rf /tmp/muc-bench-prosody
mkdir -p /tmp/muc-bench-prosody/data
cp "$HERE/prosody-muc.cfg.lua" /tmp/muc-bench-prosody/prosody.cfg.lua
chown -R prosody:prosody /tmp/muc-bench-prosody
ulimit -n 20000
cd /tmp/muc-bench-prosody
nohup setpriv --reuid=prosody --regid=prosody --init-groups prosody --config /tmp/muc-bench-prosody/prosody.cfg.lua -F >/tmp/muc-bench-prosody/stdout.log 2>&1 &
for i in $(seq 1 50); do
  if (exec 3<>/dev/tcp/127.0.40.51/5222) 2>/dev/null; then break; fi; sleep 0.2
done
sleep 0.3
echo "prosody pid $(cat /tmp/muc-bench-prosody/prosody.pid)"
