//! The effective HA policy of one host: cluster defaults (`policy.*` settings), then the
//! pool's overrides, then the host's, resolved into typed fields the engine reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::VigilError;
use crate::settings::{self, Scope, SettingValue};

/// Milliseconds: the engine's only unit of time. Times are milliseconds since the Unix
/// epoch as stamped by the proposer; the engine never reads a clock.
pub type Millis = u64;

/// Overrides of `policy.*` keys for one pool or host (validated when set).
pub type Overrides = BTreeMap<String, SettingValue>;

/// Every knob the engine and the pool gate use, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Policy {
    pub health_interval: Millis,
    pub health_timeout: Millis,
    pub health_failures: u32,
    pub health_window: u32,
    pub health_window_ratio_ppm: u32,
    pub activity_interval: Millis,
    pub activity_backoff: u32,
    pub activity_max_interval: Millis,
    pub activity_timeout: Millis,
    pub activity_rounds: u32,
    pub activity_failure_ratio_ppm: u32,
    pub recovery_enabled: bool,
    pub recovery_attempts: u32,
    pub recovery_timeout: Millis,
    pub recovery_wait: Millis,
    pub fence_timeout: Millis,
    pub fence_budget: u32,
    pub fence_budget_window: Millis,
    pub quiet_period: Millis,
    pub initialize_timeout: Millis,
    pub degraded_max_time: Millis,
    pub pool_min_available: u32,
    pub breaker_ratio_ppm: u32,
    pub breaker_min_hosts: u32,
    pub breaker_cooldown: Millis,
}

impl Default for Policy {
    /// The declared defaults.
    fn default() -> Self {
        Policy::resolve(|_| None).expect("declared defaults resolve")
    }
}

/// Check that `key` may be overridden at `scope` and that `value` fits it.
pub fn check_override(key: &str, value: &SettingValue, at: Scope) -> Result<(), VigilError> {
    let def = settings::lookup(key)?;
    let allowed = match at {
        Scope::Cluster => true,
        Scope::Pool => matches!(def.scope, Scope::Pool | Scope::Host),
        Scope::Host => def.scope == Scope::Host,
    };
    if !key.starts_with("policy.") || !allowed {
        let r#where = match at {
            Scope::Pool => "a pool",
            Scope::Host => "a host",
            Scope::Cluster => "the cluster",
        };
        return Err(VigilError::InvalidSetting {
            key: key.to_string(),
            reason: format!("cannot be overridden for {where}"),
        });
    }
    def.check(key, value)
}

/// Parse operator text for an override of `key` at `scope`.
pub fn parse_override(key: &str, text: &str, at: Scope) -> Result<SettingValue, VigilError> {
    let def = settings::lookup(key)?;
    let v = def.parse(key, text)?;
    check_override(key, &v, at)?;
    Ok(v)
}

impl Policy {
    /// Resolve from a lookup that returns the explicit value of a key (host override,
    /// else pool override, else cluster setting), falling back to declared defaults.
    pub fn resolve(lookup: impl Fn(&str) -> Option<SettingValue>) -> Result<Policy, VigilError> {
        let get = |key: &str| -> Result<SettingValue, VigilError> {
            match lookup(key) {
                Some(v) => Ok(v),
                None => settings::defaults().get(key).cloned().ok_or_else(|| {
                    settings::lookup(key)
                        .err()
                        .unwrap_or_else(|| type_err(key, &SettingValue::Bool(false)))
                }),
            }
        };
        let ms = |key: &str| -> Result<Millis, VigilError> {
            match get(key)? {
                SettingValue::DurationMs(v) => Ok(v),
                v => Err(type_err(key, &v)),
            }
        };
        let n = |key: &str| -> Result<u32, VigilError> {
            match get(key)? {
                SettingValue::Integer(v) => {
                    u32::try_from(v).map_err(|_| type_err(key, &SettingValue::Integer(v)))
                }
                v => Err(type_err(key, &v)),
            }
        };
        let ratio = |key: &str| -> Result<u32, VigilError> {
            match get(key)? {
                SettingValue::RatioPpm(v) => Ok(v),
                v => Err(type_err(key, &v)),
            }
        };
        let flag = |key: &str| -> Result<bool, VigilError> {
            match get(key)? {
                SettingValue::Bool(v) => Ok(v),
                v => Err(type_err(key, &v)),
            }
        };
        Ok(Policy {
            health_interval: ms("policy.health.interval")?,
            health_timeout: ms("policy.health.timeout")?,
            health_failures: n("policy.health.failures")?,
            health_window: n("policy.health.window")?,
            health_window_ratio_ppm: ratio("policy.health.window_ratio")?,
            activity_interval: ms("policy.activity.interval")?,
            activity_backoff: n("policy.activity.backoff")?,
            activity_max_interval: ms("policy.activity.max_interval")?,
            activity_timeout: ms("policy.activity.timeout")?,
            activity_rounds: n("policy.activity.rounds")?,
            activity_failure_ratio_ppm: ratio("policy.activity.failure_ratio")?,
            recovery_enabled: flag("policy.recovery.enabled")?,
            recovery_attempts: n("policy.recovery.attempts")?,
            recovery_timeout: ms("policy.recovery.timeout")?,
            recovery_wait: ms("policy.recovery.wait")?,
            fence_timeout: ms("policy.fence.timeout")?,
            fence_budget: n("policy.fence.budget")?,
            fence_budget_window: ms("policy.fence.budget_window")?,
            quiet_period: ms("policy.quiet_period")?,
            initialize_timeout: ms("policy.initialize_timeout")?,
            degraded_max_time: ms("policy.degraded.max_time")?,
            pool_min_available: n("policy.pool.min_available")?,
            breaker_ratio_ppm: ratio("policy.breaker.ratio")?,
            breaker_min_hosts: n("policy.breaker.min_hosts")?,
            breaker_cooldown: ms("policy.breaker.cooldown")?,
        })
    }

