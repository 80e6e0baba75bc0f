//! The sim Redfish server's request handling: the routes, the two layers around
//! them (authentication; release at shutdown), and how each request to a system's
//! resources becomes one exchange with that host's [`SimBmc`], faults included.
//!
//! The listener fronts every simulated BMC: the service root, the collections and
//! the `SessionService` answer directly (the root and the login without
//! authentication), and every other request is authenticated (basic auth, or the
//! `X-Auth-Token` of a live session) before it reaches a BMC. A request for one system's resources then
//! runs as one BMC exchange: it may hang until the client gives up
//! ([`BmcFault::Timeout`], a crashed host under [`BmcFault::DiesWithHost`], the reply
//! of [`BmcFault::ReplyLost`]), answer 500 ([`BmcFault::Error`]), come late
//! ([`BmcFault::Slow`]) or misreport `PowerState` ([`BmcFault::LiesAboutPower`]; the
//! watts reading, another sensor, stays true).

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use tokio::sync::watch;

use super::auth::{self, SimCredentials};
use super::resources;
use super::sessions::{Refusal, SessionStore, SESSIONS};
use crate::error::DriverError;
use crate::power::PowerAction;
use crate::sim::bmc::{Cycled, SimBmc};
use crate::sim::{BmcFault, Condition, SimFleet};

/// Prefix of the ground-truth label of a change made through the server (followed by
/// the `ResetType`: `redfish ForceOff`).
const LABEL: &str = "redfish";

/// What every handler shares.
pub(super) struct Shared {
    pub(super) fleet: SimFleet,
    /// `Authorization` value that is accepted.
    pub(super) auth: String,
    /// The credentials a login must give.
    creds: SimCredentials,
    /// The `SessionService`'s sessions and counters.
    pub(super) sessions: Arc<SessionStore>,
    /// Turns true at shutdown: requests still waiting are released.
    pub(super) stop: watch::Receiver<bool>,
}

impl Shared {
    pub(super) fn new(
        fleet: SimFleet,
        creds: &SimCredentials,
        sessions: Arc<SessionStore>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Shared {
            fleet,
            auth: creds.header_value(),
            creds: creds.clone(),
            sessions,
            stop,
        }
    }

    /// The BMC of `host`, or a 404 answer when there is no such host.
    fn bmc(&self, host: &str) -> Result<SimBmc, Failure> {
        match self.fleet.snapshot(host) {
            Ok(_) => Ok(SimBmc::new(self.fleet.clone(), host)),
            Err(e) => Err(error(
                StatusCode::NOT_FOUND,
                "ResourceMissingAtURI",
                &e.to_string(),
            )),
        }
    }
}

type S = State<Arc<Shared>>;

/// The whole service.
pub(super) fn router(shared: Arc<Shared>) -> Router {
    let authenticated = Router::new()
        .route("/redfish/v1/Systems", get(systems))
        .route("/redfish/v1/Systems/{id}", get(system))
        .route(
            "/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset",
            post(reset),
        )
        .route("/redfish/v1/Chassis", get(chassis_collection))
        .route("/redfish/v1/Chassis/{id}", get(chassis))
        .route("/redfish/v1/Chassis/{id}/Power", get(power))
        .route("/redfish/v1/SessionService", get(session_service))
        .route(SESSIONS, get(session_list).post(login))
        .route(
            "/redfish/v1/SessionService/Sessions/{id}",
            get(session).delete(logout),
        )
        .route_layer(middleware::from_fn_with_state(shared.clone(), require_auth));
    Router::new()
        .route(
            "/redfish",
            get(|| async { Json(serde_json::json!({"v1": "/redfish/v1/"})) }),
        )
        .route("/redfish/v1", get(root))
        .route("/redfish/v1/", get(root))
        .merge(authenticated)
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "ResourceMissingAtURI",
                "no such resource",
            )
        })
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            until_shutdown,
        ))
        .with_state(shared)
}

/// A Redfish error answer: status, `Base` message id, message.
struct Failure(StatusCode, &'static str, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let Failure(status, code, message) = self;
        (status, Json(resources::error(code, &message))).into_response()
    }
}

fn error(status: StatusCode, code: &'static str, message: &str) -> Failure {
    Failure(status, code, message.to_string())
}

/// A driver-level error of the simulated BMC, as HTTP: an unknown host is 404,
/// anything else (the injected error) 500.
fn from_driver(e: DriverError) -> Response {
    match e {
        DriverError::Permanent(m) => error(StatusCode::NOT_FOUND, "ResourceMissingAtURI", &m),
        other => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &other.to_string(),
        ),
    }
    .into_response()
}

