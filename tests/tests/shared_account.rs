//! Four separate worker processes calling one external account never exceed its limit: the
//! fake API counts every over-limit answer, and there must be none. (How much of the rate is
//! used is a benchmark figure: `cargo bench -p integration-tests --bench ratelimit`.)

use integration_tests::{SharedSystem, shared_account_run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_sharing_one_account_never_exceed_its_limit() {
    // A generous margin: this test asserts the guarantee, not the utilization, on a busy CI box.
    let run = shared_account_run(
        env!("CARGO_BIN_EXE_rate-client"),
        SharedSystem::Cdon,
        "shared-account",
        4,
        10,
        1000,
        250,
        4,
    )
    .await;
    assert_eq!(run.over_limit, 0, "{run:?}");
    assert_eq!(run.errors, 0, "{run:?}");
    assert!(run.served >= 10, "the processes made calls: {run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_on_one_smartbill_account_never_trip_its_block() {
    let run = shared_account_run(
        env!("CARGO_BIN_EXE_rate-client"),
        SharedSystem::SmartBill,
        "shared-smartbill",
        4,
        30,
        10_000,
        1_000,
        12,
    )
    .await;
    assert_eq!(run.over_limit, 0, "no block entered: {run:?}");
    assert_eq!(run.errors, 0, "{run:?}");
    assert!(run.served > 30, "more than one window was used: {run:?}");
}
