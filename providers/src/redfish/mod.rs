//! The `redfish` power driver: DMTF Redfish over HTTPS (or HTTP on a lab network),
//! basic or session auth, one ComputerSystem per driver.
//!
//! - **Authentication** ([`RedfishConfig::auth`], see [`session`]): basic auth, or a
//!   Redfish session (one login through the `SessionService`, then `X-Auth-Token`;
//!   logged in again once when the BMC forgets it, logged out by
//!   [`RedfishDriver::close`] or on drop). The default, [`RedfishAuth::Auto`], uses a
//!   session when the service root advertises one.
//! - **Discovery**: `GET /redfish/v1/` → `Systems` link → the collection's members;
//!   the system is the one whose id (last path segment, or its `Id` / `Name`) is
//!   [`RedfishConfig::system_id`], or the only member when no id is given. Several
//!   members without an id, none, or an unknown id are [`DriverError::Permanent`]
//!   (naming what was found). The system's address is remembered afterwards.
//! - **Status**: the system's `PowerState`. Only `Off` reads as off: `PoweringOff`
//!   still has power, and a fence is not done until the BMC says `Off`.
//! - **Actions**: `POST Actions.#ComputerSystem.Reset.target {"ResetType": …}`,
//!   chosen from `ResetType@Redfish.AllowableValues` (see [`reset::choose`]): off →
//!   `ForceOff`; on → `On` or `ForceOn`; cycle → `ForceRestart`, else `PowerCycle`,
//!   else `ForceOff` then `On`. Off on an off system and on on an on system send
//!   nothing and report `already = true`.
//! - **A cycle never powers on an off host**: a cycle of a system whose
//!   `PowerState` reads `Off` sends nothing and reports `already = true`, verified
//!   off; a cycle whose read fails sends nothing either. In a cycle made of
//!   `ForceOff` then `On`, the `On` is sent only after `Off` was read back and only
//!   before the deadline: if the deadline passes in between, the call fails with
//!   [`DriverError::Timeout`] saying that the host was left off.
//! - **Verification**: after the BMC accepts the reset, `PowerState` is polled until
//!   it reads the wanted state (off → `Off`; on and cycle → `On`), or the deadline
//!   passes ([`DriverError::Timeout`], naming the last state read). BMCs apply power
//!   changes asynchronously (sushy-emulator: 1–11 s later), so the answer to the
//!   POST proves nothing by itself.
//!   *A restart is accepted as verified by reading `On` after the BMC accepted the
//!   reset*: a restart may be too quick for any poll to see `Off`, and Redfish has no
//!   reliable "restart done" signal. An `Off` seen in between is waited out (the
//!   report then says it was seen). A cycle via `ForceOff` then `On` is verified in
//!   both steps.
//! - **Errors**: 401/403 → Permanent ("bad credentials"; a 401 to a session's token
//!   first gets one fresh login and one retry); 404 → Permanent; 501 (reset
//!   type not implemented) and other 4xx → Permanent; 5xx, connection errors and
//!   unreadable answers → Retryable; a certificate that does not verify → Permanent.
//!   Every request is bounded by the caller's deadline.
//! - **TLS**: verified against the built-in web PKI roots plus an optional CA file
//!   (PEM); [`RedfishConfig::insecure`] turns verification off explicitly. Proxies
//!   from the environment are ignored (a BMC network is not reached via a proxy),
//!   redirects are not followed (they would carry the credentials elsewhere).
//! - `Debug` never shows the password; no error message contains it.

mod reset;
pub mod session;

use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use tokio::time::Instant;

use crate::error::DriverError;
use crate::power::{
    cycle_found_off, cycle_left_off, within, ActionReport, PowerAction, PowerDriver, PowerReading,
    PowerState,
};
use reset::{ResetPlan, SystemPower};
pub use session::RedfishAuth;
use session::{AuthState, Credential};

/// Pause between two reads of `PowerState` while verifying an action.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Most characters of a BMC's answer quoted in an error.
const EXCERPT: usize = 300;

