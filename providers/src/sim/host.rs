//! The simulated host: its true state, and the snapshot of it that callers may read.

use serde::{Deserialize, Serialize};

use super::fault::BmcFault;
use crate::power::PowerState;

/// What the host's OS is doing (while powered on; a powered-off host runs nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    /// Healthy: answers health checks, does work.
    Running,
    /// Running and working, but unreachable by health checks (a network partition
    /// between checker and host). The case activity checks exist for: fencing such
    /// a host kills live work.
    Isolated,
    /// OS dead while the power and the BMC stay up (kernel hang): no health answers,
    /// no work.
    Hung,
    /// Host dead, power still on. The BMC is fine unless its fault mode is
    /// [`BmcFault::DiesWithHost`].
    Crashed,
}

/// The true state of one simulated host, as seen from outside the simulation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSnapshot {
    /// Host name.
    pub name: String,
    /// True power state (not what the BMC says).
    pub power: PowerState,
    /// What the OS is doing.
    pub condition: Condition,
    /// Whether the host is doing work when it runs (false: alive but idle).
    pub working: bool,
    /// The BMC's fault mode.
    pub fault: BmcFault,
    /// Whether the health checker itself errors for this host.
    pub health_check_error: bool,
    /// Whether the activity checker itself errors for this host.
    pub activity_check_error: bool,
    /// Whether powering on (including a cycle) brings a hung or crashed OS back to
    /// [`Condition::Running`].
    pub reboot_heals: bool,
}

/// Mutable per-host state kept inside the fleet.
#[derive(Debug, Clone)]
pub(crate) struct HostState {
    pub(crate) power: PowerState,
    pub(crate) condition: Condition,
    pub(crate) working: bool,
    pub(crate) fault: BmcFault,
    pub(crate) health_check_error: bool,
    pub(crate) activity_check_error: bool,
    pub(crate) reboot_heals: bool,
}

impl HostState {
    /// A new host: powered on, running, working, BMC behaving.
    pub(crate) fn new() -> Self {
        HostState {
            power: PowerState::On,
            condition: Condition::Running,
            working: true,
            fault: BmcFault::None,
            health_check_error: false,
            activity_check_error: false,
            reboot_heals: true,
        }
    }

    pub(crate) fn snapshot(&self, name: &str) -> HostSnapshot {
        HostSnapshot {
            name: name.to_string(),
            power: self.power,
            condition: self.condition,
            working: self.working,
            fault: self.fault,
            health_check_error: self.health_check_error,
            activity_check_error: self.activity_check_error,
            reboot_heals: self.reboot_heals,
        }
    }
}
