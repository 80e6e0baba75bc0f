//! Driver errors, split by what the caller should do about them.

use std::time::Duration;

/// Why a driver call did not produce an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// May work if tried again (BMC busy, connection reset, 5xx).
    #[error("{0}")]
    Retryable(String),
    /// Will not work until someone changes something (bad credentials, unsupported
    /// action, unknown system).
    #[error("{0}")]
    Permanent(String),
    /// The deadline passed first. The action may or may not have happened.
    #[error("no answer within {:.1}s: {what}", after.as_secs_f64())]
    Timeout {
        /// Time allowed.
        after: Duration,
        /// What was being waited for.
        what: String,
    },
}

impl DriverError {
    /// True when retrying may help.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, DriverError::Permanent(_))
    }
}
