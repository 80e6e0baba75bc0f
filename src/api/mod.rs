//! The HTTP surface of a member: the JSON admin API under `/api/v1/`, the Raft routes
//! under `/raft/`, and `/healthz` / `/readyz`, all on one port.

pub mod auth;
pub mod cluster;
pub mod error;
pub mod events;
pub mod hosts;
pub mod inventory;
pub mod pools;
pub mod power;
pub mod settings;
pub mod types;
pub mod webhooks;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::Router;
use vigil_raft::Member;

use crate::api::error::ApiError;
use crate::error::VigilError;
use crate::state::{Command, Response, Stamp, VigilState};

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
        .route("/api/v1/pools", get(pools::list).post(pools::create))
        .route(
            "/api/v1/pools/{name}",
            get(pools::get).delete(pools::remove),
        )
        .route("/api/v1/pools/{name}/enable", post(pools::enable))
        .route("/api/v1/pools/{name}/disable", post(pools::disable))
        .route("/api/v1/pools/{name}/policy", put(pools::set_policy))
        .route("/api/v1/events", get(events::list))
        .route("/api/v1/webhooks", get(webhooks::list).post(webhooks::add))
        .route("/api/v1/webhooks/{id}", delete(webhooks::remove))
        .route("/api/v1/hosts", get(hosts::list).post(hosts::add))
        .route(
            "/api/v1/hosts/{name}",
            get(hosts::get).delete(hosts::remove),
        )
        .route("/api/v1/hosts/{name}/maintenance", put(hosts::maintenance))
        .route("/api/v1/hosts/{name}/explain", get(hosts::explain_host))
        .route("/api/v1/hosts/{name}/admin", post(hosts::admin))
        .route("/api/v1/hosts/{name}/power", post(power::power))
        .route(
            "/api/v1/apply",
            post(inventory::apply).layer(DefaultBodyLimit::max(inventory::INVENTORY_BODY_LIMIT)),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(API_BODY_LIMIT))
        .with_state(member.clone());
    api.merge(vigil_raft::rpc::router(member))
}

/// Who proposes and when: this member, its clock now.
pub(crate) fn stamp(m: &AppState) -> Stamp {
    Stamp {
        by: m.id(),
        at_ms: settings::now_ms(),
    }
}

/// Propose `cmd`; the revision it produced, or 409 with apply's reason.
pub(crate) async fn commit(m: &AppState, cmd: Command) -> Result<u64, ApiError> {
    match m.write(cmd).await? {
        Response::Applied { revision }
        | Response::Inputs { revision, .. }
        | Response::Begun { revision, .. } => Ok(revision),
        Response::Rejected { reason } => Err(VigilError::Rejected(reason).into()),
    }
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
