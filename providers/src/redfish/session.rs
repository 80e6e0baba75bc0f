//! Redfish session authentication (`SessionService`), and the choice between it and
//! basic auth ([`RedfishAuth`]).
//!
//! Why sessions: with basic auth every request carries the password; with a session
//! the password is sent once, in the body of the login (`POST` to the `Sessions`
//! collection), and every later request carries only the `X-Auth-Token` the BMC
//! handed out. Real BMCs also answer token requests faster (no password hash per
//! request) and some allow only sessions.
//!
//! Why logout matters: BMCs keep a small, fixed number of session slots (often 4 to
//! 16) and drop idle sessions only after minutes. A driver that logs in for each
//! call and never logs out locks everyone, vigil included, out of the BMC. So:
//!
//! - one session per driver object, kept behind a tokio `Mutex` and reused by every
//!   call (concurrent first calls log in once);
//! - a `401` on a request made with the token (the BMC rebooted, or expired the
//!   session) logs in again once and repeats the request; a second `401` is final;
//! - [`RedfishDriver::close`] deletes the session (best effort, bounded by
//!   [`LOGOUT_TIMEOUT`] and the caller's deadline), and dropping a driver that still
//!   holds a session spawns the same `DELETE` when a tokio runtime is at hand.
//!
//! A login cut short by the caller's deadline after the BMC created the session
//! cannot be logged out (the token never arrived): the BMC's idle timeout reclaims
//! it.
//!
//! [`RedfishAuth::Auto`] (the default) reads the anonymous service root once per
//! driver: sessions when it advertises `Links.Sessions` (or a `SessionService`),
//! basic auth otherwise (sushy-emulator, for one, has no `SessionService`). A
//! session login that the BMC does not implement (404, 405, 501) also falls back to
//! basic auth under `Auto`; wrong credentials never do.
//!
//! Neither the password nor the token appears in a message or a `Debug` output.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use tokio::time::Instant;

use super::{error_message, odata_id, RedfishDriver};
use crate::error::DriverError;
use crate::power::within;

/// The header that carries a session's token.
pub const AUTH_TOKEN: &str = "X-Auth-Token";

/// Where the `Sessions` collection is when the service root does not say.
pub const DEFAULT_SESSIONS: &str = "/redfish/v1/SessionService/Sessions";

/// Longest wait for a logout's answer (it is best effort: a BMC that does not answer
/// reclaims the session by its own idle timeout).
pub const LOGOUT_TIMEOUT: Duration = Duration::from_secs(2);

/// How a [`RedfishDriver`] authenticates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RedfishAuth {
    /// HTTP basic auth on every request.
    Basic,
    /// A Redfish session: one login, then `X-Auth-Token`; logout on close/drop.
    Session,
    /// Session auth when the service root advertises `Links.Sessions` (or a
    /// `SessionService`), basic auth otherwise.
    #[default]
    Auto,
}

impl RedfishAuth {
    /// The accepted spellings, for messages.
    pub const NAMES: &'static str = "basic, session, auto";

    /// `basic`, `session` or `auto` (case-insensitive); `None` otherwise.
    pub fn parse(s: &str) -> Option<RedfishAuth> {
        match s.trim().to_ascii_lowercase().as_str() {
            "basic" => Some(RedfishAuth::Basic),
            "session" => Some(RedfishAuth::Session),
            "auto" => Some(RedfishAuth::Auto),
            _ => None,
        }
    }

    /// The option value naming it.
    pub fn as_str(self) -> &'static str {
        match self {
            RedfishAuth::Basic => "basic",
            RedfishAuth::Session => "session",
            RedfishAuth::Auto => "auto",
        }
    }
}

impl fmt::Display for RedfishAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one request is sent with.
#[derive(Clone)]
pub(super) enum Credential {
    /// Nothing (the service root, the login).
    Anonymous,
    /// The configured user and password.
    Basic,
    /// A session's token.
    Token(String),
}

/// A session the BMC handed out.
struct Session {
    token: String,
    /// Its address, for the logout; `None` when the BMC named none.
    uri: Option<Url>,
}

/// The scheme in use, once known.
enum Scheme {
    /// Not decided yet (`Auto` or `Session` before the first request).
    Unknown,
    Basic,
    /// Sessions, logging in at this `Sessions` collection (`advertised`: named by
    /// the service root, rather than assumed).
    Session {
        collection: Url,
        advertised: bool,
    },
}

/// A driver's authentication state: the scheme, and the live session if any.
pub(super) struct AuthState {
    scheme: Scheme,
    session: Option<Session>,
}

impl AuthState {
    pub(super) fn new(mode: RedfishAuth) -> AuthState {
        AuthState {
            scheme: match mode {
                RedfishAuth::Basic => Scheme::Basic,
                RedfishAuth::Session | RedfishAuth::Auto => Scheme::Unknown,
            },
            session: None,
        }
    }
}

