//! Counters and histograms of the HA runtime, updated where things happen.
//!
//! Why a handle and not scrape-time reads: a check result, an action outcome or a
//! refused heartbeat leaves no trace in the replicated state (only the *changes* they
//! cause are proposed), so they must be counted at the moment they happen. The owner
//! loop counts checks when a probe returns ([`crate::worker::owner`]), the action
//! executor counts every executed intent with its outcome
//! ([`crate::worker::action`]), the heartbeat loop counts its beats
//! ([`crate::worker::heartbeat`]). The handle lives in [`crate::worker::Shared`];
//! every field is an `Arc` inside, so the `/metrics` registry holds clones of the
//! same counters. It is also what tests and benchmarks read (no second set of
//! counters for the same events).
//!
//! Every label combination that can occur is created at zero up front (driver kinds
//! included), so that `increase()` and alerts see the first event, not only the
//! second.

use std::fmt::{self, Write as _};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::state::model::DriverKind;

/// Declares a closed label-value enum written in lower case.
macro_rules! label_values {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
                encoder.write_str(self.as_str())
            }
        }
    };
}

label_values!(
    /// What a check asked.
    CheckKind {
        /// The host's health check.
        Health => "health",
        /// A power-state read through fence level 1.
        Power => "power",
        /// An activity round.
        Activity => "activity",
    }
);

label_values!(
    /// What a check answered.
    CheckResult {
        /// Healthy / power read / activity seen.
        Pass => "pass",
        /// Unhealthy / no activity.
        Fail => "fail",
        /// The checker itself failed (never counted against the host).
        Error => "error",
    }
);

label_values!(
    /// Kind of an executed intent.
    ActionKind {
        /// A power cycle.
        Recover => "recover",
        /// A power-off through one fence level.
        Fence => "fence",
    }
);

label_values!(
    /// Outcome of an executed intent.
    ActionResult {
        /// The driver verified the power state (or, after a takeover, found the host
        /// already off).
        Ok => "ok",
        /// The driver failed, or the level cannot be used.
        Failed => "failed",
        /// Not executed (now): lease expired, no leader to commit the begin record,
        /// ownership or intent changed, deadline passed.
        Skipped => "skipped",
        /// Reported as unknown: an earlier executor began the intent (a power cycle
        /// is then read, never repeated).
        Unknown => "unknown",
    }
);

label_values!(
    /// Outcome of one heartbeat this member sent.
    HeartbeatResult {
        /// The leader accepted it: the lease was renewed.
        Accepted => "accepted",
        /// The leader answered no (it lost its quorum, or has not started its duties).
        Refused => "refused",
        /// No leader known, leader unreachable, or links cut.
        Failed => "failed",
    }
);

/// `vigil_checks_total` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CheckLabels {
    /// What was checked.
    pub kind: CheckKind,
    /// Its result.
    pub result: CheckResult,
}

/// Labels of the check latency histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CheckKindLabel {
    /// What was checked.
    pub kind: CheckKind,
}

/// `vigil_actions_total` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ActionLabels {
    /// Recover or fence.
    pub kind: ActionKind,
    /// Driver kind of the level used (`none` when the level could not be built).
    pub driver: &'static str,
    /// Outcome.
    pub result: ActionResult,
}

/// Labels of the action latency histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ActionKindLabel {
    /// Recover or fence.
    pub kind: ActionKind,
}

/// `vigil_heartbeats_total` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HeartbeatLabels {
    /// Outcome.
    pub result: HeartbeatResult,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Check latency buckets (seconds): checks have timeouts of a few hundred ms to a few
/// seconds.
const CHECK_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Action latency buckets (seconds): a verified power-off takes from milliseconds
/// (sim) to minutes (a slow BMC polled until the state settles).
const ACTION_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

fn check_histogram() -> Histogram {
    Histogram::new(CHECK_BUCKETS)
}

