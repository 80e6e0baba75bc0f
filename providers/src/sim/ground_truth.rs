//! The ground-truth log: every real power change in the simulated fleet, in order.
//!
//! Drivers report what BMCs *say*; a BMC can lie and a reply can be lost. Chaos
//! checkers therefore judge vigil against this log instead ("at most one effective
//! fence per host failure", "never fence a healthy host"). Only actual transitions
//! are recorded: an off on an already-off host changes nothing and leaves no entry.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::host::Condition;
use crate::power::{PowerAction, PowerState};

/// Why a power change happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    /// The driver action that did it, or `None` for a change made directly on the
    /// fleet (an operator pulling the plug, a chaos step).
    pub action: Option<PowerAction>,
    /// The label of whoever did it: the driver's label (an intent id, say) or the
    /// label given to [`SimFleet::set_power`](super::SimFleet::set_power).
    pub label: String,
}

/// One real power change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PowerChange {
    /// Position in the log: strictly increasing, starting at 1, fleet-wide.
    pub seq: u64,
    /// When it happened (tokio time, so paused-clock tests see virtual time).
    #[serde(skip)]
    pub at: Instant,
    /// Host name.
    pub host: String,
    /// Power state before.
    pub from: PowerState,
    /// Power state after.
    pub to: PowerState,
    /// What did it.
    pub cause: Cause,
    /// The host's condition just before the change: a power-off of a
    /// [`Condition::Running`] host is a fence of a healthy host.
    pub condition: Condition,
}

impl PowerChange {
    /// True for a transition from on to off (a fence, or the first half of a cycle).
    pub fn is_power_off(&self) -> bool {
        self.from == PowerState::On && self.to == PowerState::Off
    }
}

/// The append-only log itself (kept inside the fleet, read through its accessors).
#[derive(Debug, Clone, Default)]
pub struct GroundTruth {
    changes: Vec<PowerChange>,
}

impl GroundTruth {
    /// Append a change, giving it the next sequence number.
    pub(crate) fn record(
        &mut self,
        host: &str,
        from: PowerState,
        to: PowerState,
        cause: Cause,
        condition: Condition,
    ) -> u64 {
        let seq = self.changes.len() as u64 + 1;
        self.changes.push(PowerChange {
            seq,
            at: Instant::now(),
            host: host.to_string(),
            from,
            to,
            cause,
            condition,
        });
        seq
    }

    /// All changes, oldest first.
    pub fn changes(&self) -> &[PowerChange] {
        &self.changes
    }

    /// Changes with a sequence number above `seq`, oldest first (`since(0)` is all).
    pub fn since(&self, seq: u64) -> &[PowerChange] {
        // seq n sits at index n - 1, so everything after seq starts at index seq.
        let start = usize::try_from(seq)
            .unwrap_or(usize::MAX)
            .min(self.changes.len());
        &self.changes[start..]
    }

    /// Sequence number of the last change (0 when empty): a bookmark for [`Self::since`].
    pub fn last_seq(&self) -> u64 {
        self.changes.len() as u64
    }

    /// Number of effective power-offs (on → off transitions) of `host`, whatever
    /// caused them: fences and the first half of cycles alike.
    pub fn power_offs(&self, host: &str) -> usize {
        self.changes
            .iter()
            .filter(|c| c.host == host && c.is_power_off())
            .count()
    }

    /// Changes of one host, oldest first.
    pub fn for_host(&self, host: &str) -> Vec<PowerChange> {
        self.changes
            .iter()
            .filter(|c| c.host == host)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause(label: &str) -> Cause {
        Cause {
            action: Some(PowerAction::Off),
            label: label.to_string(),
        }
    }

    #[test]
    fn sequence_numbers_start_at_one_and_since_is_a_bookmark() {
        let mut log = GroundTruth::default();
        assert_eq!(log.last_seq(), 0);
        let a = log.record(
            "a",
            PowerState::On,
            PowerState::Off,
            cause("x"),
            Condition::Crashed,
        );
        let b = log.record(
            "b",
            PowerState::On,
            PowerState::Off,
            cause("y"),
            Condition::Hung,
        );
        let c = log.record(
            "a",
            PowerState::Off,
            PowerState::On,
            cause("z"),
            Condition::Crashed,
        );
        assert_eq!((a, b, c), (1, 2, 3));
        assert_eq!(log.since(0).len(), 3);
        assert_eq!(log.since(1)[0].seq, 2);
        assert!(log.since(3).is_empty());
        assert!(log.since(99).is_empty());
        assert_eq!(log.power_offs("a"), 1);
        assert_eq!(log.power_offs("b"), 1);
        assert_eq!(log.power_offs("c"), 0);
        assert_eq!(log.for_host("a").len(), 2);
    }
}
