#!/bin/bash
# Verona on SQLite, Verona on PostgreSQL and ejabberd 23.01 on PostgreSQL under the same driver in
# one run: archived msgs/s (saturation) and p50/p99 at a fixed rate. Writes the table into
# docs/benchmarks.md (between the pg-compare markers) and raw results to bench/results/.
#   bench/pg-compare.sh                    # REPEAT=2 DUR=10 PAIRS=50 RATE=100
#   REPEAT=3 DUR=20 RATE=200 bench/pg-compare.sh
# Needs root (apt-get; PostgreSQL and ejabberd run as their own users through setpriv). Uses the
# loopback addresses 127.0.80.1 (PostgreSQL) and 127.0.80.2 (ejabberd); Verona listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! dpkg-query -W postgresql ejabberd erlang-p1-pgsql >/dev/null 2>&1; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql ejabberd erlang-p1-pgsql
fi
npx tsc -p tsconfig.json >/tmp/verona-pg-compare-tsc.log 2>&1 || { cat /tmp/verona-pg-compare-tsc.log; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec node dist/bench/pg-compare.js
