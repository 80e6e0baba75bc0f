//! vigil: a Raft-replicated high-availability controller for fleets of physical hosts.
//!
//! This crate holds the domain (replicated state, settings), the admin API, the member
//! runtime (`serve`) and the all-in-one dev cluster. Replication itself lives in the
//! `vigil-raft` crate, which is generic over [`state::VigilState`].

pub mod api;
pub mod assign;
pub mod config;
pub mod dev;
pub mod drivers;
pub mod engine;
pub mod error;
pub mod fleet;
pub mod inventory;
pub mod liveness;
pub mod logging;
pub mod metrics;
pub mod planted;
pub mod server;
pub mod settings;
pub mod state;
pub mod worker;

pub use error::VigilError;
