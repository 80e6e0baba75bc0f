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
    /// *other* owner), for operators and `explain`.
    pub last_owner: Option<NodeId>,
    /// Set when a power cycle of this host began (see [`Begin`]): until `until`, no
    /// executor other than the one that began it may start an action on the host —
    /// the cycle may still be running, and its "on" step must never follow another
    /// executor's power-off. Intents started meanwhile count their time from
    /// `until`. This is the whole takeover wait: nothing else can be in flight.
    pub cycle_guard: Option<CycleGuard>,
    /// Last transitions, newest last.
    pub history: Vec<HistoryEntry>,
}

/// A power cycle that may still be running on its executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleGuard {
    /// The intent of the cycle.
    pub intent: u64,
    /// Its executor: member …
    pub by: NodeId,
    /// … and that member's process incarnation.
    pub incarnation: u64,
    /// Wall-clock time (ms) by which the cycle is over on every member's clock:
    /// begin stamp + the intent's time budget + `cluster.max_clock_skew`.
    pub until: Millis,
}

/// A committed record that an executor was cleared to call the BMC for an intent.
///
/// The executor commits it (after a check at apply that it owns the host at the
/// current epoch and the intent is in flight) *before* its first BMC call, so the
/// replicated state always knows who may have acted: an intent with no `Begin` was
/// never acted on; one begun by another executor (another member, or an earlier
/// process of the same member) has an unknown outcome and is never repeated blindly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Begin {
    /// Executing member.
    pub by: NodeId,
    /// Host epoch it acted at.
    pub epoch: u64,
    /// Process incarnation of the member (random per start).
    pub incarnation: u64,
    /// Its wall clock when it proposed the begin.
    pub at: Millis,
}

/// How many times takeovers may push an intent's deadline back (each reassignment of
/// a host with an intent in flight gives the new owner the intent's full time budget).
/// Past that, the intent times out like any other: the next fence level, FenceFailed
/// with an alarm, or for a power cycle the recovery wait.
pub const MAX_INTENT_EXTENSIONS: u32 = 3;

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
    /// The action's time budget, fixed when the intent was created (the policy's
    /// fence or recovery timeout then): an executor never runs longer than this from
    /// when it began, whatever the policy says later.
    pub timeout: Millis,
    /// Executors cleared to act, in commit order (bounded: one per owner change).
    pub begun: Vec<Begin>,
    /// Times a takeover pushed the deadline back (at most [`MAX_INTENT_EXTENSIONS`]).
    pub extensions: u32,
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