/// How to reach one Redfish ComputerSystem.
#[derive(Clone)]
pub struct RedfishConfig {
    /// Base address of the BMC, `https://10.0.0.5` or `http://127.0.0.1:8000` (a path
    /// is ignored: discovery starts at `/redfish/v1/`).
    pub endpoint: String,
    /// User (basic auth, or the session login).
    pub username: String,
    /// Password (basic auth, or the session login).
    pub password: String,
    /// Basic auth, a Redfish session, or whichever the BMC offers (the default).
    pub auth: RedfishAuth,
    /// The system's id (last segment of its address, or its `Id` or `Name`); `None`:
    /// the service must have exactly one system.
    pub system_id: Option<String>,
    /// Extra CA certificate(s), PEM, trusted on top of the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Do not verify the BMC's certificate at all (explicit opt-in; lab use).
    pub insecure: bool,
    /// Pause between `PowerState` reads while verifying.
    pub poll_interval: Duration,
}

impl RedfishConfig {
    /// A config with defaults: verified TLS, no custom CA, the only system.
    pub fn new(
        endpoint: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> RedfishConfig {
        RedfishConfig {
            endpoint: endpoint.into(),
            username: username.into(),
            password: password.into(),
            auth: RedfishAuth::default(),
            system_id: None,
            ca_file: None,
            insecure: false,
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }
}

impl fmt::Debug for RedfishConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedfishConfig")
            .field("endpoint", &self.endpoint)
            .field("username", &self.username)
            .field("password", &crate::power::redacted(&self.password))
            .field("auth", &self.auth)
            .field("system_id", &self.system_id)
            .field("ca_file", &self.ca_file)
            .field("insecure", &self.insecure)
            .field("poll_interval", &self.poll_interval)
            .finish()
    }
}

/// A power driver speaking Redfish. `Debug` never shows the password (nor a
/// session's token).
///
/// Under session auth, call [`RedfishDriver::close`] when done with it; dropping it
/// inside a tokio runtime logs out too, in the background.
pub struct RedfishDriver {
    config: RedfishConfig,
    base: Url,
    client: reqwest::Client,
    /// The system's address once discovered.
    system: Mutex<Option<Url>>,
    /// The authentication scheme and the session (one per driver).
    auth: tokio::sync::Mutex<AuthState>,
}

impl fmt::Debug for RedfishDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedfishDriver")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A JSON answer.
struct Answer {
    status: StatusCode,
    body: Value,
}

