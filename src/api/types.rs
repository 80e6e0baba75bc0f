//! JSON bodies of the admin API, shared by the server and the CLI.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vigil_raft::NodeId;

use crate::inventory::{Change, Text};
use crate::state::model::Secret;

/// Error body: `{"error": {"code": "...", "message": "...", "hint": "..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Details of an API error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`invalid`, `not_found`, `no_leader`, …).
    pub code: String,
    /// One human line.
    pub message: String,
    /// What to do about it, when there is something to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// True when retrying later may succeed.
    #[serde(default)]
    pub retryable: bool,
}

/// `POST /api/v1/cluster/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    /// Id of the member to add.
    pub id: NodeId,
    /// Its `host:port`.
    pub addr: String,
}

/// `PUT /api/v1/settings/{key}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSettingBody {
    /// The value as text (`5s`, `0.3`, `true`, …).
    pub value: String,
}

/// One setting as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingView {
    /// Key.
    pub key: String,
    /// Effective value, as text.
    pub value: String,
    /// Declared default, as text.
    pub default: String,
    /// Type name.
    #[serde(rename = "type")]
    pub kind: String,
    /// True when explicitly set (not the default).
    pub explicit: bool,
    /// Revision that set it, when explicit.
    pub revision: Option<u64>,
    /// Member that proposed it, when explicit.
    pub set_by: Option<NodeId>,
    /// When it was set (ms since the epoch, proposer clock), when explicit.
    pub set_at_ms: Option<u64>,
    /// Description.
    pub help: String,
}

/// Answer to a write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteResult {
    /// State revision after the write.
    pub revision: u64,
    /// The setting after the write.
    pub setting: SettingView,
}

// ----- pools -----------------------------------------------------------------------

/// `PUT /api/v1/pools/{name}/policy`: values as text, parsed per key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPolicyBody {
    /// Overrides to set (`policy.fence.budget` → `5`).
    #[serde(default)]
    pub set: BTreeMap<String, Text>,
    /// Override keys to remove.
    #[serde(default)]
    pub unset: Vec<String>,
    /// A named profile whose every pair is set first (`fast`); `set` wins over it.
    #[serde(default)]
    pub profile: Option<String>,
}

/// The circuit breaker of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerView {
    /// True while open (no recovery or fence may start).
    pub open: bool,
    /// What tripped it.
    pub reason: Option<String>,
    /// Opened at (ms since the epoch).
    pub open_since_ms: Option<u64>,
    /// Failures below the threshold since (cooldown start).
    pub clear_since_ms: Option<u64>,
}

/// The fence budget of a pool now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetView {
    /// Fences started in the window.
    pub used: u32,
    /// Allowed in the window.
    pub max: u32,
    /// Still allowed.
    pub left: u32,
    /// When the oldest counted fence leaves the window.
    pub next_free_at_ms: Option<u64>,
}

/// Host counts of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountsView {
    /// All hosts.
    pub hosts: u32,
    /// With HA enabled.
    pub enabled: u32,
    /// Available.
    pub available: u32,
    /// Failing (suspect … fence-failed).
    pub failing: u32,
}

/// One effective policy value and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyValue {
    /// Setting key.
    pub key: String,
    /// Value as text.
    pub value: String,
    /// `host`, `pool`, `cluster` or `default`.
    pub source: String,
}

/// A pool as shown by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolView {
    /// Name.
    pub name: String,
    /// HA enabled.
    pub enabled: bool,
    /// `disabled`, `active` or `inactive`.
    pub state: String,
    /// Why it is inactive (empty otherwise).
    pub reason: String,
    /// In this state since (ms since the epoch).
    pub since_ms: u64,
    /// Circuit breaker.
    pub breaker: BreakerView,
    /// Fence budget now.
    pub fence_budget: BudgetView,
    /// Host counts.
    pub counts: CountsView,
    /// The pool's own overrides, as text.
    pub policy: BTreeMap<String, String>,
    /// Every `policy.*` value in force for the pool.
    pub effective_policy: Vec<PolicyValue>,
}

/// Answer to a pool write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolWrite {
    /// State revision after the write.
    pub revision: u64,
    /// The pool after the write.
    pub pool: PoolView,
}

/// Answer to a removal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Removed {
    /// State revision after the write.
    pub revision: u64,
    /// What was removed.
    pub removed: String,
}

// ----- hosts -----------------------------------------------------------------------

/// A health or activity check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckView {
    /// Kind.
    pub kind: String,
    /// Target.
    pub target: String,
    /// Options.
    pub options: BTreeMap<String, String>,
}

/// One fence level. The password is never returned: only whether it is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceLevelView {
    /// Driver kind.
    pub kind: String,
    /// BMC address.
    pub address: String,
    /// BMC user.
    pub username: String,
    /// True when a password is configured.
    pub password_set: bool,
    /// Driver options.
    pub options: BTreeMap<String, String>,
}

