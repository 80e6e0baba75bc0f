//! The pool FSM (Disabled / Active / Inactive), its circuit breaker and the fence
//! budget, as pure functions of counts, the ledger's timestamps, the policy and `now`.
//!
//! The breaker opens when at least `breaker.min_hosts` hosts and at least
//! `breaker.ratio` of the pool's HA-enabled hosts are failing at once: that is a
//! shared outage (storage, network), not N dead hosts, and fencing a rack because the
//! NFS server rebooted is the worst thing an HA system can do. It closes once the
//! failures have stayed below the threshold for `breaker.cooldown`.

use serde::{Deserialize, Serialize};

use crate::engine::host::Gate;
use crate::engine::policy::{Millis, Policy};
use crate::engine::record::HaState;

/// HA state of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolState {
    /// HA disabled by the operator.
    Disabled,
    /// HA enabled and allowed to act.
    Active,
    /// HA enabled, checks running, but no recovery or fence may start.
    Inactive,
}

impl std::fmt::Display for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PoolState::Disabled => "disabled",
            PoolState::Active => "active",
            PoolState::Inactive => "inactive",
        })
    }
}

/// Replicated status of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStatus {
    /// Current state.
    pub state: PoolState,
    /// Since when.
    pub since: Millis,
    /// Why it is Inactive (empty otherwise).
    pub reason: String,
    /// When the breaker opened (None: closed).
    pub breaker_open_since: Option<Millis>,
    /// While open: since when the failures have been below the threshold.
    pub breaker_clear_since: Option<Millis>,
    /// What tripped it.
    pub breaker_reason: Option<String>,
}

impl PoolStatus {
    /// A new, disabled pool.
    pub fn new(now: Millis) -> Self {
        PoolStatus {
            state: PoolState::Disabled,
            since: now,
            reason: String::new(),
            breaker_open_since: None,
            breaker_clear_since: None,
            breaker_reason: None,
        }
    }
}

/// Host counts of a pool by what matters to the gate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolCounts {
    /// All hosts.
    pub hosts: u32,
    /// Hosts with HA enabled (not Disabled).
    pub enabled: u32,
    /// Available hosts.
    pub available: u32,
    /// Failing hosts (Suspect … FenceFailed, see [`HaState::failing`]).
    pub failing: u32,
}

impl PoolCounts {
    /// Count one host.
    pub fn add(&mut self, s: HaState) {
        self.hosts += 1;
        if s != HaState::Disabled {
            self.enabled += 1;
        }
        if s == HaState::Available {
            self.available += 1;
        }
        if s.failing() {
            self.failing += 1;
        }
    }

    /// Counts of a set of states.
    pub fn of(states: impl IntoIterator<Item = HaState>) -> Self {
        let mut c = PoolCounts::default();
        for s in states {
            c.add(s);
        }
        c
    }
}

/// The fence budget of a pool at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Fences started within the window.
    pub used: u32,
    /// Allowed within the window.
    pub max: u32,
    /// When the oldest counted fence leaves the window (None: nothing counted).
    pub next_free_at: Option<Millis>,
}

impl Budget {
    /// Fences that may still start.
    pub fn left(&self) -> u32 {
        self.max.saturating_sub(self.used)
    }
}

/// Budget from the start times of the pool's fences (any order).
pub fn budget(
    fence_starts: impl IntoIterator<Item = Millis>,
    policy: &Policy,
    now: Millis,
) -> Budget {
    let from = now.saturating_sub(policy.fence_budget_window);
    let mut used = 0;
    let mut oldest: Option<Millis> = None;
    for t in fence_starts {
        if t > from && t <= now {
            used += 1;
            oldest = Some(oldest.map_or(t, |o: Millis| o.min(t)));
        }
    }
    Budget {
        used,
        max: policy.fence_budget,
        next_free_at: oldest.map(|o| o + policy.fence_budget_window),
    }
}

fn tripped(c: &PoolCounts, p: &Policy) -> bool {
    c.failing >= p.breaker_min_hosts
        && u64::from(c.failing) * 1_000_000 >= u64::from(p.breaker_ratio_ppm) * u64::from(c.enabled)
}

