//! The replicated HA record of one host: its HA state, its power state and the
//! bookkeeping of the current state (rounds, attempts, level, in-flight intent,
//! deadline). Plain data, identical on every member.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::engine::policy::Millis;

/// HA state of a host (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HaState {
    /// HA off for this host or its pool.
    Disabled,
    /// Maintenance, no fence level, or power off/unknown: not protected.
    Ineligible,
    /// HA being (re)established; quiet period after power-on.
    Initializing,
    /// Last health checks pass.
    Available,
    /// Health checks failing; activity rounds scheduled with backoff.
    Suspect,
    /// An activity round is running.
    Checking,
    /// Alive (activity seen) but not manageable; never fenced for this alone.
    Degraded,
    /// A power cycle is running under a committed intent.
    Recovering,
    /// Waiting for the host to come back after a power cycle.
    Recovered,
    /// A power-off is running under a committed intent, escalating through levels.
    Fencing,
    /// Power verified off: its workloads may be restarted elsewhere.
    Fenced,
    /// Every fence level failed: an operator must act.
    FenceFailed,
}

impl HaState {
    /// Every state, in table order.
    pub const ALL: [HaState; 12] = [
        HaState::Disabled,
        HaState::Ineligible,
        HaState::Initializing,
        HaState::Available,
        HaState::Suspect,
        HaState::Checking,
        HaState::Degraded,
        HaState::Recovering,
        HaState::Recovered,
        HaState::Fencing,
        HaState::Fenced,
        HaState::FenceFailed,
    ];

    /// States that must end by themselves (they carry a deadline).
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            HaState::Initializing
                | HaState::Suspect
                | HaState::Checking
                | HaState::Recovering
                | HaState::Recovered
                | HaState::Fencing
        )
    }

    /// States that count as "failing" for the pool's circuit breaker.
    pub fn failing(self) -> bool {
        matches!(
            self,
            HaState::Suspect
                | HaState::Checking
                | HaState::Degraded
                | HaState::Recovering
                | HaState::Recovered
                | HaState::Fencing
                | HaState::FenceFailed
        )
    }

    /// Lower-case name used in the CLI, the API and scenario files.
    pub fn name(self) -> &'static str {
        match self {
            HaState::Disabled => "disabled",
            HaState::Ineligible => "ineligible",
            HaState::Initializing => "initializing",
            HaState::Available => "available",
            HaState::Suspect => "suspect",
            HaState::Checking => "checking",
            HaState::Degraded => "degraded",
            HaState::Recovering => "recovering",
            HaState::Recovered => "recovered",
            HaState::Fencing => "fencing",
            HaState::Fenced => "fenced",
            HaState::FenceFailed => "fence-failed",
        }
    }

    /// Parse a name as printed by [`HaState::name`] (case-insensitive).
    pub fn parse(s: &str) -> Option<HaState> {
        let s = s.to_ascii_lowercase().replace('_', "-");
        HaState::ALL
            .into_iter()
            .find(|st| st.name() == s || (s == "fencefailed" && *st == HaState::FenceFailed))
    }
}

impl fmt::Display for HaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Power state as last read from the BMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerState {
    /// Powered on.
    On,
    /// Powered off.
    Off,
    /// BMC unreachable or not answering.
    Unknown,
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PowerState::On => "on",
            PowerState::Off => "off",
            PowerState::Unknown => "unknown",
        })
    }
}

/// Why a host is Ineligible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IneligibleReason {
    /// Operator maintenance.
    Maintenance,
    /// No power driver configured: vigil could never fence it.
    NoFenceLevels,
    /// The BMC does not answer.
    PowerUnknown,
    /// The host is powered off.
    PoweredOff,
}

impl fmt::Display for IneligibleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IneligibleReason::Maintenance => "in maintenance",
            IneligibleReason::NoFenceLevels => "no power driver (fence level) configured",
            IneligibleReason::PowerUnknown => "BMC unreachable (power state unknown)",
            IneligibleReason::PoweredOff => "powered off",
        })
    }
}

/// The replicated HA record of one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaRecord {
    /// Current HA state.
    pub state: HaState,
    /// When the current state was entered.
    pub since: Millis,
    /// Last known power state.
    pub power: PowerState,
    /// Set while Ineligible.
    pub ineligible: Option<IneligibleReason>,
    /// Failed health checks before this time are ignored (0: none).
    pub quiet_until: Millis,
    /// Activity rounds done in this suspicion.
    pub rounds_done: u32,
    /// Of which without any activity.
    pub rounds_failed: u32,
    /// When the next activity round is due (0: none).
    pub next_activity_at: Millis,
    /// Power cycles tried in this incident.
    pub recover_attempts: u32,
    /// Current fence level (index into the host's drivers).
    pub fence_level: u32,
    /// Intent in flight (Recovering / Fencing).
    pub intent: Option<u64>,
    /// When the current in-flight step times out (0: none).
    pub deadline: Millis,
    /// Why the engine wants to act but may not (breaker, budget, pool inactive).
    pub blocked: Option<String>,
    /// While `blocked`: when the hold started. A held host re-checks the gate with a
    /// backoff that grows with the time held (capped by the activity max interval),
    /// so that a long hold costs neither Raft entries nor events per round.
    pub held_since: Millis,
    /// Raised alarm that needs an operator (FenceFailed, degraded too long…).
    pub alarm: Option<String>,
}

impl HaRecord {
    /// A new host: Disabled until its pool enables HA; power not yet read.
    pub fn new(now: Millis) -> Self {
        HaRecord {
            state: HaState::Disabled,
            since: now,
            power: PowerState::Unknown,
            ineligible: None,
            quiet_until: 0,
            rounds_done: 0,
            rounds_failed: 0,
            next_activity_at: 0,
            recover_attempts: 0,
            fence_level: 0,
            intent: None,
            deadline: 0,
            blocked: None,
            held_since: 0,
            alarm: None,
        }
    }
}
