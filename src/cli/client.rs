//! The CLI's HTTP client for the admin API: one line errors with hints.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use vigil::api::types::ErrorBody;

/// A client bound to one member's base URL.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// Validate the endpoint and build the client.
    pub fn new(endpoint: &str, timeout: Duration) -> Result<Self> {
        let url = reqwest::Url::parse(endpoint).with_context(|| {
            format!("--endpoint {endpoint:?} is not a URL (expected e.g. http://127.0.0.1:7001)")
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            bail!("--endpoint {endpoint:?} must be an http:// or https:// URL with a host");
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(3))
            .build()?;
        Ok(Self {
            base: endpoint.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// GET `path` and decode JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.http.get(self.url(path))).await
    }

    /// POST JSON to `path`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// PUT JSON to `path`.
    pub async fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    /// DELETE `path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.http.delete(self.url(path))).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.transport(e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .with_context(|| format!("unexpected answer from {}", self.base));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => {
                let mut msg = body.error.message;
                if let Some(h) = body.error.hint {
                    msg.push_str(&format!(" (hint: {h})"));
                }
                Err(anyhow!(msg))
            }
            Err(_) => Err(anyhow!(
                "{} answered HTTP {status}: {}",
                self.base,
                String::from_utf8_lossy(&bytes).trim()
            )),
        }
    }

    fn transport(&self, e: reqwest::Error) -> anyhow::Error {
        let mut cause: &dyn std::error::Error = &e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        if e.is_timeout() {
            anyhow!("no answer from {} in time ({cause}); the outcome of a write is unknown, check before retrying", self.base)
        } else if e.is_connect() {
            anyhow!(
                "cannot reach vigil at {} ({cause}); is `vigil serve` running there? set --endpoint or VIGIL_ENDPOINT",
                self.base
            )
        } else {
            anyhow!("request to {} failed: {cause}", self.base)
        }
    }
}
