//! `vigil dev`: a whole cluster in one process on free loopback ports, for newcomers,
//! demos and tests. Data lives in a temporary directory unless one is given.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpListener;
use vigil_raft::RaftTimings;

pub mod control;
pub mod fleet;

use crate::error::VigilError;
use crate::server::{start_member_with, RunningMember, Runtime};

/// An in-process cluster of members 1..=n, already bootstrapped (init + joins).
#[derive(Debug)]
pub struct DevCluster {
    /// The members, index i is member i+1.
    pub members: Vec<RunningMember>,
    /// Where their data dirs are.
    pub dir: PathBuf,
}

impl DevCluster {
    /// Start `n` members on free ports under `dir` and form one cluster (Raft and the
    /// API only, no HA runtime: see [`DevCluster::start_with`]).
    pub async fn start(n: usize, dir: &Path, timings: RaftTimings) -> Result<Self, VigilError> {
        Self::start_with(n, dir, timings, None).await
    }

    /// Start `n` members, each running the HA runtime when `runtime` is given (the
    /// providers are shared: a simulated fleet is one fleet seen by every member).
    pub async fn start_with(
        n: usize,
        dir: &Path,
        timings: RaftTimings,
        runtime: Option<Runtime>,
    ) -> Result<Self, VigilError> {
        if n == 0 {
            return Err(VigilError::Config(
                "a cluster needs at least one member".into(),
            ));
        }
        let mut members = Vec::with_capacity(n);
        for i in 1..=n as u64 {
            // Binding port 0 and keeping the listener avoids racing for a "free" port.
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| VigilError::io("binding a loopback port", e))?;
            let data = dir.join(format!("member-{i}"));
            // Each member's sim drivers are labelled with its id in the ground truth.
            let rt = runtime.clone().map(|(mut p, c)| {
                if p.label.is_empty() {
                    p.label = format!("member-{i}");
                }
                (p, c)
            });
            members.push(
                start_member_with(i, listener, None, &data, timings.clone(), rt, None).await?,
            );
        }
        let first = &members[0].member;
        if !first.identity().initialized {
            first.initialize().await?;
        }
        first.wait_for_leader(Duration::from_secs(10)).await?;
        for m in &members[1..] {
            let s = first.status().await?;
            if s.members.iter().any(|x| x.id == m.member.id()) {
                continue; // restarted dev cluster: already a member
            }
            first.join(m.member.id(), m.member.addr()).await?;
        }
        // A join returns once the leader committed it; the new member may apply its
        // membership a moment later. Callers may use any member at once.
        for m in &members {
            m.member.wait_for_leader(Duration::from_secs(10)).await?;
            let end = tokio::time::Instant::now() + Duration::from_secs(10);
            while !m.member.identity().initialized {
                if tokio::time::Instant::now() > end {
                    return Err(VigilError::Config(format!(
                        "member {} did not learn its membership within 10 s",
                        m.member.id()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Ok(Self {
            members,
            dir: dir.to_path_buf(),
        })
    }

    /// Stop every member cleanly.
    pub async fn stop(self) -> Result<(), VigilError> {
        for m in self.members {
            m.stop().await?;
        }
        Ok(())
    }
}

/// Run `vigil dev` until Ctrl-C / SIGTERM: `members` members and a simulated fleet of
/// `hosts` hosts (0: none) in the pool `dev`, with the control API for `vigil sim`.
pub async fn run(
    members: usize,
    hosts: usize,
    data_dir: Option<PathBuf>,
) -> Result<(), VigilError> {
    let (dir, _guard) = match data_dir {
        Some(d) => (d, None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("vigil-dev-")
                .tempdir()
                .map_err(|e| VigilError::io("creating a temp dir", e))?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    eprintln!("[1/4] starting {hosts} simulated hosts with Redfish BMCs ...");
    let sim = fleet::DevFleet::start(hosts).await?;
    eprintln!(
        "[2/4] starting a {members}-member vigil cluster in {} ...",
        dir.display()
    );
    let runtime = (
        crate::worker::Providers {
            sim: Some(sim.fleet.clone()),
            label: String::new(),
        },
        crate::worker::WorkerConfig::default(),
    );
    let cluster =
        DevCluster::start_with(members, &dir, RaftTimings::default(), Some(runtime)).await?;
    let first = cluster.members[0].url();
    if hosts > 0 {
        eprintln!(
            "[3/4] registering pool {} and {hosts} hosts ...",
            fleet::POOL
        );
        let m = &cluster.members[0].member;
        let stamp = crate::state::Stamp {
            by: m.id(),
            at_ms: crate::api::settings::now_ms(),
        };
        // Always (also when restarting with --data-dir): the BMCs listen on a new
        // port each run, and the registered fence levels must point at it.
        let r = m
            .write(crate::state::Command::ApplyInventory {
                change: sim.inventory(),
                stamp,
            })
            .await?;
        if let crate::state::Response::Rejected { reason } = r {
            return Err(VigilError::Rejected(reason));
        }
        eprint!("[4/4] waiting for the hosts to be checked and Available ...");
        let end = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let up = m.read_local(|s| {
                s.hosts
                    .values()
                    .filter(|h| h.ha.state == crate::engine::HaState::Available)
                    .count()
            });
            eprint!("\r[4/4] waiting for the hosts to be checked and Available ... {up}/{hosts} ");
            if up >= hosts || tokio::time::Instant::now() > end {
                eprintln!();
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let members_url: Vec<(u64, String)> = cluster
        .members
        .iter()
        .map(|m| (m.member.id(), m.url()))
        .collect();
    let shared = std::sync::Arc::new(tokio::sync::Mutex::new(
        cluster.members.into_iter().map(Some).collect::<Vec<_>>(),
    ));
    let control = control::Control {
        fleet: sim.fleet.clone(),
        members: shared.clone(),
    };
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| VigilError::io("binding the sim control port", e))?;
    let sim_url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| VigilError::io("reading the sim control address", e))?
    );
    let control_server = tokio::spawn(async move {
        let _ = axum::serve(listener, control::router(control)).await;
    });
    println!();
    println!(
        "vigil dev cluster is up ({members} members, {hosts} simulated hosts, data in {}):",
        dir.display()
    );
    for (id, url) in &members_url {
        println!("  member {id}  {url}");
    }
    println!("  simulated BMCs (Redfish)  {}", sim.server.url());
    println!("  sim control               {sim_url}");
    println!();
    println!("Talk to it from another terminal:");
    println!("  export VIGIL_ENDPOINT={first}");
    println!("  export VIGIL_SIM_ENDPOINT={sim_url}");
    println!("  vigil cluster status; vigil host list; vigil events --follow");
    if let Some(h) = sim.hosts.first() {
        println!("  vigil sim crash {h}        # its OS dies: watch it get fenced");
        println!("  vigil host explain {h}");
        println!("  vigil sim heal {h} && vigil power on --host {h} --dry-run");
    }
    println!("  vigil sim kill-member 2      # the fleet stays covered");
    println!("  curl -s {first}/api/v1/cluster/status");
    println!();
    println!(
        "Ctrl-C stops the cluster{}.",
        if _guard.is_some() {
            " and deletes its data"
        } else {
            ""
        }
    );
    crate::server::shutdown_signal().await;
    eprintln!("stopping ...");
    control_server.abort();
    let members: Vec<RunningMember> = shared.lock().await.drain(..).flatten().collect();
    for m in members {
        m.stop().await?;
    }
    sim.server.shutdown().await;
    Ok(())
}
