#!/bin/bash
# Upload throughput, Verona vs Prosody 0.12 (mod_http_file_share) vs ejabberd 23.01
# (mod_http_upload), same driver (bench/upload.ts), same run. Plain HTTP on loopback for
# all three (TLS left out, as in the other anchor figures). Every server is started here
# with its data under /tmp/apps-bench-* on the apps loopback range and stopped by PID.
#   npm run bench:upload [-- SIZES_MB REPEAT]   (builds, then runs this script; defaults 1,10 and 5)
set -u
HERE="$(cd "$(dirname "$0")/.." && pwd)"
A="$HERE/bench/anchors/upload"
SIZES="${1:-1,10}"
REPEAT="${2:-5}"
OUT="$HERE/bench/results/upload-$(date -u +%Y%m%dT%H%M%S).txt"
mkdir -p "$HERE/bench/results"
DRIVER="node $HERE/dist/bench/upload.js --sizes $SIZES --repeat $REPEAT --domain bench.localhost --user up1 --password pass1"

# --- Verona: c2s and HTTP on 127.0.40.63, slot URLs on plain HTTP ---
VD=/tmp/apps-bench-verona; rm -rf $VD; mkdir -p $VD
cat > $VD/verona.yml <<YML
{ "domain": "bench.localhost", "dataDir": "$VD", "log": { "level": "warn" },
  "c2s": { "host": "127.0.40.63", "port": 5222, "tlsPort": -1, "requireTls": false, "allowPlainWithoutTls": true },
  "web": { "host": "127.0.40.63", "port": 5280, "tlsPort": -1 },
  "s2s": { "port": -1, "tlsPort": -1 },
  "moduleOptions": { "upload": { "baseUrl": "http://127.0.40.63:5280", "maxFileSize": 67108864, "quota": 0 } } }
YML
node "$HERE/bin/verona.js" adduser up1@bench.localhost --password pass1 --config $VD/verona.yml >/dev/null
node "$HERE/bin/verona.js" start --config $VD/verona.yml > $VD/out.log 2>&1 &
VPID=$!
# No federation listeners: other Verona processes on this machine may hold 5269/5270.
for i in $(seq 1 300); do grep -q '^READY' $VD/out.log && break; sleep 0.2; done
grep -q '^READY' $VD/out.log || { echo "Verona did not start:"; cat $VD/out.log; exit 1; }

# --- Prosody on 127.0.40.64 ---
PD=/tmp/apps-bench-prosody; rm -rf $PD; mkdir -p $PD/data; chown -R prosody:prosody $PD
(cd $PD && ulimit -n 20000 && nohup setpriv --reuid=prosody --regid=prosody --init-groups prosody --config "$A/prosody-upload.cfg.lua" -F > $PD/stdout.log 2>&1 &)
for i in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.40.64/5222) 2>/dev/null && break; sleep 0.2; done
setpriv --reuid=prosody --regid=prosody --init-groups prosodyctl --config "$A/prosody-upload.cfg.lua" register up1 bench.localhost pass1

# --- ejabberd on 127.0.40.65, node apps5262 ---
ED=/tmp/apps-bench-ejabberd; rm -rf $ED; mkdir -p $ED/logs $ED/spool $ED/upload; chown -R ejabberd:ejabberd $ED
EJ="setpriv --reuid=ejabberd --regid=ejabberd --init-groups env HOME=/var/lib/ejabberd ejabberdctl --config-dir $A --config $A/ejabberd-upload.yml --ctl-config $A/ejabberdctl.cfg --logs $ED/logs --spool $ED/spool"
(cd /tmp && ulimit -n 20000 && $EJ start)
for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.40.65/5262) 2>/dev/null && break; sleep 0.3; done
(cd /tmp && $EJ started >/dev/null 2>&1); sleep 2
(cd /tmp && $EJ register up1 bench.localhost pass1)

{
  echo "# upload throughput $(date -u +%FT%TZ), sizes ${SIZES} MB, ${REPEAT} repeats, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  $DRIVER --label verona --service xmpp://127.0.40.63:5222
  $DRIVER --label prosody-0.12 --service xmpp://127.0.40.64:5222
  $DRIVER --label ejabberd-23.01 --service xmpp://127.0.40.65:5262
  # A second round in reverse order, so that a load change on the shared machine shows.
  $DRIVER --label ejabberd-23.01 --service xmpp://127.0.40.65:5262
  $DRIVER --label prosody-0.12 --service xmpp://127.0.40.64:5222
  $DRIVER --label verona --service xmpp://127.0.40.63:5222
  echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee "$OUT"

kill $VPID 2>/dev/null
PPID_=$(cat $PD/prosody.pid 2>/dev/null); [ -n "$PPID_" ] && kill "$PPID_"
EPID=$(cat $ED/ejabberd.pid 2>/dev/null)
(cd /tmp && $EJ stop >/dev/null 2>&1)
[ -n "$EPID" ] && for i in $(seq 1 40); do kill -0 "$EPID" 2>/dev/null || break; sleep 0.5; done
[ -n "$EPID" ] && kill -0 "$EPID" 2>/dev/null && kill -9 "$EPID"
wait $VPID 2>/dev/null
echo "results: $OUT"
