//! `/api/v1/pools`: create, list, show, enable/disable, policy overrides, remove.
//!
//! Input is parsed and validated here (errors name the field) before anything is
//! proposed; apply re-validates deterministically, and a refusal there is a 409.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::Json;

use crate::api::error::ApiError;
use crate::api::types::{
    BreakerView, BudgetView, CountsView, PolicyValue, PoolView, PoolWrite, Removed, SetPolicyBody,
};
use crate::api::{commit, stamp, AppState};
use crate::engine::policy::{parse_override, Millis, Overrides, FAST_PROFILE};
use crate::inventory::{self, PoolDoc};
use crate::settings::{self, Scope, SETTINGS};
use crate::state::{Command, VigilState};

/// Named policy profiles accepted by `set-policy --profile`.
pub const PROFILES: &[(&str, &[(&str, &str)])] = &[("fast", FAST_PROFILE)];

/// Every `policy.*` value in force given a pool's (and optionally a host's)
/// overrides, with where each comes from.
pub fn effective_policy(
    state: &VigilState,
    pool: &Overrides,
    host: Option<&Overrides>,
) -> Vec<PolicyValue> {
    SETTINGS
        .iter()
        .filter(|d| d.key.starts_with("policy."))
        .map(|d| {
            let key = d.key;
            let (value, source) = if let Some(v) = host.and_then(|h| h.get(key)) {
                (v.to_string(), "host")
            } else if let Some(v) = pool.get(key) {
                (v.to_string(), "pool")
            } else if let Some(r) = state.settings.get(key) {
                (r.value.to_string(), "cluster")
            } else {
                (d.default_value().to_string(), "default")
            };
            PolicyValue {
                key: key.to_string(),
                value,
                source: source.to_string(),
            }
        })
        .collect()
}

/// The view of pool `name` at `now`.
pub fn pool_view(state: &VigilState, name: &str, now: Millis) -> Option<PoolView> {
    let p = state.pools.get(name)?;
    let budget = state.pool_budget(name, now);
    let st = &p.status;
    Some(PoolView {
        name: p.spec.name.clone(),
        enabled: p.spec.enabled,
        state: st.state.to_string(),
        reason: st.reason.clone(),
        since_ms: st.since,
        breaker: BreakerView {
            open: st.breaker_open_since.is_some(),
            reason: st.breaker_reason.clone(),
            open_since_ms: st.breaker_open_since,
            clear_since_ms: st.breaker_clear_since,
        },
        fence_budget: BudgetView {
            used: budget.used,
            max: budget.max,
            left: budget.left(),
            next_free_at_ms: budget.next_free_at,
        },
        counts: CountsView {
            hosts: p.counts.hosts,
            enabled: p.counts.enabled,
            available: p.counts.available,
            failing: p.counts.failing,
        },
        policy: p
            .spec
            .policy
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
        effective_policy: effective_policy(state, &p.spec.policy, None),
    })
}

fn unknown_pool(name: &str) -> ApiError {
    ApiError::not_found(format!("unknown pool {name:?}")).hint("`vigil pool list` shows the pools")
}

async fn read_view(m: &AppState, name: &str) -> Result<PoolView, ApiError> {
    let now = crate::api::settings::now_ms();
    m.read(|s| pool_view(s, name, now))
        .await?
        .ok_or_else(|| unknown_pool(name))
}

async fn write_and_view(
    m: &AppState,
    name: &str,
    cmd: Command,
) -> Result<Json<PoolWrite>, ApiError> {
    let revision = commit(m, cmd).await?;
    Ok(Json(PoolWrite {
        revision,
        pool: read_view(m, name).await?,
    }))
}

/// `GET /api/v1/pools`.
pub async fn list(State(m): State<AppState>) -> Result<Json<Vec<PoolView>>, ApiError> {
    let now = crate::api::settings::now_ms();
    Ok(Json(
        m.read(|s| {
            s.pools
                .keys()
                .filter_map(|n| pool_view(s, n, now))
                .collect()
        })
        .await?,
    ))
}

