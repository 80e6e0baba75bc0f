//! The Raft log and vote in sled (openraft storage v2 `RaftLogStorage`).
//!
//! Keys of the `log` tree are big-endian log indexes so that sled's byte order is log
//! order. Durability: `append` reports completion to openraft only after a durable
//! flush ([`crate::durable::flush`]: sled's flush plus fdatasync/fsync of its files)
//! returns; `save_vote` flushes the same way before returning. Purge records the new purge point before deleting entries, so a crash
//! in between leaves extra entries (harmless), never a hole.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError, Vote};

use crate::app::StateMachine;
use crate::codec;
use crate::durable::{self, DiskSync};
use crate::error::Result;
use crate::types::{Entry, LogId, NodeId, StorageError, TypeConfig};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// The last committed log index openraft saved, readable at any time without a lock
/// (for metrics: openraft 0.9's `RaftMetrics` reports the last log and applied
/// indexes, not the commit index). Shared by every clone of the [`LogStore`].
#[derive(Debug, Clone, Default)]
pub struct CommitIndex(Arc<AtomicU64>);

impl CommitIndex {
    /// The committed index, `None` before anything was committed.
    pub fn get(&self) -> Option<u64> {
        self.0.load(Ordering::Relaxed).checked_sub(1)
    }

    fn set(&self, committed: Option<&LogId>) {
        self.0
            .store(committed.map_or(0, |l| l.index + 1), Ordering::Relaxed);
    }
}

/// sled-backed log storage. Cheap to clone (sled handles are shared).
pub struct LogStore<A> {
    db: sled::Db,
    sync: Arc<DiskSync>,
    log: sled::Tree,
    meta: sled::Tree,
    committed: CommitIndex,
    _app: PhantomData<fn() -> A>,
}

impl<A> Clone for LogStore<A> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            sync: self.sync.clone(),
            log: self.log.clone(),
            meta: self.meta.clone(),
            committed: self.committed.clone(),
            _app: PhantomData,
        }
    }
}

impl<A> fmt::Debug for LogStore<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore")
            .field("entries", &self.log.len())
            .finish()
    }
}

fn read_err(subject: ErrorSubject<NodeId>, e: impl fmt::Display) -> StorageError {
    StorageIOError::new(
        subject,
        ErrorVerb::Read,
        openraft::AnyError::error(e.to_string()),
    )
    .into()
}

fn write_err(subject: ErrorSubject<NodeId>, e: impl fmt::Display) -> StorageError {
    StorageIOError::new(
        subject,
        ErrorVerb::Write,
        openraft::AnyError::error(e.to_string()),
    )
    .into()
}

impl<A: StateMachine> LogStore<A> {
    /// Open the log trees in `db`.
    pub fn new(db: &sled::Db, sync: Arc<DiskSync>) -> Result<Self> {
        let store = Self {
            db: db.clone(),
            sync,
            log: db.open_tree("log")?,
            meta: db.open_tree("raft_meta")?,
            committed: CommitIndex::default(),
            _app: PhantomData,
        };
        // Only a metrics hint until openraft commits again: an unreadable record
        // leaves it unset.
        if let Ok(Some(Some(c))) = store.get_meta::<Option<LogId>>(COMMITTED) {
            store.committed.set(Some(&c));
        }
        Ok(store)
    }

