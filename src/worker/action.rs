//! Executing one committed intent (a power cycle or one fence level) on its BMC.
//!
//! The protocol (DESIGN.md §5, points 3–5; docs/ARCHITECTURE.md "Ownership and
//! safety"), in order:
//! 1. the intent is committed (apply checked epoch, breaker and budget) — the owner
//!    loop only hands over intents it read from the replicated state, and fixes the
//!    job's deadline on its monotonic clock when it first sees the intent: never
//!    later than the intent's own time budget ([`Intent::timeout`]) from then, nor
//!    than the intent's deadline;
//! 2. this member's lease is valid;
//! 3. a [`Command::BeginAction`] is **committed** before the first BMC call. Apply
//!    accepts it only if this member owns the host at the job's epoch, the intent is
//!    the host's current one and in flight, and no other executor's power cycle may
//!    still be running (the host's cycle guard). A committed write is linearizable,
//!    so a member whose ownership moved cannot act, and the replicated state always
//!    knows who may have acted;
//! 4. if someone else had begun the intent (another member, or an earlier process
//!    of this one), its outcome is unknown: a fence reads the power first (already
//!    off → done; power-off is idempotent otherwise); a power cycle is **never
//!    repeated** — the power is read and reported as [`ActionResult::Unknown`], and the
//!    engine waits for the host to come back;
//! 5. the driver acts before the job's deadline and verifies the power state; a
//!    cycle never powers on a host it did not power off itself;
//! 6. the outcome goes back to the owner loop, which proposes it.
//!
//! A job that could not get as far as the BMC for a passing reason (lease lapsed, no
//! leader, the begin not committed in time) is [`Attempt::Retry`]: the owner tries
//! again while the intent is in flight. Only a result that reached the driver (or a
//! terminal refusal) ends the job.
//!
//! Every executed intent is counted (`vigil_actions_total` by kind, driver and
//! result; `vigil_action_duration_seconds` for those that reached the BMC).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use vigil_providers::{DriverError, PowerAction};

use super::probes::Probes;
use super::Shared;
use crate::engine::input::ActionResult;
use crate::engine::record::PowerState;
use crate::metrics::runtime::{self, ActionKind};
use crate::state::model::{Begin, Intent, IntentKind};
use crate::state::{Command, Response};

/// Marks apply's refusal of a begin while another executor's cycle may still run
/// (the only refusal worth retrying).
pub(crate) const GUARD_REFUSAL: &str = "may still be running until";

/// What to do.
#[derive(Debug, Clone)]
pub struct Job {
    /// Host.
    pub host: String,
    /// Epoch this member owns the host at.
    pub epoch: u64,
    /// The committed intent.
    pub intent: Intent,
    /// When this member must be done, on its monotonic clock (fixed when the owner
    /// first saw the intent).
    pub deadline: Instant,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Did not reach the BMC for a passing reason: try again while in flight.
    Retry(String),
    /// Must not act on this intent, ever (ownership moved, intent over or expired).
    Stop(String),
    /// Reached the driver (or failed terminally): propose this.
    Outcome(ActionResult),
}

fn to_engine(p: vigil_providers::PowerState) -> PowerState {
    match p {
        vigil_providers::PowerState::On => PowerState::On,
        vigil_providers::PowerState::Off => PowerState::Off,
    }
}

/// Run the job.
pub async fn execute(sh: &Shared, probes: Arc<Probes>, job: Job) -> Attempt {
    let (kind, driver) = match &job.intent.kind {
        IntentKind::Recover { .. } => (
            ActionKind::Recover,
            probes.driver(0).map_or("none", |d| d.kind()),
        ),
        IntentKind::Fence { driver, .. } => (ActionKind::Fence, driver.name()),
    };
    let started = Instant::now();
    let outcome = act(sh, probes, &job).await;
    let (result, took) = match &outcome {
        Attempt::Retry(why) | Attempt::Stop(why) => {
            tracing::info!(host = %job.host, intent = job.intent.id, reason = %why, retry = matches!(outcome, Attempt::Retry(_)), "not acting");
            (runtime::ActionResult::Skipped, None)
        }
        Attempt::Outcome(ActionResult::Done { .. }) => {
            (runtime::ActionResult::Ok, Some(started.elapsed()))
        }
        Attempt::Outcome(ActionResult::Failed { .. }) => {
            (runtime::ActionResult::Failed, Some(started.elapsed()))
        }
        Attempt::Outcome(ActionResult::Unknown { .. }) => (runtime::ActionResult::Unknown, None),
    };
    sh.metrics.action(kind, driver, result, took);
    outcome
}

/// How long an executor may take for `intent` when it first may act at wall-clock
/// `now` (ms): the intent's own time budget, fixed when it was created — a policy
/// changed during an incident cannot lengthen an old executor's window beyond what
/// a new owner's wait allows for — and never past the intent's deadline.
pub fn job_budget(intent: &Intent, now: crate::engine::policy::Millis) -> Duration {
    Duration::from_millis(intent.deadline.saturating_sub(now).min(intent.timeout))
}

