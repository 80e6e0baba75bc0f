//! The HTTP surface of a member: the JSON admin API under `/api/v1/`, the Raft routes
//! under `/raft/`, and `/healthz` / `/readyz`, all on one port.

pub mod cluster;
pub mod error;
pub mod settings;
pub mod types;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::Router;
use vigil_raft::Member;

use crate::state::VigilState;

/// Largest JSON body the admin API accepts.
pub const API_BODY_LIMIT: usize = 1024 * 1024;

/// Shared handler state.
pub type AppState = Member<VigilState>;

/// Everything one member serves.
pub fn router(member: Member<VigilState>) -> Router {
    let api = Router::new()
        .route("/api/v1/cluster/status", get(cluster::status))
        .route("/api/v1/cluster/init", post(cluster::init))
        .route("/api/v1/cluster/members", post(cluster::join))
        .route("/api/v1/cluster/members/{id}", delete(cluster::leave))
        .route("/api/v1/settings", get(settings::list))
        .route(
            "/api/v1/settings/{key}",
            get(settings::get)
                .put(settings::set)
                .delete(settings::reset),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(API_BODY_LIMIT))
        .with_state(member.clone());
    api.merge(vigil_raft::rpc::router(member))
}

/// Liveness: the process serves HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the member belongs to a cluster that has a leader.
async fn readyz(State(m): State<AppState>) -> (StatusCode, String) {
    if m.is_retired() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: removed from the cluster; stop this process\n".into(),
        );
    }
    let s = m.local_status();
    match (s.initialized, s.leader) {
        (false, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: not initialized (run `vigil cluster init` or `cluster join`)\n".into(),
        ),
        (true, None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no leader\n".into(),
        ),
        (true, Some(l)) => (StatusCode::OK, format!("ready (leader {l})\n")),
    }
}
