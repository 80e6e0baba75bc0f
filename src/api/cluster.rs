//! `/api/v1/cluster/*`: init, join, leave, status.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use vigil_raft::{ClusterStatus, NodeId};

use crate::api::error::ApiError;
use crate::api::types::JoinBody;
use crate::api::AppState;

/// `GET /api/v1/cluster/status`: the leader's view when reachable.
pub async fn status(State(m): State<AppState>) -> Result<Json<ClusterStatus>, ApiError> {
    Ok(Json(m.status().await?))
}

/// `POST /api/v1/cluster/init`: make this member a one-member cluster.
pub async fn init(State(m): State<AppState>) -> Result<Json<ClusterStatus>, ApiError> {
    m.initialize().await?;
    m.wait_for_leader(std::time::Duration::from_secs(10))
        .await?;
    Ok(Json(m.status().await?))
}

/// `POST /api/v1/cluster/members`: add a member (learner → caught up → voter).
pub async fn join(
    State(m): State<AppState>,
    Json(body): Json<JoinBody>,
) -> Result<Json<ClusterStatus>, ApiError> {
    if body.addr.contains("://") || body.addr.rsplit_once(':').is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("addr {:?} must be HOST:PORT (no scheme)", body.addr),
        ));
    }
    Ok(Json(m.join(body.id, &body.addr).await?))
}

/// `DELETE /api/v1/cluster/members/{id}`: remove a member.
pub async fn leave(
    State(m): State<AppState>,
    Path(id): Path<NodeId>,
) -> Result<Json<ClusterStatus>, ApiError> {
    Ok(Json(m.leave(id).await?))
}
