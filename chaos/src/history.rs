//! What a run leaves behind, as plain data: the facts the checkers judge.
//!
//! Everything is recorded with `t_ms`, milliseconds since the run started on the
//! harness's monotonic clock, so that a saved run can be checked again later
//! (`vigil-chaos check DIR`) with no cluster at all. The checkers see only these
//! facts — ground truth from the fleet, what the harness did, what the members said —
//! never the harness's own beliefs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Milliseconds since the start of the run.
pub type Ms = u64;

/// One step of the harness: a nemesis applied or undone, an operator action, a phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// When.
    pub t_ms: Ms,
    /// What, as a stable kind (`kill`, `restart`, `links-cut`, `links-heal`,
    /// `host-crash`, `host-heal`, `bmc-fault`, `maintenance`, `phase`…).
    pub kind: String,
    /// Member concerned, if any.
    pub member: Option<u64>,
    /// Host concerned, if any.
    pub host: Option<String>,
    /// Human detail (`leader, term 3`, `fault=ReplyLost`, …).
    pub detail: String,
}

/// How a host was made to fail (or healed) by the harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureKind {
    /// OS dead, power on.
    Crash,
    /// OS hung, power on.
    Hang,
    /// Running and working but unreachable by health checks: must never be fenced.
    Isolate,
}

/// A host failure the harness injected, from injection to heal (if healed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Injected {
    /// Host.
    pub host: String,
    /// What.
    pub kind: FailureKind,
    /// When it was injected.
    pub at: Ms,
    /// When the harness healed it (None: it stayed failed until the end unless a
    /// power cycle healed it).
    pub healed_at: Option<Ms>,
    /// Whether a power cycle brings it back.
    pub reboot_heals: bool,
    /// The BMC fault mode at injection (`None`, `DiesWithHost`…), as text.
    pub bmc_fault: String,
}

/// The true condition of a host as the fleet knew it just before a power change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    /// Healthy.
    Running,
    /// Working but unreachable.
    Isolated,
    /// Hung.
    Hung,
    /// Crashed.
    Crashed,
}

impl Condition {
    /// True when the host was doing its work (fencing it kills live work).
    pub fn working(self) -> bool {
        matches!(self, Condition::Running | Condition::Isolated)
    }
}

/// What caused a power change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerCause {
    /// A driver's power-off (a fence).
    Off,
    /// A driver's power-on.
    On,
    /// A driver's power cycle (either half).
    Cycle,
    /// The harness (or a BMC by itself), not a driver.
    Harness,
}

/// One real power change of a host (the fleet's ground truth).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    /// Fleet-wide sequence number.
    pub seq: u64,
    /// When.
    pub t_ms: Ms,
    /// Host.
    pub host: String,
    /// True when the change was on → off.
    pub off: bool,
    /// What did it.
    pub cause: PowerCause,
    /// Which member's driver did it (None: not a member).
    pub member: Option<u64>,
    /// The host's condition just before.
    pub condition: Condition,
}

/// A replicated event, reduced to what the checkers need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFact {
    /// Event sequence number.
    pub seq: u64,
    /// Proposer's wall clock (ms since the Unix epoch).
    pub at_wall: u64,
    /// Host, if any.
    pub host: Option<String>,
    /// Pool, if any.
    pub pool: Option<String>,
    /// `transition`, `fenced`, `alarm`, `intent-started`, `intent-ended`, `pool`,
    /// `config`.
    pub kind: String,
    /// For transitions: `from -> to`; otherwise a short detail.
    pub detail: String,
}

/// One sample of one member's view, taken by the harness's observer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// When.
    pub t_ms: Ms,
    /// Member observed.
    pub member: u64,
    /// Its Raft term.
    pub term: u64,
    /// The leader it believes in.
    pub leader: Option<u64>,
    /// Whether it is the leader itself.
    pub is_leader: bool,
    /// Its last applied index.
    pub applied: Option<u64>,
    /// Host → (owner, epoch) in its applied state; only hosts whose pair changed
    /// since this member's previous sample (the first sample has all).
    pub owners: BTreeMap<String, (Option<u64>, u64)>,
}

