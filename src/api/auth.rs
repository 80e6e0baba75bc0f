//! Bearer-token authentication of the admin API and `/metrics`.
//!
//! Anyone who can reach `/api/v1` can power off hosts (`vigil power --host`, inventory
//! changes that add fence levels…), so a production member should require a token:
//! `vigil serve --api-token-file FILE`. The token is compared through SHA-256 digests
//! (equal-length, so the comparison time does not depend on where a guess differs), is
//! never logged, and a refusal says how to pass it. `/healthz` and `/readyz` stay open
//! for load balancers; the member-to-member routes (`/raft/*`, `/internal/*`) are not
//! covered by this token (they belong on the management network; TLS and peer
//! authentication are future work).

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::VigilError;

/// Shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// The API token of a member (only its digest is kept).
#[derive(Clone)]
pub struct ApiToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl ApiToken {
    /// A token from its text (surrounding whitespace ignored).
    pub fn new(text: &str) -> Result<Self, VigilError> {
        let t = text.trim();
        if t.chars().count() < MIN_TOKEN_LEN {
            return Err(VigilError::Config(format!(
                "the API token must be at least {MIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 32`)"
            )));
        }
        if t.chars().any(char::is_whitespace) {
            return Err(VigilError::Config(
                "the API token must not contain whitespace".into(),
            ));
        }
        Ok(Self { digest: digest(t) })
    }

    /// Read the token from `path` (its first line).
    pub fn load(path: &Path) -> Result<Self, VigilError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            VigilError::io(format!("reading the API token file {}", path.display()), e)
        })?;
        let line = text.lines().next().unwrap_or("");
        Self::new(line).map_err(|e| VigilError::Config(format!("{}: {e}", path.display())))
    }

    /// Does `presented` match?
    pub fn matches(&self, presented: &str) -> bool {
        digest(presented.trim()) == self.digest
    }
}

/// Paths that need the token.
fn protected(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics"
}

/// The middleware: 401 with a hint unless the request carries the token.
pub async fn require(State(token): State<Arc<ApiToken>>, req: Request, next: Next) -> Response {
    if !protected(req.uri().path()) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(p) if token.matches(p) => next.run(req).await,
        Some(_) => refuse("the API token is wrong"),
        None => refuse("this member requires an API token"),
    }
}

fn refuse(why: &str) -> Response {
    let body = serde_json::json!({
        "error": {
            "code": "unauthorized",
            "message": why,
            "hint": "pass it with --token-file FILE or VIGIL_TOKEN (HTTP: Authorization: Bearer TOKEN)",
            "retryable": false,
        }
    });
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_never_shown() {
        assert!(ApiToken::new("short").is_err());
        assert!(ApiToken::new("has a space in it, long enough").is_err());
        let t = ApiToken::new("  0123456789abcdef0123  \n").unwrap();
        assert!(t.matches("0123456789abcdef0123"));
        assert!(!t.matches("0123456789abcdef0124"));
        assert!(!format!("{t:?}").contains("0123"));
        assert!(protected("/api/v1/hosts") && protected("/metrics"));
        assert!(!protected("/healthz") && !protected("/raft/append"));
    }
}
