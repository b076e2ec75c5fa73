//! Four worker processes share one rate-limited external account (the CDON fake, which
//! enforces a sliding-window limit and counts every over-limit answer). Each call passes the
//! fleet-wide GCRA in Redis (`workers::gate::RedisGate`) before it leaves.
//!
//! Target (issue 3): **0 over-limit answers and ≥ 90 % of the allowed rate used.**
//!
//! `cargo bench -p integration-tests --bench ratelimit` (env: `RL_RATE` calls per `RL_PER_MS`,
//! default 20 per 1000 ms; `RL_SECS` default 20; `RL_MARGIN_MS` default 50, the workers'
//! `ratelimits.margin_ms`; `RL_PROCESSES` default 4).

use integration_tests::shared_account_run;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let (rate, per_ms, secs) = (
        env("RL_RATE", 20),
        env("RL_PER_MS", 1000),
        env("RL_SECS", 20),
    );
    let (margin, processes) = (env("RL_MARGIN_MS", 50), env("RL_PROCESSES", 4));
    let run = shared_account_run(
        env!("CARGO_BIN_EXE_rate-client"),
        "bench-ratelimit",
        processes as usize,
        rate as u32,
        per_ms,
        margin,
        secs,
    )
    .await;
    println!(
        "shared account: {processes} processes, API limit {rate}/{per_ms} ms, gate margin {margin} ms, {secs} s"
    );
    println!(
        "  served {} of {:.0} allowed = {:.1} % of the rate; over-limit answers {}; client errors {}{}; wall {:.1} s",
        run.served,
        run.allowed,
        run.utilization() * 100.0,
        run.over_limit,
        run.errors,
        run.first_error
            .as_ref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default(),
        run.elapsed.as_secs_f64()
    );
    let ok = run.over_limit == 0 && run.utilization() >= 0.90;
    println!(
        "  target (0 over-limit, >= 90 % used): {}",
        if ok { "met" } else { "MISSED" }
    );
}
