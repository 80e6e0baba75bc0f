//! The power-driver contract.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::DriverError;

/// Power state as a BMC reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerState {
    /// On.
    On,
    /// Off.
    Off,
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PowerState::On => "on",
            PowerState::Off => "off",
        })
    }
}

/// A power action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerAction {
    /// Power on.
    On,
    /// Hard power off (a fence).
    Off,
    /// Power cycle (a recovery).
    Cycle,
}

impl fmt::Display for PowerAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PowerAction::On => "on",
            PowerAction::Off => "off",
            PowerAction::Cycle => "cycle",
        })
    }
}

/// A power reading with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerReading {
    /// What the BMC says.
    pub state: PowerState,
    /// How the driver learned it (raw answer, in short).
    pub detail: String,
    /// How long it took.
    pub took: Duration,
}

/// The result of a power action, verified by reading the power state back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionReport {
    /// The action.
    pub action: PowerAction,
    /// Power state read back after the action.
    pub verified: PowerState,
    /// True when nothing had to be done (off on an already-off host).
    pub already: bool,
    /// Evidence, in short.
    pub detail: String,
    /// How long it took, verification included.
    pub took: Duration,
}

/// A way to read and change a host's power.
///
/// Every call gets a deadline and must return by then (with [`DriverError::Timeout`]
/// if need be): a BMC that never answers cannot hang a caller.
#[async_trait]
pub trait PowerDriver: Send + Sync + fmt::Debug {
    /// Driver kind (`sim`, `script`, `redfish`, …).
    fn kind(&self) -> &'static str;

    /// Read the power state.
    async fn status(&self, deadline: Instant) -> Result<PowerReading, DriverError>;

    /// Perform `action` and verify its effect before the deadline. `Off` on a host
    /// that is already off and `On` on one already on succeed with `already = true`.
    async fn act(
        &self,
        action: PowerAction,
        deadline: Instant,
    ) -> Result<ActionReport, DriverError>;
}

/// Run `fut` until `deadline`, mapping expiry to [`DriverError::Timeout`].
pub async fn within<T>(
    deadline: Instant,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, DriverError>>,
) -> Result<T, DriverError> {
    let allowed = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(r) => r,
        Err(_) => Err(DriverError::Timeout {
            after: allowed,
            what: what.to_string(),
        }),
    }
}
