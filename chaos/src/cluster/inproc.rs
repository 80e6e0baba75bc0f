//! The in-process tier: real members (real openraft over loopback HTTP, sled on disk,
//! the whole HA runtime) in this process, sharing one simulated fleet whose sim
//! drivers are labelled `member-N` in the ground truth.
//!
//! Faults: a member is crashed (Raft, HTTP and runtime stop at once, no final flush)
//! and restarted on the same address and data dir; its links are cut as a whole
//! (`Member::set_links_cut`). Pauses, one-way cuts, clock and disk faults need the
//! process tier.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil::dev::DevCluster;
use vigil::server::{restart_member, RunningMember};
use vigil::state::VigilState;
use vigil::worker::{Providers, WorkerConfig};
use vigil_providers::sim::SimFleet;
use vigil_raft::{Member, NodeId, RaftTimings};

use crate::error::ChaosError;

/// The members a run currently has running, shared with the observer and the
/// workload (a crashed member leaves the map; a restarted one comes back).
pub type Live = Arc<Mutex<BTreeMap<NodeId, Member<VigilState>>>>;

/// An in-process cluster.
#[derive(Debug)]
pub struct Inproc {
    running: BTreeMap<NodeId, RunningMember>,
    addrs: BTreeMap<NodeId, SocketAddr>,
    dir: PathBuf,
    fleet: SimFleet,
    /// Handles of the running members.
    pub live: Live,
}

fn runtime(fleet: &SimFleet, id: NodeId) -> (Providers, WorkerConfig) {
    (
        Providers {
            sim: Some(fleet.clone()),
            label: format!("member-{id}"),
        },
        WorkerConfig {
            tick: Duration::from_millis(50),
        },
    )
}

impl Inproc {
    /// Start `n` members in `dir`, formed into one cluster.
    pub async fn start(n: u64, dir: &Path, fleet: &SimFleet) -> Result<Inproc, ChaosError> {
        // An empty label: DevCluster names each member's drivers `member-N`.
        let (mut providers, cfg) = runtime(fleet, 0);
        providers.label.clear();
        let c = DevCluster::start_with(
            n as usize,
            dir,
            RaftTimings::default(),
            Some((providers, cfg)),
        )
        .await
        .map_err(|e| ChaosError::Cluster(e.to_string()))?;
        let mut running = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        let live: Live = Arc::default();
        for m in c.members {
            let id = m.member.id();
            addrs.insert(id, m.addr);
            live.lock().expect("live").insert(id, m.member.clone());
            running.insert(id, m);
        }
        Ok(Inproc {
            running,
            addrs,
            dir: dir.to_path_buf(),
            fleet: fleet.clone(),
            live,
        })
    }

    /// Member ids, running or not.
    pub fn ids(&self) -> Vec<NodeId> {
        self.addrs.keys().copied().collect()
    }

    /// Running member ids.
    pub fn running_ids(&self) -> Vec<NodeId> {
        self.running.keys().copied().collect()
    }

    /// A running member.
    pub fn member(&self, id: NodeId) -> Option<&Member<VigilState>> {
        self.running.get(&id).map(|m| &m.member)
    }

    /// Any running member whose links are up (for reads of the replicated state).
    pub fn any(&self) -> Option<&Member<VigilState>> {
        self.running
            .values()
            .map(|m| &m.member)
            .find(|m| !m.links_cut())
            .or_else(|| self.running.values().map(|m| &m.member).next())
    }

    /// The leader, as a running member with links up believes it is.
    pub fn leader(&self) -> Option<NodeId> {
        self.running
            .values()
            .find(|m| m.member.is_leader() && !m.member.links_cut())
            .map(|m| m.member.id())
    }

    /// The owner of `host` in the state of a running member.
    pub fn owner_of(&self, host: &str) -> Option<NodeId> {
        self.any()?
            .read_local(|s| s.hosts.get(host).and_then(|h| h.owner))
    }

    /// Crash member `id` (no final flush).
    pub async fn kill(&mut self, id: NodeId) -> bool {
        let Some(m) = self.running.remove(&id) else {
            return false;
        };
        self.live.lock().expect("live").remove(&id);
        m.crash().await;
        true
    }

    /// Start member `id` again on its address and data dir. The crashed instance may
    /// hold its data dir lock for a moment: bounded retries.
    pub async fn restart(&mut self, id: NodeId) -> Result<(), ChaosError> {
        if self.running.contains_key(&id) {
            return Ok(());
        }
        let data = self.dir.join(format!("member-{id}"));
        let m = restart_member(
            id,
            self.addrs[&id],
            &data,
            RaftTimings::default(),
            Some(runtime(&self.fleet, id)),
        )
        .await
        .map_err(|e| ChaosError::Cluster(format!("member {id} did not restart: {e}")))?;
        self.live.lock().expect("live").insert(id, m.member.clone());
        self.running.insert(id, m);
        Ok(())
    }

    /// Cut or restore every link of member `id`.
    pub fn set_cut(&self, id: NodeId, cut: bool) -> bool {
        match self.running.get(&id) {
            Some(m) => {
                m.member.set_links_cut(cut);
                true
            }
            None => false,
        }
    }

    /// Stop every running member cleanly.
    pub async fn stop(mut self) {
        self.live.lock().expect("live").clear();
        for (_, m) in std::mem::take(&mut self.running) {
            m.member.set_links_cut(false);
            let _ = m.stop().await;
        }
    }
}
