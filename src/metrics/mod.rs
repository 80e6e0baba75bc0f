//! Prometheus `/metrics` on every member.
//!
//! Why on every member, and why each reports the replicated gauges too: a member that
//! is down or cut off must show up as such (`up == 0`, its lease lost) without any
//! other member having to speak for it, and whichever members are up can report the
//! fleet. Three kinds of series, each from where it is cheapest and exact:
//!
//! - [`collect`]: gauges computed at scrape time from this member's Raft metrics and
//!   its applied replicated state (hosts by pool and state, breakers, budgets,
//!   intents, owners, live members) plus its lease;
//! - [`runtime`]: counters and histograms the HA runtime updates where things happen
//!   (checks, actions, heartbeats), held by [`crate::worker::Shared`];
//! - [`exposition`]: OpenMetrics for Prometheus, the classic text format for
//!   everyone else.
//!
//! The metric names, the example scrape configuration and the alert rules are in
//! `docs/prometheus/`.

pub mod collect;
pub mod exposition;
pub mod runtime;

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use vigil_raft::Member;

use crate::state::VigilState;
use crate::worker::Shared;
pub use exposition::Format;
pub use runtime::RuntimeMetrics;

/// Path of the metrics route.
pub const PATH: &str = "/metrics";

/// The registry of one member.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// Everything `member` reports; the runtime's counters and lease when it runs the
    /// HA runtime.
    pub fn new(member: Member<VigilState>, runtime: Option<Arc<Shared>>) -> Self {
        let mut registry = Registry::default();
        if let Some(sh) = &runtime {
            sh.metrics.register(&mut registry);
        }
        registry.register_collector(Box::new(collect::ClusterCollector::new(member, runtime)));
        Metrics { registry }
    }

    /// One exposition in `format`.
    pub fn render(&self, format: Format) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(match format {
            Format::OpenMetrics => out,
            Format::Text => exposition::to_prometheus_text(&out),
        })
    }
}

/// The `/metrics` route of a member.
pub fn routes(member: Member<VigilState>, runtime: Option<Arc<Shared>>) -> Router {
    Router::new()
        .route(PATH, get(scrape))
        .with_state(Arc::new(Metrics::new(member, runtime)))
}

/// Render off the async workers: at 100 000 hosts the state pass takes milliseconds.
async fn scrape(State(m): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(ACCEPT).and_then(|v| v.to_str().ok()));
    match tokio::task::spawn_blocking(move || m.render(format)).await {
        Ok(Ok(body)) => ([(CONTENT_TYPE, format.content_type())], body).into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding the metrics failed\n",
        )
            .into_response(),
    }
}
