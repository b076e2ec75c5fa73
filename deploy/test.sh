#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test (unit and integration, against real
# Redis and Postgres, which this script brings up first). Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/services.sh up
./deploy/browser.sh
./deploy/lint.sh

export DATABASE_URL=${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
# Queries are checked against the committed .sqlx data: no database is needed to build.
export SQLX_OFFLINE=true

# Tests isolate themselves in namespaces named t-*; sweep whatever a failed or interrupted test
# left behind in the shared Redis, on any exit.
sweep_test_keys() {
  for pattern in '{t-*' 't-*'; do
    redis-cli -h 127.0.0.1 -p "${REDIS_PORT:-6379}" --scan --pattern "$pattern" \
      | xargs -r -n 500 redis-cli -h 127.0.0.1 -p "${REDIS_PORT:-6379}" unlink >/dev/null || true
  done
}
trap sweep_test_keys EXIT

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
