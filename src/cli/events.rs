//! `vigil events [--follow] [--host H] [--pool P] [--type T]…`: the event history, and
//! with `--follow` the live stream (long polling `GET /api/v1/events`), until Ctrl-C.
//!
//! Table output prints one line per event; `-o json` prints one JSON object per line
//! (NDJSON), so `vigil events --follow -o json | jq` works as a stream; `-o yaml` one
//! YAML document per event.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use vigil::api::events::{EventPage, EventView};

use super::client::ApiClient;
use super::output::Output;

/// What to show.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Keep waiting for new events (until Ctrl-C).
    #[arg(long, short)]
    pub follow: bool,
    /// Only this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only this pool.
    #[arg(long)]
    pub pool: Option<String>,
    /// Only these types (repeatable): host.transition, host.fenced, pool.transition,
    /// intent.started, intent.ended, alarm, config.
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// How many past events to show first.
    #[arg(long, default_value_t = 20)]
    pub last: usize,
}

fn query(a: &EventsArgs, from: Option<u64>, limit: usize, wait_ms: u64) -> String {
    let mut q = vec![format!("limit={limit}"), format!("wait_ms={wait_ms}")];
    if let Some(f) = from {
        q.push(format!("from={f}"));
    }
    if let Some(h) = &a.host {
        q.push(format!("host={}", urlencode(h)));
    }
    if let Some(p) = &a.pool {
        q.push(format!("pool={}", urlencode(p)));
    }
    if !a.types.is_empty() {
        q.push(format!("type={}", urlencode(&a.types.join(","))));
    }
    format!("/api/v1/events?{}", q.join("&"))
}

/// Percent-encode a query value (names are usually plain; be safe anyway).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn print(out: Output, e: &EventView) -> Result<()> {
    match out {
        Output::Json => outln!("{}", serde_json::to_string(e)?),
        Output::Yaml => outln!("---\n{}", serde_yaml_ng::to_string(e)?.trim_end()),
        Output::Table => {
            let when = humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + Duration::from_millis(e.at_ms),
            );
            let subject = match (&e.host, &e.pool) {
                (Some(h), _) => h.clone(),
                (None, Some(p)) => format!("pool {p}"),
                (None, None) => "-".into(),
            };
            let evidence = e
                .evidence
                .as_ref()
                .map(|x| format!("  [{x}]"))
                .unwrap_or_default();
            outln!(
                "{:>6}  {when}  {subject:<16} {:<16} {}{evidence}",
                e.seq,
                e.kind,
                e.text
            );
        }
    }
    Ok(())
}

/// Run `vigil events`.
pub async fn run(api: &ApiClient, out: Output, a: EventsArgs) -> Result<()> {
    let last = a.last.clamp(1, vigil::api::events::MAX_LIMIT);
    let page: EventPage = api.get(&query(&a, None, last, 0)).await?;
    for e in &page.events {
        print(out, e)?;
    }
    if !a.follow {
        return Ok(());
    }
    let mut next = page.next;
    loop {
        let page: EventPage = match api.get(&query(&a, Some(next), 500, 20_000)).await {
            Ok(p) => p,
            Err(e) => {
                // The member may be restarting: say so, and keep following.
                eprintln!("events: {e:#}; retrying in 1s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if page.oldest > next {
            eprintln!(
                "events: {} event(s) were dropped from the history before they could be read (events.retention)",
                page.oldest - next
            );
        }
        for e in &page.events {
            print(out, e)?;
        }
        next = page.next;
    }
}
