//! The checks and power drivers of one host, built from its replicated spec.
//!
//! Real kinds come from `vigil-providers` (through [`crate::drivers::power_driver`]
//! for power); `sim` kinds need the simulated fleet, which only `vigil dev`, the
//! tests and the chaos harness own, so the builder carries it as an option. A spec
//! that cannot be built is not fatal: the host's checks report a checker error (which
//! never counts against the host) and its fence levels fail with the reason, so the
//! engine escalates and, at worst, raises FenceFailed with an alarm.

use std::sync::Arc;
use std::time::Duration;

use vigil_providers::check::{ActivityCheck, ActivityResult, Health, HealthCheck};
use vigil_providers::checks::RedfishPowerActivity;
use vigil_providers::redfish::RedfishDriver;
use vigil_providers::sim::SimFleet;
use vigil_providers::PowerDriver;

use crate::state::model::{CheckKind, CheckSpec, DriverKind, DriverSpec, HostSpec};

/// What builds probes: the real providers, plus the simulated fleet when there is one.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    /// The simulated fleet `sim` checks and drivers talk to.
    pub sim: Option<SimFleet>,
    /// Label of the sim drivers' power changes in the fleet's ground truth (e.g.
    /// `member-2`), so chaos checks can tell who acted.
    pub label: String,
}

/// A probe that could not be built says why, every time it is used.
#[derive(Debug)]
struct Broken(String);

#[async_trait::async_trait]
impl HealthCheck for Broken {
    async fn check(&self, _deadline: tokio::time::Instant) -> Health {
        Health::Error {
            reason: self.0.clone(),
        }
    }
}

#[async_trait::async_trait]
impl ActivityCheck for Broken {
    async fn check(&self, _deadline: tokio::time::Instant) -> ActivityResult {
        ActivityResult::Error {
            reason: self.0.clone(),
        }
    }
}

/// One host's probes.
#[derive(Debug)]
pub struct Probes {
    /// Health check, if the host has one.
    pub health: Option<Box<dyn HealthCheck>>,
    /// Activity check, if the host has one.
    pub activity: Option<Box<dyn ActivityCheck>>,
    /// Fence levels in order; `Err` says why a level cannot be used.
    pub fence: Vec<Result<Arc<dyn PowerDriver>, String>>,
}

impl Probes {
    /// The driver of fence level `level`.
    pub fn driver(&self, level: usize) -> Result<Arc<dyn PowerDriver>, String> {
        match self.fence.get(level) {
            Some(Ok(d)) => Ok(d.clone()),
            Some(Err(e)) => Err(e.clone()),
            None => Err(format!("fence level {} is not configured", level + 1)),
        }
    }
}

impl Providers {
    /// Build everything `spec` describes. A `redfish-power` activity check reads
    /// through the same driver object as the host's first Redfish fence level, so the
    /// two share one connection and one BMC session.
    pub fn build(&self, spec: &HostSpec) -> Probes {
        let health = spec.health.as_ref().map(|c| self.health(&spec.name, c));
        let mut first_redfish: Option<Arc<RedfishDriver>> = None;
        let fence = spec
            .fence
            .iter()
            .map(|d| match d.kind {
                DriverKind::Redfish => {
                    let r = crate::drivers::redfish_config(d)
                        .and_then(|cfg| RedfishDriver::new(cfg).map_err(|e| e.to_string()))
                        .map(Arc::new);
                    if let (Ok(r), None) = (&r, &first_redfish) {
                        first_redfish = Some(r.clone());
                    }
                    r.map(|r| r as Arc<dyn PowerDriver>)
                }
                _ => self.driver(&spec.name, d),
            })
            .collect();
        let activity = spec
            .activity
            .as_ref()
            .map(|c| self.activity(&spec.name, c, first_redfish.clone()));
        Probes {
            health,
            activity,
            fence,
        }
    }

    fn sim(&self, what: &str) -> Result<&SimFleet, String> {
        self.sim.as_ref().ok_or_else(|| {
            format!("{what}: sim probes exist only inside `vigil dev` and tests (they own the simulated fleet)")
        })
    }

