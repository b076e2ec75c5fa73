//! Fleet-wide rate limits and semaphores against the real Redis (`REDIS_URL`, default the local
//! one). Every test uses its own namespace; nothing needs cleaning up because every limiter key
//! expires on its own (a GCRA key once the account is idle, a semaphore with its last lease).
//! No assertion is about speed: windows are measured on the Redis server's clock, and
//! utilisation is a count of admissions against the count the limit allows in the elapsed time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use workers::queue::service::JobError;
use workers::queue::{Queue, QueueConfig};
use workers::ratelimit::{
    Decision, DistributedSemaphore, GcraLimiter, Limit, LimitError, LimitsConfig, Permit,
    RateLimit, limits_for, limits_for_with,
};

const SEC: u64 = 1_000_000;

fn config() -> QueueConfig {
    QueueConfig {
        namespace: format!("t-rl-{}", uuid::Uuid::new_v4().simple()),
        ..QueueConfig::default()
    }
}

/// A new connection to the test Redis: one per simulated process.
async fn connect(cfg: &QueueConfig) -> Queue {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    Queue::connect(&url, cfg.clone())
        .await
        .expect("Redis must be running for these tests (deploy/services.sh up)")
}

/// The most admissions in any closed window `[t, t + w]` of sorted times (µs).
fn max_in_window(times: &[u64], w: u64) -> usize {
    let (mut best, mut lo) = (0, 0);
    for hi in 0..times.len() {
        while times[hi] - times[lo] > w {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// `tasks` tasks, each on its own connection, hammer `account` for `run`: each one retries
/// after the hint (at most 10 ms). Returns the sorted Redis times of the admissions and the
/// latest Redis time any task saw.
async fn hammer(
    cfg: &QueueConfig,
    account: &'static str,
    limit: RateLimit,
    tasks: usize,
    run: Duration,
) -> (Vec<u64>, u64) {
    let deadline = Instant::now() + run;
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let limiter = GcraLimiter::new(&connect(cfg).await, "smartbill");
        handles.push(tokio::spawn(async move {
            let (mut admitted, mut last) = (Vec::new(), 0);
            while Instant::now() < deadline {
                let (d, now) = limiter.decide(account, "rest", limit, None).await.unwrap();
                last = now;
                match d {
                    Decision::Allowed => admitted.push(now),
                    Decision::RetryAfter(after) => {
                        assert!(after > Duration::ZERO);
                        tokio::time::sleep(after.min(Duration::from_millis(10))).await;
                    }
                }
            }
            (admitted, last)
        }));
    }
    let (mut all, mut last) = (Vec::new(), 0);
    for h in handles {
        let (a, l) = h.await.unwrap();
        all.extend(a);
        last = last.max(l);
    }
    all.sort_unstable();
    (all, last)
}

/// Admissions a limit allows from a first admission at `t0` until `end`: the burst, then one
/// per emission interval.
fn allowed_in(limit: RateLimit, t0: u64, end: u64) -> usize {
    limit.burst as usize + ((end - t0) / limit.emission_interval().as_micros() as u64) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gcra_never_exceeds_the_window_across_processes_and_accounts_are_independent() {
    let cfg = config();
    let limit = RateLimit::new(10, Duration::from_secs(1));
    let run = Duration::from_millis(3_500);
    let (a, b) = tokio::join!(
        hammer(&cfg, "acct-a", limit, 8, run),
        hammer(&cfg, "acct-b", limit, 2, run)
    );
    for (name, (times, last)) in [("acct-a", a), ("acct-b", b)] {
        assert!(!times.is_empty(), "{name}: nothing admitted");
        let worst = max_in_window(&times, SEC);
        assert!(worst <= 10, "{name}: {worst} admissions in one 1 s window");
        let max = allowed_in(limit, times[0], last);
        eprintln!(
            "{name}: {} admitted of {max} allowed; worst 1 s window {worst}",
            times.len()
        );
        assert!(
            times.len() * 10 >= max * 9,
            "{name}: admitted {} of the {max} the limit allows in that time",
            times.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gcra_with_a_full_burst_still_never_exceeds_the_window() {
    let cfg = config();
    let limit = RateLimit::new(10, Duration::from_secs(1)).with_burst(10);
    let (times, last) = hammer(&cfg, "acct-burst", limit, 8, Duration::from_millis(3_500)).await;
    let worst = max_in_window(&times, SEC);
    assert!(worst <= 10, "{worst} admissions in one 1 s window");
    // The burst is really there: the first window is full.
    assert_eq!(max_in_window(&times[..10.min(times.len())], SEC), 10);
    let max = allowed_in(limit, times[0], last);
    eprintln!(
        "burst: {} admitted of {max} allowed; worst 1 s window {worst}",
        times.len()
    );
    assert!(
        times.len() * 10 >= max * 9,
        "admitted {} of {max}",
        times.len()
    );
}

/// Replays long schedules at SmartBill's contract parameters on the real script, with the
/// Redis clock replaced by simulated time: greedy callers (retrying exactly at the hint, several
/// at one instant) and random ones, over 3 simulated minutes.
#[tokio::test]
async fn smartbill_window_holds_at_contract_parameters() {
    let q = connect(&config()).await;
    let limiter = GcraLimiter::new(&q, "smartbill");
    let ten_s = Duration::from_secs(10);
    let mut cases = vec![
        ("defaults", limits_rate("smartbill"), 11 * SEC, true),
        ("burst 1", RateLimit::new(30, ten_s), 10 * SEC, true),
        (
            "burst 5",
            RateLimit::new(30, ten_s).with_burst(5),
            10 * SEC,
            true,
        ),
        (
            "burst 30",
            RateLimit::new(30, ten_s).with_burst(30),
            10 * SEC,
            true,
        ),
    ];
    cases.push((
        "random burst 3",
        RateLimit::new(30, ten_s).with_burst(3),
        10 * SEC,
        false,
    ));
    for (i, (name, limit, window, greedy)) in cases.into_iter().enumerate() {
        let account = format!("sb-{i}");
        let times = replay(&limiter, &account, limit, greedy).await;
        let in_10s = max_in_window(&times, 10 * SEC);
        assert!(in_10s <= 30, "{name}: {in_10s} calls in one 10 s window");
        if greedy {
            // Tight: greedy callers fill the (margin-widened) window exactly.
            assert_eq!(max_in_window(&times, window), 30, "{name}");
        }
    }
    // The textbook mapping (T = per/count, tau = T*(burst-1)) for 30/10 s with a burst of 30
    // has the same T and tau as a window limit of 59: a blocked SmartBill account.
    let textbook = RateLimit::new(59, ten_s).with_burst(30);
    assert_eq!(
        textbook.emission_interval().as_micros() as u64,
        10 * SEC / 30 + 1
    );
    let times = replay(&limiter, "sb-textbook", textbook, true).await;
    assert_eq!(max_in_window(&times, 10 * SEC), 59);
}

fn limits_rate(system: &str) -> RateLimit {
    match limits_for(system).first() {
        Some((_, Limit::Rate(r))) => *r,
        other => panic!("{system}: no rate limit first: {other:?}"),
    }
}

async fn replay(limiter: &GcraLimiter, account: &str, limit: RateLimit, greedy: bool) -> Vec<u64> {
    let mut t = 1_700_000_000 * SEC;
    let end = t + 180 * SEC;
    let mut admitted = Vec::new();
    while t < end {
        match limiter
            .decide(account, "rest", limit, Some(t))
            .await
            .unwrap()
            .0
        {
            Decision::Allowed => {
                admitted.push(t);
                if !greedy {
                    t += rand::random_range(0..SEC / 2);
                }
            }
            Decision::RetryAfter(d) => {
                let d = d.as_micros() as u64;
                t += if greedy {
                    d
                } else {
                    rand::random_range(1..=d + SEC / 10)
                };
            }
        }
    }
    admitted
}

#[tokio::test]
async fn retry_after_hint_is_positive_at_most_one_interval_and_enough() {
    let q = connect(&config()).await;
    let limiter = GcraLimiter::new(&q, "lexoffice");
    // Long periods, so a slow machine cannot refill the burst while the test runs.
    for (account, limit) in [
        ("slow-b1", RateLimit::new(2, Duration::from_secs(60))),
        (
            "slow-b3",
            RateLimit::new(3, Duration::from_secs(60)).with_burst(3),
        ),
    ] {
        for _ in 0..limit.burst {
            assert_eq!(
                limiter.try_acquire(account, "api", limit).await.unwrap(),
                Decision::Allowed
            );
        }
        match limiter.try_acquire(account, "api", limit).await.unwrap() {
            Decision::RetryAfter(d) => {
                assert!(
                    d > Duration::ZERO && d <= limit.emission_interval(),
                    "{d:?}"
                )
            }
            Decision::Allowed => panic!("{account}: allowed beyond the burst"),
        }
    }
    // Sleeping the hint is enough for a lone caller.
    let limit = RateLimit::new(10, Duration::from_secs(1));
    let mut hint = None;
    for _ in 0..100 {
        if let Decision::RetryAfter(d) = limiter.try_acquire("fast", "api", limit).await.unwrap() {
            hint = Some(d);
            break;
        }
    }
    let hint = hint.expect("100 calls at 10/s never refused");
    tokio::time::sleep(hint + Duration::from_millis(2)).await;
    assert_eq!(
        limiter.try_acquire("fast", "api", limit).await.unwrap(),
        Decision::Allowed
    );
    // acquire() waits out a refusal on its own.
    limiter.acquire("fast", "api", limit).await.unwrap();
    limiter.acquire("fast", "api", limit).await.unwrap();
}

#[tokio::test]
async fn acquire_gives_up_naming_account_and_api_and_penalize_pauses_everyone() {
    let q = connect(&config()).await;
    let limiter = GcraLimiter::new(&q, "smartbill").with_max_wait(Duration::from_millis(100));
    let limit = RateLimit::new(1, Duration::from_secs(60));
    limiter.acquire("acct-x", "rest", limit).await.unwrap();
    let err = limiter.acquire("acct-x", "rest", limit).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("acct-x") && msg.contains("rest") && msg.contains("smartbill"),
        "{msg}"
    );
    match JobError::from(err) {
        JobError::Snooze(d) => assert!(d > Duration::ZERO && d <= Duration::from_secs(60)),
        other => panic!("expected a snooze, got {other:?}"),
    }
    // Another account is not affected.
    limiter.acquire("acct-y", "rest", limit).await.unwrap();

    // A 403 seen by one worker pauses the account for every worker; a shorter pause later does
    // not shorten it.
    let lim = RateLimit::new(30, Duration::from_secs(10));
    let other_process = GcraLimiter::new(&connect(q.config()).await, "smartbill");
    limiter
        .penalize("acct-z", "rest", lim, Duration::from_secs(600))
        .await
        .unwrap();
    limiter
        .penalize("acct-z", "rest", lim, Duration::from_secs(1))
        .await
        .unwrap();
    match other_process
        .try_acquire("acct-z", "rest", lim)
        .await
        .unwrap()
    {
        Decision::RetryAfter(d) => assert!(d > Duration::from_secs(590), "{d:?}"),
        Decision::Allowed => panic!("allowed during a penalty"),
    }
}

#[tokio::test]
async fn identifiers_that_would_break_the_key_are_refused() {
    let q = connect(&config()).await;
    let limiter = GcraLimiter::new(&q, "cdon");
    let sem = DistributedSemaphore::new(&q, "celro");
    let limit = RateLimit::new(5, Duration::from_secs(1));
    for (account, api) in [("a}b", "api"), ("", "api"), ("a b", "api"), ("acct", "x{y")] {
        assert!(
            limiter.try_acquire(account, api, limit).await.is_err(),
            "{account:?} {api:?}"
        );
        assert!(
            sem.try_acquire(account, api, 1).await.is_err(),
            "{account:?} {api:?}"
        );
    }
    let empty = RateLimit::new(0, Duration::from_secs(1));
    assert!(limiter.try_acquire("acct", "api", empty).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn semaphore_never_exceeds_its_limit_and_everyone_runs() {
    let cfg = config();
    let mut sems = Vec::new();
    for _ in 0..6 {
        sems.push(
            DistributedSemaphore::new(&connect(&cfg).await, "celro")
                .with_lease(Duration::from_secs(5))
                .with_max_wait(Duration::from_secs(120)),
        );
    }
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..30 {
        let sem = sems[i % sems.len()].clone();
        let (current, peak, done) = (current.clone(), peak.clone(), done.clone());
        handles.push(tokio::spawn(async move {
            let permit = sem.acquire("merchant-1", "connections", 3).await.unwrap();
            let now = current.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(30)).await;
            current.fetch_sub(1, Ordering::SeqCst);
            assert!(permit.release().await.unwrap(), "permit lost while held");
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    // Meanwhile another account has its own slots.
    let other = sems[0]
        .try_acquire("merchant-2", "connections", 3)
        .await
        .unwrap();
    assert!(other.is_some(), "another account's slots were taken");
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), 30);
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 3, "{peak} holders at once");
    assert_eq!(peak, 3, "the three slots were never used at once");
    assert_eq!(
        sems[0].holders("merchant-1", "connections").await.unwrap(),
        0
    );
}

/// One try for a slot of account `m`'s connections.
async fn take(sem: &DistributedSemaphore, limit: u32) -> Option<Permit> {
    sem.try_acquire("m", "connections", limit).await.unwrap()
}

#[tokio::test]
async fn a_crashed_holder_frees_its_slot_after_the_lease_and_a_stale_token_frees_nothing() {
    let cfg = config();
    let sem = DistributedSemaphore::new(&connect(&cfg).await, "celro")
        .with_lease(Duration::from_secs(1))
        .with_max_wait(Duration::from_secs(20));
    // A live holder keeps renewing (and so keeps the key alive) beside the one that crashes.
    let alive = take(&sem, 2).await.unwrap();
    let stale_token = take(&sem, 2).await.unwrap().leak_for_test();
    // Still held right after the crash.
    assert!(take(&sem, 2).await.is_none());
    // Free once its lease runs out (acquire waits for it).
    let next = sem.acquire("m", "connections", 2).await.unwrap();
    // The crashed holder wakes up and releases: nothing happens to anyone else's slot.
    let freed = sem.release_token_for_test("m", "connections", &stale_token);
    assert!(!freed.await.unwrap());
    assert_eq!(sem.holders("m", "connections").await.unwrap(), 2);
    assert!(take(&sem, 2).await.is_none());
    assert!(!next.lost() && !alive.lost());
    assert!(next.release().await.unwrap());
    assert!(take(&sem, 2).await.is_some());
    assert!(alive.release().await.unwrap());
}

#[tokio::test]
async fn a_held_permit_is_renewed_past_its_lease_and_a_dropped_one_is_released() {
    let cfg = config();
    let sem = DistributedSemaphore::new(&connect(&cfg).await, "celro")
        .with_lease(Duration::from_secs(1))
        .with_max_wait(Duration::from_millis(200));
    let held = sem
        .try_acquire("m", "connections", 1)
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(!held.lost());
    assert!(
        sem.try_acquire("m", "connections", 1)
            .await
            .unwrap()
            .is_none()
    );
    let err = sem.acquire("m", "connections", 1).await.unwrap_err();
    assert!(matches!(err, LimitError::WaitExceeded { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("\"m\"") && msg.contains("connections") && msg.contains("celro"),
        "{msg}"
    );

    // Dropped without release: freed by the drop, long before its (60 s) lease.
    let sem = sem.with_lease(Duration::from_secs(60));
    drop(held);
    let mut freed = None;
    for _ in 0..250 {
        freed = sem.try_acquire("m", "connections", 1).await.unwrap();
        if freed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let permit = freed.expect("a dropped permit was not released");
    drop(permit);
    let deadline = Instant::now() + Duration::from_secs(5);
    while sem.holders("m", "connections").await.unwrap() != 0 {
        assert!(
            Instant::now() < deadline,
            "a dropped permit was not released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn contract_limits_are_the_documented_ones() {
    let sb = limits_rate("smartbill");
    assert_eq!(sb.count, 30);
    assert!(sb.per >= Duration::from_secs(10) && sb.burst == 1);
    assert_eq!(
        limits_for("lexoffice"),
        vec![(
            "public-api",
            Limit::Rate(RateLimit::new(2, Duration::from_millis(1_050)))
        )]
    );
    let celro = limits_for("celro");
    assert!(celro.contains(&("connections", Limit::Concurrency(10))));
    assert!(celro.iter().any(|(_, l)| matches!(l, Limit::Rate(_))));
    assert!(!limits_for("cdon").is_empty() && !limits_for("dhl").is_empty());
    assert!(limits_for("noop").is_empty() && limits_for("nope").is_empty());
    // Adjustable: no margin and a lower count for a shared SmartBill account.
    let c = LimitsConfig {
        smartbill_calls_per_10s: 20,
        smartbill_margin_ms: 0,
        ..LimitsConfig::default()
    };
    assert_eq!(
        limits_for_with("smartbill", &c),
        vec![(
            "rest",
            Limit::Rate(RateLimit::new(20, Duration::from_secs(10)))
        )]
    );
    // T = per / (count - burst + 1), tau = T * (burst - 1).
    let r = RateLimit::new(30, Duration::from_secs(10)).with_burst(5);
    assert_eq!(
        r.emission_interval(),
        Duration::from_micros(10 * SEC / 26 + 1)
    );
    assert_eq!(r.tolerance(), r.emission_interval() * 4);
}
