//! `POST /api/v1/hosts/{name}/power`: an operator reads or changes the power of a
//! registered host through the member that serves the request, with the host's own
//! (replicated, write-only) BMC credentials — so `vigil power --host H` needs no
//! password on the operator's machine.
//!
//! Reading (`status`, and any `dry_run`) changes nothing. A real action is an external
//! action like a fence, so it follows a committed record: `OperatorPower` is committed
//! first (apply refuses it while HA may act on the host: it must be in maintenance or
//! its pool disabled, with no intent in flight), then the BMC is called with a
//! deadline and the power verified, then the outcome is committed as an event.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use vigil_providers::PowerAction;

use crate::api::error::ApiError;
use crate::api::{stamp, AppState};
use crate::state::{Command, Response};

/// Longest deadline a caller may ask for.
const MAX_WITHIN_MS: u64 = 10 * 60 * 1000;

/// Request body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerBody {
    /// `status`, `on`, `off` or `cycle`.
    pub action: String,
    /// Fence level whose driver to use (0-based; default the first).
    #[serde(default)]
    pub level: u32,
    /// Read the state and say what would be done.
    #[serde(default)]
    pub dry_run: bool,
    /// Deadline in milliseconds, verification included (default 60 s).
    #[serde(default)]
    pub within_ms: Option<u64>,
}

/// What happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PowerReport {
    /// Host.
    pub host: String,
    /// Driver kind used.
    pub driver: String,
    /// `status`, `on`, `off` or `cycle`.
    pub action: String,
    /// Power state read (or verified after the action).
    pub power: String,
    /// Nothing had to be done.
    pub already: bool,
    /// Only read.
    pub dry_run: bool,
    /// The driver's evidence.
    pub detail: String,
    /// Time taken, ms.
    pub took_ms: u64,
    /// Member that talked to the BMC.
    pub member: u64,
}

fn driver_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "driver_error", e.to_string())
        .hint("check the BMC address and credentials with `vigil power status --fence …`")
}

async fn record(m: &AppState, cmd: Command) -> Result<(), ApiError> {
    match m.write(cmd).await? {
        Response::Rejected { reason } => Err(crate::error::VigilError::Rejected(reason).into()),
        _ => Ok(()),
    }
}

/// The handler.
pub async fn power(
    State(m): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<PowerBody>, JsonRejection>,
) -> Result<Json<PowerReport>, ApiError> {
    let Json(b) = body?;
    let action = match b.action.as_str() {
        "status" => None,
        "on" => Some(PowerAction::On),
        "off" => Some(PowerAction::Off),
        "cycle" => Some(PowerAction::Cycle),
        other => {
            return Err(ApiError::invalid(format!(
                "action: {other:?} is not one of status, on, off, cycle"
            )))
        }
    };
    let within = b.within_ms.unwrap_or(60_000);
    if within == 0 || within > MAX_WITHIN_MS {
        return Err(ApiError::invalid(format!(
            "within_ms: {within} is outside 1..{MAX_WITHIN_MS}"
        )));
    }
    let spec = m
        .read(|s| s.hosts.get(&name).map(|h| h.spec.clone()))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown host {name}")))?;
    let d = spec.fence.get(b.level as usize).ok_or_else(|| {
        ApiError::invalid(format!(
            "host {name} has {} fence level(s); level {} does not exist",
            spec.fence.len(),
            b.level + 1
        ))
    })?;
    let driver = crate::drivers::power_driver(d).map_err(ApiError::invalid)?;
    let deadline = Instant::now() + Duration::from_millis(within);
    let report = |action: &str,
                  power: String,
                  already: bool,
                  dry_run: bool,
                  detail: String,
                  took: Duration| {
        PowerReport {
            host: name.clone(),
            driver: driver.kind().to_string(),
            action: action.to_string(),
            power,
            already,
            dry_run,
            detail,
            took_ms: took.as_millis() as u64,
            member: m.id(),
        }
    };
    let Some(a) = action else {
        let r = driver.status(deadline).await.map_err(driver_error)?;
        return Ok(Json(report(
            "status",
            r.state.to_string(),
            false,
            false,
            r.detail,
            r.took,
        )));
    };
    if b.dry_run {
        let r = driver.status(deadline).await.map_err(driver_error)?;
        let detail = format!(
            "would power {a} (the host is {} now); nothing was sent",
            r.state
        );
        return Ok(Json(report(
            &a.to_string(),
            r.state.to_string(),
            false,
            true,
            detail,
            r.took,
        )));
    }
    let op = |result: Option<String>| Command::OperatorPower {
        host: name.clone(),
        action: a.to_string(),
        level: b.level,
        result,
        stamp: stamp(&m),
    };
    record(&m, op(None)).await?;
    match driver.act(a, deadline).await {
        Ok(r) => {
            let summary = format!(
                "verified {}{} in {} ms by member {}",
                r.verified,
                if r.already { " (already)" } else { "" },
                r.took.as_millis(),
                m.id()
            );
            record(&m, op(Some(summary))).await?;
            Ok(Json(report(
                &a.to_string(),
                r.verified.to_string(),
                r.already,
                false,
                r.detail,
                r.took,
            )))
        }
        Err(e) => {
            record(&m, op(Some(format!("failed: {e}")))).await?;
            Err(driver_error(e))
        }
    }
}
