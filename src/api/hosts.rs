//! `/api/v1/hosts`: add, list (filtered by pool and state), show, remove, maintenance,
//! `explain`, and the operator actions `retry`, `confirm-off`, `unfence`.
//!
//! BMC passwords go in (`POST`) but never come out: views say `password_set` only.

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;

use crate::api::error::ApiError;
use crate::api::settings::now_ms;
use crate::api::types::{
    AdminBody, CheckView, ExplainView, FenceLevelView, GateView, HostView, HostWrite, IntentView,
    MaintenanceBody, Removed, TransitionView,
};
use crate::api::{commit, stamp, AppState};
use crate::engine::explain::explain;
use crate::engine::host::{Ctx, IntentEnd, Transition};
use crate::engine::input::{ActionResult, Activity, Admin, Input};
use crate::engine::record::HaState;
use crate::inventory::{self, HostDoc};
use crate::state::model::{CheckSpec, HistoryEntry, Host, Intent, IntentKind, IntentState};
use crate::state::{Command, HostInput, InputOutcome, Response, Stamp, VigilState};

/// Longest evidence detail shown (checker output can be long).
const DETAIL_MAX: usize = 200;

fn check_view(c: &CheckSpec) -> CheckView {
    CheckView {
        kind: c.kind.name().to_string(),
        target: c.target.clone(),
        options: c.options.clone(),
    }
}

/// The view of a host. Never contains a password.
pub fn host_view(h: &Host) -> HostView {
    HostView {
        name: h.spec.name.clone(),
        pool: h.spec.pool.clone(),
        kind: h.spec.kind.clone(),
        labels: h.spec.labels.clone(),
        state: h.ha.state.to_string(),
        since_ms: h.ha.since,
        power: h.ha.power.to_string(),
        ineligible: h.ha.ineligible.map(|r| r.to_string()),
        owner: h.owner,
        epoch: h.epoch,
        maintenance: h.spec.maintenance,
        health: h.spec.health.as_ref().map(check_view),
        activity: h.spec.activity.as_ref().map(check_view),
        fence: h
            .spec
            .fence
            .iter()
            .map(|d| FenceLevelView {
                kind: d.kind.name().to_string(),
                address: d.address.clone(),
                username: d.username.clone(),
                password_set: d.password.is_set(),
                options: d.options.clone(),
            })
            .collect(),
        policy: h
            .spec
            .policy
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
        intent: h.ha.intent,
        blocked: h.ha.blocked.clone(),
        alarm: h.ha.alarm.clone(),
    }
}

fn clip(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= DETAIL_MAX {
        return s.to_string();
    }
    let mut out: String = s.chars().take(DETAIL_MAX).collect();
    out.push('…');
    out
}

fn with_detail(head: String, detail: &str) -> String {
    if detail.trim().is_empty() {
        head
    } else {
        format!("{head}: {}", clip(detail))
    }
}

/// One line saying what an input reported.
pub fn evidence_summary(input: &Input) -> String {
    match input {
        Input::Health(o) if o.pass => with_detail("health check passed".into(), &o.detail),
        Input::Health(o) => with_detail(
            format!(
                "health check failed ({} in a row, {}/{} in the window)",
                o.consecutive_failures, o.window_failures, o.window_len
            ),
            &o.detail,
        ),
        Input::Activity { result, detail } => with_detail(
            match result {
                Activity::Active => "activity seen",
                Activity::Inactive => "no activity",
                Activity::Error => "activity check error",
            }
            .into(),
            detail,
        ),
        Input::Power { state, detail } => with_detail(format!("power {state}"), detail),
        Input::Outcome { intent, result } => match result {
            ActionResult::Done {
                power_after,
                detail,
            } => with_detail(
                format!("intent #{intent} done, power {power_after} afterwards"),
                detail,
            ),
            ActionResult::Failed { reason } => {
                with_detail(format!("intent #{intent} failed"), reason)
            }
            ActionResult::Unknown { power, detail } => with_detail(
                format!("intent #{intent} outcome unknown, power {power} now"),
                detail,
            ),
        },
        Input::Tick => "timer: a deadline or schedule was due".into(),
        Input::Admin(a) => match a {
            Admin::Enable => "HA enabled for the pool",
            Admin::Disable => "HA disabled for the pool",
            Admin::Reevaluate => "configuration changed",
            Admin::Retry => "operator: retry",
            Admin::ConfirmOff => "operator: confirm-off",
            Admin::Unfence => "operator: unfence",
        }
        .into(),
    }
}

fn transition_view(at: u64, by: u64, t: &Transition, evidence: &Input) -> TransitionView {
    TransitionView {
        at_ms: at,
        by,
        from: t.from.to_string(),
        to: t.to.to_string(),
        reason: t.reason.clone(),
        evidence_kind: evidence.kind().to_string(),
        evidence: evidence_summary(evidence),
    }
}

fn history_view(e: &HistoryEntry) -> TransitionView {
    transition_view(e.at, e.by, &e.transition, &e.evidence)
}

