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
}

/// Prefix of free-form annotation keys (`meta.site = ams1`).
pub const META_PREFIX: &str = "meta.";

const META_DEF: SettingDef = SettingDef {
    key: "meta.*",
    kind: SettingKind::Text { max_len: 1024 },
    default: "",
    help: "free-form annotation (site, owner, ticket…); not used by vigil itself",
};

/// Every declared setting.
pub const SETTINGS: &[SettingDef] = &[
    SettingDef {
        key: "cluster.name",
        kind: SettingKind::Text { max_len: 64 },
        default: "vigil",
        help: "human name of this cluster, shown in status and events",
    },
    SettingDef {
        key: "member.lease",
        kind: SettingKind::Duration {
            min: Duration::from_secs(1),
            max: Duration::from_secs(300),
        },
        default: "5s",
        help: "how long a member may be silent before it is declared dead and its hosts move",
    },
    SettingDef {
        key: "events.retention",
        kind: SettingKind::Integer {
            min: 100,
            max: 1_000_000,
        },
        default: "10000",
        help: "events kept in the replicated history",
    },
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
        let r = SettingDef {
            key: "x",
            kind: SettingKind::Ratio,
            default: "0.3",
            help: "",
        };
        assert_eq!(r.parse("x", "0.3").unwrap().to_string(), "0.3");
        assert!(r.parse("x", "1.5").is_err());
    }
}
