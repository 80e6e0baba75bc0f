//! JSON bodies of the admin API, shared by the server and the CLI.

use serde::{Deserialize, Serialize};
use vigil_raft::NodeId;

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
