//! `POST /api/v1/apply`: a declarative inventory (see `crate::inventory`), planned
//! against a linearizable read and committed as ONE `ApplyInventory` command, which
//! apply makes all-or-nothing. Nothing is proposed for a dry run or an empty diff, so
//! applying the same file twice changes nothing (not even the revision).

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;

use crate::api::error::ApiError;
use crate::api::types::{ApplyBody, ApplyResult};
use crate::api::{commit, stamp, AppState};
use crate::inventory::{self, error_text};
use crate::state::Command;

/// Largest inventory body accepted (larger than other bodies: big fleets).
pub const INVENTORY_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// `POST /api/v1/apply` with `{"yaml": "...", "dry_run": false, "prune": false,
/// "env": {"VAR": "value"}}`.
pub async fn apply(
    State(m): State<AppState>,
    body: Result<Json<ApplyBody>, JsonRejection>,
) -> Result<Json<ApplyResult>, ApiError> {
    let Json(body) = body?;
    let mut inv =
        inventory::parse(&body.yaml).map_err(|e| ApiError::invalid(format!("inventory: {e}")))?;
    let env = &body.env;
    inv.resolve_passwords(|var| {
        env.get(var).map(|s| s.expose().to_string()).ok_or_else(|| {
            format!(
                "variable {var} was not provided (the CLI resolves password_env from its environment; API clients send its value in \"env\")"
            )
        })
    })
    .map_err(|e| ApiError::invalid(error_text(&e)))?;
    let prune = body.prune;
    let (plan, revision, config_revision) = m
        .read(|s| {
            (
                inventory::plan(&inv, s, prune),
                s.revision,
                s.config_revision,
            )
        })
        .await?;
    let mut plan = plan.map_err(|e| ApiError::invalid(error_text(&e)))?;
    plan.change.based_on = Some(config_revision);
    let (applied, revision) = if body.dry_run || plan.change.is_empty() {
        (false, revision)
    } else {
        let cmd = Command::ApplyInventory {
            change: plan.change,
            stamp: stamp(&m),
        };
        (true, commit(&m, cmd).await?)
    };
    Ok(Json(ApplyResult {
        changes: plan.changes,
        kept: plan.kept,
        unchanged: plan.unchanged,
        applied,
        dry_run: body.dry_run,
        revision,
    }))
}
