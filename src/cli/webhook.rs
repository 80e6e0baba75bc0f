//! `vigil webhook add URL [--type T]… | list | remove ID`: where events are pushed.
//! `list` shows each receiver's delivery state (delivered, pending, failures, last
//! error), so an operator sees a receiver that is down before an orchestrator misses
//! a fence.

use anyhow::Result;
use clap::Subcommand;
use vigil::api::webhooks::WebhookView;

use super::client::ApiClient;
use super::output::{self, Output};

/// `vigil webhook …`.
#[derive(Debug, Subcommand)]
pub enum WebhookCmd {
    /// Deliver events from now on to URL (JSON POST, Idempotency-Key header).
    Add {
        /// Receiver URL (http:// or https://).
        url: String,
        /// Only these event types (repeatable; default all), e.g. --type host.fenced.
        #[arg(long = "type", value_name = "TYPE")]
        types: Vec<String>,
    },
    /// Webhooks and their delivery state.
    List,
    /// Stop delivering to webhook ID.
    Remove {
        /// Webhook id (see `vigil webhook list`).
        id: u64,
    },
}

fn rows(v: &[WebhookView]) -> Vec<Vec<String>> {
    v.iter()
        .map(|w| {
            vec![
                w.id.to_string(),
                w.url.clone(),
                if w.types.is_empty() {
                    "all".into()
                } else {
                    w.types.join(",")
                },
                w.delivered.to_string(),
                w.pending.to_string(),
                if w.failures == 0 {
                    "ok".into()
                } else {
                    format!(
                        "{} failure(s): {}",
                        w.failures,
                        w.last_error.clone().unwrap_or_default()
                    )
                },
            ]
        })
        .collect()
}

const HEADER: [&str; 6] = ["ID", "URL", "TYPES", "DELIVERED", "PENDING", "STATE"];

/// Run `vigil webhook`.
pub async fn run(api: &ApiClient, out: Output, cmd: WebhookCmd) -> Result<()> {
    let list: Vec<WebhookView> = match cmd {
        WebhookCmd::Add { url, types } => {
            let v: WebhookView = api
                .post(
                    "/api/v1/webhooks",
                    &serde_json::json!({ "url": url, "types": types }),
                )
                .await?;
            vec![v]
        }
        WebhookCmd::List => api.get("/api/v1/webhooks").await?,
        WebhookCmd::Remove { id } => {
            let v: serde_json::Value = api.delete(&format!("/api/v1/webhooks/{id}")).await?;
            return match out {
                Output::Json | Output::Yaml => output::structured(out, &v),
                Output::Table => {
                    outln!("webhook {id} removed");
                    Ok(())
                }
            };
        }
    };
    match out {
        Output::Json | Output::Yaml => output::structured(out, &list),
        Output::Table => {
            outln!("{}", output::table(&HEADER, &rows(&list)));
            Ok(())
        }
    }
}
