//! vigil-raft: a durable, replicated state machine.
//!
//! openraft 0.9 (storage v2) with the log, vote and state-machine snapshots kept in sled,
//! an HTTP transport (axum server, one shared reqwest client, bincode bodies) and a
//! proposal batcher that lets concurrent writers share one log entry and one fsync.
//!
//! The crate knows nothing about vigil's domain: it is generic over [`StateMachine`],
//! so the domain (hosts, pools, settings…) lives in the root crate and this crate is the
//! one reusable replication piece.
//!
//! Durability contract (see `docs/ARCHITECTURE.md`): a log entry is reported flushed to
//! openraft only after sled has fsynced it; the vote is fsynced before `save_vote`
//! returns; snapshots are fsynced before they are installed. The application state lives
//! in memory and is rebuilt on start from the last snapshot plus the committed log.

// openraft's `StorageError` is large by design and its trait signatures dictate it.
#![allow(clippy::result_large_err)]

pub mod app;
pub mod batcher;
pub mod codec;
pub mod config;
pub mod durable;
pub mod error;
pub mod log_store;
pub mod member;
pub mod network;
pub mod planted;
pub mod rpc;
pub mod sm_store;
pub mod status;
pub mod storage;
pub mod types;

pub use app::{ApplyContext, StateMachine};
pub use config::RaftTimings;
pub use error::{Error, Result};
pub use member::Member;
pub use status::{ClusterStatus, MemberRole, MemberStatus};
pub use types::{Batch, BatchResponse, NodeId, TypeConfig};
