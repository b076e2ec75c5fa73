#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test (unit and integration, against real
# Redis and Postgres, which this script brings up first). Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/services.sh up
# A 3-primary Redis Cluster on 127.0.0.1:7101-7103, for the cluster tests (test-only: its data
# is flushed after the run). The failover test starts one with replicas on 7111-7116 itself.
./deploy/redis-cluster.sh up >/dev/null
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
  # The test clusters: 3 primaries (7101-7103), and 3 primaries with replicas (7111-7116).
  for port in 7101 7102 7103 7111 7112 7113 7114 7115 7116; do
    redis-cli -h 127.0.0.1 -p "$port" flushall >/dev/null 2>&1 || true
  done
}
trap sweep_test_keys EXIT

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The queue's core suites, run a second time unchanged against the Redis Cluster (the first run
# of everything used the single Redis; tests/tests/redis_cluster.rs checks the cluster itself).
CLUSTER_SUITES=(queue_semantics queue_smoke crash_recovery order_lock run_now heartbeat
  shared_account ratelimit gate wakeups flows_cycle)
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
  # Selected from the workspace build just made (a -p selection would unify features
  # differently and rebuild the crates).
  filter=$(printf 'binary(=%s) | ' "${CLUSTER_SUITES[@]}")
  REDIS_URL=$(./deploy/redis-cluster.sh url) cargo nextest run --workspace --no-fail-fast \
    -E "${filter% | }"
else
  cargo test --workspace --no-fail-fast
  REDIS_URL=$(./deploy/redis-cluster.sh url) cargo test -p integration-tests -p workers \
    --no-fail-fast $(printf -- '--test %s ' "${CLUSTER_SUITES[@]}")
fi
