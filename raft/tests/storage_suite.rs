//! openraft's own storage conformance suite, run against the sled log and state-machine
//! stores.

mod common;

use common::Kv;
use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;
use vigil_raft::log_store::LogStore;
use vigil_raft::sm_store::SmStore;
use vigil_raft::types::StorageError;
use vigil_raft::TypeConfig;

struct SledBuilder;

impl StoreBuilder<TypeConfig<Kv>, LogStore<Kv>, SmStore<Kv>, TempDir> for SledBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore<Kv>, SmStore<Kv>), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let st = vigil_raft::storage::open::<Kv>(dir.path(), 0).expect("open storage");
        Ok((dir, st.log, st.sm))
    }
}

#[test]
fn openraft_storage_suite_passes_on_sled() {
    if let Err(e) = Suite::test_all(SledBuilder) {
        panic!("storage suite failed: {e}");
    }
}