/// An HTTP answer, not yet judged.
struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl RedfishDriver {
    /// Builds the driver (no network traffic yet).
    ///
    /// [`DriverError::Permanent`] for an endpoint that is not an `http`/`https` URL
    /// or carries credentials, or a CA file that cannot be read or parsed.
    pub fn new(config: RedfishConfig) -> Result<RedfishDriver, DriverError> {
        let base = Url::parse(&config.endpoint).map_err(|e| {
            DriverError::Permanent(format!("redfish endpoint {:?}: {e}", config.endpoint))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(DriverError::Permanent(format!(
                "redfish endpoint {:?}: want http(s)://host[:port]",
                config.endpoint
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(DriverError::Permanent(
                "redfish endpoint must not carry credentials: give username and password".into(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .danger_accept_invalid_certs(config.insecure);
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                DriverError::Permanent(format!("redfish CA file {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                DriverError::Permanent(format!("redfish CA file {}: {e}", path.display()))
            })?;
            if certs.is_empty() {
                return Err(DriverError::Permanent(format!(
                    "redfish CA file {}: no PEM certificate in it",
                    path.display()
                )));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder
            .build()
            .map_err(|e| DriverError::Permanent(format!("redfish client: {e}")))?;
        Ok(RedfishDriver {
            auth: tokio::sync::Mutex::new(AuthState::new(config.auth)),
            config,
            base,
            client,
            system: Mutex::new(None),
        })
    }

    /// The system's address (discovering it on first use).
    async fn system_url(&self, deadline: Instant) -> Result<Url, DriverError> {
        if let Some(u) = self.system.lock().expect("poisoned").clone() {
            return Ok(u);
        }
        let u = self.discover(deadline).await?;
        *self.system.lock().expect("poisoned") = Some(u.clone());
        Ok(u)
    }

    async fn discover(&self, deadline: Instant) -> Result<Url, DriverError> {
        let root = self.join("/redfish/v1/")?;
        let root_doc = self.get(&root, deadline).await?;
        let systems_path = odata_id(root_doc.get("Systems"))
            .unwrap_or("/redfish/v1/Systems")
            .to_string();
        let systems = self.join(&systems_path)?;
        let coll = self.get(&systems, deadline).await?;
        let members: Vec<String> = coll
            .get("Members")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(|v| odata_id(Some(v)))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let last = |p: &str| {
            p.trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string()
        };
        match &self.config.system_id {
            None => match members.as_slice() {
                [one] => self.join(one),
                [] => Err(DriverError::Permanent(format!(
                    "redfish: no system at {systems}"
                ))),
                many => Err(DriverError::Permanent(format!(
                    "redfish: {} systems at {systems}, give a system id: {}",
                    many.len(),
                    many.iter().map(|m| last(m)).collect::<Vec<_>>().join(", ")
                ))),
            },
            Some(id) => {
                if let Some(m) = members.iter().find(|m| last(m) == *id) {
                    return self.join(m);
                }
                // Not an address segment: maybe an `Id` or a `Name`.
                let mut seen = Vec::new();
                for m in &members {
                    let url = self.join(m)?;
                    let doc = self.get(&url, deadline).await?;
                    let field = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
                    if field("Id").as_deref() == Some(id) || field("Name").as_deref() == Some(id) {
                        return Ok(url);
                    }
                    seen.push(match field("Name") {
                        Some(n) => format!("{} ({n})", last(m)),
                        None => last(m),
                    });
                }
                Err(DriverError::Permanent(format!(
                    "redfish: no system {id:?} at {systems} (there: {})",
                    if seen.is_empty() {
                        "none".to_string()
                    } else {
                        seen.join(", ")
                    }
                )))
            }
        }
    }

    fn join(&self, path: &str) -> Result<Url, DriverError> {
        self.base
            .join(path)
            .map_err(|e| DriverError::Permanent(format!("redfish: bad link {path:?}: {e}")))
    }

    /// One request, authenticated, bounded by `deadline`; the status is classified
    /// here. A `401` to a session's token logs in again and repeats the request once.
    async fn request(
        &self,
        method: Method,
        url: &Url,
        body: Option<Value>,
        deadline: Instant,
    ) -> Result<Answer, DriverError> {
        let what = format!("{method} {}", url.path());
        let fut = async {
            let cred = self.credential(deadline).await?;
            let mut raw = self
                .send(&method, url, body.as_ref(), &cred, &what, deadline)
                .await?;
            if raw.status == StatusCode::UNAUTHORIZED {
                if let Credential::Token(stale) = &cred {
                    let fresh = self.relogin(stale, deadline).await?;
                    raw = self
                        .send(&method, url, body.as_ref(), &fresh, &what, deadline)
                        .await?;
                }
            }
            if !raw.status.is_success() {
                return Err(status_error(&raw, &what));
            }
            let body = if raw.text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&raw.text).map_err(|e| {
                    DriverError::Retryable(format!(
                        "redfish {what}: unreadable answer ({e}): {}",
                        excerpt(&raw.text)
                    ))
                })?
            };
            Ok(Answer {
                status: raw.status,
                body,
            })
        };
        within(deadline, &what, fut).await
    }

    /// One HTTP exchange with `cred`, bounded by `deadline`; transport errors are
    /// classified, the status is not.
    async fn send(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        cred: &Credential,
        what: &str,
        deadline: Instant,
    ) -> Result<Raw, DriverError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(DriverError::Timeout {
                after: Duration::ZERO,
                what: what.to_string(),
            });
        }
        let mut req = self
            .client
            .request(method.clone(), url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(remaining);
        req = match cred {
            Credential::Anonymous => req,
            Credential::Basic => req.basic_auth(&self.config.username, Some(&self.config.password)),
            Credential::Token(t) => req.header(session::AUTH_TOKEN, t),
        };
        if let Some(b) = body {
            req = req.json(b);
        }
        within(deadline, what, async {
            let resp = req
                .send()
                .await
                .map_err(|e| classify(&e, what, remaining))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let text = resp
                .text()
                .await
                .map_err(|e| classify(&e, what, remaining))?;
            Ok(Raw {
                status,
                headers,
                text,
            })
        })
        .await
    }

    async fn get(&self, url: &Url, deadline: Instant) -> Result<Value, DriverError> {
        Ok(self.request(Method::GET, url, None, deadline).await?.body)
    }

    async fn read_system(&self, deadline: Instant) -> Result<(Url, SystemPower), DriverError> {
        let url = self.system_url(deadline).await?;
        let doc = self.get(&url, deadline).await?;
        Ok((url, SystemPower::parse(&doc)))
    }

    fn state_of(sys: &SystemPower, url: &Url) -> Result<PowerState, DriverError> {
        sys.state().ok_or_else(|| {
            DriverError::Retryable(format!(
                "redfish {}: PowerState is {}",
                url.path(),
                sys.raw_state.as_deref().unwrap_or("missing")
            ))
        })
    }

    /// Sends one reset; 200/202/204 all mean accepted.
    async fn reset(
        &self,
        url: &Url,
        sys: &SystemPower,
        reset_type: &str,
        deadline: Instant,
    ) -> Result<StatusCode, DriverError> {
        let target = match &sys.reset_target {
            Some(t) => self.join(t)?,
            None => {
                return Err(DriverError::Permanent(format!(
                    "redfish {}: no Actions.#ComputerSystem.Reset.target",
                    url.path()
                )))
            }
        };
        let body = serde_json::json!({ "ResetType": reset_type });
        let a = self
            .request(Method::POST, &target, Some(body), deadline)
            .await
            .map_err(|e| match e {
                DriverError::Permanent(m) => {
                    DriverError::Permanent(format!("ResetType {reset_type}: {m}"))
                }
                other => other,
            })?;
        Ok(a.status)
    }

    /// Polls `PowerState` until it reads `want`. Returns the number of reads and
    /// whether the other state was seen on the way.
    async fn wait_for(
        &self,
        url: &Url,
        want: PowerState,
        after: &str,
        deadline: Instant,
    ) -> Result<(u32, bool), DriverError> {
        let start = Instant::now();
        let mut reads = 0;
        let mut saw_other = false;
        let mut last = String::from("(not read)");
        loop {
            match self.get(url, deadline).await {
                Ok(doc) => {
                    reads += 1;
                    let sys = SystemPower::parse(&doc);
                    last = sys.raw_state.clone().unwrap_or_else(|| "missing".into());
                    match sys.state() {
                        Some(s) if s == want => return Ok((reads, saw_other)),
                        Some(_) => saw_other = true,
                        None => {}
                    }
                }
                // A BMC busy applying the change may fail a read: keep polling.
                Err(DriverError::Retryable(m)) => last = m,
                Err(DriverError::Timeout { .. }) => break,
                Err(e) => return Err(e),
            }
            if Instant::now() + self.config.poll_interval >= deadline {
                break;
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
        Err(DriverError::Timeout {
            after: start.elapsed(),
            what: format!(
                "redfish: PowerState {want} after {after} (last read: {last}, {reads} reads)"
            ),
        })
    }

    /// The on step of a cycle made of `off` then `on`, once this call has read the
    /// system off after its `off`: sent only before the deadline (else
    /// [`cycle_left_off`]), then verified. A failure says that the host was powered
    /// off by this cycle. Returns the reset's HTTP status and the reads.
    async fn cycle_on_step(
        &self,
        url: &Url,
        sys: &SystemPower,
        off: &str,
        on: &str,
        allowed: Duration,
        deadline: Instant,
    ) -> Result<(StatusCode, u32), DriverError> {
        if Instant::now() >= deadline {
            return Err(cycle_left_off(
                allowed,
                &format!("redfish {}: {off} then {on}", url.path()),
            ));
        }
        let step = async {
            let code = self.reset(url, sys, on, deadline).await?;
            let (reads, _) = self.wait_for(url, PowerState::On, on, deadline).await?;
            Ok((code, reads))
        };
        step.await.map_err(|e| {
            let note = format!("(this cycle's {off} powered the host off: it may still be off)");
            match e {
                DriverError::Retryable(m) => DriverError::Retryable(format!("{m} {note}")),
                DriverError::Permanent(m) => DriverError::Permanent(format!("{m} {note}")),
                DriverError::Timeout { after, what } => DriverError::Timeout {
                    after,
                    what: format!("{what} {note}"),
                },
            }
        })
    }

    /// `Power.PowerControl[0].PowerConsumedWatts` of the system's chassis, when the
    /// BMC offers it (`Ok(None)` when it does not). For activity checks.
    pub async fn power_watts(&self, deadline: Instant) -> Result<Option<f64>, DriverError> {
        let url = self.system_url(deadline).await?;
        let sys = self.get(&url, deadline).await?;
        let chassis = sys
            .get("Links")
            .and_then(|l| l.get("Chassis"))
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .and_then(|c| odata_id(Some(c)));
        let Some(chassis) = chassis else {
            return Ok(None);
        };
        let chassis_doc = match self.get(&self.join(chassis)?, deadline).await {
            Ok(d) => d,
            Err(DriverError::Permanent(m)) if m.contains("HTTP 404") => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(power) = odata_id(chassis_doc.get("Power")) else {
            return Ok(None);
        };
        let power_doc = match self.get(&self.join(power)?, deadline).await {
            Ok(d) => d,
            Err(DriverError::Permanent(m)) if m.contains("HTTP 404") => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(power_doc
            .get("PowerControl")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .and_then(|c| c.get("PowerConsumedWatts"))
            .and_then(Value::as_f64))
    }
}

#[async_trait]
impl PowerDriver for RedfishDriver {
    fn kind(&self) -> &'static str {
        "redfish"
    }

    async fn status(&self, deadline: Instant) -> Result<PowerReading, DriverError> {
        let start = Instant::now();
        let (url, sys) = self.read_system(deadline).await?;
        let state = Self::state_of(&sys, &url)?;
        Ok(PowerReading {
            state,
            detail: format!(
                "PowerState {} at {}",
                sys.raw_state.as_deref().unwrap_or("?"),
                url.path()
            ),
            took: start.elapsed(),
        })
    }

    async fn act(
        &self,
        action: PowerAction,
        deadline: Instant,
    ) -> Result<ActionReport, DriverError> {
        let start = Instant::now();
        let allowed = deadline.saturating_duration_since(start);
        // A failed read fails every action here, a cycle included: a cycle is never
        // sent without knowing that the system is on.
        let (url, sys) = self.read_system(deadline).await?;
        let before = Self::state_of(&sys, &url)?;
        let plan = reset::choose(action, before, &sys)?;
        let raw_before = sys.raw_state.as_deref().unwrap_or("?").to_string();
        let (verified, detail) = match plan {
            ResetPlan::LeaveOff => {
                return Ok(cycle_found_off(
                    start,
                    &format!("PowerState {raw_before} at {}", url.path()),
                ));
            }
            ResetPlan::Already => (
                before,
                format!("already {before} (PowerState {raw_before}); nothing sent"),
            ),
            ResetPlan::Single { reset_type, expect } => {
                let code = self.reset(&url, &sys, reset_type, deadline).await?;
                let (reads, saw_other) = self.wait_for(&url, expect, reset_type, deadline).await?;
                let mut d = format!(
                    "PowerState {raw_before}; ResetType {reset_type} accepted (HTTP {}); \
                     read {expect} after {reads} reads",
                    code.as_u16()
                );
                if action == PowerAction::Cycle && expect == PowerState::On {
                    d.push_str(if saw_other {
                        " (off seen in between)"
                    } else {
                        " (off not observed)"
                    });
                }
                (expect, d)
            }
            ResetPlan::OffThenOn { off, on } => {
                let c1 = self.reset(&url, &sys, off, deadline).await?;
                let (r1, _) = self.wait_for(&url, PowerState::Off, off, deadline).await?;
                // Off was read after this call's off step: only now may on follow.
                let (c2, r2) = self
                    .cycle_on_step(&url, &sys, off, on, allowed, deadline)
                    .await?;
                (
                    PowerState::On,
                    format!(
                        "PowerState {raw_before}; {off} accepted (HTTP {}), off after {r1} reads; \
                         {on} accepted (HTTP {}), on after {r2} reads",
                        c1.as_u16(),
                        c2.as_u16()
                    ),
                )
            }
        };
        Ok(ActionReport {
            action,
            verified,
            already: matches!(plan, ResetPlan::Already),
            detail,
            took: start.elapsed(),
        })
    }
}

/// The error for an unsuccessful answer: 401/403 → Permanent ("bad credentials"),
/// 404, 501 and other 4xx → Permanent, 408, 429 and 5xx → Retryable.
fn status_error(raw: &Raw, what: &str) -> DriverError {
    let status = raw.status;
    let msg = format!(
        "redfish {what}: HTTP {}: {}",
        status.as_u16(),
        error_message(&raw.text)
    );
    match status.as_u16() {
        401 | 403 => DriverError::Permanent(format!("{msg} (bad credentials)")),
        404 => DriverError::Permanent(msg),
        501 => DriverError::Permanent(format!("{msg} (not implemented by the BMC)")),
        408 | 429 | 500..=599 => DriverError::Retryable(msg),
        _ => DriverError::Permanent(msg),
    }
}

fn odata_id(v: Option<&Value>) -> Option<&str> {
    v?.get("@odata.id")?.as_str()
}

fn excerpt(s: &str) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > EXCERPT {
        let mut e: String = one_line.chars().take(EXCERPT).collect();
        e.push('…');
        e
    } else {
        one_line
    }
}

/// The message of a Redfish error body (`error.message`, or the first extended
/// message), else an excerpt of the body.
fn error_message(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return excerpt(body);
    };
    let err = v.get("error");
    let ext = err
        .and_then(|e| e.get("@Message.ExtendedInfo"))
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|m| m.get("Message"))
        .and_then(Value::as_str);
    match (
        err.and_then(|e| e.get("message")).and_then(Value::as_str),
        ext,
    ) {
        (Some(m), Some(x)) if m != x => excerpt(&format!("{m}: {x}")),
        (Some(m), _) => excerpt(m),
        (None, Some(x)) => excerpt(x),
        (None, None) => excerpt(body),
    }
}

/// Maps a transport error: timeouts → Timeout, certificate failures → Permanent,
/// everything else (refused, reset, DNS) → Retryable.
fn classify(e: &reqwest::Error, what: &str, allowed: Duration) -> DriverError {
    if e.is_timeout() {
        return DriverError::Timeout {
            after: allowed,
            what: what.to_string(),
        };
    }
    let mut chain = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    let lower = chain.to_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        return DriverError::Permanent(format!(
            "redfish {what}: TLS certificate not trusted (give a CA file, or opt in to insecure): {chain}"
        ));
    }
    DriverError::Retryable(format!("redfish {what}: {chain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_password() {
        let cfg = RedfishConfig::new("https://10.0.0.5", "admin", "s3cret-pw");
        let d = RedfishDriver::new(cfg.clone()).unwrap();
        let shown = format!("{cfg:?} {d:?}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(shown.contains("(set)"), "{shown}");
    }

    #[test]
    fn rejects_bad_endpoints() {
        for e in ["ftp://x", "not a url", "https://admin:pw@10.0.0.5"] {
            let err = RedfishDriver::new(RedfishConfig::new(e, "a", "pw")).unwrap_err();
            assert!(
                matches!(&err, DriverError::Permanent(m) if !m.contains(":pw@")),
                "{err}"
            );
        }
    }

    /// A minimal Redfish service on loopback: one system `s1`, always on, whose
    /// reset answers `reset_status`; the system itself answers `system_status`
    /// after `delay`.
    async fn mock(
        allowed: &'static [&'static str],
        system_status: u16,
        reset_status: u16,
        delay: Duration,
    ) -> String {
        use axum::http::StatusCode as S;
        use axum::routing::{get, post};
        use axum::Json;
        let system = move || async move {
            tokio::time::sleep(delay).await;
            let code = S::from_u16(system_status).unwrap();
            let body = serde_json::json!({
                "Id": "s1", "PowerState": "On",
                "Actions": {"#ComputerSystem.Reset": {
                    "target": "/redfish/v1/Systems/s1/Actions/ComputerSystem.Reset",
                    "ResetType@Redfish.AllowableValues": allowed}}
            });
            (code, Json(body))
        };
        let reset = move || async move {
            let body = serde_json::json!({"error": {"message": "nope"}});
            (S::from_u16(reset_status).unwrap(), Json(body))
        };
        let app = axum::Router::new()
            .route(
                "/redfish/v1/",
                get(|| async {
                    Json(serde_json::json!({"Systems": {"@odata.id": "/redfish/v1/Systems"}}))
                }),
            )
            .route(
                "/redfish/v1/Systems",
                get(|| async {
                    Json(serde_json::json!({"Members": [{"@odata.id": "/redfish/v1/Systems/s1"}]}))
                }),
            )
            .route("/redfish/v1/Systems/s1", get(system))
            .route(
                "/redfish/v1/Systems/s1/Actions/ComputerSystem.Reset",
                post(reset),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn driver(url: &str) -> RedfishDriver {
        let mut c = RedfishConfig::new(url, "admin", "pw");
        c.poll_interval = Duration::from_millis(50);
        RedfishDriver::new(c).unwrap()
    }

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn not_implemented_reset_is_permanent() {
        let url = mock(&["PowerCycle", "ForceOff", "On"], 200, 501, Duration::ZERO).await;
        let err = driver(&url)
            .act(PowerAction::Cycle, soon(2000))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DriverError::Permanent(m) if m.contains("PowerCycle") && m.contains("501")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn server_errors_and_refused_connections_are_retryable() {
        let url = mock(&["ForceOff"], 503, 204, Duration::ZERO).await;
        let err = driver(&url).status(soon(2000)).await.unwrap_err();
        assert!(
            matches!(&err, DriverError::Retryable(m) if m.contains("503")),
            "{err:?}"
        );

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = driver(&format!("http://127.0.0.1:{port}"))
            .status(soon(2000))
            .await
            .unwrap_err();
        assert!(matches!(err, DriverError::Retryable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn slow_bmc_and_unverified_action_time_out_by_the_deadline() {
        let url = mock(&["ForceOff"], 200, 200, Duration::from_secs(30)).await;
        let t = Instant::now();
        let err = driver(&url).status(soon(300)).await.unwrap_err();
        assert!(matches!(err, DriverError::Timeout { .. }), "{err:?}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

        // Reset accepted, but the system stays on: Timeout naming the last state.
        let url = mock(&["ForceOff"], 200, 204, Duration::ZERO).await;
        let t = Instant::now();
        let err = driver(&url)
            .act(PowerAction::Off, soon(700))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DriverError::Timeout { what, .. } if what.contains("last read: On")),
            "{err:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    /// What [`stateful_mock`] holds: the power state, the `ResetType`s posted,
    /// and whether reads of the system fail (503).
    #[derive(Debug, Default)]
    struct MockBmc {
        on: bool,
        posted: Vec<String>,
        reads_fail: bool,
    }

    /// A Redfish service on loopback with one system `s1` whose power follows the
    /// resets at once (`ForceOff` → off; anything else → on, as a BMC that powers an
    /// off system on for a restart would).
    async fn stateful_mock(
        allowed: &'static [&'static str],
        on: bool,
    ) -> (String, std::sync::Arc<std::sync::Mutex<MockBmc>>) {
        use axum::http::StatusCode as S;
        use axum::routing::{get, post};
        use axum::Json;
        use std::sync::{Arc, Mutex};
        let bmc = Arc::new(Mutex::new(MockBmc {
            on,
            ..MockBmc::default()
        }));
        let b = bmc.clone();
        let system = move || {
            let b = b.clone();
            async move {
                let b = b.lock().unwrap();
                if b.reads_fail {
                    let body = serde_json::json!({"error": {"message": "busy"}});
                    return (S::SERVICE_UNAVAILABLE, Json(body));
                }
                let body = serde_json::json!({
                    "Id": "s1", "PowerState": if b.on { "On" } else { "Off" },
                    "Actions": {"#ComputerSystem.Reset": {
                        "target": "/redfish/v1/Systems/s1/Actions/ComputerSystem.Reset",
                        "ResetType@Redfish.AllowableValues": allowed}}
                });
                (S::OK, Json(body))
            }
        };
        let b = bmc.clone();
        let reset = move |Json(body): Json<Value>| {
            let b = b.clone();
            async move {
                let t = body["ResetType"].as_str().unwrap_or_default().to_string();
                let mut b = b.lock().unwrap();
                b.on = t != "ForceOff";
                b.posted.push(t);
                S::NO_CONTENT
            }
        };
        let app = axum::Router::new()
            .route(
                "/redfish/v1/",
                get(|| async {
                    Json(serde_json::json!({"Systems": {"@odata.id": "/redfish/v1/Systems"}}))
                }),
            )
            .route(
                "/redfish/v1/Systems",
                get(|| async {
                    Json(serde_json::json!({"Members": [{"@odata.id": "/redfish/v1/Systems/s1"}]}))
                }),
            )
            .route("/redfish/v1/Systems/s1", get(system))
            .route(
                "/redfish/v1/Systems/s1/Actions/ComputerSystem.Reset",
                post(reset),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), bmc)
    }

    #[tokio::test]
    async fn cycle_of_an_off_system_sends_nothing_and_stays_off() {
        for allowed in [
            &["On", "ForceOff", "ForceRestart", "PowerCycle"][..],
            &["ForceOff", "On"][..],
        ] {
            let (url, bmc) = stateful_mock(allowed, false).await;
            let r = driver(&url)
                .act(PowerAction::Cycle, soon(2000))
                .await
                .unwrap();
            assert_eq!(r.action, PowerAction::Cycle);
            assert_eq!((r.verified, r.already), (PowerState::Off, true), "{r:?}");
            assert!(
                r.detail.starts_with(
                    "off: a cycle powers on only a host it powered off itself; nothing sent"
                ),
                "{}",
                r.detail
            );
            assert!(r.detail.contains("PowerState Off"), "{}", r.detail);
            let bmc = bmc.lock().unwrap();
            assert!(bmc.posted.is_empty(), "{:?}", bmc.posted);
            assert!(!bmc.on);
        }
    }

    #[tokio::test]
    async fn cycle_is_not_sent_when_the_state_cannot_be_read() {
        let (url, bmc) = stateful_mock(&["ForceOff", "On", "ForceRestart"], true).await;
        bmc.lock().unwrap().reads_fail = true;
        let err = driver(&url)
            .act(PowerAction::Cycle, soon(2000))
            .await
            .unwrap_err();
        assert!(matches!(err, DriverError::Retryable(_)), "{err:?}");
        assert!(bmc.lock().unwrap().posted.is_empty());
    }

    #[tokio::test]
    async fn cycle_by_off_then_on_sends_on_only_after_off_and_in_time() {
        let (url, bmc) = stateful_mock(&["ForceOff", "On"], true).await;
        let d = driver(&url);
        let r = d.act(PowerAction::Cycle, soon(3000)).await.unwrap();
        assert_eq!((r.verified, r.already), (PowerState::On, false), "{r:?}");
        assert!(
            r.detail.contains("ForceOff accepted") && r.detail.contains("On accepted"),
            "{}",
            r.detail
        );
        assert_eq!(bmc.lock().unwrap().posted, ["ForceOff", "On"]);

        // The deadline passed after the off step: no On, and the error says the
        // host was left off.
        bmc.lock().unwrap().posted.clear();
        let (url_s1, sys) = d.read_system(soon(2000)).await.unwrap();
        let err = d
            .cycle_on_step(
                &url_s1,
                &sys,
                "ForceOff",
                "On",
                Duration::from_secs(2),
                Instant::now(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DriverError::Timeout { what, .. }
                if what.contains("ForceOff then On") && what.contains("left off")),
            "{err:?}"
        );
        assert!(bmc.lock().unwrap().posted.is_empty());
    }

    #[test]
    fn reads_redfish_error_bodies() {
        let body = r#"{"error":{"code":"Base.1.0.GeneralError","message":"Authentication failed",
            "@Message.ExtendedInfo":[{"Message":"Authentication failed"}]}}"#;
        assert_eq!(error_message(body), "Authentication failed");
        assert_eq!(error_message("<html>nope</html>"), "<html>nope</html>");
    }
}
