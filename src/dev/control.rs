//! The control API of `vigil dev` (what `vigil sim …` talks to): break and heal
//! simulated hosts, kill members, read the ground truth. Loopback only, dev only —
//! members never serve it.
//!
//! - `POST /sim/hosts/{name}/{crash|hang|isolate|heal|power-off|power-on}`
//! - `POST /sim/members/{id}/kill` — the member stops at once (Raft, API, runtime)
//! - `GET /sim/hosts` — every host's true state; `GET /sim/truth` — every real power change

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::Mutex;
use vigil_providers::sim::SimFleet;
use vigil_providers::PowerState;

use crate::server::RunningMember;

/// What the control API acts on.
#[derive(Debug, Clone)]
pub struct Control {
    /// The simulated fleet.
    pub fleet: SimFleet,
    /// The members (None once killed).
    pub members: Arc<Mutex<Vec<Option<RunningMember>>>>,
}

#[derive(Serialize)]
struct Done {
    ok: bool,
    what: String,
}

fn err(status: StatusCode, msg: String) -> Response {
    (status, Json(serde_json::json!({"error": msg}))).into_response()
}

async fn host(State(c): State<Control>, Path((name, op)): Path<(String, String)>) -> Response {
    let r = match op.as_str() {
        "crash" => c.fleet.crash(&name).map(|_| "crashed (power stays on, BMC up)"),
        "hang" => c.fleet.hang(&name).map(|_| "hung (OS dead, BMC up)"),
        "isolate" => c
            .fleet
            .isolate(&name)
            .map(|_| "isolated (still working, health checks cannot reach it)"),
        "heal" => c.fleet.heal(&name).map(|_| "healed (OS running)"),
        "power-off" => c
            .fleet
            .set_power(&name, PowerState::Off, "vigil sim power-off")
            .map(|_| "powered off behind vigil's back"),
        "power-on" => c
            .fleet
            .set_power(&name, PowerState::On, "vigil sim power-on")
            .map(|_| "powered on behind vigil's back"),
        other => {
            return err(
                StatusCode::BAD_REQUEST,
                format!("unknown operation {other:?}; known: crash, hang, isolate, heal, power-off, power-on"),
            )
        }
    };
    match r {
        Ok(what) => Json(Done {
            ok: true,
            what: format!("{name}: {what}"),
        })
        .into_response(),
        Err(e) => err(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn kill(State(c): State<Control>, Path(id): Path<u64>) -> Response {
    let taken = {
        let mut ms = c.members.lock().await;
        ms.iter_mut()
            .find(|m| m.as_ref().is_some_and(|m| m.member.id() == id))
            .and_then(Option::take)
    };
    match taken {
        Some(m) => {
            m.crash().await;
            Json(Done {
                ok: true,
                what: format!("member {id} killed"),
            })
            .into_response()
        }
        None => err(StatusCode::NOT_FOUND, format!("no running member {id}")),
    }
}

async fn hosts(State(c): State<Control>) -> Response {
    let v: Vec<_> = c
        .fleet
        .hosts()
        .iter()
        .filter_map(|h| c.fleet.snapshot(h).ok())
        .map(|s| {
            serde_json::json!({
                "name": s.name,
                "power": s.power.to_string(),
                "condition": format!("{:?}", s.condition).to_lowercase(),
                "working": s.working,
            })
        })
        .collect();
    Json(v).into_response()
}

async fn truth(State(c): State<Control>) -> Response {
    Json(c.fleet.ground_truth()).into_response()
}

/// The control routes.
pub fn router(c: Control) -> Router {
    Router::new()
        .route("/sim/hosts", get(hosts))
        .route("/sim/hosts/{name}/{op}", post(host))
        .route("/sim/members/{id}/kill", post(kill))
        .route("/sim/truth", get(truth))
        .with_state(c)
}
