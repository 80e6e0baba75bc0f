//! `GET /api/v1/events`: the replicated event history, filtered, with long polling.
//!
//! Every transition, intent, outcome, alarm, fence and configuration change is an
//! event with a sequence number (`seq`, increasing, never reused) and its evidence.
//! A client follows the stream by asking for events `from` the `next` of its previous
//! answer with `wait_ms`: the request returns as soon as a matching event is applied on the member
//! it asked, or empty when the wait is over (then it asks again). Events older than
//! `events.retention` are gone; `oldest` in the answer says where the history starts,
//! so a client that fell behind knows it missed some.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::api::error::ApiError;
use crate::api::hosts::evidence_summary;
use crate::api::AppState;
use crate::state::model::{Event, EventKind, IntentKind};
use crate::state::VigilState;

/// Longest a request may wait for new events.
pub const MAX_WAIT_MS: u64 = 30_000;
/// Most events one answer carries.
pub const MAX_LIMIT: usize = 1000;

/// One event as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventView {
    /// Sequence number.
    pub seq: u64,
    /// When (ms since the Unix epoch, proposer's clock).
    pub at_ms: u64,
    /// Proposing member.
    pub by: u64,
    /// `host.transition`, `host.fenced`, `pool.transition`, `intent.started`,
    /// `intent.ended`, `alarm` or `config`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Host concerned.
    pub host: Option<String>,
    /// Pool concerned.
    pub pool: Option<String>,
    /// One line for humans.
    pub text: String,
    /// The structured event (its fields depend on the type).
    pub detail: EventKind,
    /// What the input that caused it said, in one line.
    pub evidence: Option<String>,
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventPage {
    /// Matching events, oldest first.
    pub events: Vec<EventView>,
    /// Ask with `from=next` to continue (one past the last event returned).
    pub next: u64,
    /// Oldest `seq` still kept (older ones are gone).
    pub oldest: u64,
}

/// The type name of an event.
pub fn type_name(k: &EventKind) -> &'static str {
    match k {
        EventKind::HostTransition(_) => "host.transition",
        EventKind::HostFenced { .. } => "host.fenced",
        EventKind::PoolTransition { .. } => "pool.transition",
        EventKind::IntentStarted { .. } => "intent.started",
        EventKind::IntentEnded { .. } => "intent.ended",
        EventKind::Alarm { .. } => "alarm",
        EventKind::Config { .. } => "config",
    }
}

/// Every type name.
pub const TYPES: [&str; 7] = [
    "host.transition",
    "host.fenced",
    "pool.transition",
    "intent.started",
    "intent.ended",
    "alarm",
    "config",
];

fn text(k: &EventKind) -> String {
    match k {
        EventKind::HostTransition(t) => format!("{} -> {}: {}", t.from, t.to, t.reason),
        EventKind::HostFenced {
            by,
            level,
            intent,
            power,
            detail,
        } => {
            let how = match (level, intent) {
                (Some(l), Some(i)) => format!("by {by} (fence level {}, intent #{i})", l + 1),
                _ => format!("by {by}"),
            };
            format!("FENCED {how}: power verified {power}; {detail}")
        }
        EventKind::PoolTransition { from, to, reason } => format!("pool {from} -> {to}: {reason}"),
        EventKind::IntentStarted { intent, kind } => match kind {
            IntentKind::Recover { attempt } => {
                format!("intent #{intent}: power cycle (attempt {attempt})")
            }
            IntentKind::Fence { level, driver } => {
                format!(
                    "intent #{intent}: fence level {} ({})",
                    level + 1,
                    driver.name()
                )
            }
        },
        EventKind::IntentEnded { intent, end } => format!("intent #{intent} ended: {end:?}"),
        EventKind::Alarm { text } => format!("ALARM: {text}"),
        EventKind::Config { what } => what.clone(),
    }
}

/// The API view of an event.
pub fn view(e: &Event) -> EventView {
    EventView {
        seq: e.seq,
        at_ms: e.at,
        by: e.by,
        kind: type_name(&e.kind).to_string(),
        host: e.host.clone(),
        pool: e.pool.clone(),
        text: text(&e.kind),
        detail: e.kind.clone(),
        evidence: e.evidence.as_ref().map(evidence_summary),
    }
}

