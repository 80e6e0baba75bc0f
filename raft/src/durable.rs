//! Making sled's flush really durable.
//!
//! sled 0.34's `flush_async` writes its log with `sync_file_range` on Linux: the data
//! reaches the device, but neither the device's write cache nor the file's metadata
//! are flushed, and values above ~128 KiB go to separate "blob" files that sled never
//! fsyncs at all (it does a full `sync_all` only in its 500 ms background flusher).
//! That survives `kill -9` (the page cache does) but not a power loss or kernel crash.
//!
//! [`DiskSync`] closes the gap after every sled flush: `fdatasync` of sled's main
//! file, `fsync` of every blob file not yet synced, and of the blob directory. Only
//! then does vigil-raft report a log append, a vote or a snapshot as durable.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Durable-sync helper for one sled database directory.
#[derive(Debug)]
pub struct DiskSync {
    db_file: File,
    blobs: PathBuf,
    synced: Mutex<BTreeSet<OsString>>,
}

impl DiskSync {
    /// Open sled's files under `sled_dir` (after sled created them) and sync the
    /// directory entries once, so the database itself survives a power loss.
    pub fn open(sled_dir: &Path) -> io::Result<Self> {
        let db_file = File::open(sled_dir.join("db"))?;
        let s = DiskSync {
            db_file,
            blobs: sled_dir.join("blobs"),
            synced: Mutex::new(BTreeSet::new()),
        };
        sync_dir(sled_dir)?;
        if let Some(parent) = sled_dir.parent() {
            sync_dir(parent)?;
        }
        s.sync()?;
        Ok(s)
    }

    /// Flush what sled already wrote: main file data, new blob files, blob dir.
    pub fn sync(&self) -> io::Result<()> {
        self.db_file.sync_data()?;
        let mut synced = self.synced.lock().expect("disk sync lock");
        let mut present = BTreeSet::new();
        let mut new_files = false;
        match std::fs::read_dir(&self.blobs) {
            Ok(entries) => {
                for e in entries {
                    let e = e?;
                    let name = e.file_name();
                    if !synced.contains(&name) {
                        File::open(e.path())?.sync_all()?;
                        new_files = true;
                    }
                    present.insert(name);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if new_files {
            sync_dir(&self.blobs)?;
        }
        *synced = present;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir) {
        Ok(d) => d.sync_all(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// sled flush followed by [`DiskSync::sync`] on a blocking thread.
pub async fn flush(db: &sled::Db, sync: &Arc<DiskSync>) -> io::Result<()> {
    db.flush_async().await.map_err(io::Error::other)?;
    let s = sync.clone();
    tokio::task::spawn_blocking(move || s.sync())
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_values_land_in_blob_files_that_get_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.sled");
        let db = sled::Config::new().path(&path).open().unwrap();
        let sync = DiskSync::open(&path).unwrap();
        db.insert(b"small", vec![1u8; 100]).unwrap();
        db.insert(b"big", vec![7u8; 1 << 20]).unwrap();
        db.flush().unwrap();
        sync.sync().unwrap();
        let synced = sync.synced.lock().unwrap().len();
        assert!(
            synced >= 1,
            "a 1 MiB value should be a blob file, synced: {synced}"
        );
        // Idempotent and cheap when nothing is new.
        sync.sync().unwrap();
    }
}
