//! BMC fault modes: the ways a real BMC misbehaves, one per variant.
//!
//! Fencing is only as good as the BMC it goes through, so each mode below mirrors a
//! failure seen in the field and lets tests check that vigil neither hangs, nor
//! trusts what it should not, nor fences twice.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a simulated BMC misbehaves. Set per host with
/// [`SimFleet::set_fault`](super::SimFleet::set_fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum BmcFault {
    /// Behaves.
    #[default]
    None,
    /// Never answers: every call runs into the caller's deadline (BMC hung, network
    /// black hole). Nothing is executed.
    Timeout,
    /// Answers at once with an error (busy, internal error): a retryable
    /// [`DriverError`](crate::DriverError). Nothing is executed.
    Error,
    /// Reports the opposite of the true power state, on status and on the read-back
    /// after an action alike. Actions themselves are executed truthfully. This is
    /// the mode that makes "verified" evidence wrong, and ground truth necessary.
    LiesAboutPower,
    /// Unreachable (like [`BmcFault::Timeout`]) while the host is
    /// [crashed](super::Condition::Crashed), normal otherwise: a BMC sharing the
    /// host's power or NIC. Healing the host brings the BMC back.
    DiesWithHost,
    /// Executes the action, but the reply never arrives: the caller gets
    /// [`DriverError::Timeout`](crate::DriverError::Timeout) although the power
    /// did change. Status calls time out too.
    ReplyLost,
    /// Answers after this delay. The delay comes before the BMC acts, so a caller
    /// whose deadline passes first gets a timeout and nothing is executed.
    Slow(Duration),
}
