//! Member → leader heartbeats, and the member's own lease.
//!
//! Every `lease / 4` each member tells the leader it is alive (`POST
//! /internal/v1/heartbeat`). The leader records it for the liveness decisions and
//! accepts it only while a quorum acknowledged its leadership recently (within
//! `lease / 4`): a deposed leader on the minority side of a partition still believes
//! it leads, but its quorum acknowledgements age, so it cannot keep the members with
//! it acting. An accepted heartbeat renews the sender's lease from the moment it was
//! **sent** ([`crate::liveness::Lease`]). The leader renews its own lease from its
//! last quorum acknowledgement.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use vigil_raft::NodeId;

use super::{pause, Shared, WorkerConfig};
use crate::metrics::runtime::HeartbeatResult;

/// Path of the heartbeat route.
pub const PATH: &str = "/internal/v1/heartbeat";

/// A heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Beat {
    /// Sender.
    pub id: NodeId,
}

/// The leader's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BeatReply {
    /// Renew the lease?
    pub accepted: bool,
    /// Why not, when not.
    pub reason: String,
}

/// The heartbeat route of a member.
pub fn routes(shared: Arc<Shared>) -> Router {
    Router::new().route(PATH, post(receive)).with_state(shared)
}

/// May this member, as leader, vouch for members now? `Ok(age of its last quorum
/// acknowledgement)`.
fn authority(sh: &Shared) -> Result<u64, String> {
    let age = sh
        .member
        .quorum_ack_age_ms()
        .ok_or("this member is not the leader")?;
    let limit = sh.lease_ms() / 4;
    if age > limit {
        return Err(format!(
            "the leader last heard from a quorum {age} ms ago (limit {limit} ms)"
        ));
    }
    if !sh.tracker.lock().expect("tracker lock").is_leading() {
        return Err("the leader has not started its duties yet".into());
    }
    Ok(age)
}

async fn receive(State(sh): State<Arc<Shared>>, Json(b): Json<Beat>) -> Response {
    if sh.member.links_cut() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "links cut (fault injection)",
        )
            .into_response();
    }
    let reply = match authority(&sh) {
        Ok(_) => {
            let now = sh.mono_ms();
            sh.tracker.lock().expect("tracker lock").seen(b.id, now);
            BeatReply {
                accepted: true,
                reason: String::new(),
            }
        }
        Err(reason) => BeatReply {
            accepted: false,
            reason,
        },
    };
    Json(reply).into_response()
}

/// Send one heartbeat; `Ok(())` when the lease was renewed, else why not: refused by
/// the leader, or no leader reached.
async fn beat(sh: &Shared) -> Result<(), (HeartbeatResult, String)> {
    let failed = |e: String| (HeartbeatResult::Failed, e);
    let lease = sh.lease_ms();
    let me = sh.member.id();
    let sent = sh.mono_ms();
    if sh.member.links_cut() {
        return Err(failed("links cut (fault injection)".into()));
    }
    let (leader, addr) = sh
        .member
        .leader_addr()
        .ok_or_else(|| failed("no known leader".into()))?;
    if leader == me {
        let age = authority(sh).map_err(|e| (HeartbeatResult::Refused, e))?;
        sh.tracker.lock().expect("tracker lock").seen(me, sent);
        sh.lease
            .lock()
            .expect("lease lock")
            .renew(sent.saturating_sub(age), lease);
        return Ok(());
    }
    let reply: BeatReply = sh
        .member
        .client()
        .post(format!("http://{addr}{PATH}"))
        .timeout(Duration::from_millis((lease / 4).max(100)))
        .json(&Beat { id: me })
        .send()
        .await
        .map_err(|e| failed(format!("heartbeat to leader {leader} at {addr}: {e}")))?
        .error_for_status()
        .map_err(|e| failed(format!("heartbeat to leader {leader}: {e}")))?
        .json()
        .await
        .map_err(|e| failed(format!("heartbeat reply from {leader}: {e}")))?;
    if !reply.accepted {
        return Err((
            HeartbeatResult::Refused,
            format!("leader {leader} refused: {}", reply.reason),
        ));
    }
    sh.lease.lock().expect("lease lock").renew(sent, lease);
    Ok(())
}

/// The heartbeat loop.
pub async fn run(sh: Arc<Shared>, cfg: WorkerConfig, mut stop: watch::Receiver<bool>) {
    let mut failing = false;
    loop {
        let every = Duration::from_millis((sh.lease_ms() / 4).max(50)).max(cfg.tick);
        match beat(&sh).await {
            Ok(()) => {
                sh.metrics.heartbeat(HeartbeatResult::Accepted);
                if failing {
                    tracing::info!("heartbeats accepted again; lease renewed");
                }
                failing = false;
            }
            Err((result, e)) => {
                sh.metrics.heartbeat(result);
                if !failing && !sh.lease_valid() {
                    tracing::warn!(error = %e, "lease expired: this member starts no new checks or actions");
                    failing = true;
                } else {
                    tracing::debug!(error = %e, "heartbeat not accepted");
                }
            }
        }
        if pause(every, &mut stop).await {
            return;
        }
    }
}
