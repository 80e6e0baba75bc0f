//! Webhook delivery, on the leader: POST each matching event as JSON, in order, with
//! retries and backoff; commit the cursor after each delivered batch.
//!
//! At-least-once: the cursor is committed only after the receiver acknowledged (2xx),
//! so a leader that dies between the two leaves the events to be delivered again by
//! the next leader. Each request carries `Idempotency-Key: vigil-<webhook>-<seq>` (and
//! `X-Vigil-Event-Seq`, `X-Vigil-Event-Type`): a receiver that remembers keys sees
//! every event exactly once. A failing receiver is retried with exponential backoff
//! (1 s doubling to 60 s) without blocking the other webhooks; its failure count and
//! last error are committed (on the first failure and every 10th) so that `vigil
//! webhook list` shows them from any member.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{pause, Shared, WorkerConfig};
use crate::api::events::{view, EventView};
use crate::state::webhook::Webhook;
use crate::state::Command;

/// Events per delivery batch (one cursor commit per batch).
const BATCH: usize = 100;
/// Longest wait for a receiver's answer.
const TIMEOUT: Duration = Duration::from_secs(10);

struct Backoff {
    next_try: Instant,
    delay: Duration,
    /// Consecutive failures seen by this leader.
    failures: u32,
}

/// The delivery loop.
pub async fn run(sh: Arc<Shared>, cfg: WorkerConfig, mut stop: watch::Receiver<bool>) {
    let http = match reqwest::Client::builder()
        .no_proxy()
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(3))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks: cannot build an HTTP client; no deliveries");
            return;
        }
    };
    let mut backoff: BTreeMap<u64, Backoff> = BTreeMap::new();
    loop {
        if pause(cfg.tick.max(Duration::from_millis(100)), &mut stop).await {
            return;
        }
        if !sh.member.is_leader() || sh.member.links_cut() {
            backoff.clear();
            continue;
        }
        let hooks: Vec<Webhook> = sh
            .member
            .read_local(|s| s.webhooks.values().cloned().collect());
        backoff.retain(|id, _| hooks.iter().any(|h| h.id == *id));
        for hook in hooks {
            if backoff
                .get(&hook.id)
                .is_some_and(|b| Instant::now() < b.next_try)
            {
                continue;
            }
            deliver(&sh, &http, &hook, &mut backoff).await;
        }
    }
}

/// The next batch for `hook`: (events to send, cursor after them, events lost to
/// retention before delivery).
fn batch(sh: &Shared, hook: &Webhook) -> (Vec<EventView>, u64, u64) {
    sh.member.read_local(|s| {
        let oldest = s.events.front().map_or(s.next_event, |e| e.seq);
        let lost = oldest.saturating_sub(hook.cursor);
        let mut out = Vec::new();
        let start = hook.cursor.max(oldest);
        let mut cursor = start;
        for e in s.events.iter().filter(|e| e.seq >= start) {
            if hook.wants(&e.kind) {
                if out.len() == BATCH {
                    break;
                }
                out.push(view(e));
            }
            cursor = e.seq + 1;
        }
        (out, cursor, lost)
    })
}

async fn deliver(
    sh: &Shared,
    http: &reqwest::Client,
    hook: &Webhook,
    backoff: &mut BTreeMap<u64, Backoff>,
) {
    let (events, cursor, lost) = batch(sh, hook);
    if cursor == hook.cursor {
        return; // nothing new
    }
    let mut delivered = 0u64;
    let mut reached = hook.cursor;
    let mut error = None;
    for e in &events {
        let key = format!("vigil-{}-{}", hook.id, e.seq);
        let r = http
            .post(&hook.url)
            .header("Idempotency-Key", &key)
            .header("X-Vigil-Event-Seq", e.seq.to_string())
            .header("X-Vigil-Event-Type", &e.kind)
            .json(e)
            .send()
            .await;
        match r {
            Ok(resp) if resp.status().is_success() => {
                delivered += 1;
                reached = e.seq + 1;
            }
            Ok(resp) => {
                error = Some(format!(
                    "event {}: receiver answered HTTP {}",
                    e.seq,
                    resp.status()
                ));
                break;
            }
            Err(err) => {
                error = Some(format!("event {}: {err}", e.seq));
                break;
            }
        }
    }
    if error.is_none() {
        reached = cursor; // skipped (non-matching) events are done too
    }
    let failures = match &error {
        None => 0,
        Some(_) => backoff.get(&hook.id).map_or(hook.failures, |b| b.failures) + 1,
    };
    let last_error = match (&error, lost) {
        (Some(e), _) => Some(e.clone()),
        (None, 0) => None,
        (None, n) => Some(format!(
            "{n} event(s) left the history (events.retention) before they could be delivered"
        )),
    };
    match &error {
        None => {
            backoff.remove(&hook.id);
        }
        Some(e) => {
            let delay = backoff.get(&hook.id).map_or(Duration::from_secs(1), |b| {
                (b.delay * 2).min(Duration::from_secs(60))
            });
            tracing::warn!(webhook = hook.id, url = %hook.url, error = %e, retry_in = ?delay, "webhook delivery failed");
            backoff.insert(
                hook.id,
                Backoff {
                    next_try: Instant::now() + delay,
                    delay,
                    failures,
                },
            );
        }
    }
    // Commit progress; failures only on the first and every 10th, to keep a dead
    // receiver from writing to Raft every second.
    let report = reached > hook.cursor
        || (failures == 0 && hook.failures > 0)
        || failures == 1
        || (failures > 0 && failures % 10 == 0);
    if report {
        let r = sh
            .member
            .write(Command::WebhookProgress {
                id: hook.id,
                cursor: reached,
                delivered,
                failures,
                last_error,
                stamp: sh.stamp(),
            })
            .await;
        if let Err(e) = r {
            tracing::debug!(webhook = hook.id, error = %e, "committing webhook progress failed; the events will be delivered again");
        }
    }
}
