//! Activity from the BMC's power reading (`redfish-power`): a host that draws more
//! than a threshold is doing *something*, even when its OS no longer answers.
//!
//! The reading comes through the host's own Redfish fence driver
//! ([`RedfishDriver::power_watts`]), so no separate credentials are needed. A BMC that
//! offers no reading, or does not answer, is a checker error (it says nothing about
//! the host); zero watts means the host is off or idle at the floor.

use async_trait::async_trait;
use tokio::time::Instant;

use crate::check::{ActivityCheck, ActivityResult};
use crate::redfish::RedfishDriver;

/// Power draw above `threshold_watts` counts as activity.
#[derive(Debug)]
pub struct RedfishPowerActivity {
    driver: std::sync::Arc<RedfishDriver>,
    threshold_watts: f64,
}

impl RedfishPowerActivity {
    /// Judge activity from `driver`'s power readings (default threshold 0 W: any draw).
    /// Pass the `Arc` of the host's fence driver to share its connection and session
    /// (BMCs limit sessions).
    pub fn new(driver: impl Into<std::sync::Arc<RedfishDriver>>) -> Self {
        Self {
            driver: driver.into(),
            threshold_watts: 0.0,
        }
    }

    /// Count only draws above `watts` as activity (a powered-on but hung host may
    /// still draw its idle floor).
    pub fn threshold(mut self, watts: f64) -> Self {
        self.threshold_watts = watts;
        self
    }
}

#[async_trait]
impl ActivityCheck for RedfishPowerActivity {
    async fn check(&self, deadline: Instant) -> ActivityResult {
        match self.driver.power_watts(deadline).await {
            Ok(Some(w)) if w > self.threshold_watts => ActivityResult::Active {
                detail: format!("BMC reads {w} W (> {} W)", self.threshold_watts),
            },
            Ok(Some(w)) => ActivityResult::Inactive {
                detail: format!("BMC reads {w} W (<= {} W)", self.threshold_watts),
            },
            Ok(None) => ActivityResult::Error {
                reason: "the BMC offers no PowerControl reading".into(),
            },
            Err(e) => ActivityResult::Error {
                reason: format!("reading power draw: {e}"),
            },
        }
    }
}
