//! `host explain`: what the engine believes about a host, what it is waiting for and
//! when, and whether it would be allowed to act — derived from the record, the policy
//! and the pool gate, like the engine itself (pure).

use serde::{Deserialize, Serialize};

use crate::engine::host::Ctx;
use crate::engine::policy::Millis;
use crate::engine::record::{HaRecord, HaState};

/// The answer to "what is going on with this host?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// Current state.
    pub state: HaState,
    /// Entered at.
    pub since: Millis,
    /// What the engine is waiting for, in one sentence.
    pub waiting_for: String,
    /// When the next thing happens by itself (deadline or schedule), if anything.
    pub next_at: Option<Millis>,
    /// Whether a recovery or fence could start now, and why not.
    pub can_act: String,
    /// Held action, if the engine wanted to act but was not allowed.
    pub blocked: Option<String>,
    /// Raised alarm.
    pub alarm: Option<String>,
}

fn secs(ms: Millis) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms / 1000 * 1000)).to_string()
}

fn due(at: Millis, now: Millis) -> String {
    if at <= now {
        "now (on the next tick)".into()
    } else {
        format!("in {}", secs(at - now))
    }
}

/// Explain `rec` under `ctx` at `now`.
pub fn explain(rec: &HaRecord, ctx: &Ctx<'_>, now: Millis) -> Explanation {
    let p = ctx.policy;
    let (waiting_for, next_at) = match rec.state {
        HaState::Disabled => ("HA to be enabled for the host's pool (`vigil pool enable POOL`)".to_string(), None),
        HaState::Ineligible => (
            format!(
                "the cause to clear: {}",
                rec.ineligible.map(|r| r.to_string()).unwrap_or_else(|| "unknown".into())
            ),
            None,
        ),
        HaState::Initializing => {
            let quiet = if rec.quiet_until > now {
                format!("quiet period ends {} (failed checks ignored until then); ", due(rec.quiet_until, now))
            } else {
                String::new()
            };
            (
                format!("{quiet}a passing health check (→ available); suspect {} without one", due(rec.deadline, now)),
                Some(rec.deadline),
            )
        }
        HaState::Available => (
            format!(
                "health checks every {}; suspect after {} consecutive failures",
                secs(p.health_interval),
                p.health_failures
            ),
            None,
        ),
        HaState::Suspect => (
            format!(
                "activity round {}/{} due {} ({} of {} rounds without activity so far, {} declare it dead); a passing health check ends the suspicion",
                rec.rounds_done + 1,
                p.activity_rounds,
                due(rec.next_activity_at, now),
                rec.rounds_failed,
                rec.rounds_done,
                p.activity_failures_needed()
            ),
            Some(rec.next_activity_at),
        ),
        HaState::Checking => (
            format!(
                "activity round {}/{} in progress; inconclusive {}",
                rec.rounds_done + 1,
                p.activity_rounds,
                due(rec.deadline, now)
            ),
            Some(rec.deadline),
        ),
        HaState::Degraded => (
            format!(
                "a passing health check (→ available); activity re-checked {}; alarm {}",
                due(rec.next_activity_at, now),
                if rec.alarm.is_some() { "raised".to_string() } else { due(rec.deadline, now) }
            ),
            Some(rec.next_activity_at),
        ),
        HaState::Recovering => (
            format!(
                "power cycle {}/{} under intent #{}; times out {}",
                rec.recover_attempts,
                p.recovery_attempts,
                rec.intent.unwrap_or(0),
                due(rec.deadline, now)
            ),
            Some(rec.deadline),
        ),
        HaState::Recovered => (
            format!("a passing health check (→ available); fencing {} otherwise", due(rec.deadline, now)),
            Some(rec.deadline),
        ),
        HaState::Fencing => (
            format!(
                "fence level {}/{} under intent #{}; next level or fence-failed {}",
                rec.fence_level + 1,
                ctx.fence_levels,
                rec.intent.unwrap_or(0),
                due(rec.deadline, now)
            ),
            Some(rec.deadline),
        ),
        HaState::Fenced => (
            "nothing: power is verified off; an operator returns it with `vigil host unfence` (or it is powered on)".into(),
            None,
        ),
        HaState::FenceFailed => (
            "an operator: fix the power drivers and `vigil host retry`, or `vigil host confirm-off` once it is really off".into(),
            None,
        ),
    };
    let can_act = match &ctx.gate.actions {
        Err(why) => format!("no: {why}"),
        Ok(()) if ctx.gate.fence_budget_left == 0 => {
            "recoveries yes, fences no: fence budget spent".into()
        }
        Ok(()) => format!(
            "yes (fence budget left: {}, recovery {})",
            ctx.gate.fence_budget_left,
            if p.recovery_enabled { "on" } else { "off" }
        ),
    };
    Explanation {
        state: rec.state,
        since: rec.since,
        waiting_for,
        next_at: next_at.filter(|t| *t != 0),
        can_act,
        blocked: rec.blocked.clone(),
        alarm: rec.alarm.clone(),
    }
}
