#!/usr/bin/env bash
# Several nodes (issue 13): cross-node fan-out latency and the catch-up
# after a Redis outage, on loopback. One command; prints a markdown table and
# the outage timeline, and keeps every log and RESULT json in $OUT.
#
#   bash loadgen/cluster.sh
#
# Uses the shared PostgreSQL ($PG_URL; creates and drops its own databases)
# and starts its own redis-server on a free port (the shared one on 6379 is
# never touched), three release nodes (`protokoll serve --redis-url`) and,
# unless NGINX=0, nginx with the configuration from deploy/nginx/. Runs
# compare.sh's fanout (500 meetings x 3 clients, 1 update/s per writer,
# warm-up 5 s, 30 s measured):
#   single   one node, Postgres, no Redis (compare.sh's "ours-postgres")
#   spread   the three nodes, client k of every meeting on node k mod 3, so
#            every delivery crosses nodes through Redis
#   nginx    the three nodes behind nginx (least_conn spreads the sockets)
#   outage   as spread, 45 s measured with a per-second timeline; Redis is
#            stopped 15 s into the measurement for $OUTAGE s, then started
# Server-side processes (nodes, Redis, nginx and the shared Postgres) run on
# $SERVER_CPUS, the generator on $LOAD_CPUS, as compare.sh does.
set -euo pipefail
export RUST_BACKTRACE=0

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/protokoll-target}
OUT=${OUT:-$CARGO_TARGET_DIR/bench/cluster-$(date -u +%Y%m%dT%H%M%SZ)}
SERVER_CPUS=${SERVER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
ALL_CPUS=${ALL_CPUS:-0-$(($(nproc) - 1))}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
MEETINGS=${MEETINGS:-500}
DURATION=${DURATION:-30}
OUTAGE=${OUTAGE:-10}
NGINX=${NGINX:-1}
RUNS=${RUNS:-"single spread nginx outage"}
[ "$NGINX" = 1 ] || RUNS=${RUNS//nginx/}

mkdir -p "$OUT"
log() { printf '== %s\n' "$*" >&2; }

for tool in taskset python3 curl psql redis-server; do
  command -v "$tool" >/dev/null || { echo "cluster.sh needs $tool" >&2; exit 1; }
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
if [[ " $RUNS " == *" nginx "* && ! -x $nginx_bin ]]; then
  echo "cluster.sh needs nginx (or NGINX=0)" >&2
  exit 1
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# BUILD=0 uses the release binaries already in $CARGO_TARGET_DIR.
if [ "${BUILD:-1}" = 1 ]; then
  log "building (release)"
  (cd "$root" && cargo build --release --locked -q -p protokoll-server -p protokoll-loadgen)
fi
protokoll=$CARGO_TARGET_DIR/release/protokoll
loadgen=$CARGO_TARGET_DIR/release/protokoll-loadgen

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- Processes of this script ------------------------------------------
node_pids=()
node_ports=()
redis_pid=
redis_port=
nginx_pid=
nginx_port=
pg_db=
pg_pinned=0

postgres_pids() { pgrep -x postgres || pgrep -f '^postgres' || true; }
pin_postgres() {
  local cpus=$1
  for p in $(postgres_pids); do taskset -a -p -c "$cpus" "$p" >/dev/null 2>&1 || true; done
}

stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

stop_redis() {
  stop_pid "$redis_pid"
  redis_pid=
}

start_redis() {
  [ -n "$redis_port" ] || redis_port=$(free_port)
  taskset -c "$SERVER_CPUS" redis-server --port "$redis_port" --bind 127.0.0.1 \
    --save "" --appendonly no >>"$OUT/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "redis-server did not listen on $redis_port" >&2
  return 1
}

stop_site() {
  stop_pid "$nginx_pid"
  nginx_pid=
  for pid in "${node_pids[@]}"; do stop_pid "$pid"; done
  node_pids=()
  node_ports=()
  stop_redis
  if [ "$pg_pinned" = 1 ]; then
    pin_postgres "$ALL_CPUS"
    pg_pinned=0
  fi
  if [ -n "$pg_db" ]; then
    psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
    pg_db=
  fi
}
trap stop_site EXIT
trap 'echo "cluster.sh failed at line $LINENO" >&2' ERR

wait_ready() {
  local port=$1 pid=$2
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "a node exited; see $OUT" >&2; return 1; }
    sleep 0.1
  done
  echo "node on $port not ready" >&2
  return 1
}

# Starts $2 nodes for run $1 (with Redis when $2 > 1) on a fresh database;
# sets node_pids, node_ports and PROTOKOLL_TOKEN (an admin's).
start_site() {
  local run=$1 count=$2
  pg_db=protokoll_cluster_$$_$RANDOM
  psql -q "$PG_URL/postgres" -c "CREATE DATABASE $pg_db" >/dev/null
  pin_postgres "$SERVER_CPUS"
  pg_pinned=1
  export PROTOKOLL_DATABASE_URL=$PG_URL/$pg_db
  # Migrates the database before any node starts.
  "$protokoll" user create bench-admin --name "Bench admin" --admin >/dev/null 2>&1
  PROTOKOLL_TOKEN=$("$protokoll" token issue bench-admin --name cluster 2>/dev/null | tail -n1)
  export PROTOKOLL_TOKEN
  local redis_args=()
  if [ "$count" -gt 1 ]; then
    start_redis
    redis_args=(--redis-url "redis://127.0.0.1:$redis_port/")
  fi
  local i port
  for i in $(seq 1 "$count"); do
    port=$(free_port)
    # The generator opens thousands of sockets from one address with a
    # handful of accounts: lift the per-user and per-address caps.
    PROTOKOLL_MAX_SOCKETS_PER_USER=1000000 PROTOKOLL_MAX_SOCKETS_PER_ADDRESS=1000000 \
    PROTOKOLL_BIND=127.0.0.1:$port RUST_LOG=warn,protokoll::cluster=info \
      taskset -c "$SERVER_CPUS" "$protokoll" serve "${redis_args[@]}" \
      >"$OUT/$run.node$i.log" 2>&1 &
    node_pids+=("$!")
    node_ports+=("$port")
  done
  unset PROTOKOLL_DATABASE_URL
  for i in "${!node_ports[@]}"; do wait_ready "${node_ports[$i]}" "${node_pids[$i]}"; done
}

# nginx with deploy/nginx/ (only the node list written here, as the
# cluster test does); sets nginx_pid and nginx_port.
start_nginx() {
  local run=$1 dir=$OUT/$run.nginx deploy=$root/deploy/nginx
  mkdir -p "$dir"
  nginx_port=$(free_port)
  local servers=""
  for port in "${node_ports[@]}"; do
    servers+="    server 127.0.0.1:$port max_fails=1 fail_timeout=5s;"$'\n'
  done
  python3 - "$deploy/protokoll-upstream.conf" "$dir/protokoll-upstream.conf" "$servers" <<'PY'
import sys
src, dst, servers = sys.argv[1:]
out, listed = [], False
for line in open(src):
    if line.lstrip().startswith("server "):
        if not listed:
            out.append(servers)
            listed = True
        continue
    out.append(line)
assert listed, "the shipped upstream lists its nodes"
open(dst, "w").write("".join(out))
PY
  local user=""
  [ "$(id -u)" = 0 ] && user="user root root;"
  cat >"$dir/nginx.conf" <<EOF
$user
worker_processes 1;
worker_rlimit_nofile 20000;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  include $deploy/protokoll-common.conf;
  server {
    listen 127.0.0.1:$nginx_port;
    include $deploy/protokoll-locations.conf;
  }
}
EOF
  # protokoll-common.conf includes protokoll-upstream.conf relative to the
  # folder of nginx.conf: this run's, which holds our node list.
  taskset -c "$SERVER_CPUS" "$nginx_bin" -p "$dir" -c "$dir/nginx.conf" -g "daemon off;" \
    >"$dir/stdout.log" 2>&1 &
  nginx_pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$nginx_port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nginx did not listen; see $dir" >&2
  return 1
}