/// Why a login failed.
enum LoginError {
    /// The BMC has no working session login there (404, 405, 501).
    Unsupported(String),
    /// Anything else, as the caller should see it.
    Failed(DriverError),
}

impl RedfishDriver {
    /// The credential for the next request: decides the scheme on first use and logs
    /// in when sessions are used and none is live.
    pub(super) async fn credential(&self, deadline: Instant) -> Result<Credential, DriverError> {
        let mut st = self.auth.lock().await;
        if matches!(st.scheme, Scheme::Unknown) {
            st.scheme = self.choose_scheme(deadline).await?;
        }
        let (collection, advertised) = match &st.scheme {
            Scheme::Session {
                collection,
                advertised,
            } => (collection.clone(), *advertised),
            Scheme::Basic | Scheme::Unknown => return Ok(Credential::Basic),
        };
        if let Some(s) = &st.session {
            return Ok(Credential::Token(s.token.clone()));
        }
        match self.login(&collection, advertised, deadline).await {
            Ok(s) => {
                let token = s.token.clone();
                st.session = Some(s);
                Ok(Credential::Token(token))
            }
            Err(LoginError::Unsupported(m)) if self.config.auth == RedfishAuth::Auto => {
                tracing::warn!(
                    endpoint = %self.base,
                    "redfish: {m}; falling back to basic auth"
                );
                st.scheme = Scheme::Basic;
                Ok(Credential::Basic)
            }
            Err(LoginError::Unsupported(m)) => Err(DriverError::Permanent(format!(
                "{m} (configure auth basic for this BMC)"
            ))),
            Err(LoginError::Failed(e)) => Err(e),
        }
    }

    /// After a `401` to a request sent with `stale`: a fresh token (logging in again
    /// unless a concurrent call already did).
    pub(super) async fn relogin(
        &self,
        stale: &str,
        deadline: Instant,
    ) -> Result<Credential, DriverError> {
        {
            let mut st = self.auth.lock().await;
            match &st.session {
                Some(s) if s.token != stale => return Ok(Credential::Token(s.token.clone())),
                // The BMC no longer knows it: nothing to log out.
                Some(_) => st.session = None,
                None => {}
            }
        }
        tracing::info!(endpoint = %self.base, "redfish: session refused, logging in again");
        self.credential(deadline).await
    }

    /// Logs the driver's session out, if it has one, waiting for the answer until
    /// `deadline` or [`LOGOUT_TIMEOUT`], whichever comes first. Best effort: the
    /// session is forgotten either way, and a session the BMC no longer knows (401,
    /// 404) counts as logged out. The next call logs in again. Nothing to do under
    /// basic auth.
    pub async fn close(&self, deadline: Instant) -> Result<(), DriverError> {
        let deadline = deadline.min(Instant::now() + LOGOUT_TIMEOUT);
        let session = within(deadline, "redfish logout", async {
            Ok(self.auth.lock().await.session.take())
        })
        .await?;
        match session {
            Some(s) => logout(&self.client, &s, deadline).await,
            None => Ok(()),
        }
    }

    /// Reads the anonymous service root to choose the scheme (configured `Session`
    /// or `Auto`).
    async fn choose_scheme(&self, deadline: Instant) -> Result<Scheme, DriverError> {
        let root = self.join("/redfish/v1/")?;
        let what = format!("GET {} (auth discovery)", root.path());
        let raw = self
            .send(
                &Method::GET,
                &root,
                None,
                &Credential::Anonymous,
                &what,
                deadline,
            )
            .await?;
        let advertised = if raw.status.is_success() {
            let doc: Value = serde_json::from_str(&raw.text).unwrap_or(Value::Null);
            match odata_id(doc.get("Links").and_then(|l| l.get("Sessions"))) {
                Some(p) => Some(p.to_string()),
                None if doc.get("SessionService").is_some() => Some(DEFAULT_SESSIONS.into()),
                None => None,
            }
        } else if matches!(raw.status.as_u16(), 401 | 403) {
            // A root that wants credentials (against the standard): it says nothing.
            None
        } else {
            return Err(super::status_error(&raw, &what));
        };
        Ok(match (self.config.auth, advertised) {
            (RedfishAuth::Basic, _) | (RedfishAuth::Auto, None) => Scheme::Basic,
            (_, Some(p)) => Scheme::Session {
                collection: self.join(&p)?,
                advertised: true,
            },
            (RedfishAuth::Session, None) => Scheme::Session {
                collection: self.join(DEFAULT_SESSIONS)?,
                advertised: false,
            },
        })
    }

