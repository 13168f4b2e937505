#!/bin/bash
# Prosody 0.12, ejabberd 23.01 and Verona side by side under the same driver; writes the
# table to docs/benchmarks.md. Options are environment variables, see bench/compare.ts, e.g.
#   REPEAT=3 DUR=10 bench/compare.sh
#   SERVERS=prosody,ejabberd DRIVERS=py,ts SCEN=idle,chat1,rate100 REPEAT=2 bench/compare.sh
# Needs root for apt-get and for starting the anchors as their own users (scripts in
# /work/shared/bench/scripts); stops every server it started.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED_BENCH=${SHARED_BENCH:-/work/shared/bench}
if [[ ",${SERVERS:-prosody,ejabberd,verona}," == *,prosody,* || ",${SERVERS:-prosody,ejabberd,verona}," == *,ejabberd,* ]]; then
  if ! dpkg-query -W prosody ejabberd lua-dbi-sqlite3 erlang-p1-sqlite3 prosody-modules >/dev/null 2>&1; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y prosody prosody-modules lua-dbi-sqlite3 ejabberd erlang-p1-sqlite3
  fi
fi
npx tsc -p tsconfig.json >/tmp/verona-bench-tsc.log 2>&1 || echo "tsc reported errors (see /tmp/verona-bench-tsc.log); using what it emitted"
# Every idle session is a socket on both ends: lift the descriptor limit for the driver and for
# the Verona server it starts (the anchor scripts raise their own).
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
export SHARED_BENCH
exec node dist/bench/compare.js
