#!/usr/bin/env bash
# The product's main job on this machine: the fleet (scheduler + workers) syncing demo tenants.
# Brings up Redis and Postgres, builds megzo, applies migrations, seeds demo tenants and runs
# until Ctrl-C. Pass extra flags to `megzo demo`, e.g. `deploy/demo.sh --tenants 50 --workers 4`.
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/services.sh up

export DATABASE_URL=${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/megzo}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export SQLX_OFFLINE=true

cargo build --release --bin megzo
exec ./target/release/megzo --log-format text demo "$@"
