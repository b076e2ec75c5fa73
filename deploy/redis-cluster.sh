#!/usr/bin/env bash
# A local 3-primary Redis Cluster for the tests: three redis-server processes in cluster mode on
# loopback ports (default 7101-7103), joined with `redis-cli --cluster create`. With
# MEGZO_CLUSTER_REPLICAS=1 and six ports, each primary gets a replica (for failover tests). Idempotent and
# safe to call from several processes at once (flock): a cluster already answering with
# cluster_state:ok is left alone. Installs redis-server with apt-get if it is missing.
#
#   deploy/redis-cluster.sh up      start the nodes and create the cluster; prints the URL
#   deploy/redis-cluster.sh url     print the URL the product takes (redis+cluster://…)
#   deploy/redis-cluster.sh down    stop the nodes and remove their files
set -euo pipefail

PORTS=(${MEGZO_CLUSTER_PORTS:-7101 7102 7103})
REPLICAS=${MEGZO_CLUSTER_REPLICAS:-0}
PRIMARIES=$(( ${#PORTS[@]} / (REPLICAS + 1) ))
DIR=${MEGZO_CLUSTER_DIR:-/tmp/megzo-redis-cluster-${PORTS[0]}}

url() {
  local seeds=() p
  for p in "${PORTS[@]}"; do seeds+=("127.0.0.1:$p"); done
  local IFS=,
  echo "redis+cluster://${seeds[*]}"
}

cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }

healthy() {
  local p
  for p in "${PORTS[@]}"; do
    cli "$p" cluster info 2>/dev/null | tr -d '\r' | grep -qx 'cluster_state:ok' || return 1
    [ "$(cli "$p" cluster info | tr -d '\r' | sed -n 's/^cluster_size://p')" = "$PRIMARIES" ] || return 1
    # A replica counts once it has synced with its primary.
    if cli "$p" info replication | tr -d '\r' | grep -qx 'role:slave'; then
      cli "$p" info replication | tr -d '\r' | grep -qx 'master_link_status:up' || return 1
    fi
  done
  [ "$(cli "${PORTS[0]}" cluster nodes | grep -c ' slave ')" = "$(( ${#PORTS[@]} - PRIMARIES ))" ]
}

up() {
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    "$(dirname "$0")/services.sh" up >/dev/null
  fi
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  flock 9
  if healthy; then url; return; fi

  # Whatever half-made cluster is there (a crash, a reboot of /tmp) is started over.
  local p
  for p in "${PORTS[@]}"; do
    cli "$p" shutdown nosave >/dev/null 2>&1 || true
  done
  for p in "${PORTS[@]}"; do
    for _ in $(seq 50); do cli "$p" ping >/dev/null 2>&1 || break; sleep 0.1; done
    rm -rf "${DIR:?}/$p"
    mkdir -p "$DIR/$p"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$p" \
      --cluster-enabled yes --cluster-config-file "$DIR/$p/nodes.conf" \
      --cluster-node-timeout 5000 --save "" --appendonly no \
      --hash-max-listpack-value 256 \
      --dir "$DIR/$p" --logfile "$DIR/$p/redis.log" --pidfile "$DIR/$p/redis.pid" 9>&-
  done
  for p in "${PORTS[@]}"; do
    for _ in $(seq 100); do cli "$p" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  done
  local nodes=()
  for p in "${PORTS[@]}"; do nodes+=("127.0.0.1:$p"); done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$REPLICAS" --cluster-yes >"$DIR/create.log" 2>&1 || {
    cat "$DIR/create.log" >&2
    echo "redis-cli --cluster create failed" >&2
    exit 1
  }
  for _ in $(seq 200); do healthy && break; sleep 0.1; done
  if ! healthy; then
    echo "the Redis Cluster on ports ${PORTS[*]} did not reach cluster_state:ok" >&2
    exit 1
  fi
  url
}

down() {
  local p
  for p in "${PORTS[@]}"; do cli "$p" shutdown nosave >/dev/null 2>&1 || true; done
  rm -rf "$DIR"
}

case "${1:-up}" in
  up) up ;;
  url) url ;;
  down) down ;;
  *) echo "usage: $0 up|url|down" >&2; exit 2 ;;
esac
