//! The job state machine. Redis scripts move jobs between states; this enum names the states with
//! the strings those scripts write, and [`JobState::can_move_to`] is the table the scripts follow
//! (and the tests check them against).
//!
//! ```text
//! enqueue ─► scheduled ──(due)──► ready ──(fetch)──► running ──(ok)──► succeeded ──(ttl)──► gone
//!   │                              ▲  ▲                │  │  │
//!   └──────────────────────────────┘  │                │  │  └─(permanent, or attempts spent)─► dead
//!                                     │   (lost lease, │  └─(retryable, snooze)─► retrying ─(due)─► ready
//!                                     └── shutdown) ───┘
//! dead ──(replay)──► a new job, linked to the dead one
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Enqueued to run later.
    Scheduled,
    /// Due, waiting for a worker.
    Ready,
    /// Leased by a worker; the lease must be renewed or the job is rescued.
    Running,
    /// Failed (or snoozed), waiting for its next attempt.
    Retrying,
    /// Done; the record expires after the configured retention.
    Succeeded,
    /// Out of attempts or permanently failed; kept with its history until replayed.
    Dead,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Scheduled,
        JobState::Ready,
        JobState::Running,
        JobState::Retrying,
        JobState::Succeeded,
        JobState::Dead,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Ready => "ready",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
        }
    }

    /// Whether the queue may move a job from `self` to `next`.
    pub const fn can_move_to(self, next: JobState) -> bool {
        use JobState::*;
        matches!(
            (self, next),
            (Scheduled, Ready)
                | (Ready, Running)
                | (Running, Succeeded)
                | (Running, Retrying)
                | (Running, Ready)
                | (Running, Dead)
                | (Retrying, Ready)
        )
    }

    pub const fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Dead)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("unknown job state {s:?}; expected one of: scheduled, ready, running, retrying, succeeded, dead")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_have_no_way_out() {
        for s in JobState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for n in JobState::ALL {
                assert!(!s.can_move_to(n), "{s} -> {n}");
            }
        }
    }

    #[test]
    fn only_running_jobs_finish() {
        for s in JobState::ALL {
            let finishes = s.can_move_to(JobState::Succeeded) || s.can_move_to(JobState::Dead);
            assert_eq!(finishes, s == JobState::Running, "{s}");
        }
        assert!(
            "paused"
                .parse::<JobState>()
                .unwrap_err()
                .contains("retrying")
        );
    }
}
