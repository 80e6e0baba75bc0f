//! [`SimFleet`]: the shared state of the simulation, and the knobs that change it.
//!
//! One fleet is shared (by cheap clones) between every simulated driver and check
//! and the test or chaos harness steering it. The state sits behind a std
//! [`Mutex`]: every operation takes it briefly and never across an `.await`, so
//! drivers that sleep (slow BMCs, action latency) never block each other.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::checks::{SimActivityCheck, SimHealthCheck};
use super::driver::SimPowerDriver;
use super::fault::BmcFault;
use super::ground_truth::{Cause, GroundTruth, PowerChange};
use super::host::{Condition, HostSnapshot, HostState};
use crate::power::PowerState;

/// Misuse of the fleet (a harness bug, or a dev-mode config naming a missing host).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// No host by that name.
    #[error("sim: no host named {0:?}")]
    UnknownHost(String),
    /// A host by that name exists already.
    #[error("sim: host {0:?} exists already")]
    DuplicateHost(String),
}

#[derive(Debug, Default)]
struct Inner {
    hosts: BTreeMap<String, HostState>,
    truth: GroundTruth,
    action_latency: Duration,
}

/// An in-memory simulated fleet: hosts by name, their BMCs, and the ground-truth
/// log of power changes. Clones share the same fleet.
#[derive(Debug, Clone, Default)]
pub struct SimFleet {
    inner: Arc<Mutex<Inner>>,
}

