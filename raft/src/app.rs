//! The application state-machine trait that vigil-raft replicates.
//!
//! Implementations must be deterministic: `apply` may not read a clock, do I/O, use
//! randomness, or iterate a hash map in an order that affects its output. Anything that
//! varies (the time, who proposed) is stamped into the command by the proposer. This is
//! what lets every member, and every replay of the log, reach the same state.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Where in the log a command is being applied. Handy for revisions and audit trails;
/// identical on every member for the same entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyContext {
    /// Raft log index of the entry that carries the command.
    pub index: u64,
    /// Raft term of that entry.
    pub term: u64,
    /// Position of the command inside its batch (0-based).
    pub position: usize,
}

/// Error decoding a snapshot; carried as text because the format belongs to the app.
#[derive(Debug, thiserror::Error)]
#[error("snapshot decode: {0}")]
pub struct SnapshotDecodeError(pub String);

/// A deterministic replicated state machine.
pub trait StateMachine: Default + Debug + Send + Sync + 'static {
    /// A proposed change. Must be plain data (bincode-compatible serde: no `flatten`,
    /// `skip`, `untagged`, `serde_json::Value`).
    type Command: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static;
    /// What applying a command returns to its proposer (e.g. accepted / rejected with a reason).
    type Response: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static;

    /// Apply one committed command. Deterministic, infallible: invalid commands are
    /// *rejected* through the response, never by panicking or erroring, because every
    /// member must make the same decision.
    fn apply(&mut self, ctx: ApplyContext, cmd: &Self::Command) -> Self::Response;

    /// Encode the whole state. Must be deterministic (same state → same bytes): the
    /// state digest used by replay and snapshot tests is a hash of these bytes.
    fn encode_snapshot(&self) -> Vec<u8>;

    /// Rebuild a state from [`StateMachine::encode_snapshot`] output.
    fn decode_snapshot(bytes: &[u8]) -> Result<Self, SnapshotDecodeError>;
}
