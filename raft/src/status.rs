//! What `cluster status` reports: the members, their roles and how far each is behind.
//!
//! Built from the leader's view when possible (only the leader knows replication
//! progress and last contact per member).

use serde::{Deserialize, Serialize};

use crate::types::NodeId;

/// Role of a member in the current membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    /// The current leader.
    Leader,
    /// A voter that is not the leader.
    Follower,
    /// A non-voting member receiving the log (joining, or kept as a standby).
    Learner,
}

impl std::fmt::Display for MemberRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MemberRole::Leader => "leader",
            MemberRole::Follower => "follower",
            MemberRole::Learner => "learner",
        })
    }
}

/// One member as seen by the member that answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Member id.
    pub id: NodeId,
    /// Address (`host:port`) its peers use.
    pub addr: String,
    /// Role in the membership.
    pub role: MemberRole,
    /// Highest log index known to be replicated to it (leader view only).
    pub matched_index: Option<u64>,
    /// Entries it is behind the leader's last log index (leader view only).
    pub lag: Option<u64>,
    /// Milliseconds since the leader last heard from it (leader view only; 0 for the leader).
    pub last_contact_ms: Option<u64>,
}

/// The cluster as seen by one member (the leader, if it could be reached).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// Member that produced this view.
    pub answered_by: NodeId,
    /// Current leader id, if known.
    pub leader: Option<NodeId>,
    /// Current Raft term.
    pub term: u64,
    /// Last log index of the answering member.
    pub last_log_index: Option<u64>,
    /// Last applied index of the answering member.
    pub last_applied: Option<u64>,
    /// Index covered by the answering member's latest snapshot.
    pub snapshot_index: Option<u64>,
    /// Index up to which the answering member has purged its log.
    pub purged_index: Option<u64>,
    /// True once the member belongs to a cluster (has a membership).
    pub initialized: bool,
    /// Members, sorted by id.
    pub members: Vec<MemberStatus>,
}
