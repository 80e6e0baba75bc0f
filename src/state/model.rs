//! The replicated domain model: pools, hosts (with their power drivers = fence levels
//! and checks), intents, the fence ledger and the event history.
//!
//! Plain data only (bincode: no flatten/skip/untagged). BMC passwords are [`Secret`]s:
//! replicated (members need them to act) but never printed, logged or returned.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use vigil_raft::NodeId;

use crate::engine::host::{IntentEnd, Transition};
use crate::engine::input::Input;
use crate::engine::policy::{Millis, Overrides};
use crate::engine::pool::{PoolCounts, PoolState, PoolStatus};
use crate::engine::record::HaRecord;

/// A write-only string (BMC password). `Debug`/`Display` never show it.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Secret(pub String);

impl Secret {
    /// The secret itself, for the driver that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when set.
    pub fn is_set(&self) -> bool {
        !self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<unset>"
        } else {
            "<redacted>"
        })
    }
}

/// Power driver kinds (DESIGN.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DriverKind {
    /// Redfish over HTTPS.
    Redfish,
    /// Native IPMI (RMCP+ lanplus).
    Ipmi,
    /// IPMI through the `ipmitool` binary.
    Ipmitool,
    /// A fence-agents compatible script.
    Script,
    /// The simulated BMC (dev mode, tests, chaos).
    Sim,
}

impl DriverKind {
    /// Every kind.
    pub const ALL: [DriverKind; 5] = [
        DriverKind::Redfish,
        DriverKind::Ipmi,
        DriverKind::Ipmitool,
        DriverKind::Script,
        DriverKind::Sim,
    ];

    /// Name as written in inventories and on the CLI.
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Redfish => "redfish",
            DriverKind::Ipmi => "ipmi",
            DriverKind::Ipmitool => "ipmitool",
            DriverKind::Script => "script",
            DriverKind::Sim => "sim",
        }
    }

    /// Parse a name.
    pub fn parse(s: &str) -> Result<Self, String> {
        DriverKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown driver kind {s:?}; known: {}",
                    DriverKind::ALL.map(|k| k.name()).join(", ")
                )
            })
    }
}

/// One power driver of a host (one fence level).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverSpec {
    /// Driver kind.
    pub kind: DriverKind,
    /// BMC address (`host:port`, URL, or script path, depending on the kind).
    pub address: String,
    /// BMC user.
    pub username: String,
    /// BMC password (write-only).
    pub password: Secret,
    /// Driver-specific options (`system_id`, `ca_file`, `insecure`, …).
    pub options: BTreeMap<String, String>,
}

/// Check kinds (DESIGN.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CheckKind {
    /// HTTP GET of an agent endpoint.
    Http,
    /// TCP connect.
    Tcp,
    /// A script: exit 0 pass.
    Script,
    /// Simulated.
    Sim,
    /// Heartbeat file on shared storage, judged by relative mtime change.
    HeartbeatFile,
    /// Power reading from the Redfish BMC.
    RedfishPower,
}

impl CheckKind {
    /// Every kind.
    pub const ALL: [CheckKind; 6] = [
        CheckKind::Http,
        CheckKind::Tcp,
        CheckKind::Script,
        CheckKind::Sim,
        CheckKind::HeartbeatFile,
        CheckKind::RedfishPower,
    ];

    /// Name as written in inventories.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Http => "http",
            CheckKind::Tcp => "tcp",
            CheckKind::Script => "script",
            CheckKind::Sim => "sim",
            CheckKind::HeartbeatFile => "heartbeat-file",
            CheckKind::RedfishPower => "redfish-power",
        }
    }

    /// Usable as a health check?
    pub fn is_health(self) -> bool {
        matches!(
            self,
            CheckKind::Http | CheckKind::Tcp | CheckKind::Script | CheckKind::Sim
        )
    }

    /// Usable as an activity check?
    pub fn is_activity(self) -> bool {
        matches!(
            self,
            CheckKind::Http
                | CheckKind::Script
                | CheckKind::Sim
                | CheckKind::HeartbeatFile
                | CheckKind::RedfishPower
        )
    }

    /// Parse a name for a health (`health = true`) or activity check.
    pub fn parse(s: &str, health: bool) -> Result<Self, String> {
        let ok: Vec<CheckKind> = CheckKind::ALL
            .into_iter()
            .filter(|k| {
                if health {
                    k.is_health()
                } else {
                    k.is_activity()
                }
            })
            .collect();
        ok.iter().copied().find(|k| k.name() == s).ok_or_else(|| {
            format!(
                "unknown {} check kind {s:?}; known: {}",
                if health { "health" } else { "activity" },
                ok.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
            )
        })
    }
}

/// A health or activity check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSpec {
    /// Check kind.
    pub kind: CheckKind,
    /// What to check: URL, `host:port`, path, script.
    pub target: String,
    /// Kind-specific options (`expect_status`, …).
    pub options: BTreeMap<String, String>,
}

/// A pool as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpec {
    /// Unique name.
    pub name: String,
    /// HA enabled.
    pub enabled: bool,
    /// `policy.*` overrides (pool- or host-scoped keys).
    pub policy: Overrides,
}

/// A pool with its replicated status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Configuration.
    pub spec: PoolSpec,
    /// Pool FSM status.
    pub status: PoolStatus,
    /// Hosts by state class, kept in step with every host change.
    pub counts: PoolCounts,
}

