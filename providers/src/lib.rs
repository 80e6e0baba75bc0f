//! vigil-providers: how vigil talks to hosts and their BMCs.
//!
//! - [`power::PowerDriver`]: status / on / off / cycle, each bounded by a deadline the
//!   caller sets, idempotent where the action allows (off on an already-off host is a
//!   success), returning evidence (what the BMC said, how long it took).
//! - [`check::HealthCheck`] and [`check::ActivityCheck`]: typed results where an error
//!   of the checker is not a failure of the host.
//! - Drivers: `redfish` (DMTF Redfish over HTTPS), `ipmi` (native IPMI 2.0 / RMCP+,
//!   cipher suite 3, async UDP, one reused session per BMC), `ipmitool` (the same
//!   protocol through the `ipmitool` program, the fallback), `script`
//!   (fence-agents convention), `sim` (simulated fleet with fault injection and a
//!   ground-truth log). The two IPMI drivers share their action semantics
//!   (`power::act_verified`).
//!
//! Nothing here decides anything: the pure engine in the `vigil` crate does.

pub mod check;
pub mod checks;
mod child;
pub mod error;
pub mod ipmi;
pub mod ipmitool;
pub mod power;
pub mod redfish;
pub mod script;
pub mod sim;

pub use error::DriverError;
pub use power::{ActionReport, PowerAction, PowerDriver, PowerReading, PowerState};
