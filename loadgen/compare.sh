#!/usr/bin/env bash
# Runs the scenarios of BENCHMARKS.md against the y-websocket reference
# server, Hocuspocus and Protokoll (SQLite and Postgres), in turn, under the
# same load on this machine, and prints one table with the ratios and every
# target of issue 14 marked met or MISSED, and a chart of the ramp.
#
#   bash loadgen/compare.sh            # the full run (about 45 minutes)
#   QUICK=1 bash loadgen/compare.sh    # a smaller run to try the script (7 minutes)
#
# Servers run pinned to SERVER_CPUS (default core 0), the load generator to
# LOAD_CPUS (default core 1). Ours runs once more unpinned (both cores). Our
# Postgres backend uses the PostgreSQL at PG_URL; its processes are pinned to
# SERVER_CPUS for that run too (and unpinned afterwards), so that the server
# and its database share the one core the peers get.
#
# Before the servers it measures one fsync of the disk $OUT is on (where the
# SQLite files live) with PostgreSQL's pg_test_fsync; the p50 target is the
# best peer's p50 plus that.
#
# Output: the table on stdout and in $OUT/table.md, the ramp chart in
# $OUT/ramp.svg; each run's RESULT JSON, stdout and stderr, each server's
# log, pg_test_fsync's output and meta.json (fsync, cores) in $OUT.
# PUBLISH=1 (the default for a full run of every server and scenario) also
# copies table.md and ramp.svg to docs/bench/, where BENCHMARKS.md links them.
set -euo pipefail
export RUST_BACKTRACE=0

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/protokoll-target}
OUT=${OUT:-$CARGO_TARGET_DIR/bench/$(date -u +%Y%m%dT%H%M%SZ)}
SERVER_CPUS=${SERVER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
ALL_CPUS=${ALL_CPUS:-0-$(($(nproc) - 1))}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
PORT=${PORT:-18080}
QUICK=${QUICK:-0}
# Whether SERVERS and SCENARIOS were left at their defaults (the full set).
all_servers=${SERVERS:+0}
all_scenarios=${SCENARIOS:+0}
SERVERS=${SERVERS:-"y-websocket hocuspocus ours-sqlite ours-postgres ours-sqlite-2cores"}
SCENARIOS=${SCENARIOS:-"fanout ramp crowded idle cold cold-holding"}
# Share of the trace the client of cold-holding already has.
HOLDING=${HOLDING:-0.9}
if [ "$QUICK" != 1 ] && [ "${all_servers:-1}" = 1 ] && [ "${all_scenarios:-1}" = 1 ]; then
  PUBLISH=${PUBLISH:-1}
else
  PUBLISH=${PUBLISH:-0}
fi
PUBLISH_DIR=${PUBLISH_DIR:-$root/docs/bench}

mkdir -p "$OUT"
log() { printf '== %s\n' "$*" >&2; }

# --- Scale --------------------------------------------------------------
if [ "$QUICK" = 1 ]; then
  FANOUT_MEETINGS=50 IDLE_MEETINGS=100 RAMP_MEETINGS=20 CROWD=100 CROWD_WRITERS=10
  DURATION=8 STEP=5 TRACE_OPS=20000 REPEAT=2 IDLE_HOLD=5 FSYNC_SECS=1
else
  FANOUT_MEETINGS=500 IDLE_MEETINGS=1000 RAMP_MEETINGS=100 CROWD=400 CROWD_WRITERS=20
  # IDLE_HOLD: the quiet window for idle server CPU. With the 10 s settle and
  # the connecting, it stays under Hocuspocus' 60 s timeout for silent clients.
  DURATION=30 STEP=10 TRACE_OPS=260000 REPEAT=5 IDLE_HOLD=30 FSYNC_SECS=2
fi

# --- Tools --------------------------------------------------------------
for tool in taskset node npm python3 curl psql; do
  command -v "$tool" >/dev/null || { echo "compare.sh needs $tool" >&2; exit 1; }
done
# 10,000 idle clients: one descriptor each in the server and the generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 12000 ]; then
  echo "compare.sh needs at least 12000 open files (ulimit -n is $(ulimit -n))" >&2
  exit 1
fi

# BUILD=0: use the release binaries already in $CARGO_TARGET_DIR.
if [ "${BUILD:-1}" = 1 ]; then
  log "building (release)"
  (cd "$root" && cargo build --release --locked -q -p protokoll-server -p protokoll-loadgen)
fi
bin=$CARGO_TARGET_DIR/release
protokoll=$bin/protokoll
loadgen=$bin/protokoll-loadgen

log "installing the peers from npm (pinned in loadgen/peers/package-lock.json)"
(cd "$here/peers" && npm ci --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error)

trace=$CARGO_TARGET_DIR/bench/b4like-$TRACE_OPS.trace
if [[ " $SCENARIOS " == *" cold "* || " $SCENARIOS " == *" cold-holding "* ]] && [ ! -s "$trace" ]; then
  log "generating the B4-like trace ($TRACE_OPS operations, once)"
  mkdir -p "$(dirname "$trace")"
  taskset -c "$ALL_CPUS" "$loadgen" gen-trace --out "$trace.tmp" --ops "$TRACE_OPS"
  mv "$trace.tmp" "$trace"
fi

# --- One fsync of this disk ---------------------------------------------
# pg_test_fsync's "fdatasync" line under "one 8kB write": what one durable
# commit costs at least, in the directory the SQLite files are written to.
count_cpus() {
  local n=0 part
  for part in ${1//,/ }; do
    if [[ $part == *-* ]]; then n=$((n + ${part#*-} - ${part%-*} + 1)); else n=$((n + 1)); fi
  done
  echo "$n"
}
fsync_us='' fsync_ops='' fsync_note=''
if [[ " $SCENARIOS " == *" fanout "* ]]; then
  pg_test_fsync=$(command -v pg_test_fsync || true)
  if [ -z "$pg_test_fsync" ] && command -v pg_config >/dev/null; then
    pg_test_fsync=$(pg_config --bindir)/pg_test_fsync
  fi
  if [ -z "$pg_test_fsync" ] || [ ! -x "$pg_test_fsync" ]; then
    pg_test_fsync=$(ls /usr/lib/postgresql/*/bin/pg_test_fsync 2>/dev/null | tail -n1 || true)
  fi
  if [ -n "$pg_test_fsync" ] && [ -x "$pg_test_fsync" ]; then
    log "measuring fsync in $OUT ($pg_test_fsync, $FSYNC_SECS s per test)"
    if taskset -c "$SERVER_CPUS" "$pg_test_fsync" -f "$OUT/pg_test_fsync.tmp" -s "$FSYNC_SECS" \
      >"$OUT/pg_test_fsync.txt" 2>&1; then
      read -r fsync_ops fsync_us < <(awk '
        /using one 8kB write/ { one = 1; next }
        one && $1 == "fdatasync" { print $2, $4; exit }' "$OUT/pg_test_fsync.txt") || true
    fi
    rm -f "$OUT/pg_test_fsync.tmp"
    [ -n "$fsync_us" ] || fsync_note="pg_test_fsync failed; see pg_test_fsync.txt"
  else
    fsync_note="pg_test_fsync not found"
  fi
  if [ -n "$fsync_us" ]; then log "fsync: $fsync_us us (fdatasync of one 8 kB write)"; fi
else
  fsync_note="no fanout scenario in this run"
fi
server_cores_json=
for name in $SERVERS; do
  cpus=$SERVER_CPUS
  [ "$name" = ours-sqlite-2cores ] && cpus=$ALL_CPUS
  server_cores_json+="${server_cores_json:+, }\"$name\": $(count_cpus "$cpus")"
done
FSYNC_US=$fsync_us FSYNC_OPS=$fsync_ops FSYNC_NOTE=$fsync_note FSYNC_DIR=$OUT \
  SERVER_CORES="{$server_cores_json}" LOAD_CORES=$(count_cpus "$LOAD_CPUS") \
  python3 -c '
import json, os, sys
e = os.environ
json.dump({
    "fsync_ms": float(e["FSYNC_US"]) / 1000 if e["FSYNC_US"] else None,
    "fsync_ops_per_s": float(e["FSYNC_OPS"]) if e["FSYNC_OPS"] else None,
    "fsync_note": e["FSYNC_NOTE"],
    "fsync_dir": e["FSYNC_DIR"],
    "server_cores": json.loads(e["SERVER_CORES"]),
    "load_cores": int(e["LOAD_CORES"]),
}, open(sys.argv[1], "w"), indent=1)' "$OUT/meta.json"

# --- Servers ------------------------------------------------------------
server_pid=
pg_db=
pg_pinned=0

postgres_pids() { pgrep -x postgres || pgrep -f '^postgres' || true; }
pin_postgres() {
  local cpus=$1
  for p in $(postgres_pids); do taskset -a -p -c "$cpus" "$p" >/dev/null 2>&1 || true; done
}

stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
  if [ "$pg_pinned" = 1 ]; then
    pin_postgres "$ALL_CPUS"
    pg_pinned=0
  fi
  if [ -n "$pg_db" ]; then
    psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
    pg_db=
  fi
}
trap stop_server EXIT
trap 'echo "compare.sh failed at line $LINENO" >&2' ERR

wait_http() {
  local url=$1
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    kill -0 "$server_pid" 2>/dev/null || { echo "the server exited; see its log" >&2; return 1; }
    sleep 0.1
  done
  echo "no answer from $url" >&2
  return 1
}

# Starts server $1 for scenario $2 and sets: server_pid, url, protocol,
# agency_args (our server: sign in as agency users, with PROTOKOLL_TOKEN).
start_server() {
  local name=$1 scenario=$2 cpus=$SERVER_CPUS
  local logf=$OUT/$name-$scenario.server.log
  agency_args=()
  unset PROTOKOLL_TOKEN
  case $name in
    y-websocket)
      HOST=127.0.0.1 PORT=$PORT taskset -c "$cpus" \
        node "$here/peers/node_modules/y-websocket/bin/server.js" >"$logf" 2>&1 &
      server_pid=$!
      url=ws://127.0.0.1:$PORT protocol=y-websocket
      wait_http "http://127.0.0.1:$PORT/"
      ;;
    hocuspocus)
      PORT=$PORT taskset -c "$cpus" node "$here/peers/hocuspocus.mjs" >"$logf" 2>&1 &
      server_pid=$!
      url=ws://127.0.0.1:$PORT protocol=hocuspocus
      wait_http "http://127.0.0.1:$PORT/"
      ;;
    ours-*)
      local db
      case $name in
        ours-postgres)
          pg_db=protokoll_bench_$$_$RANDOM
          psql -q "$PG_URL/postgres" -c "CREATE DATABASE $pg_db" >/dev/null
          db=$PG_URL/$pg_db
          pin_postgres "$cpus"
          pg_pinned=1
          ;;
        ours-sqlite-2cores)
          cpus=$ALL_CPUS
          db=sqlite://$OUT/$name-$scenario.sqlite
          ;;
        *) db=sqlite://$OUT/$name-$scenario.sqlite ;;
      esac
      rm -f "$OUT/$name-$scenario".sqlite*
      export PROTOKOLL_DATABASE_URL=$db
      "$protokoll" user create bench-admin --name "Bench admin" --admin >/dev/null 2>&1
      PROTOKOLL_TOKEN=$("$protokoll" token issue bench-admin --name compare 2>/dev/null | tail -n1)
      export PROTOKOLL_TOKEN
      # The load generator opens thousands of sockets from one address with
      # a handful of accounts: lift the per-user and per-address caps.
      PROTOKOLL_MAX_SOCKETS_PER_USER=1000000 PROTOKOLL_MAX_SOCKETS_PER_ADDRESS=1000000 \
      PROTOKOLL_BIND=127.0.0.1:$PORT RUST_LOG=warn taskset -c "$cpus" "$protokoll" serve \
        >"$logf" 2>&1 &
      server_pid=$!
      unset PROTOKOLL_DATABASE_URL
      url=ws://127.0.0.1:$PORT/sync protocol=y-websocket
      agency_args=(--create-meetings-via "http://127.0.0.1:$PORT" --as-agencies)
      wait_http "http://127.0.0.1:$PORT/readyz"
      ;;
    *) echo "unknown server $name" >&2; exit 1 ;;
  esac
}

run_loadgen() {
  local name=$1 scenario=$2
  shift 2
  local base=$OUT/$name-$scenario
  log "$name: $scenario"
  if taskset -c "$LOAD_CPUS" "$loadgen" "$@" --url "$url" --protocol "$protocol" \
    --server-pid "$server_pid" "${agency_args[@]}" >"$base.out" 2>"$base.err"; then
    grep '^RESULT ' "$base.out" | tail -n1 | cut -c8- >"$base.json"
  else
    echo "  failed; see $base.err" >&2
    tail -n5 "$base.err" >&2
    rm -f "$base.json"
  fi
}

for name in $SERVERS; do
  for scenario in $SCENARIOS; do
    start_server "$name" "$scenario"
    case $scenario in
      fanout)
        run_loadgen "$name" fanout fanout --meetings "$FANOUT_MEETINGS" \
          --clients-per-meeting 3 --rate 1 --warmup 5 --duration "$DURATION" --drain 2 ;;
      ramp)
        run_loadgen "$name" ramp ramp --meetings "$RAMP_MEETINGS" --clients-per-meeting 10 \
          --rate-start 0.5 --rate-factor 1.5 --warmup 2 --step-duration "$STEP" \
          --drain 1 --p99-limit-ms 50 --max-steps 30 ;;
      crowded)
        run_loadgen "$name" crowded fanout --meetings 1 --clients-per-meeting "$CROWD" \
          --writers-per-meeting "$CROWD_WRITERS" --rate 1 --warmup 5 \
          --duration "$DURATION" --drain 2 ;;
      idle)
        run_loadgen "$name" idle idle --meetings "$IDLE_MEETINGS" --clients-per-meeting 10 \
          --settle 10 --hold "$IDLE_HOLD" --connect-concurrency 128 ;;
      cold)
        run_loadgen "$name" cold cold --trace "$trace" --repeat "$REPEAT" --upload-batch 64 ;;
      cold-holding)
        run_loadgen "$name" cold-holding cold --trace "$trace" --repeat "$REPEAT" \
          --upload-batch 64 --holding "$HOLDING" ;;
      *) echo "unknown scenario $scenario" >&2; exit 1 ;;
    esac
    stop_server
  done
done

# --- The table ----------------------------------------------------------
versions=$(cd "$here/peers" && node -e '
  const l = require("./package-lock.json").packages;
  const v = n => l["node_modules/" + n].version;
  console.log(`y-websocket ${v("y-websocket")} (ws ${v("ws")}), @hocuspocus/server ${v("@hocuspocus/server")}, yjs ${v("yjs")}, node ${process.version}`)')
python3 "$here/compare_table.py" "$OUT" "$SERVERS" "$versions" | tee "$OUT/table.md"
python3 "$here/ramp_chart.py" "$OUT" "$SERVERS" "$OUT/ramp.svg"
if [ "$PUBLISH" = 1 ]; then
  mkdir -p "$PUBLISH_DIR"
  cp "$OUT/table.md" "$PUBLISH_DIR/table.md"
  if [ -s "$OUT/ramp.svg" ]; then cp "$OUT/ramp.svg" "$PUBLISH_DIR/ramp.svg"; fi
  log "copied table.md and ramp.svg to $PUBLISH_DIR (commit them with BENCHMARKS.md)"
else
  log "to publish: mkdir -p $PUBLISH_DIR && cp $OUT/table.md $OUT/ramp.svg $PUBLISH_DIR/"
fi
log "results in $OUT"