/// Commit the begin record; `Ok(earlier executors)` when this member may act.
async fn begin(sh: &Shared, job: &Job) -> Result<Vec<Begin>, Attempt> {
    if sh.faults.take_begin_failure() {
        return Err(Attempt::Retry(
            "begin record not committed: injected failure".into(),
        ));
    }
    let cmd = Command::BeginAction {
        host: job.host.clone(),
        epoch: job.epoch,
        intent: job.intent.id,
        incarnation: sh.incarnation,
        stamp: sh.stamp(),
    };
    match tokio::time::timeout_at(job.deadline, sh.member.write(cmd)).await {
        Ok(Ok(Response::Begun { earlier, .. })) => Ok(earlier),
        Ok(Ok(Response::Rejected { reason })) if reason.contains(GUARD_REFUSAL) => {
            Err(Attempt::Retry(reason))
        }
        Ok(Ok(Response::Rejected { reason })) => Err(Attempt::Stop(reason)),
        Ok(Ok(other)) => Err(Attempt::Stop(format!("unexpected answer {other:?}"))),
        // Not committed, or not known to be: a retry re-proposes the same record
        // (idempotent for this process).
        Ok(Err(e)) => Err(Attempt::Retry(format!("begin record not committed: {e}"))),
        Err(_) => Err(Attempt::Retry(
            "begin record not committed before the deadline".into(),
        )),
    }
}

async fn act(sh: &Shared, probes: Arc<Probes>, job: &Job) -> Attempt {
    let me = sh.member.id();
    if Instant::now() >= job.deadline {
        return Attempt::Stop("the intent's time budget is spent".into());
    }
    // PLANTED BUG `skip-lease-check` (chaos self-test only, compiled out without the
    // `planted-bugs` feature): a member whose lease lapsed keeps acting on its last
    // view. It cannot commit a begin record any more (no quorum), so it acts without
    // one — a cut-off owner touching a BMC whose host the majority may have taken over:
    // checkers S5 (BMC touched without a begin), S1 (a second fence/cycle), S2.
    let cut_off = !sh.lease_valid();
    let skip_lease = cut_off && crate::planted::active(crate::planted::Bug::SkipLeaseCheck);
    if cut_off && !skip_lease {
        return Attempt::Retry("this member's lease is not valid".into());
    }
    let (level, action) = match &job.intent.kind {
        IntentKind::Recover { .. } => (0, PowerAction::Cycle),
        IntentKind::Fence { level, .. } => (*level as usize, PowerAction::Off),
    };
    let driver = match probes.driver(level) {
        Ok(d) => d,
        Err(e) => {
            return Attempt::Outcome(ActionResult::Failed {
                reason: format!("fence level {}: {e}", level + 1),
            })
        }
    };
    let earlier = if skip_lease {
        Vec::new() // planted bug `skip-lease-check`: no begin record, no one earlier
    } else {
        match begin(sh, job).await {
            Ok(earlier) => earlier,
            Err(a) => return a,
        }
    };
    let deadline = job.deadline;
    if let Some(prev) = earlier.last() {
        let who = format!(
            "begun earlier by member {} at epoch {}{}",
            prev.by,
            prev.epoch,
            if prev.by == me {
                " (a previous process of this member)"
            } else {
                ""
            }
        );
        let reading = driver.status(deadline).await;
        match (action, reading) {
            (PowerAction::Off, Ok(r)) if r.state == vigil_providers::PowerState::Off => {
                return Attempt::Outcome(ActionResult::Done {
                    power_after: PowerState::Off,
                    detail: format!(
                        "{}: already off when member {me} read it ({who}): {}",
                        driver.kind(),
                        r.detail
                    ),
                });
            }
            // PLANTED BUG `repeat-taken-over-cycle` (chaos self-test only): the cycle
            // begun by an earlier executor is not read but executed again (falls
            // through to `driver.act` below): two cycles for one intent, S1 / S1b.
            (PowerAction::Cycle, r)
                if !crate::planted::active(crate::planted::Bug::RepeatTakenOverCycle) =>
            {
                let (power, now) = match r {
                    Ok(r) => (to_engine(r.state), r.detail),
                    Err(e) => (PowerState::Unknown, e.to_string()),
                };
                return Attempt::Outcome(ActionResult::Unknown {
                    power,
                    detail: format!(
                        "power cycle {who}; not repeated; {} reads {power} ({now})",
                        driver.kind()
                    ),
                });
            }
            _ => {}
        }
    }
    tracing::info!(host = %job.host, intent = job.intent.id, %action, driver = driver.kind(), level, "acting on the BMC");
    Attempt::Outcome(match driver.act(action, deadline).await {
        Ok(r) => ActionResult::Done {
            power_after: to_engine(r.verified),
            detail: format!(
                "{} {}: {}{} in {} ms",
                driver.kind(),
                r.action,
                r.detail,
                if r.already { " (already)" } else { "" },
                r.took.as_millis()
            ),
        },
        // A cycle that ran out of time may have done anything up to its last step.
        Err(e @ DriverError::Timeout { .. }) if action == PowerAction::Cycle => {
            ActionResult::Unknown {
                power: PowerState::Unknown,
                detail: format!("{} cycle: {e}", driver.kind()),
            }
        }
        Err(e) => ActionResult::Failed {
            reason: format!("{} {action}: {e}", driver.kind()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::model::IntentState;

    fn intent(deadline: u64, timeout: u64) -> Intent {
        Intent {
            id: 1,
            host: "h".into(),
            pool: "p".into(),
            epoch: 1,
            owner: Some(1),
            kind: IntentKind::Recover { attempt: 1 },
            created_at: 0,
            deadline,
            timeout,
            begun: vec![],
            extensions: 0,
            state: IntentState::InFlight,
        }
    }

    #[test]
    fn a_job_never_outlives_the_intents_budget_or_deadline() {
        // A takeover pushed the deadline far out: the budget still caps the job.
        assert_eq!(
            job_budget(&intent(1_000_000, 5_000), 10_000),
            Duration::from_secs(5)
        );
        // Close to the deadline: what is left of it.
        assert_eq!(
            job_budget(&intent(12_000, 5_000), 10_000),
            Duration::from_secs(2)
        );
        // Past it (a skewed clock): nothing.
        assert_eq!(job_budget(&intent(9_000, 5_000), 10_000), Duration::ZERO);
    }
}
