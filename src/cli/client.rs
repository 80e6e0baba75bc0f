//! The CLI's HTTP client for the admin API: one line errors with hints.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use vigil::api::types::ErrorBody;

/// A client for the admin API of one or more members. With several endpoints
/// (`--endpoint http://a:7001,http://b:7001`) a member that cannot be reached is
/// skipped and the next one is asked — only when the connection failed, so a request
/// is never sent twice. Any member serves every request (writes are forwarded to the
/// leader), so this follows the cluster through a member's death.
#[derive(Debug)]
pub struct ApiClient {
    bases: Vec<String>,
    current: std::sync::atomic::AtomicUsize,
    http: reqwest::Client,
    token: Option<String>,
}

enum Method<'a> {
    Get,
    Delete,
    Post(&'a serde_json::Value),
    Put(&'a serde_json::Value),
}

impl ApiClient {
    /// Validate the endpoint(s) (comma-separated) and build the client.
    pub fn new(endpoint: &str, timeout: Duration) -> Result<Self> {
        let mut bases = Vec::new();
        for e in endpoint.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let url = reqwest::Url::parse(e).with_context(|| {
                format!("--endpoint {e:?} is not a URL (expected e.g. http://127.0.0.1:7001)")
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                bail!("--endpoint {e:?} must be an http:// or https:// URL with a host");
            }
            bases.push(e.trim_end_matches('/').to_string());
        }
        if bases.is_empty() {
            bail!("--endpoint is empty (expected e.g. http://127.0.0.1:7001)");
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(3))
            .build()?;
        Ok(Self {
            bases,
            current: std::sync::atomic::AtomicUsize::new(0),
            http,
            token: None,
        })
    }

    /// Send `Authorization: Bearer <token>` with every request.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// GET `path` and decode JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::Get, path).await
    }

    /// POST JSON to `path`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let v = serde_json::to_value(body)?;
        self.call(Method::Post(&v), path).await
    }

    /// PUT JSON to `path`.
    pub async fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let v = serde_json::to_value(body)?;
        self.call(Method::Put(&v), path).await
    }

    /// DELETE `path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::Delete, path).await
    }

    /// Try the endpoints in turn, starting with the last one that answered.
    async fn call<T: DeserializeOwned>(&self, m: Method<'_>, path: &str) -> Result<T> {
        use std::sync::atomic::Ordering;
        let n = self.bases.len();
        let first = self.current.load(Ordering::Relaxed);
        let mut last_err = None;
        for i in 0..n {
            let idx = (first + i) % n;
            let base = &self.bases[idx];
            let url = format!("{base}{path}");
            let mut req = match m {
                Method::Get => self.http.get(url),
                Method::Delete => self.http.delete(url),
                Method::Post(b) => self.http.post(url).json(b),
                Method::Put(b) => self.http.put(url).json(b),
            };
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            match req.send().await {
                Ok(resp) => {
                    self.current.store(idx, Ordering::Relaxed);
                    return self.decode(base, resp).await;
                }
                Err(e) if e.is_connect() && i + 1 < n => {
                    eprintln!(
                        "note: {base} cannot be reached; trying {}",
                        self.bases[(idx + 1) % n]
                    );
                    last_err = Some(e);
                }
                Err(e) => return Err(transport(base, e)),
            }
        }
        Err(transport(
            &self.bases[first],
            last_err.expect("at least one endpoint was tried"),
        ))
    }

    async fn decode<T: DeserializeOwned>(&self, base: &str, resp: reqwest::Response) -> Result<T> {
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| transport(base, e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .with_context(|| format!("unexpected answer from {base}"));
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
                "{base} answered HTTP {status}: {}",
                String::from_utf8_lossy(&bytes).trim()
            )),
        }
    }
}

fn transport(base: &str, e: reqwest::Error) -> anyhow::Error {
    let mut cause: &dyn std::error::Error = &e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.is_timeout() {
        anyhow!("no answer from {base} in time ({cause}); the outcome of a write is unknown, check before retrying")
    } else if e.is_connect() {
        anyhow!(
            "cannot reach vigil at {base} ({cause}); is `vigil serve` running there? set --endpoint or VIGIL_ENDPOINT (several, comma-separated, are tried in turn)"
        )
    } else {
        anyhow!("request to {base} failed: {cause}")
    }
}

/// Where the CLI's own configuration lives: `$VIGIL_CLI_CONFIG`, else
/// `$XDG_CONFIG_HOME/vigil/cli.toml`, else `~/.config/vigil/cli.toml`.
pub fn config_path() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("VIGIL_CLI_CONFIG") {
        return Some(p.into());
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".config")))?;
    Some(base.join("vigil").join("cli.toml"))
}

/// The endpoint(s) to use: `--endpoint`/`VIGIL_ENDPOINT`, else `endpoint = "…"` in the
/// CLI config file, else the local default.
pub fn resolve_endpoint(flag: Option<&str>) -> Result<String> {
    if let Some(e) = flag {
        return Ok(e.to_string());
    }
    if let Some(p) = config_path() {
        match std::fs::read_to_string(&p) {
            Ok(text) => {
                let c = parse_config(&text, &p)?;
                if let Some(e) = c.endpoint {
                    return Ok(e);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow!("reading the CLI config {}: {e}", p.display())),
        }
    }
    Ok(DEFAULT_ENDPOINT.to_string())
}

/// The CLI config file: `endpoint = "…"`, `token_file = "…"`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CliConfig {
    endpoint: Option<String>,
    token_file: Option<std::path::PathBuf>,
}

fn parse_config(text: &str, p: &std::path::Path) -> Result<CliConfig> {
    toml::from_str(text).with_context(|| format!("reading the CLI config {}", p.display()))
}

/// The API token: `--token-file`, else `VIGIL_TOKEN`, else `token_file` in the CLI
/// config; `None` when none is configured (members without a token accept that).
pub fn resolve_token(flag: Option<&std::path::Path>) -> Result<Option<String>> {
    let read = |p: &std::path::Path| -> Result<String> {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("reading the token file {}", p.display()))?;
        Ok(text.lines().next().unwrap_or("").trim().to_string())
    };
    if let Some(p) = flag {
        return read(p).map(Some);
    }
    if let Ok(t) = std::env::var("VIGIL_TOKEN") {
        if !t.trim().is_empty() {
            return Ok(Some(t.trim().to_string()));
        }
    }
    if let Some(p) = config_path() {
        if let Ok(text) = std::fs::read_to_string(&p) {
            if let Some(f) = parse_config(&text, &p)?.token_file {
                return read(&f).map(Some);
            }
        }
    }
    Ok(None)
}

/// The endpoint when nothing says otherwise.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7001";
