#!/bin/bash
# Start ejabberd 23.01 with the MUC bench config (127.0.40.52:5222, node mucbench@localhost, fresh data
# in /tmp/muc-bench-ejabberd). Adapted from /work/shared/bench/scripts/ejabberd-start.sh.
HERE="$(cd "$(dirname "$0")" && pwd)"
D=/tmp/muc-bench-ejabberd
rm -rf $D
mkdir -p $D/logs $D/spool $D/etc
cp "$HERE/ejabberd-muc.yml" $D/etc/ejabberd.yml
cp "$HERE/ejabberdctl.cfg" "$HERE/inetrc" $D/etc/
chown -R ejabberd:ejabberd $D
ulimit -n 20000
"$HERE/ejabberdctl.sh" start
for i in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.40.52/5222) 2>/dev/null; then break; fi
  P=$(cat $D/ejabberd.pid 2>/dev/null); [ -n "$P" ] && ! kill -0 "$P" 2>/dev/null && { echo "ejabberd died, see $D/logs"; tail -n 3 $D/logs/error.log; exit 1; }
  sleep 0.3
done
"$HERE/ejabberdctl.sh" started >/dev/null 2>&1
sleep 2
echo "ejabberd pid $(cat $D/ejabberd.pid 2>/dev/null)"
