//! `/api/v1/webhooks`: register, list (with delivery state) and remove webhooks.
//!
//! A webhook receives every matching event from its registration on, as a JSON POST
//! (the same object `GET /api/v1/events` returns) with an `Idempotency-Key` header;
//! delivery is at least once, in order, retried with backoff while the receiver fails.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::{commit, stamp, AppState};
use crate::state::webhook::check_url;
use crate::state::Command;

/// Body of `POST /api/v1/webhooks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// Receiver URL.
    pub url: String,
    /// Event types to deliver (empty or absent: all).
    #[serde(default)]
    pub types: Vec<String>,
}

/// A webhook and its delivery state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookView {
    /// Id.
    pub id: u64,
    /// Receiver URL.
    pub url: String,
    /// Event types (empty: all).
    pub types: Vec<String>,
    /// Events delivered and acknowledged.
    pub delivered: u64,
    /// Matching events not delivered yet.
    pub pending: u64,
    /// Consecutive failures (0: healthy).
    pub failures: u32,
    /// The last error while failing.
    pub last_error: Option<String>,
    /// Next event `seq` to deliver.
    pub cursor: u64,
}

fn views(s: &crate::state::VigilState) -> Vec<WebhookView> {
    s.webhooks
        .values()
        .map(|w| WebhookView {
            id: w.id,
            url: w.url.clone(),
            types: w.types.clone(),
            delivered: w.delivered,
            pending: s
                .events
                .iter()
                .filter(|e| e.seq >= w.cursor && w.wants(&e.kind))
                .count() as u64,
            failures: w.failures,
            last_error: w.last_error.clone(),
            cursor: w.cursor,
        })
        .collect()
}

/// `GET /api/v1/webhooks`.
pub async fn list(State(m): State<AppState>) -> Result<Json<Vec<WebhookView>>, ApiError> {
    Ok(Json(m.read(views).await?))
}

/// `POST /api/v1/webhooks`.
pub async fn add(
    State(m): State<AppState>,
    body: Result<Json<WebhookBody>, JsonRejection>,
) -> Result<Json<WebhookView>, ApiError> {
    let Json(b) = body?;
    check_url(&b.url).map_err(ApiError::invalid)?;
    if let Some(t) = b
        .types
        .iter()
        .find(|t| !crate::api::events::TYPES.contains(&t.as_str()))
    {
        return Err(ApiError::invalid(format!(
            "types: unknown event type {t:?}; known: {}",
            crate::api::events::TYPES.join(", ")
        )));
    }
    commit(
        &m,
        Command::AddWebhook {
            url: b.url.clone(),
            types: b.types.clone(),
            stamp: stamp(&m),
        },
    )
    .await?;
    let v = m
        .read(|s| {
            views(s)
                .into_iter()
                .filter(|w| w.url == b.url)
                .max_by_key(|w| w.id)
        })
        .await?
        .ok_or_else(|| ApiError::invalid("the webhook vanished right after it was added"))?;
    Ok(Json(v))
}

/// `DELETE /api/v1/webhooks/{id}`.
pub async fn remove(
    State(m): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !m.read(|s| s.webhooks.contains_key(&id)).await? {
        return Err(ApiError::not_found(format!("unknown webhook {id}")));
    }
    let revision = commit(
        &m,
        Command::RemoveWebhook {
            id,
            stamp: stamp(&m),
        },
    )
    .await?;
    Ok(Json(
        serde_json::json!({ "removed": id, "revision": revision }),
    ))
}