    /// Resolve for a host: host overrides win over pool overrides over cluster values.
    pub fn for_host(
        cluster: impl Fn(&str) -> Option<SettingValue>,
        pool: &Overrides,
        host: &Overrides,
    ) -> Result<Policy, VigilError> {
        Policy::resolve(|k| {
            host.get(k)
                .or_else(|| pool.get(k))
                .cloned()
                .or_else(|| cluster(k))
        })
    }

    /// Rounds without activity that declare a host dead: ceil(ratio × rounds), ≥ 1.
    pub fn activity_failures_needed(&self) -> u32 {
        let r = u64::from(self.activity_rounds) * u64::from(self.activity_failure_ratio_ppm);
        (r.div_ceil(1_000_000) as u32).clamp(1, self.activity_rounds.max(1))
    }

    /// The longest an external action of this policy may run: the fence timeout, or
    /// the recovery timeout when recovery is enabled and longer. A new owner waits
    /// this (plus the member lease) before acting on a host it took over.
    pub fn longest_action(&self) -> Millis {
        if self.recovery_enabled {
            self.fence_timeout.max(self.recovery_timeout)
        } else {
            self.fence_timeout
        }
    }

    /// Wait before activity round `round` (0-based): interval × backoff^round, capped.
    pub fn activity_delay(&self, round: u32) -> Millis {
        let mut d = self.activity_interval;
        for _ in 0..round {
            d = d.saturating_mul(u64::from(self.activity_backoff));
            if d >= self.activity_max_interval {
                return self.activity_max_interval;
            }
        }
        d.min(self.activity_max_interval)
    }
}

fn type_err(key: &str, v: &SettingValue) -> VigilError {
    VigilError::InvalidSetting {
        key: key.to_string(),
        reason: format!("stored value {v:?} has the wrong type"),
    }
}

/// The documented "fast" profile: from host death to verified fence in seconds.
/// Apply it as pool overrides (`vigil pool set-policy POOL --profile fast`).
pub const FAST_PROFILE: &[(&str, &str)] = &[
    ("policy.health.interval", "1s"),
    ("policy.health.timeout", "500ms"),
    ("policy.health.failures", "2"),
    ("policy.activity.interval", "1s"),
    ("policy.activity.backoff", "1"),
    ("policy.activity.max_interval", "1s"),
    ("policy.activity.timeout", "1s"),
    ("policy.activity.rounds", "2"),
    ("policy.activity.failure_ratio", "1"),
    ("policy.recovery.enabled", "false"),
    ("policy.fence.timeout", "15s"),
    ("policy.quiet_period", "2m"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_derived_values() {
        let p = Policy::default();
        assert_eq!(p.health_failures, 3);
        assert_eq!(p.activity_failures_needed(), 3); // ceil(0.6 × 5)
        let delays: Vec<_> = (0..6).map(|r| p.activity_delay(r)).collect();
        assert_eq!(delays, [10_000, 20_000, 40_000, 80_000, 80_000, 80_000]);
    }

    #[test]
    fn host_beats_pool_beats_cluster() {
        let mut pool = Overrides::new();
        pool.insert("policy.health.failures".into(), SettingValue::Integer(5));
        pool.insert("policy.fence.budget".into(), SettingValue::Integer(7));
        let mut host = Overrides::new();
        host.insert("policy.health.failures".into(), SettingValue::Integer(9));
        let p = Policy::for_host(
            |k| (k == "policy.fence.budget").then_some(SettingValue::Integer(1)),
            &pool,
            &host,
        )
        .unwrap();
        assert_eq!(p.health_failures, 9);
        assert_eq!(p.fence_budget, 7);
    }

    #[test]
    fn scope_is_enforced() {
        assert!(parse_override("policy.fence.budget", "5", Scope::Pool).is_ok());
        let e = parse_override("policy.fence.budget", "5", Scope::Host).unwrap_err();
        assert!(
            e.to_string().contains("cannot be overridden for a host"),
            "{e}"
        );
        assert!(parse_override("cluster.name", "x", Scope::Pool).is_err());
        assert!(parse_override("policy.health.failures", "0", Scope::Host).is_err());
    }

    #[test]
    fn fast_profile_is_valid() {
        for (k, v) in FAST_PROFILE {
            parse_override(k, v, Scope::Pool).unwrap();
        }
    }
}