fn action_histogram() -> Histogram {
    Histogram::new(ACTION_BUCKETS)
}

/// The runtime's counters (cheap to clone: every metric is shared).
#[derive(Debug, Clone)]
pub struct RuntimeMetrics {
    checks: Family<CheckLabels, Counter>,
    check_duration: Histograms<CheckKindLabel>,
    actions: Family<ActionLabels, Counter>,
    action_duration: Histograms<ActionKindLabel>,
    heartbeats: Family<HeartbeatLabels, Counter>,
    owner_proposals: Counter,
    owner_inputs: Counter,
    leader_commands: Counter,
}

impl Default for RuntimeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RuntimeMetrics {
    /// Every counter at zero, every known label combination present.
    pub fn new() -> Self {
        let m = RuntimeMetrics {
            checks: Family::default(),
            check_duration: Family::new_with_constructor(check_histogram),
            actions: Family::default(),
            action_duration: Family::new_with_constructor(action_histogram),
            heartbeats: Family::default(),
            owner_proposals: Counter::default(),
            owner_inputs: Counter::default(),
            leader_commands: Counter::default(),
        };
        for &kind in CheckKind::ALL {
            for &result in CheckResult::ALL {
                m.checks.get_or_create_owned(&CheckLabels { kind, result });
            }
            m.check_duration
                .get_or_create_owned(&CheckKindLabel { kind });
        }
        for &kind in ActionKind::ALL {
            for driver in DriverKind::ALL {
                for &result in ActionResult::ALL {
                    m.actions.get_or_create_owned(&ActionLabels {
                        kind,
                        driver: driver.name(),
                        result,
                    });
                }
            }
            m.action_duration
                .get_or_create_owned(&ActionKindLabel { kind });
        }
        for &result in HeartbeatResult::ALL {
            m.heartbeats
                .get_or_create_owned(&HeartbeatLabels { result });
        }
        m
    }

