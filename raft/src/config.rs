//! Raft timings and batching knobs, with safe defaults and validation.
//!
//! Defaults favour quick failover on a LAN (election 400–800 ms, heartbeat 100 ms: a
//! dead leader is replaced in ~1–1.5 s) while staying far from spurious elections.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Timings of one member. All members of a cluster should use the same values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftTimings {
    /// Leader heartbeat interval, ms.
    pub heartbeat_ms: u64,
    /// Minimum election timeout, ms.
    pub election_min_ms: u64,
    /// Maximum election timeout, ms.
    pub election_max_ms: u64,
    /// Build a snapshot (and purge the log behind it) after this many entries.
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot, so a briefly lagging follower can
    /// catch up from the log instead of a full snapshot.
    pub keep_behind_snapshot: u64,
    /// Timeout for sending one snapshot chunk, ms.
    pub snapshot_chunk_timeout_ms: u64,
    /// Most commands the batcher packs into one log entry.
    pub max_batch: usize,
    /// Batched entries in flight at once (each costs one leader fsync).
    pub max_inflight: usize,
    /// How long a write or forwarded request waits for a leader before giving up, ms.
    pub leader_wait_ms: u64,
}

impl Default for RaftTimings {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_min_ms: 400,
            election_max_ms: 800,
            snapshot_every: 10_000,
            keep_behind_snapshot: 1_000,
            snapshot_chunk_timeout_ms: 10_000,
            max_batch: 4096,
            max_inflight: 4,
            leader_wait_ms: 5_000,
        }
    }
}

impl RaftTimings {
    /// Reject combinations openraft would misbehave with.
    pub fn validate(&self) -> Result<()> {
        if self.heartbeat_ms == 0 {
            return Err(Error::Invalid("raft.heartbeat_ms must be > 0".into()));
        }
        if self.election_min_ms <= self.heartbeat_ms * 2 {
            return Err(Error::Invalid(format!(
                "raft.election_min_ms ({}) must be more than twice raft.heartbeat_ms ({})",
                self.election_min_ms, self.heartbeat_ms
            )));
        }
        if self.election_max_ms <= self.election_min_ms {
            return Err(Error::Invalid(format!(
                "raft.election_max_ms ({}) must be greater than raft.election_min_ms ({})",
                self.election_max_ms, self.election_min_ms
            )));
        }
        if self.snapshot_every == 0 {
            return Err(Error::Invalid("raft.snapshot_every must be > 0".into()));
        }
        if self.max_batch == 0 || self.max_inflight == 0 {
            return Err(Error::Invalid(
                "raft.max_batch and raft.max_inflight must be > 0".into(),
            ));
        }
        Ok(())
    }

    /// The openraft configuration these timings describe.
    pub fn to_openraft(&self, cluster_name: &str) -> Result<openraft::Config> {
        self.validate()?;
        let cfg = openraft::Config {
            cluster_name: cluster_name.to_string(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_min_ms,
            election_timeout_max: self.election_max_ms,
            install_snapshot_timeout: self.snapshot_chunk_timeout_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.keep_behind_snapshot,
            purge_batch_size: 256,
            max_payload_entries: 256,
            ..Default::default()
        };
        cfg.validate()
            .map_err(|e| Error::Invalid(format!("raft config: {e}")))
    }

    /// How long a client waits for a leader to appear.
    pub fn leader_wait(&self) -> Duration {
        Duration::from_millis(self.leader_wait_ms)
    }
}