/// Which events a client wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only from this `seq` on (inclusive); `None`: the last `limit` events.
    pub from: Option<u64>,
    /// Only this host.
    pub host: Option<String>,
    /// Only this pool.
    pub pool: Option<String>,
    /// Only these types (empty: all).
    pub types: Vec<String>,
    /// At most this many.
    pub limit: usize,
}

impl Filter {
    fn matches(&self, e: &Event) -> bool {
        self.from.is_none_or(|a| e.seq >= a)
            && self
                .host
                .as_ref()
                .is_none_or(|h| e.host.as_ref() == Some(h))
            && self
                .pool
                .as_ref()
                .is_none_or(|p| e.pool.as_ref() == Some(p))
            && (self.types.is_empty() || self.types.iter().any(|t| t == type_name(&e.kind)))
    }

    /// The matching page of `s`'s history.
    pub fn page(&self, s: &VigilState) -> EventPage {
        let oldest = s.events.front().map_or(s.next_event, |e| e.seq);
        let events: Vec<EventView> = match self.from {
            // Following: the first `limit` after the cursor.
            Some(_) => s
                .events
                .iter()
                .filter(|e| self.matches(e))
                .take(self.limit)
                .map(view)
                .collect(),
            // Looking back: the last `limit`.
            None => {
                let mut v: Vec<EventView> = s
                    .events
                    .iter()
                    .rev()
                    .filter(|e| self.matches(e))
                    .take(self.limit)
                    .map(view)
                    .collect();
                v.reverse();
                v
            }
        };
        let next = match events.last() {
            Some(e) => e.seq + 1,
            // Nothing matched: continue after everything there is so far.
            None => s.next_event.max(self.from.unwrap_or(0)),
        };
        EventPage {
            events,
            next,
            oldest,
        }
    }
}

/// `GET /api/v1/events?from=SEQ&host=H&pool=P&type=T[,T…]&limit=N&wait_ms=W`.
pub async fn list(
    State(m): State<AppState>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Json<EventPage>, ApiError> {
    if let Some(k) = q.keys().find(|k| {
        !matches!(
            k.as_str(),
            "from" | "host" | "pool" | "type" | "limit" | "wait_ms"
        )
    }) {
        return Err(ApiError::invalid(format!(
            "unknown query parameter {k:?}; known: from, host, pool, type, limit, wait_ms"
        )));
    }
    let num = |k: &str| -> Result<Option<u64>, ApiError> {
        q.get(k)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::invalid(format!("{k}: {v:?} is not a non-negative integer"))
                })
            })
            .transpose()
    };
    let types: Vec<String> = q
        .get("type")
        .map(|t| {
            t.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let Some(t) = types.iter().find(|t| !TYPES.contains(&t.as_str())) {
        return Err(ApiError::invalid(format!(
            "type: unknown event type {t:?}; known: {}",
            TYPES.join(", ")
        )));
    }
    let limit = num("limit")?.unwrap_or(100) as usize;
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::invalid(format!(
            "limit: {limit} is outside 1..{MAX_LIMIT}"
        )));
    }
    let wait = num("wait_ms")?.unwrap_or(0);
    if wait > MAX_WAIT_MS {
        return Err(ApiError::invalid(format!(
            "wait_ms: {wait} is more than {MAX_WAIT_MS}"
        )));
    }
    let f = Filter {
        from: num("from")?,
        host: q.get("host").cloned(),
        pool: q.get("pool").cloned(),
        types,
        limit,
    };
    // The first look is linearizable (nothing committed before the request is
    // missed); while waiting, this member's applied state is watched.
    let page = m.read(|s| f.page(s)).await?;
    if !page.events.is_empty() || wait == 0 {
        return Ok(Json(page));
    }
    let end = Instant::now() + Duration::from_millis(wait);
    loop {
        tokio::time::sleep(
            Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())),
        )
        .await;
        let page = m.read_local(|s| f.page(s));
        if !page.events.is_empty() || Instant::now() >= end {
            return Ok(Json(page));
        }
    }
}
