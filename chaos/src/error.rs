//! Errors of the harness itself (not findings: those are verdicts).

/// What can go wrong running the harness.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// The cluster could not be started or driven.
    #[error("cluster: {0}")]
    Cluster(String),
    /// The simulated fleet refused a step.
    #[error("fleet: {0}")]
    Fleet(String),
    /// Reading or writing a run's files.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A saved file could not be parsed.
    #[error("{what}: {reason}")]
    Format {
        /// Which file.
        what: String,
        /// Why.
        reason: String,
    },
    /// Bad input on the command line.
    #[error("{0}")]
    Usage(String),
}

impl ChaosError {
    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        ChaosError::Io {
            what: what.into(),
            source,
        }
    }
}
