//! The replicated domain state and the commands that change it.
//!
//! `apply` is deterministic: the proposer stamps the time and its member id into each
//! command; apply re-validates everything (a command checked by a stale or buggy
//! proposer is rejected the same way on every member) and iterates only ordered maps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vigil_raft::app::SnapshotDecodeError;
use vigil_raft::{ApplyContext, NodeId, StateMachine};

use crate::settings::{self, SettingValue};

/// Who proposed a command and when (milliseconds since the Unix epoch, the proposer's
/// clock). Carried into the state so that apply never reads a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// Proposing member.
    pub by: NodeId,
    /// Proposer's wall clock, ms since the epoch.
    pub at_ms: u64,
}

/// A change to the replicated state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Set a setting to a typed value.
    SetSetting {
        /// Setting key.
        key: String,
        /// New value.
        value: SettingValue,
        /// Who and when.
        stamp: Stamp,
    },
    /// Return a setting to its default (removes an annotation).
    ResetSetting {
        /// Setting key.
        key: String,
        /// Who and when.
        stamp: Stamp,
    },
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Applied; the state is now at `revision`.
    Applied {
        /// Revision after this command.
        revision: u64,
    },
    /// Refused; the state did not change.
    Rejected {
        /// Why.
        reason: String,
    },
}

/// A setting that was explicitly set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingRecord {
    /// Current value.
    pub value: SettingValue,
    /// Revision that set it.
    pub revision: u64,
    /// Who set it and when.
    pub stamp: Stamp,
}

/// The whole replicated domain state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VigilState {
    /// Bumped by every applied (not rejected) command.
    pub revision: u64,
    /// Explicitly set settings; absent keys have their declared default.
    pub settings: BTreeMap<String, SettingRecord>,
}

impl VigilState {
    /// The effective value of a declared setting (explicit or default).
    pub fn setting(&self, key: &str) -> Option<SettingValue> {
        if let Some(r) = self.settings.get(key) {
            return Some(r.value.clone());
        }
        let def = settings::lookup(key).ok()?;
        if key.starts_with(settings::META_PREFIX) {
            None
        } else {
            Some(def.default_value())
        }
    }

    fn apply_command(&mut self, cmd: &Command) -> Result<(), String> {
        match cmd {
            Command::SetSetting { key, value, stamp } => {
                let def = settings::lookup(key).map_err(|e| e.to_string())?;
                def.check(key, value).map_err(|e| e.to_string())?;
                self.revision += 1;
                self.settings.insert(
                    key.clone(),
                    SettingRecord {
                        value: value.clone(),
                        revision: self.revision,
                        stamp: *stamp,
                    },
                );
                Ok(())
            }
            Command::ResetSetting { key, .. } => {
                settings::lookup(key).map_err(|e| e.to_string())?;
                self.revision += 1;
                self.settings.remove(key);
                Ok(())
            }
        }
    }
}

impl StateMachine for VigilState {
    type Command = Command;
    type Response = Response;

    fn apply(&mut self, _ctx: ApplyContext, cmd: &Command) -> Response {
        match self.apply_command(cmd) {
            Ok(()) => Response::Applied {
                revision: self.revision,
            },
            Err(reason) => Response::Rejected { reason },
        }
    }

    fn encode_snapshot(&self) -> Vec<u8> {
        vigil_raft::codec::encode(self).expect("state is plain data and always encodes")
    }

    fn decode_snapshot(bytes: &[u8]) -> Result<Self, SnapshotDecodeError> {
        vigil_raft::codec::decode(bytes).map_err(|e| SnapshotDecodeError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(i: u64) -> ApplyContext {
        ApplyContext {
            index: i,
            term: 1,
            position: 0,
        }
    }

    fn stamp() -> Stamp {
        Stamp { by: 1, at_ms: 1000 }
    }

    #[test]
    fn invalid_commands_are_rejected_without_change() {
        let mut s = VigilState::default();
        let r = s.apply(
            ctx(1),
            &Command::SetSetting {
                key: "member.lease".into(),
                value: SettingValue::DurationMs(1),
                stamp: stamp(),
            },
        );
        assert!(matches!(r, Response::Rejected { .. }), "{r:?}");
        let r = s.apply(
            ctx(2),
            &Command::SetSetting {
                key: "member.lease".into(),
                value: SettingValue::Text("x".into()),
                stamp: stamp(),
            },
        );
        assert!(matches!(r, Response::Rejected { .. }), "{r:?}");
        assert_eq!(s, VigilState::default());
    }

    #[test]
    fn set_reset_and_defaults() {
        let mut s = VigilState::default();
        assert_eq!(
            s.setting("member.lease"),
            Some(SettingValue::DurationMs(5000))
        );
        let r = s.apply(
            ctx(1),
            &Command::SetSetting {
                key: "member.lease".into(),
                value: SettingValue::DurationMs(2000),
                stamp: stamp(),
            },
        );
        assert_eq!(r, Response::Applied { revision: 1 });
        assert_eq!(
            s.setting("member.lease"),
            Some(SettingValue::DurationMs(2000))
        );
        s.apply(
            ctx(2),
            &Command::ResetSetting {
                key: "member.lease".into(),
                stamp: stamp(),
            },
        );
        assert_eq!(
            s.setting("member.lease"),
            Some(SettingValue::DurationMs(5000))
        );
        assert_eq!(s.revision, 2);
    }

    #[test]
    fn snapshot_round_trip_is_identical() {
        let mut s = VigilState::default();
        for i in 0..50 {
            s.apply(
                ctx(i),
                &Command::SetSetting {
                    key: format!("meta.k{i}"),
                    value: SettingValue::Text(format!("v{i}")),
                    stamp: stamp(),
                },
            );
        }
        let bytes = s.encode_snapshot();
        let back = VigilState::decode_snapshot(&bytes).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.encode_snapshot(), bytes);
    }
}
