//! The pure HA engine: host state machine, pool FSM with breaker and budget, policy
//! resolution, owner-side health aggregation and `explain`.
//!
//! Nothing in here reads a clock, spawns a task, does I/O or draws a random number:
//! time is an argument, and outputs are a new state plus actions. This is what makes
//! it exhaustively testable (golden scenarios, property tests) and what lets every
//! member apply the same input to the same state with the same result.

pub mod explain;
pub mod health;
pub mod host;
pub mod input;
pub mod policy;
pub mod pool;
pub mod record;

pub use host::{step, Action, Ctx, Gate, IntentEnd, Step, Transition};
pub use input::{ActionResult, Activity, Admin, HealthObs, Input};
pub use policy::{Millis, Overrides, Policy};
pub use pool::{PoolCounts, PoolState, PoolStatus};
pub use record::{HaRecord, HaState, IneligibleReason, PowerState};
