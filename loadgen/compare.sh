#!/usr/bin/env bash
# Runs the five scenarios of BENCHMARKS.md against the y-websocket reference
# server, Hocuspocus and Protokoll (SQLite and Postgres), in turn, under the
# same load on this machine, and prints one table with the ratios.
#
#   bash loadgen/compare.sh            # the full run (about 40 minutes)
#   QUICK=1 bash loadgen/compare.sh    # a smaller run to try the script (5 minutes)
#
# Servers run pinned to SERVER_CPUS (default core 0), the load generator to
# LOAD_CPUS (default core 1). Ours runs once more unpinned (both cores). Our
# Postgres backend uses the PostgreSQL at PG_URL; its processes are pinned to
# SERVER_CPUS for that run too (and unpinned afterwards), so that the server
# and its database share the one core the peers get.
#
# Output: the table on stdout and in $OUT/table.md; each run's RESULT JSON,
# stdout and stderr, and each server's log, in $OUT.
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
SERVERS=${SERVERS:-"y-websocket hocuspocus ours-sqlite ours-postgres ours-sqlite-2cores"}
SCENARIOS=${SCENARIOS:-"fanout ramp crowded idle cold"}

mkdir -p "$OUT"
log() { printf '== %s\n' "$*" >&2; }

# --- Scale --------------------------------------------------------------
if [ "$QUICK" = 1 ]; then
  FANOUT_MEETINGS=50 IDLE_MEETINGS=100 RAMP_MEETINGS=20 CROWD=100 CROWD_WRITERS=10
  DURATION=8 STEP=5 TRACE_OPS=20000 REPEAT=2
else
  FANOUT_MEETINGS=500 IDLE_MEETINGS=1000 RAMP_MEETINGS=100 CROWD=400 CROWD_WRITERS=20
  DURATION=30 STEP=10 TRACE_OPS=260000 REPEAT=5
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

log "building (release)"
(cd "$root" && cargo build --release --locked -q -p protokoll-server -p protokoll-loadgen)
bin=$CARGO_TARGET_DIR/release
protokoll=$bin/protokoll
loadgen=$bin/protokoll-loadgen

log "installing the peers from npm (pinned in loadgen/peers/package-lock.json)"
(cd "$here/peers" && npm ci --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error)

trace=$CARGO_TARGET_DIR/bench/b4like-$TRACE_OPS.trace
if [[ " $SCENARIOS " == *" cold "* && ! -s $trace ]]; then
  log "generating the B4-like trace ($TRACE_OPS operations, once)"
  mkdir -p "$(dirname "$trace")"
  taskset -c "$ALL_CPUS" "$loadgen" gen-trace --out "$trace.tmp" --ops "$TRACE_OPS"
  mv "$trace.tmp" "$trace"
fi

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
          --settle 10 --connect-concurrency 128 ;;
      cold)
        run_loadgen "$name" cold cold --trace "$trace" --repeat "$REPEAT" --upload-batch 64 ;;
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
log "results in $OUT"
