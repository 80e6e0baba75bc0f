//! HTTP checks: a health endpoint that must answer with the expected status, and an
//! activity endpoint whose body (a counter, a timestamp…) must change between rounds.
//!
//! Proxies from the environment are ignored (a check of a host's agent must reach
//! the host itself) and redirects are not followed (the status judged is the one of
//! the URL configured; expect 301/302 explicitly if that is what it answers).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::error_chain;
use crate::check::{ActivityCheck, ActivityResult, Health, HealthCheck};

/// Most bytes of an activity body compared (the rest is not read).
const BODY_LIMIT: usize = 1024 * 1024;

fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {}", error_chain(&e)))
}

/// The URL, if it is an absolute http(s) URL.
fn parse_url(url: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    match u.scheme() {
        "http" | "https" => Ok(u),
        s => Err(format!("invalid URL {url:?}: scheme {s:?} is not http(s)")),
    }
}

/// GET `url` by `deadline`: the response, or why not (`Err((is_builder, text))`).
async fn get(
    client: &reqwest::Client,
    url: reqwest::Url,
    deadline: Instant,
) -> Result<reqwest::Response, (bool, String)> {
    let allowed = deadline.saturating_duration_since(Instant::now());
    if allowed.is_zero() {
        return Err((false, "deadline already passed".to_string()));
    }
    match tokio::time::timeout_at(deadline, client.get(url).timeout(allowed).send()).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) if e.is_timeout() => Err((false, no_answer(allowed))),
        Ok(Err(e)) => Err((e.is_builder(), error_chain(&e))),
        Err(_) => Err((false, no_answer(allowed))),
    }
}

fn no_answer(allowed: Duration) -> String {
    format!("no answer within {:.1}s", allowed.as_secs_f64())
}

/// Health: `GET url` must answer `expect_status` (default 200) by the deadline.
/// Connection refused, reset or no answer in time: `Fail`; an invalid URL: `Error`.
#[derive(Debug)]
pub struct HttpHealth {
    url: String,
    expect_status: u16,
    client: Result<reqwest::Client, String>,
}

impl HttpHealth {
    /// A check of `url`, expecting 200.
    pub fn new(url: impl Into<String>) -> Self {
        HttpHealth {
            url: url.into(),
            expect_status: 200,
            client: client(),
        }
    }

    /// Expect `status` instead of 200.
    pub fn expect_status(mut self, status: u16) -> Self {
        self.expect_status = status;
        self
    }
}

#[async_trait]
impl HealthCheck for HttpHealth {
    async fn check(&self, deadline: Instant) -> Health {
        let start = Instant::now();
        let client = match &self.client {
            Ok(c) => c,
            Err(e) => return Health::Error { reason: e.clone() },
        };
        let url = match parse_url(&self.url) {
            Ok(u) => u,
            Err(reason) => return Health::Error { reason },
        };
        match get(client, url, deadline).await {
            Ok(r) if r.status().as_u16() == self.expect_status => Health::Pass {
                detail: format!(
                    "GET {}: HTTP {} in {}ms",
                    self.url,
                    r.status().as_u16(),
                    start.elapsed().as_millis()
                ),
            },
            Ok(r) => Health::Fail {
                reason: format!(
                    "GET {}: HTTP {}, expected {}",
                    self.url,
                    r.status().as_u16(),
                    self.expect_status
                ),
            },
            Err((true, e)) => Health::Error {
                reason: format!("GET {}: {e}", self.url),
            },
            Err((false, e)) => Health::Fail {
                reason: format!("GET {}: {e}", self.url),
            },
        }
    }
}

/// Activity: the body of `GET url` (a counter, a timestamp, a sequence number) must
/// differ from the previous round's. First round: `Error` ("baseline taken"). A
/// changed body: `Active`; the same body: `Inactive`. No answer, a non-2xx status or
/// an invalid URL: `Error` (the checker could not tell). Only the first MiB of the
/// body is compared.
#[derive(Debug)]
pub struct HttpActivity {
    url: String,
    client: Result<reqwest::Client, String>,
    /// Hash of the previous round's body.
    last: Mutex<Option<u64>>,
}

impl HttpActivity {
    /// A check of `url`.
    pub fn new(url: impl Into<String>) -> Self {
        HttpActivity {
            url: url.into(),
            client: client(),
            last: Mutex::new(None),
        }
    }

    async fn body(&self, deadline: Instant) -> Result<(Vec<u8>, bool), String> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let url = parse_url(&self.url)?;
        let allowed = deadline.saturating_duration_since(Instant::now());
        let mut r = get(client, url, deadline).await.map_err(|(_, e)| e)?;
        if !r.status().is_success() {
            return Err(format!("HTTP {}", r.status().as_u16()));
        }
        let read = async {
            let mut body = Vec::new();
            while let Some(chunk) = r.chunk().await.map_err(|e| error_chain(&e))? {
                let room = BODY_LIMIT - body.len();
                if chunk.len() >= room {
                    body.extend_from_slice(&chunk[..room]);
                    return Ok((body, true));
                }
                body.extend_from_slice(&chunk);
            }
            Ok((body, false))
        };
        match tokio::time::timeout_at(deadline, read).await {
            Ok(r) => r,
            Err(_) => Err(no_answer(allowed)),
        }
    }
}

/// At most 60 characters of a body, for evidence.
fn preview(body: &[u8]) -> String {
    crate::child::excerpt(body, None, 60)
}

#[async_trait]
impl ActivityCheck for HttpActivity {
    async fn check(&self, deadline: Instant) -> ActivityResult {
        let (body, cut) = match self.body(deadline).await {
            Ok(b) => b,
            Err(e) => {
                return ActivityResult::Error {
                    reason: format!("GET {}: {e}", self.url),
                }
            }
        };
        let mut h = DefaultHasher::new();
        body.hash(&mut h);
        let hash = h.finish();
        let seen = format!(
            "body {:?}{}",
            preview(&body),
            if cut { " (first MiB)" } else { "" }
        );
        let prev = self
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(hash);
        match prev {
            None => ActivityResult::Error {
                reason: format!(
                    "GET {}: baseline taken ({seen}); activity is judged from the next round",
                    self.url
                ),
            },
            Some(p) if p != hash => ActivityResult::Active {
                detail: format!("GET {}: {seen} changed since the last round", self.url),
            },
            Some(_) => ActivityResult::Inactive {
                detail: format!("GET {}: {seen} unchanged since the last round", self.url),
            },
        }
    }
}