/// The pool's next status.
pub fn evaluate(
    prev: &PoolStatus,
    enabled: bool,
    counts: &PoolCounts,
    budget: &Budget,
    p: &Policy,
    now: Millis,
) -> PoolStatus {
    let mut s = prev.clone();
    // Breaker (tracked even while disabled would be pointless: reset it).
    if !enabled {
        s.breaker_open_since = None;
        s.breaker_clear_since = None;
        s.breaker_reason = None;
    } else if tripped(counts, p) {
        if s.breaker_open_since.is_none() {
            s.breaker_open_since = Some(now);
            s.breaker_reason = Some(format!(
                "{}/{} hosts failing at once (threshold {:.0}% and {} hosts)",
                counts.failing,
                counts.enabled,
                p.breaker_ratio_ppm as f64 / 1e4,
                p.breaker_min_hosts
            ));
        }
        s.breaker_clear_since = None;
    } else if s.breaker_open_since.is_some() {
        let clear = *s.breaker_clear_since.get_or_insert(now);
        if now >= clear + p.breaker_cooldown {
            s.breaker_open_since = None;
            s.breaker_clear_since = None;
            s.breaker_reason = None;
        }
    }
    let (state, reason) = if !enabled {
        (PoolState::Disabled, String::new())
    } else if s.breaker_open_since.is_some() {
        let why = s.breaker_reason.clone().unwrap_or_default();
        let tail = match s.breaker_clear_since {
            Some(c) => format!("; closes at {} if it stays clear", c + p.breaker_cooldown),
            None => String::new(),
        };
        (
            PoolState::Inactive,
            format!("circuit breaker open: {why}{tail}"),
        )
    } else if budget.left() == 0
        // PLANTED BUG `gate-ignores-budget` (chaos self-test only, compiled out without
        // the `planted-bugs` feature; see `gate`): a spent budget leaves the pool
        // Active: S3.
        && !crate::planted::active(crate::planted::Bug::GateIgnoresBudget)
    {
        let next = budget
            .next_free_at
            .map(|t| format!("; next fence allowed at {t}"))
            .unwrap_or_default();
        (
            PoolState::Inactive,
            format!(
                "fence budget spent: {}/{} fences in the window{next}",
                budget.used, budget.max
            ),
        )
    } else if counts.available < p.pool_min_available {
        (
            PoolState::Inactive,
            format!(
                "only {} host(s) Available, the pool needs {} to act",
                counts.available, p.pool_min_available
            ),
        )
    } else {
        (PoolState::Active, String::new())
    };
    if state != s.state {
        s.since = now;
    }
    s.state = state;
    s.reason = reason;
    s
}

/// The permission the engine gets for the pool's hosts.
pub fn gate(status: &PoolStatus, budget: &Budget) -> Gate {
    Gate {
        actions: match status.state {
            PoolState::Active => Ok(()),
            PoolState::Disabled => Err("HA is disabled for the pool".into()),
            PoolState::Inactive => Err(format!("pool inactive: {}", status.reason)),
        },
        // PLANTED BUG `gate-ignores-budget` (chaos self-test only): the gate reports
        // budget left even when it is spent, so new fences start past the pool's
        // budget — in the ledger and on the BMCs: S3.
        fence_budget_left: if crate::planted::active(crate::planted::Bug::GateIgnoresBudget) {
            u32::MAX
        } else {
            budget.left()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(enabled: u32, available: u32, failing: u32) -> PoolCounts {
        PoolCounts {
            hosts: enabled,
            enabled,
            available,
            failing,
        }
    }

    #[test]
    fn breaker_trips_and_closes_after_cooldown_of_clear_time() {
        let p = Policy::default(); // ratio 0.3, min 2, cooldown 10 min
        let b = budget([], &p, 0);
        let s0 = evaluate(&PoolStatus::new(0), true, &counts(10, 10, 0), &b, &p, 0);
        assert_eq!(s0.state, PoolState::Active);
        // One failing host of 3 is 33 % but below min_hosts: no trip.
        let s = evaluate(&s0, true, &counts(3, 2, 1), &b, &p, 1);
        assert_eq!(s.state, PoolState::Active);
        let s1 = evaluate(&s0, true, &counts(10, 6, 4), &b, &p, 1000);
        assert_eq!(s1.state, PoolState::Inactive);
        assert!(s1.reason.contains("breaker"), "{}", s1.reason);
        // Healed at 2000: still open during the cooldown, counted from healing.
        let s2 = evaluate(&s1, true, &counts(10, 10, 0), &b, &p, 2000);
        assert_eq!(s2.state, PoolState::Inactive);
        let s3 = evaluate(
            &s2,
            true,
            &counts(10, 10, 0),
            &b,
            &p,
            2000 + p.breaker_cooldown - 1,
        );
        assert_eq!(s3.state, PoolState::Inactive);
        let s4 = evaluate(
            &s3,
            true,
            &counts(10, 10, 0),
            &b,
            &p,
            2000 + p.breaker_cooldown,
        );
        assert_eq!(s4.state, PoolState::Active);
    }

    #[test]
    fn budget_is_a_sliding_window() {
        let p = Policy::default(); // 3 per hour
        let h = p.fence_budget_window;
        let b = budget([10, 20, 30], &p, 40);
        assert_eq!((b.used, b.left(), b.next_free_at), (3, 0, Some(10 + h)));
        let b = budget([10, 20, 30], &p, 10 + h);
        assert_eq!(b.used, 2);
        let s = evaluate(
            &PoolStatus::new(0),
            true,
            &counts(10, 10, 0),
            &budget([1, 2, 3], &p, 5),
            &p,
            5,
        );
        assert_eq!(s.state, PoolState::Inactive);
        assert!(s.reason.contains("budget"), "{}", s.reason);
    }

    #[test]
    fn too_few_available_hosts_make_the_pool_inactive() {
        let p = Policy::default();
        let s = evaluate(
            &PoolStatus::new(0),
            true,
            &counts(2, 1, 1),
            &budget([], &p, 0),
            &p,
            0,
        );
        assert_eq!(s.state, PoolState::Inactive);
        assert!(gate(&s, &budget([], &p, 0)).actions.is_err());
    }
}
