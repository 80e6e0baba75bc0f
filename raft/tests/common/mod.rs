//! A tiny key/value state machine for exercising vigil-raft without vigil's domain.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vigil_raft::app::SnapshotDecodeError;
use vigil_raft::{ApplyContext, StateMachine};

/// Commands of the test machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KvCmd {
    Put(String, String),
    Del(String),
}

/// Ordered map plus a count of applied commands.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kv {
    pub map: BTreeMap<String, String>,
    pub applied: u64,
    pub last_index: u64,
}

impl StateMachine for Kv {
    type Command = KvCmd;
    type Response = u64;

    fn apply(&mut self, ctx: ApplyContext, cmd: &KvCmd) -> u64 {
        self.applied += 1;
        self.last_index = ctx.index;
        match cmd {
            KvCmd::Put(k, v) => {
                self.map.insert(k.clone(), v.clone());
            }
            KvCmd::Del(k) => {
                self.map.remove(k);
            }
        }
        self.applied
    }

    fn encode_snapshot(&self) -> Vec<u8> {
        vigil_raft::codec::encode(self).unwrap()
    }

    fn decode_snapshot(bytes: &[u8]) -> Result<Self, SnapshotDecodeError> {
        vigil_raft::codec::decode(bytes).map_err(|e| SnapshotDecodeError(e.to_string()))
    }
}