/// Releases a request still waiting (on a BMC that never answers) at shutdown, so
/// that connections close and the server can stop.
async fn until_shutdown(State(s): S, req: Request, next: Next) -> Response {
    let mut stop = s.stop.clone();
    tokio::select! {
        r = next.run(req) => r,
        _ = stop.wait_for(|stopped| *stopped) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "ServiceShuttingDown", "shutting down")
                .into_response()
        }
    }
}

/// Authentication: the `X-Auth-Token` of a live session, or basic auth (counted);
/// else 401 with a Redfish error body and a challenge. The login itself (`POST` to
/// the `Sessions` collection) is authenticated by its body.
async fn require_auth(State(s): S, req: Request, next: Next) -> Response {
    if req.method() == axum::http::Method::POST
        && req.uri().path().trim_end_matches('/') == SESSIONS
    {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get(AUTH_TOKEN)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if token.is_some_and(|t| s.sessions.valid(t)) {
        return next.run(req).await;
    }
    if auth::authorized(req.headers(), &s.auth) {
        s.sessions.count_basic();
        return next.run(req).await;
    }
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "InsufficientPrivilege",
        "Authentication failed: bad or missing credentials",
    )
    .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"vigil sim\""),
    );
    r
}

/// One exchange with `bmc`: reach it, run `body`, reply, each step honouring the
/// fault mode read when the exchange starts.
async fn exchange<F, Fut>(bmc: &SimBmc, body: F) -> Response
where
    F: FnOnce(BmcFault) -> Fut,
    Fut: Future<Output = Result<Response, DriverError>>,
{
    let fault = match bmc.fault() {
        Ok(f) => f,
        Err(e) => return from_driver(e),
    };
    if let Err(e) = bmc.reach(fault).await {
        return from_driver(e);
    }
    let answer = body(fault).await;
    bmc.reply(fault).await;
    answer.unwrap_or_else(from_driver)
}

async fn root(State(s): S) -> Json<Value> {
    Json(resources::service_root(s.sessions.enabled()))
}

/// The header of a session's token.
const AUTH_TOKEN: &str = "x-auth-token";

/// The answer for session resources while the `SessionService` is switched off.
fn no_session_service() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "ResourceMissingAtURI",
        "this service has no SessionService",
    )
    .into_response()
}

async fn session_service(State(s): S) -> Response {
    if !s.sessions.enabled() {
        return no_session_service();
    }
    Json(resources::session_service()).into_response()
}

async fn session_list(State(s): S) -> Response {
    if !s.sessions.enabled() {
        return no_session_service();
    }
    Json(resources::sessions(&s.sessions.ids())).into_response()
}

/// `POST …/Sessions {"UserName", "Password"}`: 201 with `X-Auth-Token`, `Location`
/// and the session; 401 for wrong credentials, 400 for a malformed body.
async fn login(State(s): S, body: Bytes) -> Response {
    if !s.sessions.enabled() {
        return no_session_service();
    }
    match s.sessions.login(&s.creds, &body) {
        Ok((token, id)) => {
            let location = format!("{SESSIONS}/{id}");
            let mut r = (
                StatusCode::CREATED,
                Json(resources::session(&id, &s.creds.username)),
            )
                .into_response();
            let h = r.headers_mut();
            if let Ok(v) = header::HeaderValue::from_str(&token) {
                h.insert(AUTH_TOKEN, v);
            }
            if let Ok(v) = header::HeaderValue::from_str(&location) {
                h.insert(header::LOCATION, v);
            }
            r
        }
        Err(Refusal::Malformed(m)) => {
            error(StatusCode::BAD_REQUEST, "MalformedJSON", &m).into_response()
        }
        Err(Refusal::BadCredentials) => error(
            StatusCode::UNAUTHORIZED,
            "NoValidSession",
            "Authentication failed: wrong user name or password",
        )
        .into_response(),
    }
}

async fn session(State(s): S, Path(id): Path<String>) -> Response {
    if !s.sessions.enabled() {
        return no_session_service();
    }
    match s.sessions.user_of(&id) {
        Some(user) => Json(resources::session(&id, &user)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "ResourceMissingAtURI",
            "no such session",
        )
        .into_response(),
    }
}

/// `DELETE …/Sessions/{id}`: 204, and the session's token stops working.
async fn logout(State(s): S, Path(id): Path<String>) -> Response {
    if !s.sessions.enabled() {
        return no_session_service();
    }
    if s.sessions.logout(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            "ResourceMissingAtURI",
            "no such session",
        )
        .into_response()
    }
}