/// A host as shown by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostView {
    /// Name.
    pub name: String,
    /// Pool.
    pub pool: String,
    /// Provider kind.
    pub kind: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// HA state (`available`, `fence-failed`, …).
    pub state: String,
    /// In this state since (ms since the epoch).
    pub since_ms: u64,
    /// Last known power state (`on`, `off`, `unknown`).
    pub power: String,
    /// Why it is ineligible, when it is.
    pub ineligible: Option<String>,
    /// Member running its checks.
    pub owner: Option<NodeId>,
    /// Ownership epoch.
    pub epoch: u64,
    /// Operator maintenance.
    pub maintenance: bool,
    /// Health check.
    pub health: Option<CheckView>,
    /// Activity check.
    pub activity: Option<CheckView>,
    /// Fence levels in escalation order.
    pub fence: Vec<FenceLevelView>,
    /// The host's own overrides, as text.
    pub policy: BTreeMap<String, String>,
    /// Intent in flight.
    pub intent: Option<u64>,
    /// Held action.
    pub blocked: Option<String>,
    /// Raised alarm.
    pub alarm: Option<String>,
}

/// `PUT /api/v1/hosts/{name}/maintenance`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceBody {
    /// On or off.
    pub on: bool,
}

/// `POST /api/v1/hosts/{name}/admin`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminBody {
    /// `retry`, `confirm-off` or `unfence`.
    pub op: String,
}

/// One state change of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionView {
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// Proposing member.
    pub by: NodeId,
    /// Old state.
    pub from: String,
    /// New state.
    pub to: String,
    /// Why.
    pub reason: String,
    /// Kind of input that caused it (`health`, `activity`, `power`, `outcome`,
    /// `tick`, `admin`).
    pub evidence_kind: String,
    /// What that input said, in one line.
    pub evidence: String,
}

/// Answer to a host write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostWrite {
    /// State revision after the write.
    pub revision: u64,
    /// The host after the write.
    pub host: HostView,
    /// The state change the write caused, if any.
    #[serde(default)]
    pub transition: Option<TransitionView>,
    /// What happened when it was not a state change (e.g. a held retry).
    #[serde(default)]
    pub note: Option<String>,
}

/// The pool's permission to act, as the engine sees it for a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateView {
    /// Pool state.
    pub state: String,
    /// Why it is inactive (empty otherwise).
    pub reason: String,
    /// True when a recovery or fence may start.
    pub actions_allowed: bool,
    /// Fences the pool may still start in the budget window.
    pub fence_budget_left: u32,
}

/// An intent as shown by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentView {
    /// Id.
    pub id: u64,
    /// `recover` or `fence`.
    pub kind: String,
    /// Recovery attempt (recover).
    pub attempt: Option<u32>,
    /// Fence level, 0-based (fence).
    pub level: Option<u32>,
    /// Driver of that level (fence).
    pub driver: Option<String>,
    /// Host epoch it was committed under.
    pub epoch: u64,
    /// Owner it was committed under.
    pub owner: Option<NodeId>,
    /// Committed at.
    pub created_at_ms: u64,
    /// Must be reported by.
    pub deadline_ms: u64,
    /// `in-flight`, or how it ended.
    pub state: String,
}

/// `GET /api/v1/hosts/{name}/explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainView {
    /// Host.
    pub host: String,
    /// Its pool.
    pub pool: String,
    /// HA state.
    pub state: String,
    /// In this state since.
    pub since_ms: u64,
    /// Power state.
    pub power: String,
    /// Why it is ineligible, when it is.
    pub ineligible: Option<String>,
    /// What the engine waits for, in one sentence.
    pub waiting_for: String,
    /// When the next thing happens by itself.
    pub next_at_ms: Option<u64>,
    /// Whether a recovery or fence could start now, and why not.
    pub can_act: String,
    /// Held action.
    pub blocked: Option<String>,
    /// Raised alarm.
    pub alarm: Option<String>,
    /// Owner and epoch.
    pub owner: Option<NodeId>,
    /// Ownership epoch.
    pub epoch: u64,
    /// The pool gate.
    pub pool_gate: GateView,
    /// The intent in flight.
    pub intent: Option<IntentView>,
    /// Last transitions, newest last.
    pub transitions: Vec<TransitionView>,
    /// The answering member's clock when this was computed (for relative times).
    pub now_ms: u64,
}

// ----- inventory -------------------------------------------------------------------

/// `POST /api/v1/apply`. `Debug` shows neither the document nor the passwords.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    /// The inventory YAML.
    pub yaml: String,
    /// Print the diff, propose nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Remove pools and hosts that are not in the file.
    #[serde(default)]
    pub prune: bool,
    /// Values of the `password_env` variables (the CLI resolves them from its own
    /// environment).
    #[serde(default)]
    pub env: BTreeMap<String, Secret>,
}

impl std::fmt::Debug for ApplyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyBody")
            .field("yaml_bytes", &self.yaml.len())
            .field("dry_run", &self.dry_run)
            .field("prune", &self.prune)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Answer to `POST /api/v1/apply`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyResult {
    /// Additions, changes and removals.
    pub changes: Vec<Change>,
    /// Pools and hosts not in the file, kept.
    pub kept: Vec<Change>,
    /// Entries of the file that already match.
    pub unchanged: usize,
    /// True when a change was committed.
    pub applied: bool,
    /// True for `--dry-run`.
    pub dry_run: bool,
    /// State revision after the apply (or now, when nothing was applied).
    pub revision: u64,
}
