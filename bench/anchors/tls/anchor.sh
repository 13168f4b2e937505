#!/bin/bash
# Start or stop one anchor server with the configs of this folder (copies of /work/shared/bench
# with TLS added), data under $ANCHOR_DIR (default /tmp/verona-bench-anchors/NAME), ports of
# their own (Prosody 15222 STARTTLS / 15223 direct TLS, ejabberd 15232 / 15233) so that they
# never meet the shared anchors on 5222/5232.
#   anchor.sh prosody|ejabberd start [--fresh]    prints "pid N" last
#   anchor.sh prosody|ejabberd stop
# The certificate (self-signed P-256 for bench.localhost) is made once in $ANCHOR_TLS
# (default /tmp/verona-bench-anchors/tls) and shared with Verona by bench/lib.ts.
set -e
HERE="$(cd "$(dirname "$0")" && pwd)"
NAME=$1; CMD=$2; OPT=${3:-}
BASE=${ANCHOR_BASE:-/tmp/verona-bench-anchors}
DIR=$BASE/$NAME
TLSD=${ANCHOR_TLS:-$BASE/tls}
mkcert() {
  mkdir -p "$TLSD"
  if [ ! -s "$TLSD/cert.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
      -subj /CN=bench.localhost -addext subjectAltName=DNS:bench.localhost \
      -keyout "$TLSD/key.pem" -out "$TLSD/cert.pem" 2>/dev/null
    cat "$TLSD/cert.pem" "$TLSD/key.pem" > "$TLSD/both.pem"
  fi
  # The anchors run as their own users: a benchmark key, readable by them.
  chmod 755 "$BASE" "$TLSD"; chmod 644 "$TLSD"/*.pem
}
waitport() { for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.2; done; return 1; }
case "$NAME/$CMD" in
prosody/start)
  # One instance at a time: a leftover from an interrupted run is stopped first.
  "$0" prosody stop >/dev/null 2>&1 || true
  mkcert
  [ "$OPT" = "--fresh" ] && rm -rf "$DIR"
  mkdir -p "$DIR/data"
  sed -e "s#@DIR@#$DIR#g" -e "s#@CERT@#$TLSD/cert.pem#g" -e "s#@KEY@#$TLSD/key.pem#g" "$HERE/prosody.cfg.lua" > "$DIR/prosody.cfg.lua"
  chown -R prosody:prosody "$DIR"
  ulimit -n 20000
  cd "$DIR"
  # setpriv (not runuser/su): PAM limits would reset the soft fd limit to 1024
  nohup setpriv --reuid=prosody --regid=prosody --init-groups prosody --config "$DIR/prosody.cfg.lua" -F >"$DIR/stdout.log" 2>&1 &
  waitport 15222; waitport 15223; sleep 0.3
  echo "prosody pid $(cat "$DIR/prosody.pid")" ;;
prosody/stop)
  PID=$(cat "$DIR/prosody.pid" 2>/dev/null || true)
  [ -n "$PID" ] || { echo "no pidfile"; exit 0; }
  kill "$PID" 2>/dev/null && for i in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$PID" 2>/dev/null && kill -9 "$PID"
  rm -f "$DIR/prosody.pid"; echo "prosody $PID stopped" ;;
ejabberd/start|ejabberd/stop)
  AS="setpriv --reuid=ejabberd --regid=ejabberd --init-groups env HOME=/var/lib/ejabberd"
  ctl() { cd /tmp; $AS ejabberdctl --config-dir "$DIR/etc" --config "$DIR/etc/ejabberd.yml" --ctl-config "$DIR/etc/ejabberdctl.cfg" --logs "$DIR/logs" --spool "$DIR/spool" "$@"; }
  if [ "$CMD" = stop ]; then
    PID=$(cat "$DIR/ejabberd.pid" 2>/dev/null || true)
    ctl stop || true
    if [ -n "$PID" ]; then
      for i in $(seq 1 60); do kill -0 "$PID" 2>/dev/null || break; sleep 0.5; done
      kill -0 "$PID" 2>/dev/null && kill -9 "$PID"
      echo "ejabberd $PID stopped"
    fi
    exit 0
  fi
  [ -f "$DIR/ejabberd.pid" ] && "$0" ejabberd stop >/dev/null 2>&1 || true
  mkcert
  [ "$OPT" = "--fresh" ] && rm -rf "$DIR"
  mkdir -p "$DIR/logs" "$DIR/spool" "$DIR/etc"
  sed -e "s#@DIR@#$DIR#g" -e "s#@PEM@#$TLSD/both.pem#g" "$HERE/ejabberd.yml" > "$DIR/etc/ejabberd.yml"
  sed -e "s#@DIR@#$DIR#g" "$HERE/ejabberdctl.cfg" > "$DIR/etc/ejabberdctl.cfg"
  cp "$HERE/inetrc" "$DIR/etc/inetrc"
  chown -R ejabberd:ejabberd "$DIR"
  ulimit -n 20000
  ctl start
  for i in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/15232) 2>/dev/null && break
    P=$(cat "$DIR/ejabberd.pid" 2>/dev/null || true); [ -n "$P" ] && ! kill -0 "$P" 2>/dev/null && { echo "ejabberd died, see $DIR/logs"; tail -n 3 "$DIR/logs/error.log"; exit 1; }
    sleep 0.3
  done
  # the c2s port accepts before auth/SQL is ready: wait for "started"
  ctl started >/dev/null 2>&1 || true
  sleep 2
  echo "ejabberd pid $(cat "$DIR/ejabberd.pid" 2>/dev/null)" ;;
*) echo "usage: anchor.sh prosody|ejabberd start [--fresh] | stop"; exit 2 ;;
esac
