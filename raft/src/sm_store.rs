//! The state-machine side of openraft storage v2: the application state in memory,
//! its snapshots in sled.
//!
//! The application state is not written on every apply (that would cost a write per
//! command); it is rebuilt on start from the last snapshot, after which openraft
//! re-applies the committed log. Snapshots are encoded from one consistent view (a read
//! lock over state, last-applied id and membership together), fsynced, and only then
//! reported, so the log behind them can be purged safely.

use std::fmt;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::app::{ApplyContext, StateMachine};
use crate::codec;
use crate::durable::{self, DiskSync};
use crate::error::{Error, Result};
use crate::types::{BatchResponse, Entry, LogId, Node, NodeId, StorageError, TypeConfig};

const SNAP_META: &[u8] = b"meta";
const SNAP_DATA: &[u8] = b"data";

/// The applied state: application data plus what Raft needs to know about it.
#[derive(Debug, Default)]
pub struct Applied<A> {
    /// The application state.
    pub app: A,
    /// Last log id applied.
    pub last_applied: Option<LogId>,
    /// Last membership applied.
    pub membership: StoredMembership<NodeId, Node>,
}

/// A snapshot read back from disk: metadata and the application's bytes.
type StoredSnapshot = (SnapshotMeta<NodeId, Node>, Vec<u8>);

/// Snapshot metadata as stored on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshotMeta {
    meta: SnapshotMeta<NodeId, Node>,
    len: u64,
}

/// State machine store. Clones share the same state.
pub struct SmStore<A> {
    state: Arc<RwLock<Applied<A>>>,
    db: sled::Db,
    sync: Arc<DiskSync>,
    snaps: sled::Tree,
    snapshot_seq: Arc<AtomicU64>,
}

impl<A> Clone for SmStore<A> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            db: self.db.clone(),
            sync: self.sync.clone(),
            snaps: self.snaps.clone(),
            snapshot_seq: self.snapshot_seq.clone(),
        }
    }
}

impl<A> fmt::Debug for SmStore<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmStore").finish_non_exhaustive()
    }
}

fn io_err(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: impl fmt::Display) -> StorageError {
    StorageIOError::new(subject, verb, openraft::AnyError::error(e.to_string())).into()
}

impl<A: StateMachine> SmStore<A> {
    /// Open the snapshot tree and restore the state from the latest snapshot, if any.
    pub fn open(db: &sled::Db, sync: Arc<DiskSync>) -> Result<Self> {
        let snaps = db.open_tree("snapshot")?;
        let store = Self {
            state: Arc::new(RwLock::new(Applied::default())),
            db: db.clone(),
            sync,
            snaps,
            snapshot_seq: Arc::new(AtomicU64::new(0)),
        };
        if let Some((meta, data)) = store.load_snapshot()? {
            let app = A::decode_snapshot(&data).map_err(|e| Error::Storage(e.to_string()))?;
            let mut st = store.write();
            st.app = app;
            st.last_applied = meta.last_log_id;
            st.membership = meta.last_membership.clone();
        }
        Ok(store)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Applied<A>> {
        // A poisoned lock means a panic inside apply: the state can no longer be trusted.
        self.state.write().expect("state machine lock poisoned")
    }

    /// Read access to the applied state (local view, possibly behind the leader).
    pub fn read(&self) -> RwLockReadGuard<'_, Applied<A>> {
        self.state.read().expect("state machine lock poisoned")
    }

    /// SHA-256 of the application's snapshot encoding: equal digests ⇔ equal states.
    pub fn digest(&self) -> String {
        let bytes = self.read().app.encode_snapshot();
        hex(&Sha256::digest(&bytes))
    }

    fn load_snapshot(&self) -> Result<Option<StoredSnapshot>> {
        let Some(meta) = self.snaps.get(SNAP_META)? else {
            return Ok(None);
        };
        let meta: StoredSnapshotMeta = codec::decode(&meta)?;
        let data = self
            .snaps
            .get(SNAP_DATA)?
            .ok_or_else(|| Error::Storage("snapshot metadata without data".into()))?;
        if data.len() as u64 != meta.len {
            return Err(Error::Storage(format!(
                "snapshot data is {} bytes, metadata says {}",
                data.len(),
                meta.len
            )));
        }
        Ok(Some((meta.meta, data.to_vec())))
    }

    async fn persist_snapshot(
        &self,
        meta: &SnapshotMeta<NodeId, Node>,
        data: &[u8],
    ) -> Result<(), StorageError> {
        let stored = StoredSnapshotMeta {
            meta: meta.clone(),
            len: data.len() as u64,
        };
        let meta_bytes = codec::encode(&stored)
            .map_err(|e| io_err(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        let mut batch = sled::Batch::default();
        batch.insert(SNAP_DATA, data);
        batch.insert(SNAP_META, meta_bytes);
        self.snaps
            .apply_batch(batch)
            .map_err(|e| io_err(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        durable::flush(&self.db, &self.sync)
            .await
            .map_err(|e| io_err(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        Ok(())
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl<A: StateMachine> RaftSnapshotBuilder<TypeConfig<A>> for SmStore<A> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig<A>>, StorageError> {
        // One consistent view: data, last applied and membership under the same lock.
        let (data, last_applied, membership) = {
            let st = self.read();
            (
                st.app.encode_snapshot(),
                st.last_applied,
                st.membership.clone(),
            )
        };
        let seq = self.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_applied {
            Some(l) => format!(
                "{}-{}-{}-{seq}",
                l.leader_id.term, l.leader_id.node_id, l.index
            ),
            None => format!("empty-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        self.persist_snapshot(&meta, &data).await?;
        tracing::info!(snapshot = %meta, bytes = data.len(), "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl<A: StateMachine> RaftStateMachine<TypeConfig<A>> for SmStore<A> {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, Node>), StorageError> {
        let st = self.read();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(
        &mut self,
        entries: I,
    ) -> Result<Vec<BatchResponse<A::Response>>, StorageError>
    where
        I: IntoIterator<Item = Entry<A>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut st = self.write();
        let mut out = Vec::new();
        for entry in entries {
            st.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => out.push(BatchResponse(vec![])),
                EntryPayload::Normal(batch) => {
                    let mut responses = Vec::with_capacity(batch.0.len());
                    for (position, cmd) in batch.0.iter().enumerate() {
                        let ctx = ApplyContext {
                            index: entry.log_id.index,
                            term: entry.log_id.leader_id.term,
                            position,
                        };
                        responses.push(st.app.apply(ctx, cmd));
                    }
                    out.push(BatchResponse(responses));
                }
                EntryPayload::Membership(m) => {
                    st.membership = StoredMembership::new(Some(entry.log_id), m);
                    out.push(BatchResponse(vec![]));
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let app = A::decode_snapshot(&data).map_err(|e| {
            io_err(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Read,
                e,
            )
        })?;
        // Durable before the state is switched: a crash right after must not come back
        // with a purged log and no snapshot.
        self.persist_snapshot(meta, &data).await?;
        let mut st = self.write();
        st.app = app;
        st.last_applied = meta.last_log_id;
        st.membership = meta.last_membership.clone();
        tracing::info!(snapshot = %meta, bytes = data.len(), "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig<A>>>, StorageError> {
        let loaded = self
            .load_snapshot()
            .map_err(|e| io_err(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))?;
        Ok(loaded.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