    fn health(&self, host: &str, c: &CheckSpec) -> Box<dyn HealthCheck> {
        let built: Result<Box<dyn HealthCheck>, String> = match c.kind {
            CheckKind::Sim => self
                .sim("health check")
                .map(|f| Box::new(f.health_check(host)) as Box<dyn HealthCheck>),
            k => vigil_providers::checks::health_check(k.name(), &c.target, &c.options),
        };
        built.unwrap_or_else(|e| Box::new(Broken(format!("health check cannot run: {e}"))))
    }

    fn activity(
        &self,
        host: &str,
        c: &CheckSpec,
        redfish: Option<Arc<RedfishDriver>>,
    ) -> Box<dyn ActivityCheck> {
        let built: Result<Box<dyn ActivityCheck>, String> = match c.kind {
            CheckKind::Sim => self
                .sim("activity check")
                .map(|f| Box::new(f.activity_check(host)) as Box<dyn ActivityCheck>),
            CheckKind::RedfishPower => redfish_power(redfish, c),
            k => vigil_providers::checks::activity_check(k.name(), &c.target, &c.options),
        };
        built.unwrap_or_else(|e| Box::new(Broken(format!("activity check cannot run: {e}"))))
    }

    fn driver(&self, host: &str, d: &DriverSpec) -> Result<Arc<dyn PowerDriver>, String> {
        match d.kind {
            DriverKind::Sim => {
                let f = self.sim("power driver")?;
                Ok(Arc::new(f.driver(host).with_label(self.label.clone())))
            }
            _ => crate::drivers::power_driver(d).map(Arc::from),
        }
    }
}

/// `redfish-power`: the reading comes through the host's first Redfish fence level.
fn redfish_power(
    driver: Option<Arc<RedfishDriver>>,
    c: &CheckSpec,
) -> Result<Box<dyn ActivityCheck>, String> {
    let driver = driver.ok_or("redfish-power needs a usable redfish fence level to read from")?;
    let mut check = RedfishPowerActivity::new(driver);
    if let Some(t) = c.options.get("threshold_watts") {
        let w: f64 = t
            .parse()
            .map_err(|_| format!("threshold_watts={t:?}: not a number"))?;
        check = check.threshold(w);
    }
    Ok(Box::new(check))
}

/// How long to let a check run: the policy's timeout, at least 50 ms.
pub fn check_budget(ms: u64) -> Duration {
    Duration::from_millis(ms.max(50))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_providers::sim::{SimCredentials, SimRedfishServer};

    /// The fence level and the `redfish-power` check of a host share one driver, so
    /// one BMC session (BMCs limit sessions).
    #[tokio::test]
    async fn redfish_fence_and_power_check_share_one_session() {
        let fleet = SimFleet::new();
        fleet.add_host("a").unwrap();
        let server = SimRedfishServer::start(
            fleet.clone(),
            ([127, 0, 0, 1], 0).into(),
            SimCredentials::new("admin", "pw"),
        )
        .await
        .unwrap();
        let mut opts = std::collections::BTreeMap::new();
        opts.insert("system_id".to_string(), "a".to_string());
        let spec = HostSpec {
            name: "a".into(),
            pool: "p".into(),
            kind: "x".into(),
            labels: Default::default(),
            health: None,
            activity: Some(CheckSpec {
                kind: CheckKind::RedfishPower,
                target: String::new(),
                options: Default::default(),
            }),
            fence: vec![DriverSpec {
                kind: DriverKind::Redfish,
                address: server.url(),
                username: "admin".into(),
                password: crate::state::model::Secret("pw".into()),
                options: opts,
            }],
            maintenance: false,
            policy: Default::default(),
        };
        let probes = Providers::default().build(&spec);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        probes.driver(0).unwrap().status(deadline).await.unwrap();
        let a = probes.activity.as_ref().unwrap().check(deadline).await;
        assert!(matches!(a, ActivityResult::Active { .. }), "{a:?}");
        probes.driver(0).unwrap().status(deadline).await.unwrap();
        assert_eq!(server.logins(), 1);
        assert_eq!(server.live_sessions(), 1);
        server.shutdown().await;
    }
}