    /// Register every metric (clones sharing the same values) in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "vigil_checks",
            "Checks run by this member on the hosts it owns, by kind and result",
            self.checks.clone(),
        );
        registry.register_with_unit(
            "vigil_check_duration",
            "How long checks took, by kind",
            Unit::Seconds,
            self.check_duration.clone(),
        );
        registry.register(
            "vigil_actions",
            "Committed intents (power cycles, fence levels) this member executed, by kind, driver and result",
            self.actions.clone(),
        );
        registry.register_with_unit(
            "vigil_action_duration",
            "How long executed intents took from the ownership check to the verified outcome, by kind",
            Unit::Seconds,
            self.action_duration.clone(),
        );
        registry.register(
            "vigil_heartbeats",
            "Heartbeats this member sent to the leader, by outcome (accepted ones renew its lease)",
            self.heartbeats.clone(),
        );
        registry.register(
            "vigil_owner_proposals",
            "HostInputs commands proposed by the owner loop (each carries many observations)",
            self.owner_proposals.clone(),
        );
        registry.register(
            "vigil_owner_inputs",
            "Host observations and outcomes proposed by the owner loop",
            self.owner_inputs.clone(),
        );
        registry.register(
            "vigil_leader_commands",
            "Liveness, assignment and tick commands committed by this member as leader",
            self.leader_commands.clone(),
        );
    }

    /// A check finished.
    pub fn check(&self, kind: CheckKind, result: CheckResult, took: Duration) {
        self.checks
            .get_or_create(&CheckLabels { kind, result })
            .inc();
        self.check_duration
            .get_or_create(&CheckKindLabel { kind })
            .observe(took.as_secs_f64());
    }

    /// An intent was executed (`took`: `None` when it was skipped).
    pub fn action(
        &self,
        kind: ActionKind,
        driver: &'static str,
        result: ActionResult,
        took: Option<Duration>,
    ) {
        self.actions
            .get_or_create(&ActionLabels {
                kind,
                driver,
                result,
            })
            .inc();
        if let Some(took) = took {
            self.action_duration
                .get_or_create(&ActionKindLabel { kind })
                .observe(took.as_secs_f64());
        }
    }

    /// A heartbeat was answered (or not).
    pub fn heartbeat(&self, result: HeartbeatResult) {
        self.heartbeats
            .get_or_create(&HeartbeatLabels { result })
            .inc();
    }

    /// The owner loop proposed one `HostInputs` command of `inputs` inputs.
    pub fn owner_proposal(&self, inputs: usize) {
        self.owner_proposals.inc();
        self.owner_inputs.inc_by(inputs as u64);
    }

    /// The leader committed one of its commands.
    pub fn leader_command(&self) {
        self.leader_commands.inc();
    }

    /// Checks of `kind` run so far, whatever their result.
    pub fn checks_run(&self, kind: CheckKind) -> u64 {
        CheckResult::ALL
            .iter()
            .map(|&result| {
                self.checks
                    .get_or_create(&CheckLabels { kind, result })
                    .get()
            })
            .sum()
    }

    /// Executed intents that were not skipped: this member reached, or tried to reach,
    /// a BMC for them (a member without a valid lease or ownership skips them all).
    pub fn bmc_actions(&self) -> u64 {
        let mut n = 0;
        for &kind in ActionKind::ALL {
            for driver in DriverKind::ALL
                .map(|d| d.name())
                .into_iter()
                .chain(["none"])
            {
                for result in [ActionResult::Ok, ActionResult::Failed] {
                    if let Some(c) = self.actions.get(&ActionLabels {
                        kind,
                        driver,
                        result,
                    }) {
                        n += c.get();
                    }
                }
            }
        }
        n
    }

    /// Heartbeats sent with this outcome.
    pub fn heartbeats(&self, result: HeartbeatResult) -> u64 {
        self.heartbeats
            .get_or_create(&HeartbeatLabels { result })
            .get()
    }

    /// `HostInputs` commands proposed by the owner loop.
    pub fn owner_proposals(&self) -> u64 {
        self.owner_proposals.get()
    }

    /// Inputs proposed by the owner loop.
    pub fn owner_inputs(&self) -> u64 {
        self.owner_inputs.get()
    }

    /// Commands committed as leader.
    pub fn leader_commands(&self) -> u64 {
        self.leader_commands.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_back_and_skipped_actions_did_not_reach_a_bmc() {
        let m = RuntimeMetrics::new();
        m.check(
            CheckKind::Health,
            CheckResult::Pass,
            Duration::from_millis(3),
        );
        m.check(
            CheckKind::Health,
            CheckResult::Error,
            Duration::from_millis(3),
        );
        m.check(
            CheckKind::Power,
            CheckResult::Pass,
            Duration::from_millis(3),
        );
        assert_eq!(m.checks_run(CheckKind::Health), 2);
        assert_eq!(m.checks_run(CheckKind::Activity), 0);
        m.action(ActionKind::Fence, "sim", ActionResult::Skipped, None);
        assert_eq!(m.bmc_actions(), 0);
        m.action(
            ActionKind::Fence,
            "sim",
            ActionResult::Ok,
            Some(Duration::from_millis(20)),
        );
        m.action(
            ActionKind::Recover,
            "none",
            ActionResult::Failed,
            Some(Duration::ZERO),
        );
        assert_eq!(m.bmc_actions(), 2);
        m.heartbeat(HeartbeatResult::Refused);
        assert_eq!(m.heartbeats(HeartbeatResult::Refused), 1);
        assert_eq!(m.heartbeats(HeartbeatResult::Accepted), 0);
        m.owner_proposal(7);
        assert_eq!((m.owner_proposals(), m.owner_inputs()), (1, 7));
        // Clones share the values (the registry holds clones).
        let c = m.clone();
        c.leader_command();
        assert_eq!(m.leader_commands(), 1);
    }
}
