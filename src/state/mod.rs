//! The replicated domain state and the commands that change it.
//!
//! `apply` is deterministic: the proposer stamps the time and its member id into each
//! command; apply re-validates everything (a command checked by a stale or buggy
//! proposer is rejected the same way on every member), runs the pure engine for host
//! inputs, and iterates only ordered maps.

mod apply;
pub mod model;
pub mod validate;
mod view;
pub mod webhook;

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use vigil_raft::app::SnapshotDecodeError;
use vigil_raft::{ApplyContext, NodeId, StateMachine};

use crate::engine::host::Transition;
use crate::engine::input::Input;
use crate::engine::policy::{Millis, Overrides};
use crate::settings::{self, SettingValue};
use model::{Event, Host, HostSpec, Intent, LedgerEntry, Pool, PoolSpec};

/// Who proposed a command and when (milliseconds since the Unix epoch, the proposer's
/// clock). Carried into the state so that apply never reads a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// Proposing member.
    pub by: NodeId,
    /// Proposer's wall clock, ms since the epoch.
    pub at_ms: Millis,
}

/// One input for one host. `epoch` is the owner's view of the host's epoch; `None`
/// for operator inputs, which are not tied to ownership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInput {
    /// Host name.
    pub host: String,
    /// Epoch the proposer holds (checked at apply).
    pub epoch: Option<u64>,
    /// The input.
    pub input: Input,
}

/// A declarative change applied atomically (`vigil apply -f`): everything or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryChange {
    /// Cluster settings to set.
    pub settings: Vec<(String, SettingValue)>,
    /// Pools to create or replace.
    pub pools: Vec<PoolSpec>,
    /// Hosts to create or replace.
    pub hosts: Vec<HostSpec>,
    /// Hosts to remove.
    pub remove_hosts: Vec<String>,
    /// Pools to remove (after their hosts).
    pub remove_pools: Vec<String>,
    /// The `config_revision` the change was planned against: if the configuration
    /// changed since, apply refuses (the diff the operator saw would be wrong).
    pub based_on: Option<u64>,
}

