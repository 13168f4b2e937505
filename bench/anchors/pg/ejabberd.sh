#!/bin/bash
# ejabberd 23.01 on PostgreSQL for bench/pg-compare.sh: `ejabberd.sh start PGPORT`, `ejabberd.sh stop`,
# or any other ejabberdctl command. Data and logs under /tmp/pgstores-bench-ejabberd (fresh at
# start); runs as user ejabberd through setpriv (keeps the raised descriptor limit, unlike su).
# The PostgreSQL database "ejabberd" with ejabberd's schema is created by bench/pg-compare.ts.
HERE="$(cd "$(dirname "$0")" && pwd)"
D=/tmp/pgstores-bench-ejabberd
if [ "$(id -u)" = 0 ]; then AS="setpriv --reuid=ejabberd --regid=ejabberd --init-groups env HOME=/var/lib/ejabberd"; else AS=; fi
ctl() { (cd /tmp && $AS ejabberdctl --config-dir "$D/etc" --config "$D/etc/ejabberd.yml" \
  --ctl-config "$D/etc/ejabberdctl.cfg" --logs $D/logs --spool $D/spool "$@"); }
case "$1" in
  start)
    rm -rf $D
    mkdir -p $D/logs $D/spool $D/etc
    sed -e "s/@PGPORT@/$2/" "$HERE/ejabberd-pg.yml.in" > $D/etc/ejabberd.yml
    cp "$HERE/ejabberdctl.cfg" "$HERE/inetrc" $D/etc/
    chown -R ejabberd:ejabberd $D
    ulimit -n 20000
    ctl start
    for i in $(seq 1 150); do
      if (exec 3<>/dev/tcp/127.0.80.2/5222) 2>/dev/null; then break; fi
      P=$(cat $D/ejabberd.pid 2>/dev/null); [ -n "$P" ] && ! kill -0 "$P" 2>/dev/null && { echo "ejabberd died, see $D/logs"; tail -n 5 $D/logs/error.log; exit 1; }
      sleep 0.3
    done
    ctl started >/dev/null 2>&1
    sleep 2
    echo "ejabberd pid $(cat $D/ejabberd.pid 2>/dev/null)"
    ;;
  stop)
    PID=$(cat $D/ejabberd.pid 2>/dev/null)
    ctl stop >/dev/null 2>&1
    if [ -n "$PID" ]; then
      for i in $(seq 1 60); do kill -0 "$PID" 2>/dev/null || break; sleep 0.5; done
      kill -0 "$PID" 2>/dev/null && kill -9 "$PID"
      echo "ejabberd $PID stopped"
    fi
    ;;
  *) ctl "$@" ;;
esac
