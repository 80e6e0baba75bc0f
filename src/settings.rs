//! Cluster settings: a typed, validated, replicated key/value store.
//!
//! Every key is declared in [`SETTINGS`] with its type, bounds and default, so a value is
//! checked before it is proposed (the API refuses it with a message naming the key) and
//! again, deterministically, when it is applied. Later features (HA policies) declare
//! their own keys here. Free-form annotations live under `meta.<name>`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::VigilError;

/// The type and bounds of a setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SettingKind {
    /// A duration such as `500ms`, `5s`, `2m`, bounded (inclusive).
    Duration {
        /// Smallest accepted value.
        min: Duration,
        /// Largest accepted value.
        max: Duration,
    },
    /// A whole number, bounded (inclusive).
    Integer {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// A ratio between 0 and 1 such as `0.3` (stored in parts per million, exact).
    Ratio,
    /// `true` / `false`.
    Bool,
    /// Free text up to a length.
    Text {
        /// Longest accepted value in bytes.
        max_len: usize,
    },
}

/// Declaration of one setting.
#[derive(Debug, Clone, Copy)]
pub struct SettingDef {
    /// Dotted key.
    pub key: &'static str,
    /// Type and bounds.
    pub kind: SettingKind,
    /// Default, in the same text form an operator would type.
    pub default: &'static str,
    /// One line for `settings list`.
    pub help: &'static str,
    /// Where it may be overridden.
    pub scope: Scope,
}

/// Where a setting may be given a value other than the cluster-wide one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Cluster-wide only.
    Cluster,
    /// Cluster-wide, overridable per pool.
    Pool,
    /// Cluster-wide, overridable per pool and per host.
    Host,
}

const fn def(
    key: &'static str,
    kind: SettingKind,
    default: &'static str,
    scope: Scope,
    help: &'static str,
) -> SettingDef {
    SettingDef {
        key,
        kind,
        default,
        help,
        scope,
    }
}

const fn dur(min_ms: u64, max_ms: u64) -> SettingKind {
    SettingKind::Duration {
        min: Duration::from_millis(min_ms),
        max: Duration::from_millis(max_ms),
    }
}

const fn int(min: i64, max: i64) -> SettingKind {
    SettingKind::Integer { min, max }
}

const SEC: u64 = 1000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;

/// Prefix of free-form annotation keys (`meta.site = ams1`).
pub const META_PREFIX: &str = "meta.";

const META_DEF: SettingDef = SettingDef {
    key: "meta.*",
    kind: SettingKind::Text { max_len: 1024 },
    default: "",
    help: "free-form annotation (site, owner, ticket…); not used by vigil itself",
    scope: Scope::Cluster,
};