impl InventoryChange {
    /// True when it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.settings.is_empty()
            && self.pools.is_empty()
            && self.hosts.is_empty()
            && self.remove_hosts.is_empty()
            && self.remove_pools.is_empty()
    }
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
    /// Create a pool.
    CreatePool {
        /// The pool.
        spec: PoolSpec,
        /// Who and when.
        stamp: Stamp,
    },
    /// Enable/disable a pool and/or change its policy overrides.
    UpdatePool {
        /// Pool name.
        name: String,
        /// New enabled flag, if changing.
        enabled: Option<bool>,
        /// Overrides to set.
        set: Overrides,
        /// Override keys to remove.
        unset: Vec<String>,
        /// Who and when.
        stamp: Stamp,
    },
    /// Remove an empty pool.
    RemovePool {
        /// Pool name.
        name: String,
        /// Who and when.
        stamp: Stamp,
    },
    /// Add a host.
    AddHost {
        /// The host.
        spec: HostSpec,
        /// Who and when.
        stamp: Stamp,
    },
    /// Remove a host (refused while an action is in flight).
    RemoveHost {
        /// Host name.
        name: String,
        /// Who and when.
        stamp: Stamp,
    },
    /// Maintenance on/off.
    SetMaintenance {
        /// Host name.
        name: String,
        /// On or off.
        on: bool,
        /// Who and when.
        stamp: Stamp,
    },
    /// Inputs for the engine (observations, outcomes, ticks, operator actions).
    HostInputs {
        /// The inputs, applied in order.
        inputs: Vec<HostInput>,
        /// Who and when.
        stamp: Stamp,
    },
    /// A member was seen alive, or declared dead (its lease expired).
    SetMemberLiveness {
        /// Member id.
        id: NodeId,
        /// Its address.
        addr: String,
        /// Alive or dead.
        alive: bool,
        /// Who and when.
        stamp: Stamp,
    },
    /// Give hosts to owners (None: unassigned). Every change of owner bumps the host's
    /// epoch, which invalidates the previous owner's proposals.
    AssignHosts {
        /// (host, new owner) pairs.
        assignments: Vec<(String, Option<NodeId>)>,
        /// Who and when.
        stamp: Stamp,
    },
    /// The owner of a host is about to call its BMC for an in-flight intent: commit
    /// that first (see [`model::Begin`]). Rejected unless the proposer owns the host
    /// at `epoch`, the intent is the host's current one, in flight and not past its
    /// deadline, and no other executor's power cycle may still be running.
    BeginAction {
        /// Host name.
        host: String,
        /// Epoch the proposer owns the host at.
        epoch: u64,
        /// The intent.
        intent: u64,
        /// The proposer's process incarnation.
        incarnation: u64,
        /// Who and when.
        stamp: Stamp,
    },
    /// Tick every host whose deadline or schedule is due, and every pool.
    TickAll {
        /// Who and when.
        stamp: Stamp,
    },
    /// An operator's power action on a registered host (`vigil power … --host`):
    /// committed before the BMC is called (`result: None`, validated: the host must be
    /// out of HA's hands) and again with the outcome, both as events.
    OperatorPower {
        /// Host name.
        host: String,
        /// `on`, `off` or `cycle`.
        action: String,
        /// Fence level whose driver is used (0-based).
        level: u32,
        /// `None`: the request; `Some`: what happened.
        result: Option<String>,
        /// Who and when.
        stamp: Stamp,
    },
    /// Register a webhook: events from now on are delivered to `url`.
    AddWebhook {
        /// `http://` or `https://` URL.
        url: String,
        /// Event types to deliver (empty: all).
        types: Vec<String>,
        /// Who and when.
        stamp: Stamp,
    },
    /// Remove a webhook.
    RemoveWebhook {
        /// Webhook id.
        id: u64,
        /// Who and when.
        stamp: Stamp,
    },
    /// The leader's delivery progress for a webhook (committed so that a new leader
    /// continues from it: at-least-once).
    WebhookProgress {
        /// Webhook id.
        id: u64,
        /// Every event before this `seq` was delivered (or skipped: another type).
        cursor: u64,
        /// Deliveries acknowledged in this batch.
        delivered: u64,
        /// Consecutive failed attempts (0 after a success).
        failures: u32,
        /// The last error, if the last attempt failed.
        last_error: Option<String>,
        /// Who and when.
        stamp: Stamp,
    },
    /// A declarative change, all or nothing.
    ApplyInventory {
        /// The change.
        change: InventoryChange,
        /// Who and when.
        stamp: Stamp,
    },
}

