//! Health and activity checks answered from the simulated fleet's state.
//!
//! They let the engine's whole detection path (unreachable? still working? fence?)
//! run against the sim: a crashed, hung or powered-off host fails its health check
//! and shows no activity; an isolated host fails its health check but still works,
//! which is exactly the case activity checks exist to catch. A per-host flag makes
//! the checker itself fail, which must not be mistaken for a host failure.

use async_trait::async_trait;
use tokio::time::Instant;

use super::fleet::SimFleet;
use super::host::Condition;
use crate::check::{ActivityCheck, ActivityResult, Health, HealthCheck};
use crate::power::PowerState;

/// A [`HealthCheck`] of one simulated host. Answers at once.
#[derive(Debug, Clone)]
pub struct SimHealthCheck {
    fleet: SimFleet,
    host: String,
}

impl SimHealthCheck {
    /// A health check of `host` (a missing host gives [`Health::Error`]).
    pub fn new(fleet: SimFleet, host: impl Into<String>) -> Self {
        SimHealthCheck {
            fleet,
            host: host.into(),
        }
    }
}

#[async_trait]
impl HealthCheck for SimHealthCheck {
    async fn check(&self, _deadline: Instant) -> Health {
        let s = match self.fleet.snapshot(&self.host) {
            Ok(s) => s,
            Err(e) => {
                return Health::Error {
                    reason: e.to_string(),
                }
            }
        };
        if s.health_check_error {
            return Health::Error {
                reason: format!("sim health checker for {}: error (injected)", s.name),
            };
        }
        let why = match (s.power, s.condition) {
            (PowerState::Off, _) => "powered off",
            (PowerState::On, Condition::Running) => {
                return Health::Pass {
                    detail: format!("sim host {}: running", s.name),
                }
            }
            (PowerState::On, Condition::Isolated) => "unreachable (isolated)",
            (PowerState::On, Condition::Hung) => "no answer (hung)",
            (PowerState::On, Condition::Crashed) => "no answer (crashed)",
        };
        Health::Fail {
            reason: format!("sim host {}: {why}", s.name),
        }
    }
}

/// An [`ActivityCheck`] of one simulated host. Answers at once.
#[derive(Debug, Clone)]
pub struct SimActivityCheck {
    fleet: SimFleet,
    host: String,
}

impl SimActivityCheck {
    /// An activity check of `host` (a missing host gives [`ActivityResult::Error`]).
    pub fn new(fleet: SimFleet, host: impl Into<String>) -> Self {
        SimActivityCheck {
            fleet,
            host: host.into(),
        }
    }
}

#[async_trait]
impl ActivityCheck for SimActivityCheck {
    async fn check(&self, _deadline: Instant) -> ActivityResult {
        let s = match self.fleet.snapshot(&self.host) {
            Ok(s) => s,
            Err(e) => {
                return ActivityResult::Error {
                    reason: e.to_string(),
                }
            }
        };
        if s.activity_check_error {
            return ActivityResult::Error {
                reason: format!("sim activity checker for {}: error (injected)", s.name),
            };
        }
        let why = match (s.power, s.condition) {
            (PowerState::Off, _) => "powered off",
            (PowerState::On, Condition::Hung) => "hung",
            (PowerState::On, Condition::Crashed) => "crashed",
            (PowerState::On, Condition::Running | Condition::Isolated) if !s.working => "idle",
            (PowerState::On, Condition::Running | Condition::Isolated) => {
                return ActivityResult::Active {
                    detail: format!("sim host {}: working", s.name),
                }
            }
        };
        ActivityResult::Inactive {
            detail: format!("sim host {}: {why}", s.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(h: &Health) -> bool {
        matches!(h, Health::Pass { .. })
    }
    fn fail(h: &Health) -> bool {
        matches!(h, Health::Fail { .. })
    }
    fn active(a: &ActivityResult) -> bool {
        matches!(a, ActivityResult::Active { .. })
    }
    fn inactive(a: &ActivityResult) -> bool {
        matches!(a, ActivityResult::Inactive { .. })
    }

    #[tokio::test]
    async fn checks_follow_the_host_condition() {
        let fleet = SimFleet::new();
        fleet.add_host("a").unwrap();
        let (h, a) = (fleet.health_check("a"), fleet.activity_check("a"));
        let d = Instant::now();

        assert!(pass(&h.check(d).await));
        assert!(active(&a.check(d).await));

        fleet.crash("a").unwrap();
        assert!(fail(&h.check(d).await));
        assert!(inactive(&a.check(d).await));

        fleet.hang("a").unwrap();
        assert!(fail(&h.check(d).await));
        assert!(inactive(&a.check(d).await));

        // Partitioned but alive: unhealthy to the checker, yet still working.
        fleet.isolate("a").unwrap();
        assert!(fail(&h.check(d).await));
        assert!(active(&a.check(d).await));

        fleet.heal("a").unwrap();
        fleet.set_working("a", false).unwrap();
        assert!(pass(&h.check(d).await));
        assert!(inactive(&a.check(d).await));

        fleet.set_working("a", true).unwrap();
        fleet.set_power("a", PowerState::Off, "test").unwrap();
        assert!(fail(&h.check(d).await));
        assert!(inactive(&a.check(d).await));
    }

    #[tokio::test]
    async fn checker_errors_are_not_host_failures() {
        let fleet = SimFleet::new();
        fleet.add_host("a").unwrap();
        let (h, a) = (fleet.health_check("a"), fleet.activity_check("a"));
        let d = Instant::now();
        fleet.set_health_check_error("a", true).unwrap();
        fleet.set_activity_check_error("a", true).unwrap();
        assert!(matches!(h.check(d).await, Health::Error { .. }));
        assert!(matches!(a.check(d).await, ActivityResult::Error { .. }));
        fleet.set_health_check_error("a", false).unwrap();
        fleet.set_activity_check_error("a", false).unwrap();
        assert!(pass(&h.check(d).await));
        assert!(active(&a.check(d).await));

        let missing = fleet.health_check("nope");
        assert!(matches!(missing.check(d).await, Health::Error { .. }));
        let missing = fleet.activity_check("nope");
        assert!(matches!(
            missing.check(d).await,
            ActivityResult::Error { .. }
        ));
    }
}
