//! The sim Redfish server's `SessionService`: logins that hand out `X-Auth-Token`s,
//! the tokens that stand in for basic auth afterwards, logouts, and the counters the
//! tests judge a client by (live sessions for leaks, logins and basic-auth requests
//! for how often the password travelled).
//!
//! Real BMCs keep a few session slots and forget every session when they reboot;
//! [`SessionStore::expire_all`] plays the reboot. The service can be switched off
//! ([`SessionStore::set_enabled`]), as on a BMC (or sushy-emulator) without one: the
//! service root then advertises nothing and the session resources are 404.
//!
//! Pure bookkeeping: no I/O. The store is shared by every simulated BMC behind the
//! listener (one `SessionService` for the whole service).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use serde_json::Value;

use super::auth::SimCredentials;

/// Where the `Sessions` collection lives.
pub(super) const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The body is not `{"UserName": …, "Password": …}`.
    Malformed(String),
    /// Wrong user or password.
    BadCredentials,
}

/// One live session.
struct Live {
    id: String,
    user: String,
}

#[derive(Default)]
struct Inner {
    disabled: bool,
    /// Live sessions by token.
    live: BTreeMap<String, Live>,
    next_id: u64,
    logins: u64,
    basic_requests: u64,
}

/// Every session of the service, and the counters. `Debug` never shows a token.
#[derive(Default)]
pub(super) struct SessionStore {
    inner: Mutex<Inner>,
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = self.lock();
        f.debug_struct("SessionStore")
            .field("enabled", &!i.disabled)
            .field("live", &i.live.len())
            .field("logins", &i.logins)
            .field("basic_requests", &i.basic_requests)
            .finish()
    }
}

impl SessionStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the service offers sessions.
    pub(super) fn enabled(&self) -> bool {
        !self.lock().disabled
    }

    /// Switches the service on or off; switching it off ends every session.
    pub(super) fn set_enabled(&self, enabled: bool) {
        let mut i = self.lock();
        i.disabled = !enabled;
        if !enabled {
            i.live.clear();
        }
    }

    /// A login with `body` (counted whatever its outcome): the new session's token
    /// and id.
    pub(super) fn login(
        &self,
        creds: &SimCredentials,
        body: &[u8],
    ) -> Result<(String, String), Refusal> {
        let mut i = self.lock();
        i.logins += 1;
        let v: Value =
            serde_json::from_slice(body).map_err(|e| Refusal::Malformed(format!("body: {e}")))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| Refusal::Malformed(format!("{k} (a string) is required")))
        };
        let (user, password) = (field("UserName")?, field("Password")?);
        if user != creds.username || password != creds.password {
            return Err(Refusal::BadCredentials);
        }
        i.next_id += 1;
        let id = i.next_id.to_string();
        let token = hex(&rand::random::<[u8; 16]>());
        i.live.insert(
            token.clone(),
            Live {
                id: id.clone(),
                user: user.to_string(),
            },
        );
        Ok((token, id))
    }

    /// True when `token` belongs to a live session.
    pub(super) fn valid(&self, token: &str) -> bool {
        let i = self.lock();
        !i.disabled && i.live.contains_key(token)
    }

    /// Ends session `id`; false when there is no such session.
    pub(super) fn logout(&self, id: &str) -> bool {
        let mut i = self.lock();
        let before = i.live.len();
        i.live.retain(|_, s| s.id != id);
        i.live.len() != before
    }

    /// The user of session `id`, if it is live.
    pub(super) fn user_of(&self, id: &str) -> Option<String> {
        self.lock()
            .live
            .values()
            .find(|s| s.id == id)
            .map(|s| s.user.clone())
    }

    /// The ids of the live sessions, in order of creation.
    pub(super) fn ids(&self) -> Vec<String> {
        let mut ids: Vec<u64> = self
            .lock()
            .live
            .values()
            .filter_map(|s| s.id.parse().ok())
            .collect();
        ids.sort_unstable();
        ids.into_iter().map(|n| n.to_string()).collect()
    }

    /// Ends every session (a BMC reboot).
    pub(super) fn expire_all(&self) {
        self.lock().live.clear();
    }

    /// Counts a request authenticated by basic auth.
    pub(super) fn count_basic(&self) {
        self.lock().basic_requests += 1;
    }

    /// Live sessions.
    pub(super) fn live(&self) -> usize {
        self.lock().live.len()
    }

    /// Login attempts so far (each carried the password).
    pub(super) fn logins(&self) -> u64 {
        self.lock().logins
    }

    /// Requests authenticated by basic auth so far (each carried the password).
    pub(super) fn basic_requests(&self) -> u64 {
        self.lock().basic_requests
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_logout_expire_and_disable() {
        let creds = SimCredentials::new("admin", "pw");
        let s = SessionStore::default();
        let ok = br#"{"UserName":"admin","Password":"pw"}"#;
        let (t1, id1) = s.login(&creds, ok).unwrap();
        let (t2, _) = s.login(&creds, ok).unwrap();
        assert_ne!(t1, t2);
        assert_eq!(t1.len(), 32);
        assert!(s.valid(&t1) && s.valid(&t2));
        assert_eq!(s.ids(), vec!["1", "2"]);
        assert_eq!(s.user_of(&id1).as_deref(), Some("admin"));
        assert_eq!(
            s.login(&creds, br#"{"UserName":"admin","Password":"nope"}"#),
            Err(Refusal::BadCredentials)
        );
        assert!(matches!(
            s.login(&creds, br#"{"UserName":"admin"}"#),
            Err(Refusal::Malformed(_))
        ));
        assert_eq!(s.logins(), 4);

        assert!(s.logout(&id1));
        assert!(!s.logout(&id1));
        assert!(!s.valid(&t1) && s.valid(&t2));
        s.expire_all();
        assert!(!s.valid(&t2));
        assert_eq!(s.live(), 0);

        let (t3, _) = s.login(&creds, ok).unwrap();
        s.set_enabled(false);
        assert!(!s.enabled() && !s.valid(&t3) && s.live() == 0);
        let shown = format!("{s:?}");
        assert!(!shown.contains(&t3) && !shown.contains("pw"), "{shown}");
    }
}
