//! Determinism and durability of the state-machine store: replaying the same log gives
//! the same digest, a snapshot restores the same digest, and both survive a reopen.

mod common;

use common::{Kv, KvCmd};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder};
use vigil_raft::types::Entry;
use vigil_raft::Batch;

fn log(n: u64) -> Vec<Entry<Kv>> {
    (1..=n)
        .map(|i| {
            let cmds = (0..(i % 5 + 1))
                .map(|j| {
                    if (i + j) % 7 == 0 {
                        KvCmd::Del(format!("k{}", (i + j) % 97))
                    } else {
                        KvCmd::Put(format!("k{}", (i * 31 + j) % 97), format!("v{i}.{j}"))
                    }
                })
                .collect();
            Entry::<Kv> {
                log_id: LogId::new(CommittedLeaderId::new(1 + i / 100, 1), i),
                payload: EntryPayload::Normal(Batch(cmds)),
            }
        })
        .collect()
}

#[tokio::test]
async fn same_log_same_digest_and_snapshot_round_trip() {
    let entries = log(600);
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let mut a = vigil_raft::storage::open::<Kv>(a_dir.path(), 1).unwrap().sm;
    let mut b = vigil_raft::storage::open::<Kv>(b_dir.path(), 2).unwrap().sm;

    // Apply in different chunkings: the result must not depend on how entries arrive.
    a.apply(entries.clone()).await.unwrap();
    for chunk in entries.chunks(37) {
        b.apply(chunk.to_vec()).await.unwrap();
    }
    assert_eq!(a.digest(), b.digest(), "replay of the same log diverged");
    assert!(a.read().app.applied > 600, "log applied nothing?");

    // Snapshot -> install into a fresh store -> same digest.
    let snap = a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let c_dir = tempfile::tempdir().unwrap();
    let mut c = vigil_raft::storage::open::<Kv>(c_dir.path(), 3).unwrap().sm;
    c.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
    assert_eq!(c.digest(), a.digest(), "snapshot restore changed the state");
    let (applied, _) = c.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(600));

    // Reopen from disk: the installed snapshot is durable.
    let digest = c.digest();
    drop(c);
    let c2 = reopen(c_dir.path(), 3).unwrap().sm;
    assert_eq!(c2.digest(), digest, "reopened store lost its snapshot");

    // A different log gives a different digest (the digest is not constant).
    let d_dir = tempfile::tempdir().unwrap();
    let mut d = vigil_raft::storage::open::<Kv>(d_dir.path(), 4).unwrap().sm;
    d.apply(entries[..599].to_vec()).await.unwrap();
    assert_ne!(d.digest(), a.digest());
}

#[tokio::test]
async fn log_survives_reopen_and_purge_leaves_no_hole() {
    let dir = tempfile::tempdir().unwrap();
    let entries = log(300);
    {
        let mut st = vigil_raft::storage::open::<Kv>(dir.path(), 1).unwrap().log;
        st.blocking_append(entries.clone()).await.unwrap();
        st.purge(entries[99].log_id).await.unwrap();
    }
    let mut st = reopen(dir.path(), 1).unwrap().log;
    let state = st.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(100));
    assert_eq!(state.last_log_id.map(|l| l.index), Some(300));
    let got = st.try_get_log_entries(101..=300).await.unwrap();
    assert_eq!(got.len(), 200);
    assert!(got.iter().zip(101..).all(|(e, i)| e.log_id.index == i));
    assert!(st.try_get_log_entries(1..=100).await.unwrap().is_empty());
}

/// Reopen a data dir in this process. sled releases its file lock from a background
/// thread shortly after the last handle is dropped, so retry (bounded) while the only
/// error is that lock.
fn reopen(dir: &std::path::Path, id: u64) -> vigil_raft::Result<vigil_raft::storage::Storage<Kv>> {
    for _ in 0..100 {
        match vigil_raft::storage::open::<Kv>(dir, id) {
            Err(e) if e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            other => return other,
        }
    }
    vigil_raft::storage::open::<Kv>(dir, id)
}

#[test]
fn data_dir_refuses_another_member_id() {
    let dir = tempfile::tempdir().unwrap();
    drop(vigil_raft::storage::open::<Kv>(dir.path(), 1).unwrap());
    let err = reopen(dir.path(), 2).unwrap_err();
    assert!(err.to_string().contains("belongs to member 1"), "{err}");
    assert!(reopen(dir.path(), 1).is_ok());
}