/// `GET /api/v1/pools/{name}`.
pub async fn get(
    State(m): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PoolView>, ApiError> {
    Ok(Json(read_view(&m, &name).await?))
}

/// `POST /api/v1/pools` with `{"name", "enabled", "policy": {key: text}}`.
pub async fn create(
    State(m): State<AppState>,
    body: Result<Json<PoolDoc>, JsonRejection>,
) -> Result<Json<PoolWrite>, ApiError> {
    let Json(doc) = body?;
    let spec = doc
        .to_spec("", None)
        .map_err(|e| ApiError::invalid(inventory::error_text(&e)))?;
    if m.read(|s| s.pools.contains_key(&spec.name)).await? {
        return Err(ApiError::invalid(format!(
            "name: pool {} already exists",
            spec.name
        )));
    }
    let name = spec.name.clone();
    write_and_view(
        &m,
        &name,
        Command::CreatePool {
            spec,
            stamp: stamp(&m),
        },
    )
    .await
}

async fn set_enabled(
    m: AppState,
    name: String,
    enabled: bool,
) -> Result<Json<PoolWrite>, ApiError> {
    read_view(&m, &name).await?;
    let cmd = Command::UpdatePool {
        name: name.clone(),
        enabled: Some(enabled),
        set: Overrides::new(),
        unset: vec![],
        stamp: stamp(&m),
    };
    write_and_view(&m, &name, cmd).await
}

/// `POST /api/v1/pools/{name}/enable`.
pub async fn enable(
    State(m): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PoolWrite>, ApiError> {
    set_enabled(m, name, true).await
}

/// `POST /api/v1/pools/{name}/disable`.
pub async fn disable(
    State(m): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PoolWrite>, ApiError> {
    set_enabled(m, name, false).await
}

/// Parse a set-policy body into overrides to set and keys to unset.
pub fn parse_policy_body(body: &SetPolicyBody) -> Result<(Overrides, Vec<String>), ApiError> {
    let mut set = Overrides::new();
    if let Some(name) = &body.profile {
        let Some((_, pairs)) = PROFILES.iter().find(|(n, _)| n == name) else {
            return Err(ApiError::invalid(format!(
                "profile: unknown profile {name:?}; known: {}",
                PROFILES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        for (k, v) in pairs.iter() {
            let value = parse_override(k, v, Scope::Pool)
                .map_err(|e| ApiError::invalid(format!("profile {name}: {e}")))?;
            set.insert(k.to_string(), value);
        }
    }
    for (k, v) in &body.set {
        let value = parse_override(k, &v.0, Scope::Pool)
            .map_err(|e| ApiError::invalid(format!("set: {e}")))?;
        set.insert(k.clone(), value);
    }
    for k in &body.unset {
        settings::lookup(k).map_err(|e| ApiError::invalid(format!("unset: {e}")))?;
        if set.contains_key(k) {
            return Err(ApiError::invalid(format!(
                "unset: {k} is also being set; give it once"
            )));
        }
    }
    if set.is_empty() && body.unset.is_empty() {
        return Err(ApiError::invalid(
            "nothing to change: give set, unset or profile",
        ));
    }
    Ok((set, body.unset.clone()))
}

/// `PUT /api/v1/pools/{name}/policy` with `{"set": {key: text}, "unset": [key],
/// "profile": "fast"}`.
pub async fn set_policy(
    State(m): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<SetPolicyBody>, JsonRejection>,
) -> Result<Json<PoolWrite>, ApiError> {
    let Json(body) = body?;
    let (set, unset) = parse_policy_body(&body)?;
    read_view(&m, &name).await?;
    let cmd = Command::UpdatePool {
        name: name.clone(),
        enabled: None,
        set,
        unset,
        stamp: stamp(&m),
    };
    write_and_view(&m, &name, cmd).await
}

/// `DELETE /api/v1/pools/{name}`: only an empty pool (409 otherwise).
pub async fn remove(
    State(m): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    read_view(&m, &name).await?;
    let revision = commit(
        &m,
        Command::RemovePool {
            name: name.clone(),
            stamp: stamp(&m),
        },
    )
    .await?;
    Ok(Json(Removed {
        revision,
        removed: name,
    }))
}