async fn systems(State(s): S) -> Json<Value> {
    Json(resources::collection("Systems", &s.fleet.hosts()))
}

async fn chassis_collection(State(s): S) -> Json<Value> {
    Json(resources::collection("Chassis", &s.fleet.hosts()))
}

async fn system(State(s): S, Path(id): Path<String>) -> Response {
    let bmc = match s.bmc(&id) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    exchange(&bmc, |fault| {
        let reported = bmc.read(fault);
        async move { Ok(Json(resources::system(&id, reported?)).into_response()) }
    })
    .await
}

async fn chassis(State(s): S, Path(id): Path<String>) -> Response {
    let bmc = match s.bmc(&id) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    exchange(&bmc, |fault| {
        let reported = bmc.read(fault);
        async move { Ok(Json(resources::chassis(&id, reported?)).into_response()) }
    })
    .await
}

async fn power(State(s): S, Path(id): Path<String>) -> Response {
    let bmc = match s.bmc(&id) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    exchange(&bmc, |_| async {
        let host = s
            .fleet
            .snapshot(&id)
            .map_err(|e| DriverError::Permanent(e.to_string()))?;
        Ok(Json(resources::power(&id, resources::watts(&host))).into_response())
    })
    .await
}

/// `POST …/Actions/ComputerSystem.Reset {"ResetType": …}`: carried out on the true
/// power state through [`SimBmc::perform`] / [`SimBmc::cycle`] before the (204)
/// answer, recorded in ground truth as `redfish <ResetType>`. `On` → on; `ForceOff`
/// → off; `GracefulShutdown` → off, but only when the OS can cooperate (a hung or
/// crashed host stays on: accepted, nothing happens); `ForceRestart` and
/// `PowerCycle` → cycle (off, then on).
///
/// A `ForceRestart` or `PowerCycle` of a system that is truly off leaves it off:
/// **409 Conflict** with a `Base.1.8.GeneralError` body saying so, and nothing in
/// ground truth. Redfish leaves a restart of an off system undefined, and real BMCs
/// differ (a 2xx that does nothing, a 409, or powering it on). The sim refuses the
/// way iDRAC refuses a power change that does not fit the current state (409 with a
/// message) rather than answering 204 for a reset that did nothing: a client learns
/// at once that nothing happened, and the sim never powers on a host that is off,
/// the rule vigil's drivers keep.
async fn reset(State(s): S, Path(id): Path<String>, body: Bytes) -> Response {
    let bmc = match s.bmc(&id) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    exchange(&bmc, |_| async {
        let reset_type = match reset_type(&body) {
            Ok(t) => t,
            Err(r) => return Ok(r.into_response()),
        };
        let action = match reset_type.as_str() {
            "On" => PowerAction::On,
            "ForceOff" | "GracefulShutdown" => PowerAction::Off,
            "ForceRestart" | "PowerCycle" => PowerAction::Cycle,
            other => {
                return Ok(error(
                    StatusCode::BAD_REQUEST,
                    "ActionParameterValueNotInList",
                    &format!(
                        "ResetType {other:?} is not one of {}",
                        resources::RESET_TYPES.join(", ")
                    ),
                )
                .into_response())
            }
        };
        let condition = s
            .fleet
            .snapshot(&id)
            .map_err(|e| DriverError::Permanent(e.to_string()))?
            .condition;
        let ignored = reset_type == "GracefulShutdown"
            && matches!(condition, Condition::Hung | Condition::Crashed);
        let label = format!("{LABEL} {reset_type}");
        if action == PowerAction::Cycle {
            if bmc.cycle(&label, None).await? == Cycled::FoundOff {
                return Ok(error(
                    StatusCode::CONFLICT,
                    "GeneralError",
                    &format!(
                        "system {id} is powered off: ResetType {reset_type} does not power it \
                         on (use On); nothing done"
                    ),
                )
                .into_response());
            }
        } else if !ignored {
            bmc.perform(action, &label).await?;
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

/// The `ResetType` of a reset request body, or a 400 answer.
fn reset_type(body: &[u8]) -> Result<String, Failure> {
    let bad = |m: &str| error(StatusCode::BAD_REQUEST, "MalformedJSON", m);
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(&format!("body: {e}")))?;
    match v.get("ResetType") {
        Some(Value::String(t)) => Ok(t.clone()),
        Some(_) => Err(bad("ResetType must be a string")),
        None => Err(error(
            StatusCode::BAD_REQUEST,
            "ActionParameterMissing",
            "ResetType is required",
        )),
    }
}
