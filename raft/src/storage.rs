//! Opens a member's data directory: one sled database holding the Raft log, the vote,
//! the latest snapshot and the member's identity.
//!
//! The member id is written on first open and checked on every later one, so a data
//! directory can never be started under another member's id (that would let one disk
//! vote twice).

use std::path::Path;
use std::sync::Arc;

use crate::app::StateMachine;
use crate::durable::DiskSync;
use crate::error::{Error, Result};
use crate::log_store::LogStore;
use crate::sm_store::SmStore;
use crate::types::NodeId;

const MEMBER_ID_KEY: &[u8] = b"member_id";

/// Both halves of the storage, sharing one sled database.
#[derive(Debug)]
pub struct Storage<A: StateMachine> {
    /// The sled database (flush it on shutdown).
    pub db: sled::Db,
    /// Log and vote.
    pub log: LogStore<A>,
    /// Application state and snapshots.
    pub sm: SmStore<A>,
    /// Makes flushes durable (see [`crate::durable`]).
    pub sync: Arc<DiskSync>,
}

/// Open (or create) the storage in `dir` for member `id`.
pub fn open<A: StateMachine>(dir: &Path, id: NodeId) -> Result<Storage<A>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Storage(format!("cannot create data dir {}: {e}", dir.display())))?;
    let db = sled::Config::new()
        .path(dir.join("raft.sled"))
        // sled's memory use runs far above this figure; keep it modest.
        .cache_capacity(64 * 1024 * 1024)
        .open()
        .map_err(|e| Error::Storage(format!("cannot open {}: {e}", dir.display())))?;
    let sync = Arc::new(
        DiskSync::open(&dir.join("raft.sled"))
            .map_err(|e| Error::Storage(format!("cannot sync {}: {e}", dir.display())))?,
    );
    check_member_id(&db, &sync, dir, id)?;
    let log = LogStore::new(&db, sync.clone())?;
    let sm = SmStore::open(&db, sync.clone())?;
    Ok(Storage { db, log, sm, sync })
}

/// Read the id this data dir belongs to, if any, without opening it for Raft.
pub fn stored_member_id(db: &sled::Db) -> Result<Option<NodeId>> {
    let meta = db.open_tree("meta")?;
    match meta.get(MEMBER_ID_KEY)? {
        None => Ok(None),
        Some(v) => {
            let bytes: [u8; 8] = v
                .as_ref()
                .try_into()
                .map_err(|_| Error::Storage("corrupt member id record".into()))?;
            Ok(Some(u64::from_be_bytes(bytes)))
        }
    }
}

fn check_member_id(db: &sled::Db, sync: &DiskSync, dir: &Path, id: NodeId) -> Result<()> {
    match stored_member_id(db)? {
        Some(stored) if stored == id => Ok(()),
        Some(stored) => Err(Error::Invalid(format!(
            "data dir {} belongs to member {stored}, not {id}: start it with --id {stored} or use another --data-dir",
            dir.display()
        ))),
        None => {
            db.open_tree("meta")?
                .insert(MEMBER_ID_KEY, &id.to_be_bytes())?;
            db.flush()?;
            sync.sync()
                .map_err(|e| Error::Storage(format!("cannot sync {}: {e}", dir.display())))?;
            Ok(())
        }
    }
}
