//! `/api/v1/settings`: the typed cluster settings.
//!
//! Values are parsed and validated here, before anything is proposed; reads are
//! linearizable (they see every write acknowledged before them).

use axum::extract::{Path, State};
use axum::Json;

use crate::api::error::ApiError;
use crate::api::types::{SetSettingBody, SettingView, WriteResult};
use crate::api::AppState;
use crate::error::VigilError;
use crate::settings::{self, SETTINGS};
use crate::state::{Command, Response, Stamp, VigilState};

fn view(state: &VigilState, key: &str) -> Result<SettingView, VigilError> {
    let def = settings::lookup(key)?;
    let record = state.settings.get(key);
    let default = if key.starts_with(settings::META_PREFIX) {
        String::new()
    } else {
        def.default_value().to_string()
    };
    Ok(SettingView {
        key: key.to_string(),
        value: record
            .map(|r| r.value.to_string())
            .unwrap_or_else(|| default.clone()),
        default,
        kind: def.type_name().into(),
        explicit: record.is_some(),
        revision: record.map(|r| r.revision),
        set_by: record.map(|r| r.stamp.by),
        set_at_ms: record.map(|r| r.stamp.at_ms),
        help: def.help.into(),
    })
}

/// Every declared setting plus every annotation, sorted by key.
pub fn list_views(state: &VigilState) -> Vec<SettingView> {
    let mut keys: Vec<String> = SETTINGS.iter().map(|d| d.key.to_string()).collect();
    keys.extend(
        state
            .settings
            .keys()
            .filter(|k| k.starts_with(settings::META_PREFIX))
            .cloned(),
    );
    keys.sort();
    keys.iter().filter_map(|k| view(state, k).ok()).collect()
}

/// `GET /api/v1/settings`.
pub async fn list(State(m): State<AppState>) -> Result<Json<Vec<SettingView>>, ApiError> {
    Ok(Json(m.read(list_views).await?))
}

/// `GET /api/v1/settings/{key}`.
pub async fn get(
    State(m): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<SettingView>, ApiError> {
    settings::lookup(&key)?;
    if key.starts_with(settings::META_PREFIX) && !m.read(|s| s.settings.contains_key(&key)).await? {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            format!("annotation {key} is not set"),
        ));
    }
    Ok(Json(m.read(|s| view(s, &key)).await??))
}

/// Milliseconds since the Unix epoch (the proposer's clock, stamped into commands).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn commit(m: &AppState, key: &str, cmd: Command) -> Result<Json<WriteResult>, ApiError> {
    match m.write(cmd).await? {
        Response::Applied { revision }
        | Response::Inputs { revision, .. }
        | Response::Begun { revision, .. } => {
            // Linearizable read: on a follower the local state may not have applied
            // the write yet.
            let setting = m.read(|s| view(s, key)).await??;
            Ok(Json(WriteResult { revision, setting }))
        }
        Response::Rejected { reason } => Err(VigilError::Rejected(reason).into()),
    }
}

/// `PUT /api/v1/settings/{key}` with `{"value": "..."}`: validated, then proposed.
pub async fn set(
    State(m): State<AppState>,
    Path(key): Path<String>,
    Json(body): Json<SetSettingBody>,
) -> Result<Json<WriteResult>, ApiError> {
    let def = settings::lookup(&key)?;
    let value = def.parse(&key, &body.value)?;
    let stamp = Stamp {
        by: m.id(),
        at_ms: now_ms(),
    };
    commit(
        &m,
        &key,
        Command::SetSetting {
            key: key.clone(),
            value,
            stamp,
        },
    )
    .await
}

/// `DELETE /api/v1/settings/{key}`: back to the default.
pub async fn reset(
    State(m): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<WriteResult>, ApiError> {
    settings::lookup(&key)?;
    let stamp = Stamp {
        by: m.id(),
        at_ms: now_ms(),
    };
    commit(
        &m,
        &key,
        Command::ResetSetting {
            key: key.clone(),
            stamp,
        },
    )
    .await
}
