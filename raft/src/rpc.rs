//! Server side of the transport: the `/raft/*` routes a member serves to its peers.
//!
//! openraft RPCs (`append`, `vote`, `snapshot`) and forwarded writes/read-indexes use
//! bincode bodies; the rarely used admin exchanges (`identity`, `status`, `join`,
//! `leave`) use JSON for easy debugging with curl. The body limit is raised well above
//! openraft's snapshot chunk size.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::app::StateMachine;
use crate::codec;
use crate::error::Result;
use crate::member::{JoinRequest, LeaveRequest, Member};
use crate::network::RAFT_ERROR_HEADER;
use crate::types::Batch;

/// Largest accepted body on `/raft/*`: openraft sends snapshots in chunks of at most
/// 3 MiB and batches of at most a few thousand commands.
pub const RAFT_BODY_LIMIT: usize = 64 * 1024 * 1024;

fn bincode_ok<T: Serialize>(v: &T) -> Response {
    match codec::encode(v) {
        Ok(bytes) => (
            StatusCode::OK,
            [("content-type", "application/octet-stream")],
            bytes,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn raft_error<E: Serialize>(e: &E) -> Response {
    let body =
        serde_json::to_vec(e).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}").into_bytes());
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert(RAFT_ERROR_HEADER, HeaderValue::from_static("1"));
    r
}

fn bad_request(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        format!("bad raft request body: {e}"),
    )
        .into_response()
}

/// Routes to merge into the member's HTTP server.
pub fn router<A: StateMachine>(member: Member<A>) -> Router {
    Router::new()
        .route("/raft/append", post(append::<A>))
        .route("/raft/vote", post(vote::<A>))
        .route("/raft/snapshot", post(snapshot::<A>))
        .route("/raft/write", post(write::<A>))
        .route("/raft/read-index", post(read_index::<A>))
        .route("/raft/identity", get(identity::<A>))
        .route("/raft/status", get(status::<A>))
        .route("/raft/join", post(join::<A>))
        .route("/raft/leave", post(leave::<A>))
        .route("/raft/retire", post(retire::<A>))
        .layer(DefaultBodyLimit::max(RAFT_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            member.clone(),
            refuse_when_cut::<A>,
        ))
        .with_state(member)
}

/// While the member's links are cut (fault injection), refuse every peer request as
/// a dead network would.
async fn refuse_when_cut<A: StateMachine>(
    State(m): State<Member<A>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if m.links_cut() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "links cut (fault injection)",
        )
            .into_response();
    }
    next.run(req).await
}

async fn append<A: StateMachine>(State(m): State<Member<A>>, body: Bytes) -> Response {
    let req: openraft::raft::AppendEntriesRequest<crate::types::TypeConfig<A>> =
        match codec::decode(&body) {
            Ok(r) => r,
            Err(e) => return bad_request(e),
        };
    if let Some(leader) = req.vote.leader_id().voted_for() {
        m.heard_from(leader);
    }
    match m.raft().append_entries(req).await {
        Ok(resp) => bincode_ok(&resp),
        Err(e) => raft_error(&e),
    }
}

async fn vote<A: StateMachine>(State(m): State<Member<A>>, body: Bytes) -> Response {
    let req = match codec::decode(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    match m.raft().vote(req).await {
        Ok(resp) => bincode_ok(&resp),
        Err(e) => raft_error(&e),
    }
}

async fn snapshot<A: StateMachine>(State(m): State<Member<A>>, body: Bytes) -> Response {
    let req = match codec::decode(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    match m.raft().install_snapshot(req).await {
        Ok(resp) => bincode_ok(&resp),
        Err(e) => raft_error(&e),
    }
}

async fn write<A: StateMachine>(State(m): State<Member<A>>, body: Bytes) -> Response {
    let batch: Batch<A::Command> = match codec::decode(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let res: Result<Vec<A::Response>> = m.write_forwarded(batch.0).await;
    bincode_ok(&res)
}

async fn read_index<A: StateMachine>(State(m): State<Member<A>>) -> Response {
    let res: Result<u64> = m.read_index_forwarded().await;
    bincode_ok(&res)
}

async fn identity<A: StateMachine>(State(m): State<Member<A>>) -> Response {
    Json(m.identity()).into_response()
}

async fn status<A: StateMachine>(State(m): State<Member<A>>) -> Response {
    Json(m.local_status()).into_response()
}

async fn join<A: StateMachine>(
    State(m): State<Member<A>>,
    Json(req): Json<JoinRequest>,
) -> Response {
    let res = match m.join_local(req).await {
        Ok(()) => Ok(m.local_status()),
        Err(e) => Err(e),
    };
    Json(res).into_response()
}

async fn leave<A: StateMachine>(
    State(m): State<Member<A>>,
    Json(req): Json<LeaveRequest>,
) -> Response {
    let res = match m.leave_local(req).await {
        Ok(()) => Ok(m.local_status()),
        Err(e) => Err(e),
    };
    Json(res).into_response()
}

async fn retire<A: StateMachine>(
    State(m): State<Member<A>>,
    Json(req): Json<LeaveRequest>,
) -> Response {
    let res: Result<bool> = Ok(m.retire_local(req.id).await);
    Json(res).into_response()
}