fn intent_end(end: &IntentEnd) -> String {
    match end {
        IntentEnd::Succeeded => "succeeded".into(),
        IntentEnd::Failed(r) => format!("failed: {r}"),
        IntentEnd::TimedOut => "timed out".into(),
        IntentEnd::Abandoned(r) => format!("abandoned: {r}"),
    }
}

/// The view of an intent.
pub fn intent_view(i: &Intent) -> IntentView {
    let (kind, attempt, level, driver) = match &i.kind {
        IntentKind::Recover { attempt } => ("recover", Some(*attempt), None, None),
        IntentKind::Fence { level, driver } => {
            ("fence", None, Some(*level), Some(driver.name().to_string()))
        }
    };
    IntentView {
        id: i.id,
        kind: kind.into(),
        attempt,
        level,
        driver,
        epoch: i.epoch,
        owner: i.owner,
        created_at_ms: i.created_at,
        deadline_ms: i.deadline,
        state: match &i.state {
            IntentState::InFlight => "in-flight".into(),
            IntentState::Ended { end, .. } => intent_end(end),
        },
    }
}

/// What `explain` says about host `name` at `now`.
pub fn explain_view(s: &VigilState, name: &str, now: u64) -> Option<ExplainView> {
    let h = s.hosts.get(name)?;
    let policy = s.host_policy(&h.spec);
    let gate = s.pool_gate(&h.spec.pool, now);
    let ctx = Ctx {
        policy: &policy,
        gate: &gate,
        maintenance: h.spec.maintenance,
        fence_levels: h.spec.fence.len() as u32,
        next_intent_id: s.next_intent,
    };
    let ex = explain(&h.ha, &ctx, now);
    let pool = s.pools.get(&h.spec.pool);
    Some(ExplainView {
        host: h.spec.name.clone(),
        pool: h.spec.pool.clone(),
        state: ex.state.to_string(),
        since_ms: ex.since,
        power: h.ha.power.to_string(),
        ineligible: h.ha.ineligible.map(|r| r.to_string()),
        waiting_for: ex.waiting_for,
        next_at_ms: ex.next_at,
        can_act: ex.can_act,
        blocked: ex.blocked,
        alarm: ex.alarm,
        owner: h.owner,
        epoch: h.epoch,
        pool_gate: GateView {
            state: pool
                .map(|p| p.state().to_string())
                .unwrap_or_else(|| "missing".into()),
            reason: match (pool, &gate.actions) {
                (Some(p), _) if !p.status.reason.is_empty() => p.status.reason.clone(),
                (_, Err(why)) => why.clone(),
                _ => String::new(),
            },
            actions_allowed: gate.actions.is_ok(),
            fence_budget_left: gate.fence_budget_left,
        },
        intent: h
            .ha
            .intent
            .and_then(|id| s.intents.get(&id))
            .map(intent_view),
        transitions: h.history.iter().map(history_view).collect(),
        now_ms: now,
    })
}

fn unknown_host(name: &str) -> ApiError {
    ApiError::not_found(format!("unknown host {name:?}")).hint("`vigil host list` shows the hosts")
}

async fn read_host(m: &AppState, name: &str) -> Result<Host, ApiError> {
    m.read(|s| s.hosts.get(name).cloned())
        .await?
        .ok_or_else(|| unknown_host(name))
}