# fanout with compare.sh's parameters; $1 = run name, the rest extra args.
fanout() {
  local run=$1
  shift
  log "$run: fanout $MEETINGS meetings x 3 clients"
  taskset -c "$LOAD_CPUS" "$loadgen" fanout --create-meetings-via "http://127.0.0.1:${node_ports[0]}" \
    --as-agencies --meetings "$MEETINGS" --clients-per-meeting 3 --rate 1 --warmup 5 "$@" \
    >"$OUT/$run.out" 2>"$OUT/$run.err"
  grep '^RESULT ' "$OUT/$run.out" | tail -n1 | cut -c8- >"$OUT/$run.json"
}

urls() {
  local list=() port
  for port in "${node_ports[@]}"; do list+=("ws://127.0.0.1:$port/sync"); done
  (IFS=,; echo "${list[*]}")
}

uptime >"$OUT/uptime.txt"
for run in $RUNS; do
  case $run in
    single)
      start_site single 1
      fanout single --url "$(urls)" --duration "$DURATION" --drain 2 \
        --server-pid "${node_pids[0]}"
      ;;
    spread)
      start_site spread 3
      fanout spread --url "$(urls)" --duration "$DURATION" --drain 2
      ;;
    nginx)
      start_site nginx 3
      start_nginx nginx
      fanout nginx --url "ws://127.0.0.1:$nginx_port/sync" --duration "$DURATION" --drain 2
      for i in "${!node_ports[@]}"; do
        printf 'node%d sockets at the end: %s\n' "$((i + 1))" \
          "$(curl -fsS "http://127.0.0.1:${node_ports[$i]}/metrics" | grep '^protokoll_connections_open ' || true)"
      done >"$OUT/nginx.spread.txt"
      ;;
    outage)
      start_site outage 3
      measured=$((15 + OUTAGE + 20))
      fanout outage --url "$(urls)" --duration "$measured" --drain 5 --timeline &
      gen=$!
      # The measurement starts 5 s (warm-up) after "typing:".
      # (Creating 500 meetings and connecting 1,500 clients takes a while
      # on a busy machine: wait up to 10 minutes.)
      for _ in $(seq 1 6000); do
        grep -q '^typing:' "$OUT/outage.err" 2>/dev/null && break
        kill -0 "$gen" 2>/dev/null || break
        sleep 0.1
      done
      sleep 20
      log "outage: stopping Redis for $OUTAGE s"
      date +%s.%N >"$OUT/outage.redis-down"
      stop_redis
      sleep "$OUTAGE"
      start_redis
      date +%s.%N >"$OUT/outage.redis-up"
      log "outage: Redis is back"
      wait "$gen"
      for i in "${!node_ports[@]}"; do
        curl -fsS "http://127.0.0.1:${node_ports[$i]}/metrics" |
          grep -E '^protokoll_cluster_(catch_ups_total|last_outage_seconds|dropped_total)' |
          sed "s/^/node$((i + 1)) /" || true
      done >"$OUT/outage.metrics.txt"
      ;;
    *) echo "unknown run $run" >&2; exit 1 ;;
  esac
  stop_site
done
uptime >>"$OUT/uptime.txt"

python3 "$here/cluster_table.py" "$OUT" | tee "$OUT/table.md"
log "results in $OUT"