/// One write of the acknowledged-writes workload (S4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    /// Setting key written (`meta.chaos-N`).
    pub key: String,
    /// Value.
    pub value: String,
    /// Sent at.
    pub t_ms: Ms,
    /// Acknowledged as committed.
    pub acked: bool,
}

/// A fence or recovery start in the replicated ledger, read at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerFact {
    /// Intent.
    pub intent: u64,
    /// Host.
    pub host: String,
    /// Pool.
    pub pool: String,
    /// A fence (counts against the budget) or a recovery.
    pub fence: bool,
    /// Proposer's wall clock.
    pub at_wall: u64,
}

/// One intent's begin records, read at the end (who was cleared to touch the BMC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentFact {
    /// Intent id.
    pub id: u64,
    /// Host.
    pub host: String,
    /// `recover` or `fence`.
    pub kind: String,
    /// Members that committed a begin record for it, in order.
    pub begun_by: Vec<u64>,
}

/// A host at the end of the run, as the surviving members agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEnd {
    /// Host.
    pub host: String,
    /// HA state (`available`, `fenced`, …).
    pub state: String,
    /// Whether an alarm is raised.
    pub alarm: bool,
    /// Owner.
    pub owner: Option<u64>,
    /// True power state (ground truth).
    pub powered: bool,
    /// True condition.
    pub condition: Condition,
}

/// A member at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEnd {
    /// Member.
    pub member: u64,
    /// Last applied index.
    pub applied: Option<u64>,
    /// State digest at that index.
    pub digest: String,
}

/// The policy numbers the checkers' bounds are derived from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounds {
    /// `member.lease`.
    pub lease_ms: u64,
    /// Health interval × failures + health timeout: how long a death takes to notice.
    pub detect_ms: u64,
    /// Activity rounds × (max interval + timeout).
    pub verify_ms: u64,
    /// Recovery attempts × (recovery timeout + recovery wait), 0 if recovery is off.
    pub recover_ms: u64,
    /// Fence levels × fence timeout.
    pub fence_ms: u64,
    /// Recovery attempts allowed per incident.
    pub recovery_attempts: u32,
    /// Fence budget per pool and its window.
    pub fence_budget: u32,
    /// The budget's window.
    pub budget_window_ms: u64,
    /// A host continuously healthy this long before a power-off cannot have looked
    /// dead to vigil (the S2 grace: a heal racing a decision is not a violation).
    pub healthy_grace_ms: u64,
}

/// Everything a run recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// The harness's steps, in time order.
    pub ops: Vec<Op>,
    /// Injected host failures.
    pub injected: Vec<Injected>,
    /// Ground truth.
    pub truth: Vec<Truth>,
    /// Replicated events (from a surviving member, at the end).
    pub events: Vec<EventFact>,
    /// Observer samples.
    pub samples: Vec<Sample>,
    /// The write workload.
    pub writes: Vec<Write>,
    /// Keys whose value each surviving member holds at the end (S4).
    pub final_settings: BTreeMap<u64, BTreeMap<String, String>>,
    /// The replicated ledger at the end.
    pub ledger: Vec<LedgerFact>,
    /// Intents still known at the end with their begin records.
    pub intents: Vec<IntentFact>,
    /// Hosts at the end.
    pub hosts: Vec<HostEnd>,
    /// Members at the end.
    pub members: Vec<MemberEnd>,
    /// When the last fault was undone (the quiet phase starts): liveness bounds count
    /// from here.
    pub healed_at: Ms,
    /// When the run ended.
    pub end_ms: Ms,
    /// Bounds from the policy.
    pub bounds: Option<Bounds>,
}
