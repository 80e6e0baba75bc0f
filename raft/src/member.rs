//! A running member: openraft wired to sled storage, the HTTP transport and the
//! proposal batcher, plus the cluster operations (init, join, leave, status).
//!
//! Anything that must run on the leader (writes, membership changes, the read index of
//! a linearizable read) is forwarded to it transparently when asked of a follower, over
//! the internal `/raft/*` routes; a forwarded request is never forwarded again, so a
//! leader change mid-request gives a clear retryable error instead of a loop.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{
    ChangeMembershipError, CheckIsLeaderError, ClientWriteError, InitializeError, RaftError,
};
use openraft::{BasicNode, ChangeMembers, ServerState};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::app::StateMachine;
use crate::batcher::{BatchStats, Batcher, SubmitFn};
use crate::codec;
use crate::config::RaftTimings;
use crate::error::{Error, Result};
use crate::network::{build_client, ContactBook, HttpNetwork};
use crate::sm_store::{Applied, SmStore};
use crate::status::{ClusterStatus, MemberRole, MemberStatus};
use crate::storage;
use crate::types::{Batch, NodeId, Raft};

/// How long a join waits for the new member to catch up before rolling back.
const JOIN_CATCH_UP: Duration = Duration::from_secs(120);

/// Who a member is, as answered on `/raft/identity` (checked before a join).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Member id.
    pub id: NodeId,
    /// Whether it already has a membership.
    pub initialized: bool,
    /// Leader it knows of.
    pub leader: Option<NodeId>,
}

/// Body of a forwarded join.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    /// Id of the member to add.
    pub id: NodeId,
    /// Its `host:port`.
    pub addr: String,
}

/// Body of a forwarded leave.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaveRequest {
    /// Id of the member to remove.
    pub id: NodeId,
}

pub(crate) struct Inner<A: StateMachine> {
    pub(crate) id: NodeId,
    pub(crate) addr: String,
    pub(crate) raft: Raft<A>,
    pub(crate) sm: SmStore<A>,
    pub(crate) db: sled::Db,
    pub(crate) sync: Arc<crate::durable::DiskSync>,
    pub(crate) client: reqwest::Client,
    pub(crate) contacts: Arc<ContactBook>,
    pub(crate) batcher: Batcher<A::Command, A::Response>,
    pub(crate) committed: crate::log_store::CommitIndex,
    pub(crate) timings: RaftTimings,
    pub(crate) retired: std::sync::atomic::AtomicBool,
}

/// A running member. Cheap to clone.
pub struct Member<A: StateMachine> {
    pub(crate) inner: Arc<Inner<A>>,
}

impl<A: StateMachine> Clone for Member<A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<A: StateMachine> fmt::Debug for Member<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("id", &self.inner.id)
            .field("addr", &self.inner.addr)
            .finish()
    }
}

/// The write path shared by the batcher and forwarded requests.
struct Writer<A: StateMachine> {
    raft: Raft<A>,
    client: reqwest::Client,
    contacts: Arc<ContactBook>,
    leader_wait: Duration,
}

impl<A: StateMachine> Clone for Writer<A> {
    fn clone(&self) -> Self {
        Self {
            raft: self.raft.clone(),
            client: self.client.clone(),
            contacts: self.contacts.clone(),
            leader_wait: self.leader_wait,
        }
    }
}

