//! Health and activity checks.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Result of a health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    /// The host answered as expected.
    Pass {
        /// Evidence.
        detail: String,
    },
    /// The host did not answer as expected: a failure of the host.
    Fail {
        /// Why.
        reason: String,
    },
    /// The checker itself could not run: says nothing about the host.
    Error {
        /// Why.
        reason: String,
    },
}

/// Result of an activity check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActivityResult {
    /// The host is doing work.
    Active {
        /// Evidence.
        detail: String,
    },
    /// No sign of work.
    Inactive {
        /// Evidence.
        detail: String,
    },
    /// The checker could not tell.
    Error {
        /// Why.
        reason: String,
    },
}

/// A check result with its duration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timed<T> {
    /// The result.
    pub result: T,
    /// How long it took.
    pub took: Duration,
}

/// Checks that the host is healthy (agent answers, port open…).
#[async_trait]
pub trait HealthCheck: Send + Sync + fmt::Debug {
    /// Run once; must return by `deadline` (a late answer is a `Fail`).
    async fn check(&self, deadline: Instant) -> Health;
}

/// Checks whether an unreachable host is still doing work.
///
/// Stateful: some checks compare with the previous round (a heartbeat file's mtime
/// must *change* between rounds — relative, so no clock sync is needed).
#[async_trait]
pub trait ActivityCheck: Send + Sync + fmt::Debug {
    /// Run one round; must return by `deadline` (a late answer is an `Error`).
    async fn check(&self, deadline: Instant) -> ActivityResult;
}