/// Every declared setting. `policy.*` keys are the HA policy: their values here are
/// the cluster-wide defaults, which pools and hosts may override (see [`Scope`]).
pub const SETTINGS: &[SettingDef] = &[
    def(
        "cluster.name",
        SettingKind::Text { max_len: 64 },
        "vigil",
        Scope::Cluster,
        "human name of this cluster, shown in status and events",
    ),
    def(
        "member.lease",
        dur(SEC, 300 * SEC),
        "2s",
        Scope::Cluster,
        "how long a member may be silent before it is declared dead and its hosts move; a member that cannot renew its own lease for this long stops acting",
    ),
    def(
        "cluster.max_clock_skew",
        dur(0, MIN),
        "1s",
        Scope::Cluster,
        "the largest difference between two members' wall clocks (plus a BMC request's delivery time) that vigil's safety relies on: after a power cycle began, no other member acts on that host until the cycle's time budget plus this margin has passed",
    ),
    def(
        "events.retention",
        int(100, 1_000_000),
        "10000",
        Scope::Cluster,
        "events kept in the replicated history",
    ),
    // Health checks.
    def(
        "policy.health.interval",
        dur(100, HOUR),
        "5s",
        Scope::Host,
        "time between health checks of a host",
    ),
    def(
        "policy.health.timeout",
        dur(50, 5 * MIN),
        "2s",
        Scope::Host,
        "a health check not answered within this time fails",
    ),
    def(
        "policy.health.failures",
        int(1, 100),
        "3",
        Scope::Host,
        "consecutive failed health checks that make an Available host Suspect",
    ),
    def(
        "policy.health.window",
        int(0, 1000),
        "0",
        Scope::Host,
        "also suspect when window_ratio of the last N checks failed (0: consecutive only)",
    ),
    def(
        "policy.health.window_ratio",
        SettingKind::Ratio,
        "0.5",
        Scope::Host,
        "share of failed checks in the window that makes a host Suspect",
    ),
    // Activity checks.
    def(
        "policy.activity.interval",
        dur(100, HOUR),
        "10s",
        Scope::Host,
        "delay before the first activity check of a Suspect host",
    ),
    def(
        "policy.activity.backoff",
        int(1, 10),
        "2",
        Scope::Host,
        "each further activity round waits this many times longer",
    ),
    def(
        "policy.activity.max_interval",
        dur(100, 6 * HOUR),
        "80s",
        Scope::Host,
        "longest wait between activity rounds",
    ),
    def(
        "policy.activity.timeout",
        dur(100, 10 * MIN),
        "10s",
        Scope::Host,
        "an activity check not answered within this time is inconclusive",
    ),
    def(
        "policy.activity.rounds",
        int(1, 100),
        "5",
        Scope::Host,
        "activity rounds before a verdict",
    ),
    def(
        "policy.activity.failure_ratio",
        SettingKind::Ratio,
        "0.6",
        Scope::Host,
        "share of rounds without activity that declares the host dead",
    ),
    // Recovery.
    def(
        "policy.recovery.enabled",
        SettingKind::Bool,
        "true",
        Scope::Host,
        "power-cycle a dead host before fencing it",
    ),
    def(
        "policy.recovery.attempts",
        int(0, 10),
        "1",
        Scope::Host,
        "power cycles tried before fencing",
    ),
    def(
        "policy.recovery.timeout",
        dur(SEC, HOUR),
        "2m",
        Scope::Host,
        "a power cycle not reported within this time has an unknown outcome: the host gets the recovery wait (never a fence straight away); also the most a cycle's executor may take",
    ),
    def(
        "policy.recovery.wait",
        dur(SEC, 6 * HOUR),
        "5m",
        Scope::Host,
        "after a power cycle (done, failed or of unknown outcome), time for the host to pass a health check; still dead after it: another cycle if attempts are left, else a fence",
    ),
    // Fencing.
    def(
        "policy.fence.timeout",
        dur(SEC, HOUR),
        "1m",
        Scope::Host,
        "a fence level not verified within this time failed; the next level is tried",
    ),
    def(
        "policy.fence.budget",
        int(0, 100_000),
        "3",
        Scope::Pool,
        "most fences per pool within budget_window (0: never fence)",
    ),
    def(
        "policy.fence.budget_window",
        dur(MIN, 7 * 24 * HOUR),
        "1h",
        Scope::Pool,
        "sliding window of the fence budget",
    ),
    // Quiet period, timeouts.
    def(
        "policy.quiet_period",
        dur(0, 24 * HOUR),
        "5m",
        Scope::Host,
        "after power-on, failed health checks are ignored this long",
    ),
    def(
        "policy.initialize_timeout",
        dur(SEC, 24 * HOUR),
        "10m",
        Scope::Host,
        "an Initializing host that never passes a health check becomes Suspect after this",
    ),
    def(
        "policy.degraded.max_time",
        dur(SEC, 7 * 24 * HOUR),
        "30m",
        Scope::Host,
        "a host Degraded this long raises an operator alarm (it is never fenced for it)",
    ),
    // Pool gate and breaker.
    def(
        "policy.pool.min_available",
        int(0, 100_000),
        "2",
        Scope::Pool,
        "a pool is Active only with at least this many Available hosts",
    ),
    def(
        "policy.breaker.ratio",
        SettingKind::Ratio,
        "0.3",
        Scope::Pool,
        "the breaker opens when this share of a pool's hosts is failing at once",
    ),
    def(
        "policy.breaker.min_hosts",
        int(1, 100_000),
        "2",
        Scope::Pool,
        "…and at least this many hosts are failing",
    ),
    def(
        "policy.breaker.cooldown",
        dur(SEC, 24 * HOUR),
        "10m",
        Scope::Pool,
        "an open breaker closes after this long once the failures have cleared",
    ),
    // Per-member concurrency.
    def(
        "policy.concurrency.checks",
        int(1, 100_000),
        "256",
        Scope::Cluster,
        "health/activity checks one member runs at once",
    ),
    def(
        "policy.concurrency.recoveries",
        int(1, 1000),
        "4",
        Scope::Cluster,
        "power cycles one member runs at once",
    ),
    def(
        "policy.concurrency.fences",
        int(1, 1000),
        "4",
        Scope::Cluster,
        "fences one member runs at once",
    ),
];

