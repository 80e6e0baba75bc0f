//! What the engine reacts to: observations (health, activity, power), outcomes of
//! actions, the passage of time, and operator/configuration changes.

use serde::{Deserialize, Serialize};

use crate::engine::record::PowerState;

/// One aggregated health observation. The owner keeps the raw results in memory and
/// sends the counts, so the replicated engine needs no per-check history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthObs {
    /// Did this check pass?
    pub pass: bool,
    /// Consecutive failures including this one (0 when it passed).
    pub consecutive_failures: u32,
    /// Failures among the last `window_len` checks.
    pub window_failures: u32,
    /// Checks in the window.
    pub window_len: u32,
    /// What the checker saw (status code, error text…).
    pub detail: String,
}

/// Result of one activity round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activity {
    /// The host is doing work (heartbeat moved, power draw…).
    Active,
    /// No sign of work.
    Inactive,
    /// The checker itself failed: says nothing about the host.
    Error,
}

/// Outcome of a recovery or fence attempt, reported by the owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionResult {
    /// The BMC did it; `power_after` is what was verified afterwards.
    Done {
        /// Power state read back after the action.
        power_after: PowerState,
        /// What the driver did and saw (BMC answer, reset type, time taken).
        detail: String,
    },
    /// The attempt failed.
    Failed {
        /// Why.
        reason: String,
    },
    /// Whether the action happened is not known: its executor changed while it ran
    /// (the owner died, restarted or lost the host mid-action). `power` is what the
    /// BMC says now (Unknown if it could not be read). For a power cycle this is
    /// never a reason to fence: the engine waits for the host to come back.
    Unknown {
        /// Power state read now.
        power: PowerState,
        /// What was seen.
        detail: String,
    },
}

/// Operator and configuration inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Admin {
    /// HA enabled for the host (its pool was enabled).
    Enable,
    /// HA disabled.
    Disable,
    /// Configuration changed (maintenance flag, fence levels): re-check eligibility.
    Reevaluate,
    /// Retry fencing a FenceFailed host.
    Retry,
    /// The operator confirms the host is powered off (e.g. unplugged).
    ConfirmOff,
    /// The operator returns a Fenced/FenceFailed host to service.
    Unfence,
}

/// Everything the engine reacts to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// A health observation.
    Health(HealthObs),
    /// An activity round result.
    Activity {
        /// What was seen.
        result: Activity,
        /// Details.
        detail: String,
    },
    /// Power state read from the BMC.
    Power {
        /// The state read.
        state: PowerState,
        /// Details.
        detail: String,
    },
    /// Outcome of the intent `intent`.
    Outcome {
        /// Intent id.
        intent: u64,
        /// What happened.
        result: ActionResult,
    },
    /// Time passed: deadlines and schedules are checked.
    Tick,
    /// Operator or configuration change.
    Admin(Admin),
}

impl Input {
    /// Short kind name for events and scenario files.
    pub fn kind(&self) -> &'static str {
        match self {
            Input::Health(_) => "health",
            Input::Activity { .. } => "activity",
            Input::Power { .. } => "power",
            Input::Outcome { .. } => "outcome",
            Input::Tick => "tick",
            Input::Admin(_) => "admin",
        }
    }
}