    /// `POST {"UserName", "Password"}` to `collection` (`advertised` by the service
    /// root, or assumed): the token and the session's address.
    async fn login(
        &self,
        collection: &Url,
        advertised: bool,
        deadline: Instant,
    ) -> Result<Session, LoginError> {
        let what = format!("POST {} (login)", collection.path());
        let body = serde_json::json!({
            "UserName": self.config.username,
            "Password": self.config.password,
        });
        let raw = self
            .send(
                &Method::POST,
                collection,
                Some(&body),
                &Credential::Anonymous,
                &what,
                deadline,
            )
            .await
            .map_err(LoginError::Failed)?;
        let code = raw.status.as_u16();
        if !raw.status.is_success() {
            let msg = self.scrub(&error_message(&raw.text));
            let msg = format!("redfish {what}: HTTP {code}: {msg}");
            // A BMC without sessions may well answer 401 to a POST there (sushy does).
            let hint = if advertised {
                ""
            } else {
                "; or no session login: the service root advertises no SessionService, \
                 try auth basic"
            };
            return Err(match code {
                401 | 403 => LoginError::Failed(DriverError::Permanent(format!(
                    "{msg} (bad credentials: login as {:?} refused{hint})",
                    self.config.username
                ))),
                404 | 405 | 501 => LoginError::Unsupported(format!(
                    "{msg} (the BMC offers no session login there)"
                )),
                _ => LoginError::Failed(super::status_error(&raw, &what)),
            });
        }
        let Some(token) = header_str(&raw.headers, AUTH_TOKEN).filter(|t| !t.is_empty()) else {
            return Err(LoginError::Failed(DriverError::Permanent(format!(
                "redfish {what}: HTTP {code} without an {AUTH_TOKEN} header"
            ))));
        };
        let body: Value = serde_json::from_str(&raw.text).unwrap_or(Value::Null);
        let uri = header_str(&raw.headers, LOCATION.as_str())
            .or_else(|| {
                body.get("@odata.id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .and_then(|p| self.base.join(&p).ok());
        if uri.is_none() {
            tracing::warn!(
                endpoint = %self.base,
                "redfish: login answer names no session (no Location, no @odata.id): \
                 it cannot be logged out"
            );
        }
        tracing::debug!(
            endpoint = %self.base,
            session = uri.as_ref().map(|u| u.path()).unwrap_or("?"),
            "redfish: logged in"
        );
        Ok(Session { token, uri })
    }

    /// `text` without the password in it (a BMC might quote the request).
    fn scrub(&self, text: &str) -> String {
        if self.config.password.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.config.password, "(password)")
        }
    }
}

impl Drop for RedfishDriver {
    /// A session still open is logged out on a spawned task (best effort, bounded by
    /// [`LOGOUT_TIMEOUT`]); without a tokio runtime it is left to the BMC's idle
    /// timeout.
    fn drop(&mut self) {
        let Some(session) = self.auth.get_mut().session.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let client = self.client.clone();
                rt.spawn(async move {
                    let deadline = Instant::now() + LOGOUT_TIMEOUT;
                    if let Err(e) = logout(&client, &session, deadline).await {
                        tracing::debug!("redfish: logout on drop failed: {e}");
                    }
                });
            }
            Err(_) => tracing::debug!(
                "redfish: driver dropped outside a tokio runtime; session left to expire"
            ),
        }
    }
}

/// `DELETE` the session (with its own token), before `deadline`.
async fn logout(
    client: &reqwest::Client,
    session: &Session,
    deadline: Instant,
) -> Result<(), DriverError> {
    let Some(uri) = &session.uri else {
        return Ok(());
    };
    let what = format!("DELETE {} (logout)", uri.path());
    let remaining = deadline.saturating_duration_since(Instant::now());
    let token = HeaderValue::from_str(&session.token)
        .map_err(|_| DriverError::Permanent(format!("redfish {what}: unusable token")))?;
    let req = client
        .delete(uri.clone())
        .header(AUTH_TOKEN, token)
        .timeout(remaining);
    let status = within(deadline, &what, async {
        req.send()
            .await
            .map(|r| r.status())
            .map_err(|e| super::classify(&e, &what, remaining))
    })
    .await?;
    if status.is_success() || matches!(status, StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND) {
        tracing::debug!(session = uri.path(), "redfish: logged out");
        Ok(())
    } else {
        Err(DriverError::Retryable(format!(
            "redfish {what}: HTTP {}",
            status.as_u16()
        )))
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// Shown in a `Debug` output without the token.
impl fmt::Debug for AuthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match &self.scheme {
            Scheme::Unknown => "undecided".to_string(),
            Scheme::Basic => "basic".to_string(),
            Scheme::Session { collection, .. } => format!("session at {}", collection.path()),
        };
        f.debug_struct("AuthState")
            .field("scheme", &scheme)
            .field("logged_in", &self.session.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_option_values() {
        for m in [RedfishAuth::Basic, RedfishAuth::Session, RedfishAuth::Auto] {
            assert_eq!(RedfishAuth::parse(m.as_str()), Some(m));
            assert_eq!(RedfishAuth::parse(&m.to_string().to_uppercase()), Some(m));
        }
        assert_eq!(RedfishAuth::parse("token"), None);
        assert_eq!(RedfishAuth::default(), RedfishAuth::Auto);
    }
}
