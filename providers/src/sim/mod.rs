//! The sim provider: an in-memory simulated fleet with fault injection.
//!
//! vigil's dev mode, its tests and its chaos harness need hosts and BMCs that can be
//! made to fail on demand, deterministically and without hardware. This module
//! provides them:
//!
//! - [`SimFleet`]: the simulated hosts (true power state, OS condition, whether the
//!   host is doing work, and a BMC with a [`BmcFault`] mode), cheap to clone and
//!   shared by every driver and check built from it.
//! - [`SimPowerDriver`]: a [`PowerDriver`](crate::power::PowerDriver) talking to a
//!   simulated BMC, honouring its fault mode and the caller's deadline.
//! - [`SimHealthCheck`] / [`SimActivityCheck`]: checks answered from the sim state.
//! - [`SimRedfishServer`]: the same BMCs served as Redfish over HTTP on one listener,
//!   for running the real Redfish driver (or any Redfish client) against the sim.
//! - A ground-truth log ([`PowerChange`]) of every *real* power change, which is
//!   what chaos checkers judge vigil by: what the drivers *reported* can be wrong
//!   (a BMC that lies, a reply that is lost), the log cannot.

mod bmc;
mod checks;
mod driver;
mod fault;
mod fleet;
mod ground_truth;
mod host;
mod redfish_server;

pub use checks::{SimActivityCheck, SimHealthCheck};
pub use driver::SimPowerDriver;
pub use fault::BmcFault;
pub use fleet::{SimError, SimFleet};
pub use ground_truth::{Cause, GroundTruth, PowerChange};
pub use host::{Condition, HostSnapshot};
pub use redfish_server::{
    SimCredentials, SimRedfishServer, IDLE_WATTS, RESET_TYPES, WORKING_WATTS,
};

#[cfg(test)]
mod driver_tests;
