//! Leader duties: liveness decisions, host assignment, engine ticks.
//!
//! Runs on every member and acts only while it is the leader. Everything it decides
//! comes from the replicated state plus its own heartbeat records, so a new leader
//! continues from where the old one stopped with no gap: it gives every member one
//! full lease to be heard from, then commits what it sees. Each round:
//! 1. liveness changes ([`crate::liveness::LivenessTracker::changes`]) — a member
//!    declared dead loses its hosts in the same command;
//! 2. the assignment plan ([`crate::assign::plan`]) for the hosts of enabled pools,
//!    committed as `AssignHosts` (apply re-checks that every owner is live);
//! 3. a `TickAll` only when some deadline or schedule is due
//!    ([`crate::state::VigilState::tick_due`]), so an idle fleet costs no writes.

use std::sync::Arc;

use tokio::sync::watch;

use super::{pause, Shared, WorkerConfig};
use crate::assign::{self, Slot};
use crate::state::{Command, Response};

/// Hosts per `AssignHosts` command (keeps entries well under the body limits).
const ASSIGN_CHUNK: usize = 5000;

/// The leader loop.
pub async fn run(sh: Arc<Shared>, cfg: WorkerConfig, mut stop: watch::Receiver<bool>) {
    let mut planned: Option<u64> = None;
    loop {
        if pause(cfg.tick, &mut stop).await {
            return;
        }
        if !sh.member.is_leader() || sh.member.links_cut() {
            let mut t = sh.tracker.lock().expect("tracker lock");
            planned = None;
            if t.is_leading() {
                t.stepped_down();
                tracing::info!("no longer leader: liveness and assignment duties stop");
            }
            continue;
        }
        {
            let mut t = sh.tracker.lock().expect("tracker lock");
            if !t.is_leading() {
                let now = sh.mono_ms();
                let me = sh.member.id();
                // Judge the members it heard from from when it did, but give everyone
                // at least half a lease: a live member needs a heartbeat period to
                // find the new leader, and must not be declared dead for that.
                let lease = sh.lease_ms();
                let heard: Vec<_> = sh
                    .member
                    .peers()
                    .into_iter()
                    .filter(|(id, _)| *id != me)
                    .filter_map(|(id, _)| {
                        let ago = sh.member.last_heard(id)?.as_millis() as u64;
                        Some((id, now.saturating_sub(ago.min(lease / 2))))
                    })
                    .collect();
                t.became_leader(now, &heard);
                tracing::info!("leader: liveness, assignment and tick duties start");
            }
        }
        if let Err(e) = round(&sh, &mut planned).await {
            planned = None; // plan again next round
            tracing::debug!(error = %e, "leader round did not complete");
        }
    }
}

async fn commit(sh: &Shared, cmd: Command) -> Result<(), String> {
    match sh.member.write(cmd).await {
        Ok(Response::Rejected { reason }) => Err(reason),
        Ok(_) => {
            sh.metrics.leader_command();
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// One round. `planned` is the state revision the last assignment plan was computed
/// at: planning again is pointless until something changed.
async fn round(sh: &Shared, planned: &mut Option<u64>) -> Result<(), String> {
    // 1. Liveness.
    let peers = sh.member.peers();
    let now = sh.mono_ms();
    let changes = sh.member.read_local(|s| {
        let lease = s.member_lease();
        sh.tracker
            .lock()
            .expect("tracker lock")
            .changes(&peers, &s.members, now, lease)
    });
    for c in changes {
        tracing::info!(member = c.id, alive = c.alive, "member liveness changed");
        commit(
            sh,
            Command::SetMemberLiveness {
                id: c.id,
                addr: c.addr,
                alive: c.alive,
                stamp: sh.stamp(),
            },
        )
        .await?;
    }
    // 2. Assignment.
    let plan = sh.member.read_local(|s| {
        if *planned == Some(s.revision) {
            return Vec::new();
        }
        *planned = Some(s.revision);
        let slots: Vec<Slot<'_>> = s
            .hosts
            .values()
            .map(|h| Slot {
                host: &h.spec.name,
                owner: h.owner,
                wanted: s.pools.get(&h.spec.pool).is_some_and(|p| p.spec.enabled),
            })
            .collect();
        let mut plan = assign::plan(&slots, &s.live_members());
        // PLANTED BUG `dead-hosts-kept` (chaos self-test only, compiled out without the
        // `planted-bugs` feature; apply does not release them either): hosts of a
        // member declared dead are never moved to a live one: L2 / L1.
        if crate::planted::active(crate::planted::Bug::DeadHostsKept) {
            plan.retain(|(host, _)| {
                let owner = s.hosts.get(host).and_then(|h| h.owner);
                let dead = |o| s.members.get(&o).is_some_and(|m| !m.alive);
                let owned_by_the_dead = owner.is_some_and(dead);
                !owned_by_the_dead
            });
        }
        plan
    });
    if !plan.is_empty() {
        tracing::info!(hosts = plan.len(), "assigning hosts");
        for chunk in plan.chunks(ASSIGN_CHUNK) {
            commit(
                sh,
                Command::AssignHosts {
                    assignments: chunk.to_vec(),
                    stamp: sh.stamp(),
                },
            )
            .await?;
        }
    }
    // 3. Ticks, only when something is due.
    let stamp = sh.stamp();
    let due = sh.member.read_local(|s| s.tick_due(stamp.at_ms));
    if due {
        commit(sh, Command::TickAll { stamp }).await?;
    }
    Ok(())
}