impl SimFleet {
    /// An empty fleet with no action latency.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock (a failed assertion in a test task) leaves
        // the state consistent: every update below is a plain field write.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_host<R>(&self, name: &str, f: impl FnOnce(&mut HostState) -> R) -> Result<R, SimError> {
        let mut inner = self.lock();
        let host = inner
            .hosts
            .get_mut(name)
            .ok_or_else(|| SimError::UnknownHost(name.to_string()))?;
        Ok(f(host))
    }

    /// Add a host: powered on, running, working, with a well-behaved BMC.
    pub fn add_host(&self, name: impl Into<String>) -> Result<(), SimError> {
        let name = name.into();
        let mut inner = self.lock();
        if inner.hosts.contains_key(&name) {
            return Err(SimError::DuplicateHost(name));
        }
        inner.hosts.insert(name, HostState::new());
        Ok(())
    }

    /// Host names, sorted.
    pub fn hosts(&self) -> Vec<String> {
        self.lock().hosts.keys().cloned().collect()
    }

    /// The true state of a host.
    pub fn snapshot(&self, name: &str) -> Result<HostSnapshot, SimError> {
        self.with_host(name, |h| h.snapshot(name))
    }

    /// The host dies (kernel panic, hardware fault) with its power still on. Its BMC
    /// stays reachable unless its fault mode is [`BmcFault::DiesWithHost`].
    pub fn crash(&self, name: &str) -> Result<(), SimError> {
        self.with_host(name, |h| h.condition = Condition::Crashed)
    }

    /// The OS hangs: power on, BMC answering, but no health answers and no work.
    pub fn hang(&self, name: &str) -> Result<(), SimError> {
        self.with_host(name, |h| h.condition = Condition::Hung)
    }

    /// The host keeps running and working but health checks can no longer reach it.
    pub fn isolate(&self, name: &str) -> Result<(), SimError> {
        self.with_host(name, |h| h.condition = Condition::Isolated)
    }

    /// The OS is back to [`Condition::Running`] (repaired, or the partition ended).
    /// Power is left as it is: a powered-off host stays off.
    pub fn heal(&self, name: &str) -> Result<(), SimError> {
        self.with_host(name, |h| h.condition = Condition::Running)
    }

    /// Whether the host does work while running (false: alive but idle, so
    /// activity checks see nothing).
    pub fn set_working(&self, name: &str, working: bool) -> Result<(), SimError> {
        self.with_host(name, |h| h.working = working)
    }

    /// Set the BMC's fault mode.
    pub fn set_fault(&self, name: &str, fault: BmcFault) -> Result<(), SimError> {
        self.with_host(name, |h| h.fault = fault)
    }

    /// Make the health checker itself fail for this host ([`Health::Error`]).
    ///
    /// [`Health::Error`]: crate::check::Health::Error
    pub fn set_health_check_error(&self, name: &str, error: bool) -> Result<(), SimError> {
        self.with_host(name, |h| h.health_check_error = error)
    }

    /// Make the activity checker itself fail for this host ([`ActivityResult::Error`]).
    ///
    /// [`ActivityResult::Error`]: crate::check::ActivityResult::Error
    pub fn set_activity_check_error(&self, name: &str, error: bool) -> Result<(), SimError> {
        self.with_host(name, |h| h.activity_check_error = error)
    }

    /// Whether powering the host on (by an on or a cycle) brings a hung or crashed OS
    /// back to running. True by default: a reboot usually fixes a crash; set false
    /// to simulate a host that is broken for good.
    pub fn set_reboot_heals(&self, name: &str, heals: bool) -> Result<(), SimError> {
        self.with_host(name, |h| h.reboot_heals = heals)
    }

    /// Time each power transition takes, fleet-wide (default zero). Counted inside
    /// the caller's deadline, like a real BMC's.
    pub fn set_action_latency(&self, latency: Duration) {
        self.lock().action_latency = latency;
    }

    pub(crate) fn action_latency(&self) -> Duration {
        self.lock().action_latency
    }

    /// Change the true power state directly, bypassing any BMC (an operator pulling
    /// the plug, a chaos step). Recorded in ground truth with no action and this
    /// label. Returns whether anything changed.
    pub fn set_power(&self, name: &str, to: PowerState, label: &str) -> Result<bool, SimError> {
        self.apply_power(
            name,
            to,
            Cause {
                action: None,
                label: label.to_string(),
            },
        )
    }

    /// Set the true power state to `to` if it differs, atomically, and record the
    /// change. Powering on boots the OS: a hung or crashed host comes back running
    /// when it is set to heal on reboot. Returns whether anything changed.
    pub(crate) fn apply_power(
        &self,
        name: &str,
        to: PowerState,
        cause: Cause,
    ) -> Result<bool, SimError> {
        let mut inner = self.lock();
        let Inner { hosts, truth, .. } = &mut *inner;
        let host = hosts
            .get_mut(name)
            .ok_or_else(|| SimError::UnknownHost(name.to_string()))?;
        if host.power == to {
            return Ok(false);
        }
        truth.record(name, host.power, to, cause, host.condition);
        host.power = to;
        if to == PowerState::On
            && host.reboot_heals
            && matches!(host.condition, Condition::Hung | Condition::Crashed)
        {
            host.condition = Condition::Running;
        }
        Ok(true)
    }

    /// Every real power change so far, oldest first.
    pub fn ground_truth(&self) -> Vec<PowerChange> {
        self.lock().truth.changes().to_vec()
    }

    /// Real power changes after sequence number `seq` (see [`Self::last_seq`]).
    pub fn ground_truth_since(&self, seq: u64) -> Vec<PowerChange> {
        self.lock().truth.since(seq).to_vec()
    }

    /// Sequence number of the latest change (0 if none): a bookmark to take before
    /// a scenario step and pass to [`Self::ground_truth_since`] after it.
    pub fn last_seq(&self) -> u64 {
        self.lock().truth.last_seq()
    }

    /// Effective power-offs (on → off transitions) of `host` so far.
    pub fn power_offs(&self, host: &str) -> usize {
        self.lock().truth.power_offs(host)
    }

    /// Effective power-offs per host, for every host (zeros included).
    pub fn power_offs_by_host(&self) -> BTreeMap<String, usize> {
        let inner = self.lock();
        inner
            .hosts
            .keys()
            .map(|h| (h.clone(), inner.truth.power_offs(h)))
            .collect()
    }

    /// A power driver for `host`'s simulated BMC (the host need not exist yet;
    /// calls on a missing host fail permanently).
    pub fn driver(&self, host: &str) -> SimPowerDriver {
        SimPowerDriver::new(self.clone(), host)
    }

    /// A health check of `host`.
    pub fn health_check(&self, host: &str) -> SimHealthCheck {
        SimHealthCheck::new(self.clone(), host)
    }

    /// An activity check of `host`.
    pub fn activity_check(&self, host: &str) -> SimActivityCheck {
        SimActivityCheck::new(self.clone(), host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_start_on_and_running_and_names_are_unique() {
        let fleet = SimFleet::new();
        fleet.add_host("b").unwrap();
        fleet.add_host("a").unwrap();
        assert_eq!(
            fleet.add_host("a"),
            Err(SimError::DuplicateHost("a".into()))
        );
        assert_eq!(fleet.hosts(), vec!["a".to_string(), "b".to_string()]);
        let s = fleet.snapshot("a").unwrap();
        assert_eq!(s.power, PowerState::On);
        assert_eq!(s.condition, Condition::Running);
        assert!(s.working && s.reboot_heals);
        assert_eq!(s.fault, BmcFault::None);
        assert_eq!(fleet.crash("zz"), Err(SimError::UnknownHost("zz".into())));
    }

    #[test]
    fn clones_share_state_and_conditions_switch() {
        let fleet = SimFleet::new();
        let other = fleet.clone();
        fleet.add_host("a").unwrap();
        other.crash("a").unwrap();
        assert_eq!(fleet.snapshot("a").unwrap().condition, Condition::Crashed);
        fleet.hang("a").unwrap();
        assert_eq!(other.snapshot("a").unwrap().condition, Condition::Hung);
        fleet.isolate("a").unwrap();
        assert_eq!(other.snapshot("a").unwrap().condition, Condition::Isolated);
        fleet.heal("a").unwrap();
        assert_eq!(other.snapshot("a").unwrap().condition, Condition::Running);
        // None of that touched the power.
        assert!(fleet.ground_truth().is_empty());
    }

    #[test]
    fn direct_power_changes_are_recorded_once_and_boot_heals() {
        let fleet = SimFleet::new();
        fleet.add_host("a").unwrap();
        fleet.crash("a").unwrap();
        assert!(fleet.set_power("a", PowerState::Off, "plug").unwrap());
        assert!(!fleet.set_power("a", PowerState::Off, "plug again").unwrap());
        assert!(fleet.set_power("a", PowerState::On, "plug in").unwrap());
        let log = fleet.ground_truth();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].condition, Condition::Crashed);
        assert_eq!(log[0].cause.action, None);
        assert_eq!(log[0].cause.label, "plug");
        assert!(log[0].at <= log[1].at);
        assert_eq!(fleet.snapshot("a").unwrap().condition, Condition::Running);
        assert_eq!(fleet.power_offs("a"), 1);

        // A host broken for good stays crashed across a power cycle.
        fleet.add_host("b").unwrap();
        fleet.set_reboot_heals("b", false).unwrap();
        fleet.crash("b").unwrap();
        fleet.set_power("b", PowerState::Off, "t").unwrap();
        fleet.set_power("b", PowerState::On, "t").unwrap();
        assert_eq!(fleet.snapshot("b").unwrap().condition, Condition::Crashed);
        let by_host = fleet.power_offs_by_host();
        assert_eq!(by_host.get("a"), Some(&1));
        assert_eq!(by_host.get("b"), Some(&1));
    }
}
