//! Errors of the replication layer.
//!
//! Split by what the caller can do: [`Error::is_retryable`] errors (no leader yet, leader
//! moved, peer unreachable) may be retried; the rest (invalid request, storage failure,
//! shut down) will not get better by retrying. A write that timed out has an *unknown*
//! outcome: it may still commit, so it is not blindly retried.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::types::NodeId;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the replication layer. Serializable so that a leader can hand
/// its error back to the follower that forwarded a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    /// No leader is known right now (election in progress, or no quorum).
    #[error("no leader is known (election in progress or quorum lost); retry shortly")]
    NoLeader,
    /// This member is not the leader and will not forward (already a forwarded request).
    #[error("member {me} is not the leader (leader: {})", leader.map(|l| l.to_string()).unwrap_or_else(|| "unknown".into()))]
    NotLeader {
        /// The member that answered.
        me: NodeId,
        /// The leader it knows of, if any.
        leader: Option<NodeId>,
    },
    /// A peer could not be reached at all (connection refused, DNS, reset).
    #[error("cannot reach {addr}: {reason}")]
    Unreachable {
        /// `host:port` that was tried.
        addr: String,
        /// Transport error text.
        reason: String,
    },
    /// Gave up waiting. For writes the outcome is unknown.
    #[error("timed out after {:.1}s {what}", after.as_secs_f64())]
    Timeout {
        /// How long was waited.
        after: Duration,
        /// What was being waited for.
        what: String,
    },
    /// This member has no membership yet: it cannot serve reads or writes.
    #[error("member {0} does not belong to a cluster yet: run `vigil cluster init` on one member and `vigil cluster join` the others, or point --endpoint at a member that belongs to one")]
    NotInitialized(NodeId),
    /// This member was removed from the cluster (`cluster leave`) and stopped its Raft.
    #[error("member {0} was removed from the cluster and no longer serves; stop this process (wipe its data dir before it ever joins again)")]
    Retired(NodeId),
    /// The cluster already has a membership; `init` refuses to run twice.
    #[error("this member is already initialized (it has a membership); nothing changed")]
    AlreadyInitialized,
    /// The request is invalid as given (unknown member, duplicate join, last voter…).
    #[error("{0}")]
    Invalid(String),
    /// A peer answered with an error status.
    #[error("{addr} answered HTTP {status}: {message}")]
    Remote {
        /// Peer address.
        addr: String,
        /// HTTP status code.
        status: u16,
        /// Body text of the answer.
        message: String,
    },
    /// Local storage failed: fatal for this member.
    #[error("storage failure: {0}")]
    Storage(String),
    /// Encoding or decoding failed.
    #[error("codec: {0}")]
    Codec(String),
    /// Raft stopped (shutdown or fatal error).
    #[error("raft stopped: {0}")]
    Fatal(String),
}

impl Error {
    /// True when retrying the same request later may succeed and cannot do harm twice.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::NoLeader | Error::NotLeader { .. } | Error::Unreachable { .. }
        )
    }
}

impl From<crate::codec::CodecError> for Error {
    fn from(e: crate::codec::CodecError) -> Self {
        Error::Codec(e.0)
    }
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

impl From<openraft::error::Fatal<NodeId>> for Error {
    fn from(e: openraft::error::Fatal<NodeId>) -> Self {
        Error::Fatal(e.to_string())
    }
}
