//! [`SimPowerDriver`]: a power driver talking to a simulated BMC.
//!
//! It follows the same steps as a real driver (read the state, act if needed, read
//! the state back as evidence) so that the engine sees realistic answers, and it
//! applies the BMC's [`BmcFault`] at the points where a real BMC would misbehave.
//! Every call is bounded by the caller's deadline through [`within`].

use std::future::pending;

use async_trait::async_trait;
use tokio::time::Instant;

use super::fault::BmcFault;
use super::fleet::{SimError, SimFleet};
use super::ground_truth::Cause;
use super::host::Condition;
use crate::error::DriverError;
use crate::power::{within, ActionReport, PowerAction, PowerDriver, PowerReading, PowerState};

/// A [`PowerDriver`] (kind `sim`) for one host of a [`SimFleet`].
#[derive(Debug, Clone)]
pub struct SimPowerDriver {
    fleet: SimFleet,
    host: String,
    label: String,
}

impl SimPowerDriver {
    /// A driver for `host`, labelling its power changes `sim` in ground truth.
    pub fn new(fleet: SimFleet, host: impl Into<String>) -> Self {
        SimPowerDriver {
            fleet,
            host: host.into(),
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
        &self.host
    }

    /// The fault mode this exchange runs under, read once when the call starts.
    /// [`BmcFault::DiesWithHost`] resolves to [`BmcFault::Timeout`] while the host
    /// is crashed and to [`BmcFault::None`] otherwise.
    fn fault(&self) -> Result<BmcFault, DriverError> {
        let s = self.fleet.snapshot(&self.host).map_err(permanent)?;
        Ok(match s.fault {
            BmcFault::DiesWithHost if s.condition == Condition::Crashed => BmcFault::Timeout,
            BmcFault::DiesWithHost => BmcFault::None,
            f => f,
        })
    }

    /// Reach the BMC: may never answer, answer with an error, or take its time.
    async fn reach(&self, fault: BmcFault) -> Result<(), DriverError> {
        match fault {
            BmcFault::Timeout => pending().await,
            BmcFault::Error => Err(DriverError::Retryable(format!(
                "sim BMC of {}: internal error (injected)",
                self.host
            ))),
            BmcFault::Slow(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            BmcFault::None
            | BmcFault::LiesAboutPower
            | BmcFault::DiesWithHost
            | BmcFault::ReplyLost => Ok(()),
        }
    }

    /// Send the reply: under [`BmcFault::ReplyLost`] it never arrives.
    async fn reply(&self, fault: BmcFault) {
        if fault == BmcFault::ReplyLost {
            pending::<()>().await;
        }
    }

    /// The power state as the BMC reports it.
    fn read(&self, fault: BmcFault) -> Result<PowerState, DriverError> {
        let truth = self.fleet.snapshot(&self.host).map_err(permanent)?.power;
        Ok(if fault == BmcFault::LiesAboutPower {
            opposite(truth)
        } else {
            truth
        })
    }

    /// One power transition, taking the fleet's action latency first.
    async fn transition(&self, to: PowerState, action: PowerAction) -> Result<(), DriverError> {
        let latency = self.fleet.action_latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let cause = Cause {
            action: Some(action),
            label: self.label.clone(),
        };
        self.fleet
            .apply_power(&self.host, to, cause)
            .map_err(permanent)?;
        Ok(())
    }

    async fn act_inner(
        &self,
        action: PowerAction,
        start: Instant,
    ) -> Result<ActionReport, DriverError> {
        let fault = self.fault()?;
        self.reach(fault).await?;
        let before = self.read(fault)?;
        let target = match action {
            PowerAction::On => PowerState::On,
            PowerAction::Off => PowerState::Off,
            PowerAction::Cycle => PowerState::On,
        };
        if action != PowerAction::Cycle && before == target {
            self.reply(fault).await;
            return Ok(ActionReport {
                action,
                verified: before,
                already: true,
                detail: format!("sim BMC of {}: already {before}", self.host),
                took: start.elapsed(),
            });
        }
        match action {
            PowerAction::On => self.transition(PowerState::On, action).await?,
            PowerAction::Off => self.transition(PowerState::Off, action).await?,
            PowerAction::Cycle => {
                // The BMC cycles from the true state, whatever it would report: a
                // host that is truly off is just powered on.
                let truth = self.fleet.snapshot(&self.host).map_err(permanent)?.power;
                if truth == PowerState::On {
                    self.transition(PowerState::Off, action).await?;
                }
                self.transition(PowerState::On, action).await?;
            }
        }
        let verified = self.read(fault)?;
        self.reply(fault).await;
        if verified != target {
            return Err(DriverError::Retryable(format!(
                "sim BMC of {}: {action} not verified: power reads {verified}",
                self.host
            )));
        }
        Ok(ActionReport {
            action,
            verified,
            already: false,
            detail: format!(
                "sim BMC of {}: {action} done, power reads {verified}",
                self.host
            ),
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
        let what = format!("sim BMC of {}: power status", self.host);
        within(deadline, &what, async {
            let fault = self.fault()?;
            self.reach(fault).await?;
            let state = self.read(fault)?;
            self.reply(fault).await;
            Ok(PowerReading {
                state,
                detail: format!("sim BMC of {}: power {state}", self.host),
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
        let what = format!("sim BMC of {}: power {action}", self.host);
        within(deadline, &what, self.act_inner(action, start)).await
    }
}

fn opposite(s: PowerState) -> PowerState {
    match s {
        PowerState::On => PowerState::Off,
        PowerState::Off => PowerState::On,
    }
}

fn permanent(e: SimError) -> DriverError {
    DriverError::Permanent(e.to_string())
}
