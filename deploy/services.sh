#!/usr/bin/env bash
# Brings up what MEGZO needs on loopback: Redis >= 7 on 127.0.0.1:6379 and PostgreSQL >= 15 on
# 127.0.0.1:5432. A service already answering is left alone; an installed but stopped one is
# started; a missing one is installed with apt-get (Debian). Idempotent.
#
#   deploy/services.sh up      start (and install) both
#   deploy/services.sh status  say what answers
set -euo pipefail

REDIS_PORT=${REDIS_PORT:-6379}
PG_PORT=${PG_PORT:-5432}
PG_PASSWORD=${PG_PASSWORD:-postgres}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root for: $*" >&2; return 1; fi
}

apt_install() {
  echo "installing $* with apt-get" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

redis_up() {
  if command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
    :
  else
    command -v redis-server >/dev/null || apt_install redis-server
    # Debian's package may have started its own instance; if not, start one without persistence
    # of its own (the queue's durability in production comes from the deployment's AOF config).
    if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
      mkdir -p /tmp/megzo-redis
      # hash-max-listpack-value 256 keeps a job record compact (440 B instead of 800 B).
      redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
        --appendonly no --hash-max-listpack-value 256 \
        --dir /tmp/megzo-redis --logfile /tmp/megzo-redis/redis.log
    fi
    for _ in $(seq 50); do
      redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
      sleep 0.1
    done
  fi
  local v
  v=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info server | sed -n 's/^redis_version:\([0-9]*\).*/\1/p' | tr -d '\r')
  if [ "${v:-0}" -lt 7 ]; then
    echo "Redis on 127.0.0.1:$REDIS_PORT is version $v; MEGZO needs Redis >= 7" >&2
    exit 1
  fi
  echo "redis: up on 127.0.0.1:$REDIS_PORT (version $v)"
}

pg_up() {
  if ! command -v pg_ctlcluster >/dev/null && ! command -v pg_isready >/dev/null; then
    apt_install postgresql
  fi
  if ! pg_isready -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null; then
    command -v pg_ctlcluster >/dev/null || apt_install postgresql
    local ver
    ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$ver" ]; then
      apt_install postgresql
      ver=$(ls /etc/postgresql | sort -V | tail -n 1)
    fi
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || as_root pg_ctlcluster "$ver" main start
    for _ in $(seq 100); do
      pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break
      sleep 0.1
    done
  fi
  local major
  major=$(psql_admin -tAc 'SHOW server_version_num' | cut -c1-2)
  if [ "${major:-0}" -lt 15 ]; then
    echo "PostgreSQL on 127.0.0.1:$PG_PORT is version $major; MEGZO needs >= 15" >&2
    exit 1
  fi
  # A known password, so the same DATABASE_URL works whether the cluster trusts loopback or
  # asks for a password (a fresh Debian install does).
  psql_admin -qc "ALTER USER postgres PASSWORD '$PG_PASSWORD'" >/dev/null
  psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = 'megzo'" | grep -q 1 \
    || psql_admin -qc "CREATE DATABASE megzo" >/dev/null
  echo "postgres: up on 127.0.0.1:$PG_PORT (major $major), database megzo"
}

# Runs psql as the postgres superuser: over TCP if that works (trust or password), else over
# the local socket as the postgres OS user (peer auth on a fresh install).
psql_admin() {
  if PGPASSWORD="$PG_PASSWORD" psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c 'select 1' >/dev/null 2>&1; then
    PGPASSWORD="$PG_PASSWORD" psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres "$@"
  elif [ "$(id -u)" -eq 0 ]; then
    su postgres -c "psql -p $PG_PORT -d postgres $(printf '%q ' "$@")"
  else
    sudo -u postgres psql -p "$PG_PORT" -d postgres "$@"
  fi
}

case "${1:-up}" in
  up) redis_up; pg_up ;;
  status)
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping || true
    pg_isready -h 127.0.0.1 -p "$PG_PORT" || true ;;
  *) echo "usage: $0 [up|status]" >&2; exit 2 ;;
esac