    /// The commit index as openraft last saved it (shared with every clone).
    pub fn commit_index(&self) -> CommitIndex {
        self.committed.clone()
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        match self
            .meta
            .get(key)
            .map_err(|e| read_err(ErrorSubject::Store, e))?
        {
            None => Ok(None),
            Some(v) => codec::decode(&v)
                .map(Some)
                .map_err(|e| read_err(ErrorSubject::Store, e)),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, key: &[u8], v: &T) -> Result<(), StorageError> {
        let bytes = codec::encode(v).map_err(|e| write_err(ErrorSubject::Store, e))?;
        self.meta
            .insert(key, bytes)
            .map_err(|e| write_err(ErrorSubject::Store, e))?;
        Ok(())
    }

    async fn flush(&self, subject: ErrorSubject<NodeId>) -> Result<(), StorageError> {
        durable::flush(&self.db, &self.sync)
            .await
            .map_err(|e| write_err(subject, e))
    }

    /// Number of entries currently stored (for status and tests).
    pub fn len(&self) -> usize {
        self.log.len()
    }

    /// True when no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }
}

fn start_key(b: Bound<&u64>) -> Option<u64> {
    match b {
        Bound::Included(i) => Some(*i),
        Bound::Excluded(i) => i.checked_add(1),
        Bound::Unbounded => Some(0),
    }
}

impl<A: StateMachine> RaftLogReader<TypeConfig<A>> for LogStore<A> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<A>>, StorageError> {
        let Some(start) = start_key(range.start_bound()) else {
            return Ok(vec![]);
        };
        let mut out = Vec::new();
        for item in self.log.range(start.to_be_bytes()..) {
            let (k, v) = item.map_err(|e| read_err(ErrorSubject::Logs, e))?;
            let idx = u64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| read_err(ErrorSubject::Logs, "corrupt log key"))?,
            );
            if !range.contains(&idx) {
                break;
            }
            let entry: Entry<A> = codec::decode(&v).map_err(|e| read_err(ErrorSubject::Logs, e))?;
            out.push(entry);
        }
        Ok(out)
    }
}

impl<A: StateMachine> RaftLogStorage<TypeConfig<A>> for LogStore<A> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig<A>>, StorageError> {
        let last_purged: Option<LogId> = self.get_meta(LAST_PURGED)?;
        let last = match self
            .log
            .last()
            .map_err(|e| read_err(ErrorSubject::Logs, e))?
        {
            None => None,
            Some((_, v)) => {
                let e: Entry<A> = codec::decode(&v).map_err(|e| read_err(ErrorSubject::Logs, e))?;
                Some(e.log_id)
            }
        };
        // Entries at or below the purge point may linger after a crash mid-purge;
        // the purge point wins.
        let last_log_id = match (last, last_purged) {
            (Some(l), Some(p)) if l.index <= p.index => Some(p),
            (None, p) => p,
            (l, _) => l,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.put_meta(VOTE, vote)
            .map_err(|_| write_err(ErrorSubject::Vote, "write vote"))?;
        self.flush(ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.get_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed on purpose: losing it only means re-applying from the snapshot
        // after a crash; the next append's flush persists it anyway.
        self.put_meta(COMMITTED, &committed)?;
        self.committed.set(committed.as_ref());
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig<A>>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<A>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // PLANTED BUG `ack-before-fsync` (chaos self-test only; compiled out without
        // the `planted-bugs` feature): the entries go into sled's in-memory IO buffer
        // (plain inserts: a batch would also write the buffer out to the file) and are
        // acknowledged at once, left to sled's background flusher (every 500 ms).
        // Members SIGKILLed together lose the entries of the last flush interval,
        // which a quorum counted as persisted — acknowledged writes: checker S4 must
        // catch it. Proc tier only: an in-process crash keeps the buffers. See
        // `crate::planted`.
        if crate::planted::ack_before_fsync() {
            for entry in entries {
                let bytes = codec::encode(&entry).map_err(|e| write_err(ErrorSubject::Logs, e))?;
                self.log
                    .insert(entry.log_id.index.to_be_bytes(), bytes)
                    .map_err(|e| write_err(ErrorSubject::Logs, e))?;
            }
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = codec::encode(&entry).map_err(|e| write_err(ErrorSubject::Logs, e))?;
            batch.insert(&entry.log_id.index.to_be_bytes(), bytes);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| write_err(ErrorSubject::Logs, e))?;
        // The durability contract: tell openraft only once the entries are on disk.
        let res = durable::flush(&self.db, &self.sync).await;
        match res {
            Ok(_) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                callback.log_io_completed(Err(std::io::Error::other(msg.clone())));
                Err(write_err(ErrorSubject::Logs, msg))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for item in self.log.range(log_id.index.to_be_bytes()..) {
            let (k, _) = item.map_err(|e| read_err(ErrorSubject::Logs, e))?;
            batch.remove(k);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| write_err(ErrorSubject::Logs, e))?;
        self.flush(ErrorSubject::Logs).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.put_meta(LAST_PURGED, &log_id)?;
        let mut batch = sled::Batch::default();
        for item in self.log.range(..=log_id.index.to_be_bytes()) {
            let (k, _) = item.map_err(|e| read_err(ErrorSubject::Logs, e))?;
            batch.remove(k);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| write_err(ErrorSubject::Logs, e))?;
        Ok(())
    }
}