impl Pool {
    /// Current pool state.
    pub fn state(&self) -> PoolState {
        self.status.state
    }
}

/// A host as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSpec {
    /// Unique name.
    pub name: String,
    /// Pool it belongs to.
    pub pool: String,
    /// Provider kind (`hypervisor`, `storage`, `baremetal`, …), free text.
    pub kind: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Health check.
    pub health: Option<CheckSpec>,
    /// Activity check.
    pub activity: Option<CheckSpec>,
    /// Power drivers in escalation order: the fence levels.
    pub fence: Vec<DriverSpec>,
    /// Operator maintenance.
    pub maintenance: bool,
    /// `policy.*` overrides (host-scoped keys).
    pub policy: Overrides,
}

/// One past transition of a host, kept with the host for `explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When.
    pub at: Millis,
    /// Proposing member.
    pub by: NodeId,
    /// The transition.
    pub transition: Transition,
    /// The input that caused it (the evidence).
    pub evidence: Input,
}

/// Transitions kept per host.
pub const HOST_HISTORY: usize = 8;

/// A host with its replicated HA state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Configuration.
    pub spec: HostSpec,
    /// HA record.
    pub ha: HaRecord,
    /// Member that runs its checks and actions (assigned by the leader).
    pub owner: Option<NodeId>,
    /// Bumped on every owner change; proposals carry it.
    pub epoch: u64,
    /// The member that owned the host before the current owner (the most recent
    /// *other* owner). A new owner waits out that member's lease and the longest
    /// action timeout before acting: it may still be finishing an action.
    pub last_owner: Option<NodeId>,
    /// While a new owner waits out its predecessor (the takeover wait: member lease
    /// plus the longest action timeout, from the assignment), intents of this host
    /// get their deadlines counted from here, so the wait does not eat the time the
    /// new owner has to act. 0: no wait.
    pub act_after: Millis,
    /// Last transitions, newest last.
    pub history: Vec<HistoryEntry>,
}

/// Kind of an intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntentKind {
    /// Power cycle.
    Recover {
        /// Attempt number.
        attempt: u32,
    },
    /// Power off through one fence level.
    Fence {
        /// Level (index into the host's drivers).
        level: u32,
        /// Its driver kind.
        driver: DriverKind,
    },
}

/// State of an intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntentState {
    /// Committed; the owner may act on it.
    InFlight,
    /// Over.
    Ended {
        /// How.
        end: IntentEnd,
        /// When.
        at: Millis,
    },
}

/// A committed decision to act on a host: (host, epoch, id) is the fencing token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// Id (unique, increasing).
    pub id: u64,
    /// Host.
    pub host: String,
    /// Pool at the time.
    pub pool: String,
    /// Host epoch at the time.
    pub epoch: u64,
    /// Owner at the time.
    pub owner: Option<NodeId>,
    /// What to do.
    pub kind: IntentKind,
    /// Committed at.
    pub created_at: Millis,
    /// Must be reported by.
    pub deadline: Millis,
    /// Progress.
    pub state: IntentState,
}

/// A fence or recovery in the replicated ledger (budget and audit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Intent that started it.
    pub intent: u64,
    /// Host.
    pub host: String,
    /// Pool.
    pub pool: String,
    /// True for a fence (counts against the budget), false for a recovery.
    pub fence: bool,
    /// Started at.
    pub at: Millis,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A host changed HA state.
    HostTransition(Transition),
    /// A pool changed state.
    PoolTransition {
        /// Old state.
        from: PoolState,
        /// New state.
        to: PoolState,
        /// Why.
        reason: String,
    },
    /// An intent was committed.
    IntentStarted {
        /// Intent id.
        intent: u64,
        /// What.
        kind: IntentKind,
    },
    /// An intent ended.
    IntentEnded {
        /// Intent id.
        intent: u64,
        /// How.
        end: IntentEnd,
    },
    /// An operator must look.
    Alarm {
        /// What.
        text: String,
    },
    /// A host is verified powered off (or an operator confirmed it): the signal
    /// orchestrators use to restart its workloads elsewhere.
    HostFenced {
        /// How it was established: the fence driver kind, `operator` or
        /// `power-reading`.
        by: String,
        /// Fence level (0-based) when a fence driver did it.
        level: Option<u32>,
        /// Intent that did it, if any.
        intent: Option<u64>,
        /// The power state verified.
        power: crate::engine::record::PowerState,
        /// What the driver or operator said.
        detail: String,
    },
    /// Configuration changed.
    Config {
        /// What, in one line.
        what: String,
    },
}

/// One entry of the replicated event history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Sequence number (unique, increasing).
    pub seq: u64,
    /// When (proposer's clock).
    pub at: Millis,
    /// Proposing member.
    pub by: NodeId,
    /// Host concerned.
    pub host: Option<String>,
    /// Pool concerned.
    pub pool: Option<String>,
    /// What happened.
    pub kind: EventKind,
    /// The input that caused it, when it came from an observation.
    pub evidence: Option<Input>,
}

/// A member as the HA layer sees it: only a live member may own hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Member id (the Raft node id).
    pub id: NodeId,
    /// Its address.
    pub addr: String,
    /// Declared alive (seen within its lease) or dead.
    pub alive: bool,
    /// When that was last decided.
    pub since: Millis,
}
