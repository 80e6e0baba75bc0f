//! Executing one committed intent (a power cycle or one fence level) on its BMC.
//!
//! The protocol (DESIGN.md §5, points 3–5), in order:
//! 1. the intent is committed (apply checked epoch, breaker and budget) — the owner
//!    loop only hands over intents it read from the replicated state;
//! 2. this member's lease is valid;
//! 3. a **linearizable** read confirms that this member still owns the host at the
//!    epoch it acts for and that the intent is still in flight (a member whose local
//!    state lags must not act on an ownership that already moved);
//! 4. if the intent was started by another owner (the host was reassigned while it
//!    was in flight), the real power state is read first: a fence whose host is
//!    already off is reported done without acting; a power cycle is never repeated
//!    blindly (it is not idempotent) — it is reported failed so the engine decides;
//! 5. the driver acts with the intent's deadline and verifies the power state;
//! 6. the outcome goes back to the owner loop, which proposes it.
//!
//! Every executed intent is counted (`vigil_actions_total` by kind, driver and
//! result; `vigil_action_duration_seconds` for those that reached the BMC).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use vigil_providers::PowerAction;

use super::probes::Probes;
use super::Shared;
use crate::engine::input::ActionResult;
use crate::engine::record::PowerState;
use crate::metrics::runtime::{self, ActionKind};
use crate::state::model::{Intent, IntentKind, IntentState};

/// What to do.
#[derive(Debug, Clone)]
pub struct Job {
    /// Host.
    pub host: String,
    /// Epoch this member owns the host at.
    pub epoch: u64,
    /// The committed intent.
    pub intent: Intent,
}

fn to_engine(p: vigil_providers::PowerState) -> PowerState {
    match p {
        vigil_providers::PowerState::On => PowerState::On,
        vigil_providers::PowerState::Off => PowerState::Off,
    }
}

/// Run the job; `None` when this member must not act (lost ownership or lease, intent
/// over or expired): the engine's deadline takes care of the intent then.
pub async fn execute(sh: &Shared, probes: Arc<Probes>, job: Job) -> Option<ActionResult> {
    let (kind, driver) = match &job.intent.kind {
        IntentKind::Recover { .. } => (
            ActionKind::Recover,
            probes.driver(0).map_or("none", |d| d.kind()),
        ),
        IntentKind::Fence { driver, .. } => (ActionKind::Fence, driver.name()),
    };
    let started = Instant::now();
    let outcome = act(sh, probes, job).await;
    let (result, took) = match &outcome {
        None => (runtime::ActionResult::Skipped, None),
        Some(ActionResult::Done { .. }) => (runtime::ActionResult::Ok, Some(started.elapsed())),
        Some(ActionResult::Failed { .. }) => {
            (runtime::ActionResult::Failed, Some(started.elapsed()))
        }
    };
    sh.metrics.action(kind, driver, result, took);
    outcome
}

async fn act(sh: &Shared, probes: Arc<Probes>, job: Job) -> Option<ActionResult> {
    let me = sh.member.id();
    if !sh.lease_valid() {
        tracing::warn!(host = %job.host, intent = job.intent.id, "not acting: lease expired");
        return None;
    }
    let (host, epoch, id) = (job.host.clone(), job.epoch, job.intent.id);
    let still_ours = sh
        .member
        .read(move |s| {
            s.hosts
                .get(&host)
                .is_some_and(|h| h.owner == Some(me) && h.epoch == epoch && h.ha.intent == Some(id))
                && s.intents
                    .get(&id)
                    .is_some_and(|i| i.state == IntentState::InFlight)
        })
        .await;
    match still_ours {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(host = %job.host, intent = id, "not acting: ownership or intent changed");
            return None;
        }
        Err(e) => {
            tracing::warn!(host = %job.host, intent = id, error = %e, "not acting: cannot confirm ownership");
            return None;
        }
    }
    let left = job
        .intent
        .deadline
        .saturating_sub(crate::api::settings::now_ms());
    if left == 0 {
        return None;
    }
    let deadline = Instant::now() + Duration::from_millis(left);
    let (level, action) = match &job.intent.kind {
        IntentKind::Recover { .. } => (0, PowerAction::Cycle),
        IntentKind::Fence { level, .. } => (*level as usize, PowerAction::Off),
    };
    let driver = match probes.driver(level) {
        Ok(d) => d,
        Err(e) => {
            return Some(ActionResult::Failed {
                reason: format!("fence level {}: {e}", level + 1),
            })
        }
    };
    let taken_over = job.intent.owner != Some(me) || job.intent.epoch != job.epoch;
    if taken_over {
        let reading = driver.status(deadline).await;
        match (action, reading) {
            (PowerAction::Off, Ok(r)) if r.state == vigil_providers::PowerState::Off => {
                return Some(ActionResult::Done {
                    power_after: PowerState::Off,
                    detail: format!(
                        "{}: already off when the new owner (member {me}) read it: {}",
                        driver.kind(),
                        r.detail
                    ),
                });
            }
            (PowerAction::Cycle, r) => {
                let now = match r {
                    Ok(r) => r.state.to_string(),
                    Err(e) => format!("unknown ({e})"),
                };
                return Some(ActionResult::Failed {
                    reason: format!(
                        "the power cycle's owner changed while it ran (power now {now}); not repeating it blindly"
                    ),
                });
            }
            _ => {}
        }
    }
    tracing::info!(host = %job.host, intent = id, %action, driver = driver.kind(), level, "acting on the BMC");
    Some(match driver.act(action, deadline).await {
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
        Err(e) => ActionResult::Failed {
            reason: format!("{} {action}: {e}", driver.kind()),
        },
    })
}