impl<A: StateMachine> Writer<A> {
    /// Commit `cmds` as one entry, here if leader, else on the leader.
    async fn write(&self, cmds: Vec<A::Command>) -> Result<Vec<A::Response>> {
        let deadline = Instant::now() + self.leader_wait;
        loop {
            let leader_addr =
                match commit_bounded(&self.raft, cmds.clone(), self.leader_wait).await? {
                    Ok(resp) => return Ok(resp.data.0),
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                        f.leader_node.map(|n| n.addr)
                    }
                    Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                        return Err(Error::Invalid(e.to_string()))
                    }
                    Err(RaftError::Fatal(f)) => return Err(f.into()),
                };
            if let Some(addr) = leader_addr {
                match post_bincode::<_, Result<Vec<A::Response>>>(
                    &self.client,
                    &self.contacts,
                    &addr,
                    "write",
                    &Batch(cmds.clone()),
                    self.leader_wait * 2,
                )
                .await
                {
                    Ok(Ok(r)) => return Ok(r),
                    Ok(Err(e)) if e.is_retryable() => {}
                    Ok(Err(e)) => return Err(e),
                    // Never reached the leader: safe to try again.
                    Err(e @ Error::Unreachable { .. }) if Instant::now() >= deadline => {
                        return Err(e)
                    }
                    Err(Error::Unreachable { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `client_write` with a bound: a leader that lost its majority (partitioned, or
/// deposed without knowing it yet) would otherwise hold the caller until the
/// partition heals. After `2 × leader_wait` the caller gets [`Error::Timeout`] —
/// the outcome is then unknown (the entry may still commit), as for any timeout.
async fn commit_bounded<A: StateMachine>(
    raft: &Raft<A>,
    cmds: Vec<A::Command>,
    leader_wait: Duration,
) -> Result<
    std::result::Result<
        openraft::raft::ClientWriteResponse<crate::types::TypeConfig<A>>,
        RaftError<NodeId, ClientWriteError<NodeId, openraft::BasicNode>>,
    >,
> {
    let bound = leader_wait * 2;
    tokio::time::timeout(bound, raft.client_write(Batch(cmds)))
        .await
        .map_err(|_| Error::Timeout {
            after: bound,
            what: "waiting for the entry to commit (quorum lost?)".into(),
        })
}

/// Fail as unreachable while this member's links are cut (fault injection).
fn links_up(links: &ContactBook, addr: &str) -> Result<()> {
    if links.is_cut() {
        return Err(Error::Unreachable {
            addr: addr.to_string(),
            reason: "links cut (fault injection)".into(),
        });
    }
    Ok(())
}

/// POST a bincode body to `http://{addr}/raft/{path}` and decode a bincode answer.
async fn post_bincode<Req: Serialize, Resp: DeserializeOwned>(
    client: &reqwest::Client,
    links: &ContactBook,
    addr: &str,
    path: &str,
    body: &Req,
    timeout: Duration,
) -> Result<Resp> {
    links_up(links, addr)?;
    let body = codec::encode(body)?;
    let resp = client
        .post(format!("http://{addr}/raft/{path}"))
        .timeout(timeout)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .map_err(|e| transport_error(addr, timeout, e))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| transport_error(addr, timeout, e))?;
    if !status.is_success() {
        return Err(Error::Remote {
            addr: addr.to_string(),
            status: status.as_u16(),
            message: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    Ok(codec::decode(&bytes)?)
}

/// Exchange JSON with a peer's `/raft/{path}` (GET when `body` is None).
async fn call_json<Req: Serialize, Resp: DeserializeOwned>(
    client: &reqwest::Client,
    links: &ContactBook,
    addr: &str,
    path: &str,
    body: Option<&Req>,
    timeout: Duration,
) -> Result<Resp> {
    links_up(links, addr)?;
    let url = format!("http://{addr}/raft/{path}");
    let req = match body {
        Some(b) => client.post(url).json(b),
        None => client.get(url),
    };
    let resp = req
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| transport_error(addr, timeout, e))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| transport_error(addr, timeout, e))?;
    if !status.is_success() {
        return Err(Error::Remote {
            addr: addr.to_string(),
            status: status.as_u16(),
            message: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::Codec(format!("from {addr}: {e}")))
}

fn transport_error(addr: &str, timeout: Duration, e: reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::Timeout {
            after: timeout,
            what: format!("for {addr}"),
        }
    } else if e.is_connect() {
        Error::Unreachable {
            addr: addr.to_string(),
            reason: root_cause(&e),
        }
    } else {
        Error::Remote {
            addr: addr.to_string(),
            status: 0,
            message: root_cause(&e),
        }
    }
}

/// The innermost error message (reqwest wraps the useful part several levels deep).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn membership_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> Error {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Error::NotLeader {
            me: 0,
            leader: f.leader_id,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(_),
        )) => Error::Invalid(
            "another membership change is still in progress; retry in a moment".into(),
        ),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            Error::Invalid(e.to_string())
        }
        RaftError::Fatal(f) => f.into(),
    }
}

impl<A: StateMachine> Member<A> {
    /// Open the data dir (checking it belongs to `id`) and start Raft. The member serves
    /// nothing until its [`Member::router`] is mounted on an HTTP server.
    pub async fn start(
        id: NodeId,
        advertise: &str,
        data_dir: &Path,
        timings: RaftTimings,
    ) -> Result<Self> {
        let config = Arc::new(timings.to_openraft("vigil")?);
        let st = storage::open::<A>(data_dir, id)?;
        let client = build_client();
        let contacts = Arc::new(ContactBook::default());
        let network = HttpNetwork::new(client.clone(), contacts.clone());
        let sm = st.sm.clone();
        let committed = st.log.commit_index();
        let raft = Raft::<A>::new(id, config, network, st.log, st.sm)
            .await
            .map_err(|e| Error::Fatal(e.to_string()))?;
        let writer = Writer {
            raft: raft.clone(),
            client: client.clone(),
            contacts: contacts.clone(),
            leader_wait: timings.leader_wait(),
        };
        let submit: SubmitFn<A::Command, A::Response> = Arc::new(move |cmds| {
            let w = writer.clone();
            Box::pin(async move { w.write(cmds).await })
        });
        let batcher = Batcher::spawn(submit, timings.max_batch, timings.max_inflight);
        Ok(Self {
            inner: Arc::new(Inner {
                id,
                addr: advertise.to_string(),
                raft,
                sm,
                db: st.db,
                sync: st.sync,
                client,
                contacts,
                batcher,
                committed,
                timings,
                retired: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// Cut (true) or restore (false) this member's links to its peers: a fault
    /// injection for partition tests and the chaos harness (see [`ContactBook`]).
    pub fn set_links_cut(&self, cut: bool) {
        self.inner.contacts.set_cut(cut);
    }

    /// How long since this member last heard from `peer` (an answer to one of our
    /// requests, or a leader's append entries to us). A new leader uses it to judge the
    /// previous leader's liveness from when it last heard from it.
    pub fn last_heard(&self, peer: NodeId) -> Option<Duration> {
        self.inner.contacts.last_heard(peer)
    }

    pub(crate) fn heard_from(&self, peer: NodeId) {
        self.inner.contacts.heard_from(peer);
    }

    /// Are this member's links cut?
    pub fn links_cut(&self) -> bool {
        self.inner.contacts.is_cut()
    }

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The address peers reach this member at.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// The underlying openraft handle (metrics, waits).
    pub fn raft(&self) -> &Raft<A> {
        &self.inner.raft
    }

    /// Batching counters.
    pub fn batch_stats(&self) -> &BatchStats {
        self.inner.batcher.stats()
    }

    /// The highest log index this member knows to be committed (`None` before the
    /// first commit). Cheap: an atomic updated when openraft saves the commit index.
    pub fn commit_index(&self) -> Option<u64> {
        self.inner.committed.get()
    }

    /// The shared HTTP client (reuse it for other peer traffic).
    pub fn client(&self) -> &reqwest::Client {
        &self.inner.client
    }

    /// Propose one command through the batcher; returns its response once committed
    /// and applied. Works on any member (followers forward to the leader).
    pub async fn write(&self, cmd: A::Command) -> Result<A::Response> {
        self.ensure_initialized()?;
        self.inner.batcher.propose(cmd).await
    }

    /// Commit several commands as one log entry: they are applied together, in order,
    /// with nothing interleaved (the unit for "apply this change atomically").
    pub async fn write_all(&self, cmds: Vec<A::Command>) -> Result<Vec<A::Response>> {
        self.ensure_initialized()?;
        self.writer().write(cmds).await
    }

    /// Fail fast, with a useful message, on a member that has no membership yet
    /// (instead of waiting for a leader that will never come).
    fn ensure_initialized(&self) -> Result<()> {
        if self.is_retired() {
            return Err(Error::Retired(self.inner.id));
        }
        if self.identity().initialized {
            Ok(())
        } else {
            Err(Error::NotInitialized(self.inner.id))
        }
    }

    fn writer(&self) -> Writer<A> {
        Writer {
            raft: self.inner.raft.clone(),
            client: self.inner.client.clone(),
            contacts: self.inner.contacts.clone(),
            leader_wait: self.inner.timings.leader_wait(),
        }
    }

    /// Commit a batch that was forwarded to us; never forwards again.
    pub(crate) async fn write_forwarded(&self, cmds: Vec<A::Command>) -> Result<Vec<A::Response>> {
        match commit_bounded(&self.inner.raft, cmds, self.inner.timings.leader_wait()).await? {
            Ok(resp) => Ok(resp.data.0),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(Error::NotLeader {
                    me: self.inner.id,
                    leader: f.leader_id,
                })
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(Error::Invalid(e.to_string()))
            }
            Err(RaftError::Fatal(f)) => Err(f.into()),
        }
    }

    /// Read the local state (may be behind the leader; fine for dashboards).
    pub fn read_local<T>(&self, f: impl FnOnce(&A) -> T) -> T {
        f(&self.inner.sm.read().app)
    }

    /// Read with everything committed before the call visible (ReadIndex). On a
    /// follower the read index comes from the leader, then the local state machine
    /// catches up to it, so the read itself is served locally.
    pub async fn read<T>(&self, f: impl FnOnce(&A) -> T) -> Result<T> {
        self.ensure_initialized()?;
        let index = self.read_index().await?;
        if index > 0 {
            self.wait_applied(index, self.inner.timings.leader_wait())
                .await?;
        }
        Ok(self.read_local(f))
    }

    /// The log index a linearizable read must wait for.
    async fn read_index(&self) -> Result<u64> {
        let deadline = Instant::now() + self.inner.timings.leader_wait();
        loop {
            match self.inner.raft.get_read_log_id().await {
                Ok((read, _)) => return Ok(read.map(|l| l.index).unwrap_or(0)),
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                    if let Some(node) = f.leader_node {
                        let r: Result<Result<u64>> = post_bincode(
                            &self.inner.client,
                            &self.inner.contacts,
                            &node.addr,
                            "read-index",
                            &(),
                            self.inner.timings.leader_wait(),
                        )
                        .await;
                        match r {
                            Ok(Ok(i)) => return Ok(i),
                            Ok(Err(e)) | Err(e) if !e.is_retryable() => return Err(e),
                            _ => {}
                        }
                    }
                }
                Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q))) => {
                    if Instant::now() >= deadline {
                        return Err(Error::Invalid(format!("leader cannot reach a quorum: {q}")));
                    }
                }
                Err(RaftError::Fatal(f)) => return Err(f.into()),
            }
            if Instant::now() >= deadline {
                return Err(Error::NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Leader side of a follower's read: confirm leadership, return the read index.
    pub(crate) async fn read_index_forwarded(&self) -> Result<u64> {
        match self.inner.raft.get_read_log_id().await {
            Ok((read, _)) => Ok(read.map(|l| l.index).unwrap_or(0)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(Error::NotLeader {
                    me: self.inner.id,
                    leader: f.leader_id,
                })
            }
            Err(RaftError::APIError(e)) => Err(Error::Invalid(e.to_string())),
            Err(RaftError::Fatal(f)) => Err(f.into()),
        }
    }

    /// Wait until the local state machine has applied `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<()> {
        self.inner
            .raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "applied")
            .await
            .map(|_| ())
            .map_err(|_| Error::Timeout {
                after: timeout,
                what: format!("for member {} to apply index {index}", self.inner.id),
            })
    }

    /// Wait until some leader is known; returns its id.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId> {
        let m = self
            .inner
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .map_err(|_| Error::Timeout {
                after: timeout,
                what: "for a leader".into(),
            })?;
        m.current_leader.ok_or(Error::NoLeader)
    }

    /// Apply-side digest of the application state (SHA-256 hex).
    pub fn digest(&self) -> String {
        self.inner.sm.digest()
    }

    /// Last applied log index.
    pub fn last_applied(&self) -> Option<u64> {
        self.inner.sm.read().last_applied.map(|l| l.index)
    }

    /// Run `f` with the full applied state (app, last applied id, membership).
    pub fn with_applied<T>(&self, f: impl FnOnce(&Applied<A>) -> T) -> T {
        f(&self.inner.sm.read())
    }

    /// Who this member is.
    pub fn identity(&self) -> Identity {
        let m = self.inner.raft.metrics().borrow().clone();
        let initialized = m.membership_config.membership().nodes().next().is_some();
        Identity {
            id: self.inner.id,
            initialized,
            leader: m.current_leader,
        }
    }

    /// Make this member a one-member cluster. Refuses if it already has a membership.
    pub async fn initialize(&self) -> Result<()> {
        if self.identity().initialized {
            return Err(Error::AlreadyInitialized);
        }
        let nodes = BTreeMap::from([(
            self.inner.id,
            BasicNode {
                addr: self.inner.addr.clone(),
            },
        )]);
        match self.inner.raft.initialize(nodes).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                Err(Error::AlreadyInitialized)
            }
            Err(RaftError::APIError(e)) => Err(Error::Invalid(e.to_string())),
            Err(RaftError::Fatal(f)) => Err(f.into()),
        }
    }

    /// The current leader and its address, as this member knows them.
    pub fn leader_addr(&self) -> Option<(NodeId, String)> {
        let m = self.inner.raft.metrics().borrow().clone();
        let leader = m.current_leader?;
        let addr = m
            .membership_config
            .membership()
            .get_node(&leader)?
            .addr
            .clone();
        Some((leader, addr))
    }

    /// Is this member the leader (in its own view)?
    pub fn is_leader(&self) -> bool {
        self.inner.raft.metrics().borrow().state == ServerState::Leader
    }

    /// While leader: milliseconds since a quorum last acknowledged this leader. A
    /// leader cut off from the majority still believes it leads until it hears of a
    /// higher term, but this age grows: callers that grant anything on the leader's
    /// authority (member leases) must check it. `None` when not leader.
    pub fn quorum_ack_age_ms(&self) -> Option<u64> {
        let rx = self.inner.raft.metrics();
        let m = rx.borrow();
        if m.state != ServerState::Leader {
            return None;
        }
        m.millis_since_quorum_ack
    }

    /// Every member of the cluster configuration (voters and learners): id, address.
    pub fn peers(&self) -> Vec<(NodeId, String)> {
        let rx = self.inner.raft.metrics();
        let m = rx.borrow();
        m.membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect()
    }

    /// Run a leader-only operation here or on the leader.
    async fn on_leader<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Option<Resp>> {
        if self.is_leader() {
            return Ok(None);
        }
        let deadline = Instant::now() + self.inner.timings.leader_wait();
        loop {
            if self.is_leader() {
                return Ok(None);
            }
            if let Some((_, addr)) = self.leader_addr() {
                let r: Result<std::result::Result<Resp, Error>> = call_json(
                    &self.inner.client,
                    &self.inner.contacts,
                    &addr,
                    path,
                    Some(req),
                    timeout,
                )
                .await;
                match r {
                    Ok(Ok(v)) => return Ok(Some(v)),
                    // The leader answered: its error is the answer (e.g. the member to
                    // join is unreachable), unless leadership moved in the meantime.
                    Ok(Err(e)) if !matches!(e, Error::NotLeader { .. } | Error::NoLeader) => {
                        return Err(e)
                    }
                    // The leader itself could not be reached: retry while it may recover
                    // or be replaced.
                    Err(e) if !e.is_retryable() => return Err(e),
                    _ => {}
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Add member `id` at `addr`: as a learner, wait for it to catch up, then promote
    /// it to voter. Safe to re-run after a failure. Rolls back the learner if it cannot
    /// catch up. Returns the cluster status afterwards.
    pub async fn join(&self, id: NodeId, addr: &str) -> Result<ClusterStatus> {
        self.ensure_initialized()?;
        let req = JoinRequest {
            id,
            addr: addr.to_string(),
        };
        if let Some(status) = self
            .on_leader("join", &req, JOIN_CATCH_UP + Duration::from_secs(30))
            .await?
        {
            return Ok(status);
        }
        self.join_local(req).await?;
        self.status().await
    }

    pub(crate) async fn join_local(&self, req: JoinRequest) -> Result<()> {
        let JoinRequest { id, addr } = req;
        if !self.is_leader() {
            return Err(Error::NotLeader {
                me: self.inner.id,
                leader: self.leader_addr().map(|l| l.0),
            });
        }
        let m = self.inner.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership().clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let existing = membership.get_node(&id).map(|n| n.addr.clone());
        if let Some(existing) = &existing {
            if existing != &addr {
                return Err(Error::Invalid(format!(
                    "member {id} is already registered at {existing}, not {addr}; remove it first with `vigil cluster leave --id {id}`"
                )));
            }
            if voters.contains(&id) {
                return Err(Error::Invalid(format!(
                    "member {id} is already a voter at {addr}; nothing to do"
                )));
            }
        }
        // Make sure the process at `addr` really is member `id` and is not part of
        // another cluster before touching the membership.
        let ident: Identity = call_json::<(), _>(
            &self.inner.client,
            &self.inner.contacts,
            &addr,
            "identity",
            None,
            Duration::from_secs(3),
        )
        .await
        .map_err(|e| match e {
            Error::Unreachable { addr, reason } => Error::Unreachable {
                addr: addr.clone(),
                reason: format!("{reason} (is `vigil serve --id {id} --listen {addr}` running?)"),
            },
            e => e,
        })?;
        if ident.id != id {
            return Err(Error::Invalid(format!(
                "{addr} is member {}, not member {id}",
                ident.id
            )));
        }
        if ident.initialized && existing.is_none() {
            return Err(Error::Invalid(format!(
                "member {id} at {addr} already belongs to a cluster; stop it and start it with an empty --data-dir"
            )));
        }
        tracing::info!(id, %addr, "join: adding learner and waiting for it to catch up");
        let node = BasicNode { addr: addr.clone() };
        let added =
            tokio::time::timeout(JOIN_CATCH_UP, self.inner.raft.add_learner(id, node, true)).await;
        let failure = match added {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(membership_error(e)),
            Err(_) => Some(Error::Timeout {
                after: JOIN_CATCH_UP,
                what: format!("for member {id} to catch up"),
            }),
        };
        if let Some(e) = failure {
            if existing.is_none() {
                tracing::warn!(id, error = %e, "join failed; removing the learner again");
                let _ = self
                    .inner
                    .raft
                    .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                    .await;
            }
            return Err(e);
        }
        tracing::info!(id, "join: promoting to voter");
        self.inner
            .raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(membership_error)?;
        Ok(())
    }

    /// Remove member `id` (voter or learner) from the cluster. Refuses to remove the
    /// last voter or an unknown member.
    pub async fn leave(&self, id: NodeId) -> Result<ClusterStatus> {
        self.ensure_initialized()?;
        let req = LeaveRequest { id };
        if let Some(status) = self
            .on_leader("leave", &req, Duration::from_secs(60))
            .await?
        {
            return Ok(status);
        }
        self.leave_local(req).await?;
        self.status().await
    }

    pub(crate) async fn leave_local(&self, req: LeaveRequest) -> Result<()> {
        let id = req.id;
        if !self.is_leader() {
            return Err(Error::NotLeader {
                me: self.inner.id,
                leader: self.leader_addr().map(|l| l.0),
            });
        }
        let m = self.inner.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership().clone();
        let known: Vec<NodeId> = membership.nodes().map(|(i, _)| *i).collect();
        if !known.contains(&id) {
            let list: Vec<String> = known.iter().map(|i| i.to_string()).collect();
            return Err(Error::Invalid(format!(
                "unknown member {id}; members are {}",
                list.join(", ")
            )));
        }
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let change = if voters.contains(&id) {
            if voters.len() == 1 {
                return Err(Error::Invalid(format!(
                    "refusing to remove member {id}: it is the last voter and the cluster would lose all its state"
                )));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        let removed_addr = membership.get_node(&id).map(|n| n.addr.clone());
        tracing::info!(id, "leave: removing member");
        self.inner
            .raft
            .change_membership(change, false)
            .await
            .map_err(membership_error)?;
        // Tell the removed member to stop its Raft: it no longer receives the log and
        // would otherwise keep starting elections with ever higher terms. Best effort:
        // if it is down, it learns nothing, and the operator's docs say to stop it.
        if id == self.inner.id {
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                me.retire_local(id).await;
            });
        } else if let Some(addr) = removed_addr {
            let r: Result<bool> = call_json(
                &self.inner.client,
                &self.inner.contacts,
                &addr,
                "retire",
                Some(&LeaveRequest { id }),
                Duration::from_secs(2),
            )
            .await;
            if let Err(e) = r {
                tracing::warn!(id, error = %e, "removed member could not be told to stop; stop its process");
            }
        }
        Ok(())
    }

    /// This member was removed from the cluster: stop Raft (no more elections) and
    /// refuse further work. Returns whether `id` was this member.
    pub(crate) async fn retire_local(&self, id: NodeId) -> bool {
        if id != self.inner.id {
            return false;
        }
        if !self
            .inner
            .retired
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            tracing::warn!(
                id,
                "this member was removed from the cluster: raft stopped; stop this process"
            );
            let _ = self.inner.raft.shutdown().await;
        }
        true
    }

    /// True once this member was told it was removed from the cluster.
    pub fn is_retired(&self) -> bool {
        self.inner.retired.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The cluster as seen by the leader (forwarded there if needed); falls back to the
    /// local view when no leader can be reached.
    pub async fn status(&self) -> Result<ClusterStatus> {
        if !self.is_leader() {
            if let Some((_, addr)) = self.leader_addr() {
                if let Ok(s) = call_json::<(), ClusterStatus>(
                    &self.inner.client,
                    &self.inner.contacts,
                    &addr,
                    "status",
                    None,
                    Duration::from_secs(3),
                )
                .await
                {
                    return Ok(s);
                }
            }
        }
        Ok(self.local_status())
    }

    /// This member's own view of the cluster.
    pub fn local_status(&self) -> ClusterStatus {
        let m = self.inner.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let replication = m.replication.clone().unwrap_or_default();
        let is_leader = m.state == ServerState::Leader;
        let last = m.last_log_index;
        let mut members: Vec<MemberStatus> = membership
            .nodes()
            .map(|(id, node)| {
                let role = if Some(*id) == m.current_leader {
                    MemberRole::Leader
                } else if voters.contains(id) {
                    MemberRole::Follower
                } else {
                    MemberRole::Learner
                };
                let (matched, lag, contact) = if !is_leader {
                    (None, None, None)
                } else if *id == self.inner.id {
                    (last, Some(0), Some(0))
                } else {
                    let matched = replication.get(id).cloned().flatten().map(|l| l.index);
                    let lag = last.map(|l| l.saturating_sub(matched.unwrap_or(0)));
                    let contact = self.inner.contacts.since(*id).map(|d| d.as_millis() as u64);
                    (matched, lag, contact)
                };
                MemberStatus {
                    id: *id,
                    addr: node.addr.clone(),
                    role,
                    matched_index: matched,
                    lag,
                    last_contact_ms: contact,
                }
            })
            .collect();
        members.sort_by_key(|s| s.id);
        ClusterStatus {
            answered_by: self.inner.id,
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            initialized: !members.is_empty(),
            members,
        }
    }

    /// Build a snapshot now (and purge the log behind it per policy); waits until done.
    pub async fn snapshot_now(&self, timeout: Duration) -> Result<u64> {
        let applied = self.last_applied().unwrap_or(0);
        self.inner.raft.trigger().snapshot().await?;
        let m = self
            .inner
            .raft
            .wait(Some(timeout))
            .metrics(
                |m| m.snapshot.map(|s| s.index).unwrap_or(0) >= applied,
                "snapshot",
            )
            .await
            .map_err(|_| Error::Timeout {
                after: timeout,
                what: "for the snapshot".into(),
            })?;
        Ok(m.snapshot.map(|s| s.index).unwrap_or(0))
    }

    /// Stop Raft and flush storage. Call before exiting.
    pub async fn shutdown(&self) -> Result<()> {
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|e| Error::Fatal(e.to_string()))?;
        crate::durable::flush(&self.inner.db, &self.inner.sync)
            .await
            .map_err(|e| Error::Storage(format!("final flush: {e}")))?;
        Ok(())
    }
}
