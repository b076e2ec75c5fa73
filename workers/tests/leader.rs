//! Leader election of the scheduler (`workers::leader`): one of several replicas leads, a
//! standby takes over when the leader steps down or its Postgres session dies, and work that
//! ends on its own does not leave a leader doing nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use workers::leader::{lock_key, run_as_leader};

const CHECK: Duration = Duration::from_millis(150);

/// What the replicas' work saw: who leads now, how many led at once at most, and each start.
#[derive(Default)]
struct Board {
    leading: Mutex<Vec<usize>>,
    max_at_once: AtomicUsize,
    starts: Mutex<Vec<usize>>,
}

impl Board {
    fn leaders(&self) -> Vec<usize> {
        self.leading.lock().unwrap().clone()
    }
}

/// Starts replica `id`: its work registers on the board while it leads.
fn replica(
    pool: &PgPool,
    role: &str,
    id: usize,
    board: &Arc<Board>,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let (pool, role, board, stop) = (
        pool.clone(),
        role.to_owned(),
        board.clone(),
        shutdown.clone(),
    );
    let handle = tokio::spawn(async move {
        run_as_leader(&pool, &role, CHECK, stop, move |leading| {
            let board = board.clone();
            async move {
                board.starts.lock().unwrap().push(id);
                let now = {
                    let mut l = board.leading.lock().unwrap();
                    l.push(id);
                    l.len()
                };
                board.max_at_once.fetch_max(now, Ordering::SeqCst);
                leading.cancelled().await;
                board.leading.lock().unwrap().retain(|&r| r != id);
            }
        })
        .await;
    });
    (shutdown, handle)
}

async fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test]
async fn one_of_three_replicas_leads_and_a_standby_takes_over_when_it_steps_down(pool: PgPool) {
    let board = Arc::new(Board::default());
    let role = format!("scheduler:{}", uuid::Uuid::new_v4());
    let replicas: Vec<_> = (0..3).map(|i| replica(&pool, &role, i, &board)).collect();

    let first = wait_for("a leader", Duration::from_secs(10), || {
        board.leaders().first().copied()
    })
    .await;
    // Several checks later, still one leader, and no one else ever started.
    tokio::time::sleep(CHECK * 6).await;
    assert_eq!(board.leaders(), vec![first]);
    assert_eq!(*board.starts.lock().unwrap(), vec![first]);

    // The leader shuts down: it stops its work and unlocks, then a standby leads.
    let stepped_down = Instant::now();
    replicas[first].0.cancel();
    let second = wait_for("a new leader", Duration::from_secs(10), || {
        board.leaders().first().copied().filter(|&l| l != first)
    })
    .await;
    assert!(
        stepped_down.elapsed() < CHECK * 10,
        "a standby took over in {:?}",
        stepped_down.elapsed()
    );
    tokio::time::timeout(Duration::from_secs(5), async {
        let (_, handle) = &replicas[first];
        while !handle.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the stepped-down replica returns");

    tokio::time::sleep(CHECK * 4).await;
    assert_eq!(board.leaders(), vec![second]);
    assert_eq!(
        board.max_at_once.load(Ordering::SeqCst),
        1,
        "never two leaders at once on a graceful step-down"
    );
    for (stop, handle) in replicas {
        stop.cancel();
        handle.await.unwrap();
    }
    assert!(board.leaders().is_empty(), "every replica stopped leading");
}

#[sqlx::test]
async fn a_leader_whose_session_dies_stops_and_a_standby_takes_over(pool: PgPool) {
    let board = Arc::new(Board::default());
    let role = format!("scheduler:{}", uuid::Uuid::new_v4());
    let replicas: Vec<_> = (0..2).map(|i| replica(&pool, &role, i, &board)).collect();
    let first = wait_for("a leader", Duration::from_secs(10), || {
        board.leaders().first().copied()
    })
    .await;

    // Kill the session holding the advisory lock, as a failover or an admin would. A bigint key
    // shows in pg_locks as classid (high 32 bits) and objid (low 32 bits), objsubid 1.
    let bits = lock_key(&role) as u64;
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_locks
         WHERE locktype = 'advisory' AND granted AND objsubid = 1
           AND classid::bigint = $1 AND objid::bigint = $2
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .bind((bits >> 32) as i64)
    .bind((bits & 0xffff_ffff) as i64)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        killed,
        vec![true],
        "exactly the leader's session is terminated"
    );

    // The old leader notices at its next check and stops its work; the standby leads.
    wait_for("the old leader to stop", Duration::from_secs(5), || {
        (!board.leaders().contains(&first)).then_some(())
    })
    .await;
    let second = wait_for("the standby to lead", Duration::from_secs(10), || {
        board.leaders().first().copied().filter(|&l| l != first)
    })
    .await;
    tokio::time::sleep(CHECK * 4).await;
    assert_eq!(board.leaders(), vec![second], "one leader again");
    for (stop, handle) in replicas {
        stop.cancel();
        handle.await.unwrap();
    }
}

#[sqlx::test]
async fn work_that_ends_on_its_own_is_started_again(pool: PgPool) {
    let role = format!("scheduler:{}", uuid::Uuid::new_v4());
    let starts = Arc::new(AtomicUsize::new(0));
    let shutdown = CancellationToken::new();
    let (s, stop) = (starts.clone(), shutdown.clone());
    let handle = tokio::spawn(async move {
        run_as_leader(&pool, &role, CHECK, stop, move |_leading| {
            let s = s.clone();
            async move {
                // A panic in the first run, a clean end in the second.
                if s.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("the heartbeat loop crashed");
                }
            }
        })
        .await;
    });
    wait_for(
        "the work to be started three times",
        Duration::from_secs(10),
        || (starts.load(Ordering::SeqCst) >= 3).then_some(()),
    )
    .await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("the replica returns on shutdown")
        .unwrap();
}
