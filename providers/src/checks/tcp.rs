//! TCP health check: a connection to `host:port` must open by the deadline.

use async_trait::async_trait;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::error_chain;
use crate::check::{Health, HealthCheck};

/// Health: `host:port` (`[v6addr]:port` for IPv6) accepts a TCP connection.
/// Refused, unreachable or no answer in time: `Fail`; a target that is not
/// `host:port` or a name that does not resolve: `Error`.
#[derive(Debug, Clone)]
pub struct TcpHealth {
    target: String,
}

impl TcpHealth {
    /// A check of `target`.
    pub fn new(target: impl Into<String>) -> Self {
        TcpHealth {
            target: target.into(),
        }
    }
}

/// `(host, port)` of `host:port` or `[v6]:port`.
fn split(target: &str) -> Option<(&str, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    (!host.is_empty()).then_some((host, port))
}

#[async_trait]
impl HealthCheck for TcpHealth {
    async fn check(&self, deadline: Instant) -> Health {
        let start = Instant::now();
        let allowed = deadline.saturating_duration_since(start);
        let Some((host, port)) = split(&self.target) else {
            return Health::Error {
                reason: format!("invalid target {:?}: expected host:port", self.target),
            };
        };
        let attempt = async {
            let addrs: Vec<_> = match tokio::net::lookup_host((host, port)).await {
                Ok(a) => a.collect(),
                Err(e) => {
                    return Health::Error {
                        reason: format!("{}: cannot resolve: {}", self.target, error_chain(&e)),
                    }
                }
            };
            let mut last = format!("{}: resolves to no address", self.target);
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(_) => {
                        return Health::Pass {
                            detail: format!(
                                "{} ({addr}): connected in {}ms",
                                self.target,
                                start.elapsed().as_millis()
                            ),
                        }
                    }
                    Err(e) => last = format!("{} ({addr}): {}", self.target, error_chain(&e)),
                }
            }
            Health::Fail { reason: last }
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(h) => h,
            Err(_) => Health::Fail {
                reason: format!(
                    "{}: no connection within {:.1}s",
                    self.target,
                    allowed.as_secs_f64()
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_targets() {
        assert_eq!(split("127.0.0.1:80"), Some(("127.0.0.1", 80)));
        assert_eq!(split("node1.example:22"), Some(("node1.example", 22)));
        assert_eq!(split("[::1]:8080"), Some(("::1", 8080)));
        assert_eq!(split("::1:8080"), None);
        assert_eq!(split("host"), None);
        assert_eq!(split("host:http"), None);
        assert_eq!(split(":80"), None);
    }
}
