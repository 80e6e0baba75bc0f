//! HTTP basic authentication for the sim Redfish server: the credentials, and the
//! check of a request's `Authorization` header against them.

use std::fmt;

use axum::http::{header, HeaderMap};

/// The user and password the sim Redfish server accepts (basic auth). `Debug`
/// never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SimCredentials {
    /// Basic-auth user.
    pub username: String,
    /// Basic-auth password.
    pub password: String,
}

impl SimCredentials {
    /// Credentials `username` / `password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        SimCredentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The exact `Authorization` header value a client sends for them.
    pub(super) fn header_value(&self) -> String {
        format!(
            "Basic {}",
            base64(format!("{}:{}", self.username, self.password).as_bytes())
        )
    }
}

impl fmt::Debug for SimCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimCredentials")
            .field("username", &self.username)
            .field("password", &"(set)")
            .finish()
    }
}

/// True when `headers` carry exactly `expected` (from [`SimCredentials::header_value`])
/// as their `Authorization`. Standard base64 has one encoding per input, so comparing
/// encoded forms is comparing credentials; the scheme name is case-insensitive.
pub(super) fn authorized(headers: &HeaderMap, expected: &str) -> bool {
    let Some(got) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let (Some((scheme, token)), Some((_, want))) =
        (got.trim().split_once(' '), expected.split_once(' '))
    else {
        return false;
    };
    scheme.eq_ignore_ascii_case("basic") && token.trim() == want
}

/// Standard base64 (RFC 4648, with padding).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc, "{plain:?}");
        }
        assert_eq!(
            SimCredentials::new("Aladdin", "open sesame").header_value(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn checks_the_authorization_header() {
        let want = SimCredentials::new("admin", "pw").header_value();
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(authorized(&with(&want), &want));
        assert!(authorized(&with("basic YWRtaW46cHc="), &want));
        assert!(!authorized(&with("Basic YWRtaW46cHcx"), &want));
        assert!(!authorized(&with("Bearer YWRtaW46cHc="), &want));
        assert!(!authorized(&HeaderMap::new(), &want));
        let shown = format!("{:?}", SimCredentials::new("admin", "s3cret"));
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