/// A typed setting value. Plain data: replicated with bincode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettingValue {
    /// Milliseconds.
    DurationMs(u64),
    /// Whole number.
    Integer(i64),
    /// Parts per million (0..=1_000_000).
    RatioPpm(u32),
    /// Boolean.
    Bool(bool),
    /// Text.
    Text(String),
}

impl fmt::Display for SettingValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingValue::DurationMs(ms) => {
                write!(
                    f,
                    "{}",
                    humantime::format_duration(Duration::from_millis(*ms))
                )
            }
            SettingValue::Integer(i) => write!(f, "{i}"),
            SettingValue::RatioPpm(p) => {
                let s = format!("{:.6}", *p as f64 / 1e6);
                let s = s.trim_end_matches('0').trim_end_matches('.');
                f.write_str(if s.is_empty() { "0" } else { s })
            }
            SettingValue::Bool(b) => write!(f, "{b}"),
            SettingValue::Text(t) => f.write_str(t),
        }
    }
}

/// Every declared default, parsed once (apply resolves policies per input: parsing
/// durations from text each time dominated its cost).
pub fn defaults() -> &'static std::collections::BTreeMap<&'static str, SettingValue> {
    static DEFAULTS: std::sync::OnceLock<std::collections::BTreeMap<&'static str, SettingValue>> =
        std::sync::OnceLock::new();
    DEFAULTS.get_or_init(|| {
        SETTINGS
            .iter()
            .map(|d| {
                let v = d
                    .parse(d.key, d.default)
                    .expect("declared defaults are valid (checked by a test)");
                (d.key, v)
            })
            .collect()
    })
}

