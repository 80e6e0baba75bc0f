//! [`SimPowerDriver`]: a power driver talking to a simulated BMC.
//!
//! It follows the same steps as a real driver (read the state, act if needed, read
//! the state back as evidence) so that the engine sees realistic answers, and it
//! applies the BMC's [`BmcFault`](super::BmcFault) at the points where a real BMC
//! would misbehave (through [`SimBmc`], shared with the Redfish server).
//! Every call is bounded by the caller's deadline through [`within`].
//!
//! A cycle never powers on a host that is off: it reads the power first, and a host
//! that reads off is left off with nothing sent (`already = true`, verified off); a
//! failed read fails the cycle. The BMC carries the cycle out as off, then on
//! ([`SimBmc::cycle`]): the on step only after this cycle's off step changed the
//! power and before the deadline, else a [`DriverError::Timeout`] that says the
//! host was left off.

use async_trait::async_trait;
use tokio::time::Instant;

use super::bmc::{Cycled, SimBmc};
use super::fleet::SimFleet;
use crate::error::DriverError;
use crate::power::{
    cycle_found_off, cycle_left_off, within, ActionReport, PowerAction, PowerDriver, PowerReading,
    PowerState,
};

/// A [`PowerDriver`] (kind `sim`) for one host of a [`SimFleet`].
#[derive(Debug, Clone)]
pub struct SimPowerDriver {
    bmc: SimBmc,
    label: String,
}

impl SimPowerDriver {
    /// A driver for `host`, labelling its power changes `sim` in ground truth.
    pub fn new(fleet: SimFleet, host: impl Into<String>) -> Self {
        SimPowerDriver {
            bmc: SimBmc::new(fleet, host),
            label: "sim".to_string(),
        }
    }

    /// Label this driver's power changes in ground truth (an intent id, a fence
    /// level…), so chaos checkers can tell who fenced what.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// The host this driver acts on.
    pub fn host(&self) -> &str {
        self.bmc.host()
    }

    async fn act_inner(
        &self,
        action: PowerAction,
        start: Instant,
        deadline: Instant,
    ) -> Result<ActionReport, DriverError> {
        let bmc = &self.bmc;
        let host = bmc.host();
        let fault = bmc.fault()?;
        bmc.reach(fault).await?;
        let before = bmc.read(fault)?;
        let target = match action {
            PowerAction::On => PowerState::On,
            PowerAction::Off => PowerState::Off,
            PowerAction::Cycle => PowerState::On,
        };
        if action == PowerAction::Cycle && before == PowerState::Off {
            bmc.reply(fault).await;
            return Ok(cycle_found_off(
                start,
                &format!("sim BMC of {host}: power off"),
            ));
        }
        if action != PowerAction::Cycle && before == target {
            bmc.reply(fault).await;
            return Ok(ActionReport {
                action,
                verified: before,
                already: true,
                detail: format!("sim BMC of {host}: already {before}"),
                took: start.elapsed(),
            });
        }
        // The BMC acts on the true state, whatever it would report.
        if action == PowerAction::Cycle {
            // FoundOff here means the BMC reported on for a host truly off (a lie)
            // or the host went off meanwhile: the BMC leaves it off, and the read
            // below says what the BMC says.
            if bmc.cycle(&self.label, Some(deadline)).await? == Cycled::LeftOff {
                return Err(cycle_left_off(
                    deadline.saturating_duration_since(start),
                    &format!("sim BMC of {host}: power cycle"),
                ));
            }
        } else {
            bmc.perform(action, &self.label).await?;
        }
        let verified = bmc.read(fault)?;
        bmc.reply(fault).await;
        if verified != target {
            return Err(DriverError::Retryable(format!(
                "sim BMC of {host}: {action} not verified: power reads {verified}"
            )));
        }
        Ok(ActionReport {
            action,
            verified,
            already: false,
            detail: format!("sim BMC of {host}: {action} done, power reads {verified}"),
            took: start.elapsed(),
        })
    }
}

#[async_trait]
impl PowerDriver for SimPowerDriver {
    fn kind(&self) -> &'static str {
        "sim"
    }

    async fn status(&self, deadline: Instant) -> Result<PowerReading, DriverError> {
        let start = Instant::now();
        let bmc = &self.bmc;
        let what = format!("sim BMC of {}: power status", bmc.host());
        within(deadline, &what, async {
            let fault = bmc.fault()?;
            bmc.reach(fault).await?;
            let state = bmc.read(fault)?;
            bmc.reply(fault).await;
            Ok(PowerReading {
                state,
                detail: format!("sim BMC of {}: power {state}", bmc.host()),
                took: start.elapsed(),
            })
        })
        .await
    }

    async fn act(
        &self,
        action: PowerAction,
        deadline: Instant,
    ) -> Result<ActionReport, DriverError> {
        let start = Instant::now();
        let what = format!("sim BMC of {}: power {action}", self.bmc.host());
        within(deadline, &what, self.act_inner(action, start, deadline)).await
    }
}
