//! Client side of the HTTP transport: openraft's `RaftNetwork` over one shared reqwest
//! client, bincode bodies on `/raft/*`.
//!
//! Every RPC is bounded by openraft's hard TTL for it; connection failures map to
//! `Unreachable` (openraft backs off) and everything else to `Network`. The time of the
//! last successful exchange with each peer is recorded in a [`ContactBook`], which is
//! what `cluster status` shows as "last contact" (openraft 0.9 does not expose it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::app::StateMachine;
use crate::codec;
use crate::types::{Node, NodeId, TypeConfig};

/// Header set by the server when the body is a JSON-encoded openraft `RaftError`
/// rather than a bincode response.
pub const RAFT_ERROR_HEADER: &str = "x-vigil-raft-error";

/// When each peer last answered an RPC, and the switch that cuts this member's links.
///
/// The switch is a fault-injection hook for partition tests and the chaos harness:
/// while it is on, every peer request this member sends fails as unreachable and
/// every `/raft/*` request it receives is refused, as if its network were cut. It
/// never turns on by itself.
#[derive(Debug, Default)]
pub struct ContactBook {
    last: Mutex<BTreeMap<NodeId, Instant>>,
    heard: Mutex<BTreeMap<NodeId, Instant>>,
    cut: std::sync::atomic::AtomicBool,
}

impl ContactBook {
    /// Cut (true) or restore (false) this member's links to its peers.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, std::sync::atomic::Ordering::SeqCst);
    }

    /// Are the links cut?
    pub fn is_cut(&self) -> bool {
        self.cut.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Record a successful exchange with `peer`.
    pub fn touch(&self, peer: NodeId) {
        self.last
            .lock()
            .expect("contact book lock")
            .insert(peer, Instant::now());
    }

    /// Record a request received from `peer` (a leader's append entries).
    pub fn heard_from(&self, peer: NodeId) {
        self.heard
            .lock()
            .expect("contact book lock")
            .insert(peer, Instant::now());
    }

    /// Time since this member last heard from `peer` at all: its last answer to us or
    /// its last append-entries request to us, whichever is more recent.
    pub fn last_heard(&self, peer: NodeId) -> Option<Duration> {
        let heard = self
            .heard
            .lock()
            .expect("contact book lock")
            .get(&peer)
            .map(|t| t.elapsed());
        match (heard, self.since(peer)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time since `peer` last answered, if it ever did.
    pub fn since(&self, peer: NodeId) -> Option<Duration> {
        self.last
            .lock()
            .expect("contact book lock")
            .get(&peer)
            .map(|t| t.elapsed())
    }
}

/// Build the one reqwest client a member uses for all peer traffic.
pub fn build_client() -> reqwest::Client {
    reqwest::Client::builder()
        // Member-to-member traffic never goes through an HTTP(S)_PROXY from the
        // environment.
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .build()
        .expect("reqwest client with static configuration")
}

/// Factory handed to openraft: one connection object per peer, all sharing a client.
#[derive(Debug, Clone)]
pub struct HttpNetwork {
    client: reqwest::Client,
    contacts: Arc<ContactBook>,
}

impl HttpNetwork {
    /// New factory over `client`, recording contacts in `contacts`.
    pub fn new(client: reqwest::Client, contacts: Arc<ContactBook>) -> Self {
        Self { client, contacts }
    }
}

/// One peer as seen by the replication stream.
#[derive(Debug)]
pub struct HttpConnection {
    client: reqwest::Client,
    contacts: Arc<ContactBook>,
    target: NodeId,
    addr: String,
}

impl<A: StateMachine> RaftNetworkFactory<TypeConfig<A>> for HttpNetwork {
    type Network = HttpConnection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> HttpConnection {
        HttpConnection {
            client: self.client.clone(),
            contacts: self.contacts.clone(),
            target,
            addr: node.addr.clone(),
        }
    }
}

impl HttpConnection {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, RPCError<NodeId, Node, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        if self.contacts.is_cut() {
            let e = std::io::Error::other("links cut (fault injection)");
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        }
        let body = codec::encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let url = format!("http://{}/raft/{path}", self.addr);
        let resp = self
            .client
            .post(url)
            .timeout(ttl)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    RPCError::Unreachable(Unreachable::new(&e))
                } else {
                    RPCError::Network(NetworkError::new(&e))
                }
            })?;
        let is_raft_error = resp.headers().contains_key(RAFT_ERROR_HEADER);
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        if is_raft_error {
            self.contacts.touch(self.target);
            let err: RaftError<NodeId, E> = serde_json::from_slice(&bytes)
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
            return Err(RPCError::RemoteError(RemoteError::new(self.target, err)));
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes).to_string();
            let e = std::io::Error::other(format!("HTTP {status}: {text}"));
            return Err(RPCError::Network(NetworkError::new(&e)));
        }
        let out = codec::decode(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.contacts.touch(self.target);
        Ok(out)
    }
}

impl<A: StateMachine> RaftNetwork<TypeConfig<A>> for HttpConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig<A>>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call("append", &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig<A>>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call("snapshot", &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call("vote", &rpc, option.hard_ttl()).await
    }
}