/// Find the declaration of `key` (annotation keys share one declaration).
pub fn lookup(key: &str) -> Result<&'static SettingDef, VigilError> {
    if let Some(name) = key.strip_prefix(META_PREFIX) {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        return if ok {
            Ok(&META_DEF)
        } else {
            Err(VigilError::InvalidSetting {
                key: key.to_string(),
                reason: "annotation names are 1-64 characters of a-z, 0-9, '_', '-', '.'".into(),
            })
        };
    }
    SETTINGS
        .iter()
        .find(|d| d.key == key)
        .ok_or_else(|| VigilError::UnknownSetting {
            key: key.to_string(),
            known: SETTINGS
                .iter()
                .map(|d| d.key)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl SettingDef {
    /// Parse operator text into a value of this setting's type, checking bounds.
    pub fn parse(&self, key: &str, text: &str) -> Result<SettingValue, VigilError> {
        let bad = |reason: String| VigilError::InvalidSetting {
            key: key.to_string(),
            reason,
        };
        let text = text.trim();
        let value = match self.kind {
            SettingKind::Duration { .. } => {
                let d = humantime::parse_duration(text).map_err(|e| {
                    bad(format!(
                        "{text:?} is not a duration ({e}); use e.g. 500ms, 5s, 2m"
                    ))
                })?;
                SettingValue::DurationMs(
                    u64::try_from(d.as_millis()).map_err(|_| bad("too large".into()))?,
                )
            }
            SettingKind::Integer { .. } => SettingValue::Integer(
                text.parse()
                    .map_err(|_| bad(format!("{text:?} is not a whole number")))?,
            ),
            SettingKind::Ratio => {
                let r: f64 = text
                    .parse()
                    .map_err(|_| bad(format!("{text:?} is not a number between 0 and 1")))?;
                if !(0.0..=1.0).contains(&r) {
                    return Err(bad(format!("{text} is outside 0..1")));
                }
                SettingValue::RatioPpm((r * 1e6).round() as u32)
            }
            SettingKind::Bool => SettingValue::Bool(match text {
                "true" | "on" | "yes" => true,
                "false" | "off" | "no" => false,
                _ => return Err(bad(format!("{text:?} is not true/false"))),
            }),
            SettingKind::Text { .. } => SettingValue::Text(text.to_string()),
        };
        self.check(key, &value)?;
        Ok(value)
    }

    /// Check a typed value against this declaration. Used at apply time too, so it
    /// must be deterministic.
    pub fn check(&self, key: &str, value: &SettingValue) -> Result<(), VigilError> {
        let bad = |reason: String| VigilError::InvalidSetting {
            key: key.to_string(),
            reason,
        };
        match (self.kind, value) {
            (SettingKind::Duration { min, max }, SettingValue::DurationMs(ms)) => {
                let d = Duration::from_millis(*ms);
                if d < min || d > max {
                    return Err(bad(format!(
                        "{} is outside {}..{}",
                        humantime::format_duration(d),
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    )));
                }
            }
            (SettingKind::Integer { min, max }, SettingValue::Integer(i)) => {
                if *i < min || *i > max {
                    return Err(bad(format!("{i} is outside {min}..{max}")));
                }
            }
            (SettingKind::Ratio, SettingValue::RatioPpm(p)) => {
                if *p > 1_000_000 {
                    return Err(bad("ratio above 1".into()));
                }
            }
            (SettingKind::Bool, SettingValue::Bool(_)) => {}
            (SettingKind::Text { max_len }, SettingValue::Text(t)) => {
                if t.len() > max_len {
                    return Err(bad(format!("text longer than {max_len} bytes")));
                }
                if t.chars().any(|c| c.is_control()) {
                    return Err(bad("text contains control characters".into()));
                }
            }
            (kind, v) => return Err(bad(format!("value {v:?} does not match type {kind:?}"))),
        }
        Ok(())
    }

    /// The default as a typed value.
    pub fn default_value(&self) -> SettingValue {
        if let Some(v) = defaults().get(self.key) {
            return v.clone();
        }
        self.parse(self.key, self.default)
            .expect("declared defaults are valid (checked by a test)")
    }

    /// Short type name for listings.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            SettingKind::Duration { .. } => "duration",
            SettingKind::Integer { .. } => "integer",
            SettingKind::Ratio => "ratio",
            SettingKind::Bool => "bool",
            SettingKind::Text { .. } => "text",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_defaults_parse() {
        for d in SETTINGS {
            d.default_value();
        }
    }

    #[test]
    fn parse_and_bounds() {
        let lease = lookup("member.lease").unwrap();
        assert_eq!(
            lease.parse("member.lease", "2500ms").unwrap(),
            SettingValue::DurationMs(2500)
        );
        let e = lease.parse("member.lease", "10ms").unwrap_err().to_string();
        assert!(e.contains("member.lease") && e.contains("outside"), "{e}");
        let e = lease.parse("member.lease", "soon").unwrap_err().to_string();
        assert!(e.contains("not a duration"), "{e}");
        assert!(matches!(
            lookup("no.such.key"),
            Err(VigilError::UnknownSetting { .. })
        ));
        assert!(lookup("meta.site").is_ok());
        assert!(lookup("meta.").is_err());
        assert!(lookup("meta.a b").is_err());
        let r = def("x", SettingKind::Ratio, "0.3", Scope::Host, "");
        assert_eq!(r.parse("x", "0.3").unwrap().to_string(), "0.3");
        assert!(r.parse("x", "1.5").is_err());
    }
}