/// Result of one host input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputOutcome {
    /// Applied (possibly changing nothing).
    Applied {
        /// State change, if any.
        transition: Option<Transition>,
        /// Intents committed by this input.
        intents: Vec<u64>,
    },
    /// Refused (stale epoch, unknown host).
    Rejected {
        /// Why.
        reason: String,
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
    /// A `BeginAction` was committed.
    Begun {
        /// Revision after this command.
        revision: u64,
        /// Executors that had begun this intent before (other members, or earlier
        /// processes of this one): non-empty means the outcome of their attempt is
        /// unknown and the action must not be repeated blindly.
        earlier: Vec<model::Begin>,
    },
    /// Host inputs: one outcome per input.
    Inputs {
        /// Revision after this command.
        revision: u64,
        /// Outcomes in input order.
        results: Vec<InputOutcome>,
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
    /// Bumped by every applied configuration change (settings, pools, hosts,
    /// maintenance, inventory) — not by observations.
    pub config_revision: u64,
    /// Explicitly set settings; absent keys have their declared default.
    pub settings: BTreeMap<String, SettingRecord>,
    /// Pools by name.
    pub pools: BTreeMap<String, Pool>,
    /// Hosts by name.
    pub hosts: BTreeMap<String, Host>,
    /// Intents by id (in-flight ones and the most recent ended ones).
    pub intents: BTreeMap<u64, Intent>,
    /// Id of the next intent.
    pub next_intent: u64,
    /// Fence/recovery ledger, oldest first.
    pub ledger: VecDeque<LedgerEntry>,
    /// Bounded event history, oldest first.
    pub events: VecDeque<Event>,
    /// Sequence number of the next event.
    pub next_event: u64,
    /// Members as the HA layer sees them (liveness is committed, not guessed).
    pub members: BTreeMap<NodeId, model::MemberRecord>,
    /// Registered webhooks with their committed delivery cursors.
    pub webhooks: BTreeMap<u64, webhook::Webhook>,
    /// Id of the next webhook.
    pub next_webhook: u64,
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
}

impl StateMachine for VigilState {
    type Command = Command;
    type Response = Response;

    fn apply(&mut self, _ctx: ApplyContext, cmd: &Command) -> Response {
        self.apply_command(cmd)
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
            Some(SettingValue::DurationMs(2000))
        );
        let r = s.apply(
            ctx(1),
            &Command::SetSetting {
                key: "member.lease".into(),
                value: SettingValue::DurationMs(3000),
                stamp: stamp(),
            },
        );
        assert_eq!(r, Response::Applied { revision: 1 });
        assert_eq!(
            s.setting("member.lease"),
            Some(SettingValue::DurationMs(3000))
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
            Some(SettingValue::DurationMs(2000))
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

    #[test]
    fn inventory_planned_against_an_old_configuration_is_refused() {
        let mut s = VigilState::default();
        let planned_at = s.config_revision;
        s.apply(
            ctx(1),
            &Command::SetSetting {
                key: "meta.x".into(),
                value: SettingValue::Text("y".into()),
                stamp: stamp(),
            },
        );
        let change = InventoryChange {
            pools: vec![crate::fleet::pool("p", true, Default::default())],
            based_on: Some(planned_at),
            ..Default::default()
        };
        let r = s.apply(
            ctx(2),
            &Command::ApplyInventory {
                change: change.clone(),
                stamp: stamp(),
            },
        );
        assert!(
            matches!(&r, Response::Rejected { reason } if reason.contains("plan it again")),
            "{r:?}"
        );
        assert!(s.pools.is_empty());
        let fresh = InventoryChange {
            based_on: Some(s.config_revision),
            ..change
        };
        let r = s.apply(
            ctx(3),
            &Command::ApplyInventory {
                change: fresh,
                stamp: stamp(),
            },
        );
        assert!(matches!(r, Response::Applied { .. }), "{r:?}");
        assert!(s.pools.contains_key("p"));
    }

    #[test]
    fn assignment_needs_live_members_bumps_epochs_and_is_all_or_nothing() {
        let mut s = VigilState::default();
        let cmds = [
            Command::CreatePool {
                spec: crate::fleet::pool("p", true, Default::default()),
                stamp: stamp(),
            },
            Command::AddHost {
                spec: crate::fleet::sim_host("a", "p", 1),
                stamp: stamp(),
            },
            Command::AddHost {
                spec: crate::fleet::sim_host("b", "p", 1),
                stamp: stamp(),
            },
            Command::SetMemberLiveness {
                id: 1,
                addr: "127.0.0.1:7001".into(),
                alive: true,
                stamp: stamp(),
            },
            Command::SetMemberLiveness {
                id: 2,
                addr: "127.0.0.1:7002".into(),
                alive: false,
                stamp: stamp(),
            },
        ];
        for (i, c) in cmds.iter().enumerate() {
            assert!(!matches!(
                s.apply(ctx(i as u64), c),
                Response::Rejected { .. }
            ));
        }
        // Member 2 is dead: the whole assignment is refused, nothing moves.
        let r = s.apply(
            ctx(10),
            &Command::AssignHosts {
                assignments: vec![("a".into(), Some(1)), ("b".into(), Some(2))],
                stamp: stamp(),
            },
        );
        assert!(
            matches!(&r, Response::Rejected { reason } if reason.contains("not a live member")),
            "{r:?}"
        );
        assert_eq!((s.hosts["a"].epoch, s.hosts["a"].owner), (0, None));
        let assign = |owner| Command::AssignHosts {
            assignments: vec![("a".into(), owner)],
            stamp: stamp(),
        };
        s.apply(ctx(11), &assign(Some(1)));
        assert_eq!((s.hosts["a"].epoch, s.hosts["a"].owner), (1, Some(1)));
        // Same owner again: no new epoch.
        s.apply(ctx(12), &assign(Some(1)));
        assert_eq!(s.hosts["a"].epoch, 1);
        s.apply(ctx(13), &assign(None));
        assert_eq!((s.hosts["a"].epoch, s.hosts["a"].owner), (2, None));
        // Ownership changes are not configuration changes.
        let before = s.config_revision;
        s.apply(ctx(14), &assign(Some(1)));
        assert_eq!(s.config_revision, before);
    }
}