/// `GET /api/v1/hosts?pool=P&state=S`.
pub async fn list(
    State(m): State<AppState>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Json<Vec<HostView>>, ApiError> {
    if let Some(k) = q.keys().find(|k| !matches!(k.as_str(), "pool" | "state")) {
        return Err(ApiError::invalid(format!(
            "unknown query parameter {k:?}; known: pool, state"
        )));
    }
    let state = match q.get("state") {
        None => None,
        Some(t) => Some(HaState::parse(t).ok_or_else(|| {
            ApiError::invalid(format!(
                "state: unknown HA state {t:?}; known: {}",
                HaState::ALL.map(|s| s.name()).join(", ")
            ))
        })?),
    };
    let pool = q.get("pool").cloned();
    let hosts = m
        .read(|s| {
            if let Some(p) = &pool {
                if !s.pools.contains_key(p) {
                    return None;
                }
            }
            Some(
                s.hosts
                    .values()
                    .filter(|h| pool.iter().all(|p| &h.spec.pool == p))
                    .filter(|h| state.iter().all(|st| h.ha.state == *st))
                    .map(host_view)
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
    match hosts {
        Some(h) => Ok(Json(h)),
        None => Err(ApiError::not_found(format!(
            "unknown pool {:?}",
            pool.unwrap_or_default()
        ))),
    }
}

/// `GET /api/v1/hosts/{name}`.
pub async fn get(
    State(m): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<HostView>, ApiError> {
    Ok(Json(host_view(&read_host(&m, &name).await?)))
}

/// `POST /api/v1/hosts` with a host document (the inventory's host entry).
pub async fn add(
    State(m): State<AppState>,
    body: Result<Json<HostDoc>, JsonRejection>,
) -> Result<Json<HostWrite>, ApiError> {
    let Json(doc) = body?;
    let spec = doc
        .to_spec("", None)
        .map_err(|e| ApiError::invalid(inventory::error_text(&e)))?;
    let (pool_exists, host_exists) = m
        .read(|s| {
            (
                s.pools.contains_key(&spec.pool),
                s.hosts.contains_key(&spec.name),
            )
        })
        .await?;
    if !pool_exists {
        return Err(
            ApiError::invalid(format!("pool: unknown pool {:?}", spec.pool))
                .hint("create it first with `vigil pool create`"),
        );
    }
    if host_exists {
        return Err(ApiError::invalid(format!(
            "name: host {} already exists",
            spec.name
        )));
    }
    let name = spec.name.clone();
    let revision = commit(
        &m,
        Command::AddHost {
            spec,
            stamp: stamp(&m),
        },
    )
    .await?;
    let h = read_host(&m, &name).await?;
    Ok(Json(HostWrite {
        revision,
        transition: h.history.last().map(history_view),
        host: host_view(&h),
        note: None,
    }))
}

/// `DELETE /api/v1/hosts/{name}` (409 while an action is in flight).
pub async fn remove(
    State(m): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    read_host(&m, &name).await?;
    let revision = commit(
        &m,
        Command::RemoveHost {
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

/// `PUT /api/v1/hosts/{name}/maintenance` with `{"on": true}`.
pub async fn maintenance(
    State(m): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<MaintenanceBody>, JsonRejection>,
) -> Result<Json<HostWrite>, ApiError> {
    let Json(body) = body?;
    let before = read_host(&m, &name).await?;
    let st = stamp(&m);
    let revision = commit(
        &m,
        Command::SetMaintenance {
            name: name.clone(),
            on: body.on,
            stamp: st,
        },
    )
    .await?;
    let h = read_host(&m, &name).await?;
    let transition = h
        .history
        .last()
        .filter(|e| e.at == st.at_ms && e.by == st.by)
        .map(history_view);
    let note = (before.spec.maintenance == body.on).then(|| {
        format!(
            "maintenance was already {}",
            if body.on { "on" } else { "off" }
        )
    });
    Ok(Json(HostWrite {
        revision,
        host: host_view(&h),
        transition,
        note,
    }))
}

/// `GET /api/v1/hosts/{name}/explain`.
pub async fn explain_host(
    State(m): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ExplainView>, ApiError> {
    let now = now_ms();
    m.read(|s| explain_view(s, &name, now))
        .await?
        .map(Json)
        .ok_or_else(|| unknown_host(&name))
}

/// An operator action and the states it applies to.
fn admin_op(op: &str) -> Result<(Admin, &'static [HaState], &'static str), ApiError> {
    use HaState::*;
    match op {
        "retry" => Ok((Admin::Retry, &[FenceFailed], "fence-failed")),
        "confirm-off" => Ok((
            Admin::ConfirmOff,
            &[Suspect, Checking, Degraded, Recovered, Fencing, FenceFailed],
            "suspect, checking, degraded, recovered, fencing or fence-failed",
        )),
        "unfence" => Ok((
            Admin::Unfence,
            &[Fenced, FenceFailed],
            "fenced or fence-failed",
        )),
        other => Err(ApiError::invalid(format!(
            "op: unknown operation {other:?}; known: retry, confirm-off, unfence"
        ))),
    }
}

/// `POST /api/v1/hosts/{name}/admin` with `{"op": "retry" | "confirm-off" | "unfence"}`.
pub async fn admin(
    State(m): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<AdminBody>, JsonRejection>,
) -> Result<Json<HostWrite>, ApiError> {
    let Json(body) = body?;
    let (op, applies, states) = admin_op(&body.op)?;
    let before = read_host(&m, &name).await?;
    if !applies.contains(&before.ha.state) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_applicable",
            format!(
                "host {name} is {}; {} applies only to {states} hosts",
                before.ha.state, body.op
            ),
        )
        .hint("`vigil host explain` says what the host is waiting for"));
    }
    let st: Stamp = stamp(&m);
    let resp = m
        .write(Command::HostInputs {
            inputs: vec![HostInput {
                host: name.clone(),
                epoch: None,
                input: Input::Admin(op),
            }],
            stamp: st,
        })
        .await?;
    let (revision, outcome) = match resp {
        Response::Inputs { revision, results } => (revision, results.into_iter().next()),
        Response::Applied { revision } | Response::Begun { revision, .. } => (revision, None),
        Response::Rejected { reason } => {
            return Err(crate::error::VigilError::Rejected(reason).into())
        }
    };
    let transition = match outcome {
        Some(InputOutcome::Rejected { reason }) => {
            return Err(crate::error::VigilError::Rejected(reason).into())
        }
        Some(InputOutcome::Applied { transition, .. }) => transition,
        None => None,
    };
    let h = read_host(&m, &name).await?;
    let note = match (&transition, &h.ha.blocked) {
        (Some(_), _) => None,
        (None, Some(blocked)) => Some(format!("held: {blocked}")),
        (None, None) => Some(format!("no change: host is {}", h.ha.state)),
    };
    Ok(Json(HostWrite {
        revision,
        transition: transition
            .as_ref()
            .map(|t| transition_view(st.at_ms, st.by, t, &Input::Admin(op))),
        host: host_view(&h),
        note,
    }))
}
