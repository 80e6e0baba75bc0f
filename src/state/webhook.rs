//! Webhooks in the replicated state: registrations and their committed delivery
//! cursors.
//!
//! The leader delivers (src/worker/webhooks.rs) and commits how far it got; a new
//! leader continues from the committed cursor, so every event is delivered at least
//! once. Each delivery carries an idempotency key (webhook id and event seq) with
//! which a receiver makes that exactly-once.

use serde::{Deserialize, Serialize};

use crate::engine::policy::Millis;
use crate::state::model::EventKind;
use crate::state::{Stamp, VigilState};

/// Webhooks a cluster may have.
pub const MAX_WEBHOOKS: usize = 64;

/// One registered webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Id.
    pub id: u64,
    /// Where events are POSTed.
    pub url: String,
    /// Event types delivered (empty: all).
    pub types: Vec<String>,
    /// Registered at.
    pub created_at: Millis,
    /// Every event before this `seq` was delivered or does not match.
    pub cursor: u64,
    /// Deliveries acknowledged in total.
    pub delivered: u64,
    /// Consecutive failed attempts.
    pub failures: u32,
    /// The last error, while failing.
    pub last_error: Option<String>,
    /// Last progress report.
    pub updated_at: Millis,
}

impl Webhook {
    /// Does this webhook want events of this kind?
    pub fn wants(&self, kind: &EventKind) -> bool {
        self.types.is_empty()
            || self
                .types
                .iter()
                .any(|t| t == crate::api::events::type_name(kind))
    }
}

/// Check a webhook URL: absolute http(s) with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("url {url:?}: expected http://HOST[:PORT]/PATH or https://…"))?;
    if !matches!(scheme, "http" | "https") {
        return Err(format!("url {url:?}: scheme must be http or https"));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("url {url:?}: no host"));
    }
    if url.len() > 2048 {
        return Err("url: longer than 2048 characters".into());
    }
    Ok(())
}

impl VigilState {
    pub(crate) fn add_webhook(
        &mut self,
        url: &str,
        types: &[String],
        stamp: Stamp,
    ) -> Result<(), String> {
        check_url(url)?;
        if let Some(t) = types
            .iter()
            .find(|t| !crate::api::events::TYPES.contains(&t.as_str()))
        {
            return Err(format!(
                "unknown event type {t:?}; known: {}",
                crate::api::events::TYPES.join(", ")
            ));
        }
        if self.webhooks.len() >= MAX_WEBHOOKS {
            return Err(format!("at most {MAX_WEBHOOKS} webhooks"));
        }
        let id = self.next_webhook;
        self.next_webhook += 1;
        self.webhooks.insert(
            id,
            Webhook {
                id,
                url: url.to_string(),
                types: types.to_vec(),
                created_at: stamp.at_ms,
                cursor: self.next_event,
                delivered: 0,
                failures: 0,
                last_error: None,
                updated_at: stamp.at_ms,
            },
        );
        Ok(())
    }

    pub(crate) fn remove_webhook(&mut self, id: u64, _stamp: Stamp) -> Result<(), String> {
        self.webhooks
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| format!("unknown webhook {id}"))
    }

    /// Progress only moves forward: a stale leader's report cannot move a cursor back.
    pub(crate) fn webhook_progress(
        &mut self,
        id: u64,
        cursor: u64,
        delivered: u64,
        failures: u32,
        last_error: &Option<String>,
        stamp: Stamp,
    ) -> Result<(), String> {
        let w = self
            .webhooks
            .get_mut(&id)
            .ok_or_else(|| format!("unknown webhook {id}"))?;
        if cursor < w.cursor {
            return Err(format!(
                "stale progress for webhook {id}: cursor {cursor} < {}",
                w.cursor
            ));
        }
        w.cursor = cursor;
        w.delivered += delivered;
        w.failures = failures;
        w.last_error = last_error.clone();
        w.updated_at = stamp.at_ms;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::LocalApply;
    use crate::state::{Command, Response};

    fn st() -> Stamp {
        Stamp { by: 1, at_ms: 5 }
    }

    #[test]
    fn register_validate_progress_forward_only_and_remove() {
        let mut l = LocalApply::default();
        for bad in ["ftp://x", "http://", "nohost", "http:// spaced"] {
            let r = l.apply(&Command::AddWebhook {
                url: bad.into(),
                types: vec![],
                stamp: st(),
            });
            assert!(matches!(r, Response::Rejected { .. }), "{bad}: {r:?}");
        }
        let r = l.apply(&Command::AddWebhook {
            url: "http://127.0.0.1:9/hook".into(),
            types: vec!["host.exploded".into()],
            stamp: st(),
        });
        assert!(matches!(r, Response::Rejected { reason } if reason.contains("host.fenced")));
        l.must(&Command::AddWebhook {
            url: "http://127.0.0.1:9/hook".into(),
            types: vec!["host.fenced".into()],
            stamp: st(),
        });
        assert_eq!(l.state.webhooks[&0].cursor, l.state.next_event);
        let progress = |cursor| Command::WebhookProgress {
            id: 0,
            cursor,
            delivered: 1,
            failures: 0,
            last_error: None,
            stamp: st(),
        };
        l.must(&progress(7));
        assert!(matches!(l.apply(&progress(3)), Response::Rejected { .. }));
        assert_eq!(
            (l.state.webhooks[&0].cursor, l.state.webhooks[&0].delivered),
            (7, 1)
        );
        l.must(&Command::RemoveWebhook { id: 0, stamp: st() });
        assert!(l.state.webhooks.is_empty());
        assert!(matches!(
            l.apply(&Command::RemoveWebhook { id: 0, stamp: st() }),
            Response::Rejected { .. }
        ));
    }
}
