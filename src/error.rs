//! Errors of the vigil library (domain, API, configuration).

use vigil_raft::NodeId;

/// Everything the vigil library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum VigilError {
    /// Replication layer error (no leader, unreachable peer, storage…).
    #[error(transparent)]
    Raft(#[from] vigil_raft::Error),
    /// A setting key that is not declared.
    #[error("unknown setting {key:?}; known settings: {known} (and meta.<name> annotations)")]
    UnknownSetting {
        /// The key given.
        key: String,
        /// Declared keys.
        known: String,
    },
    /// A value that does not fit its setting.
    #[error("invalid value for {key}: {reason}")]
    InvalidSetting {
        /// The key given.
        key: String,
        /// Why the value was refused.
        reason: String,
    },
    /// The state machine refused a command (deterministically, on every member).
    #[error("rejected: {0}")]
    Rejected(String),
    /// Bad configuration of `vigil serve`.
    #[error("configuration: {0}")]
    Config(String),
    /// I/O (binding a port, reading a file…).
    #[error("{context}: {cause}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error. Not named `source`: thiserror would then also report it as
        /// the error's source, and `{:#}` would print it twice.
        cause: std::io::Error,
    },
    /// A member id that does not exist.
    #[error("unknown member {0}")]
    UnknownMember(NodeId),
}

impl VigilError {
    /// Wrap an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        VigilError::Io {
            context: context.into(),
            cause: source,
        }
    }
}
