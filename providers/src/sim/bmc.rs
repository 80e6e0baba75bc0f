//! [`SimBmc`]: how one simulated BMC behaves towards whoever talks to it, whatever the
//! protocol. The in-process [`SimPowerDriver`](super::SimPowerDriver) and the Redfish
//! server ([`SimRedfishServer`](super::SimRedfishServer)) both go through it, so a
//! [`BmcFault`] means the same thing on either path and every power change lands in
//! ground truth the same way.
//!
//! An exchange with the BMC is: resolve the fault mode once ([`SimBmc::fault`]),
//! reach the BMC ([`SimBmc::reach`]: may hang, fail or take its time), read or
//! change the power ([`SimBmc::read`], [`SimBmc::perform`]), and reply
//! ([`SimBmc::reply`]: may never arrive).
//!
//! A cycle never powers on a host that is off ([`SimBmc::cycle`]): a host truly off
//! is left off and nothing lands in ground truth, as IPMI 2.0 §28.3 recommends for a
//! BMC; and its on step follows only an off step that this same cycle made, before
//! the caller's deadline.

use std::future::pending;

use tokio::time::Instant;

use super::fault::BmcFault;
use super::fleet::{SimError, SimFleet};
use super::ground_truth::Cause;
use super::host::Condition;
use crate::error::DriverError;
use crate::power::{PowerAction, PowerState};

/// The simulated BMC of one host of a [`SimFleet`].
#[derive(Debug, Clone)]
pub(crate) struct SimBmc {
    fleet: SimFleet,
    host: String,
}

impl SimBmc {
    /// The BMC of `host` (which need not exist yet: calls on a missing host fail
    /// permanently).
    pub(crate) fn new(fleet: SimFleet, host: impl Into<String>) -> Self {
        SimBmc {
            fleet,
            host: host.into(),
        }
    }

    /// The host behind this BMC.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// The fault mode one exchange runs under, read once when it starts.
    /// [`BmcFault::DiesWithHost`] resolves to [`BmcFault::Timeout`] while the host
    /// is crashed and to [`BmcFault::None`] otherwise.
    pub(crate) fn fault(&self) -> Result<BmcFault, DriverError> {
        let s = self.fleet.snapshot(&self.host).map_err(permanent)?;
        Ok(match s.fault {
            BmcFault::DiesWithHost if s.condition == Condition::Crashed => BmcFault::Timeout,
            BmcFault::DiesWithHost => BmcFault::None,
            f => f,
        })
    }

    /// Reach the BMC: may never answer, answer with an error, or take its time.
    pub(crate) async fn reach(&self, fault: BmcFault) -> Result<(), DriverError> {
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
    pub(crate) async fn reply(&self, fault: BmcFault) {
        if fault == BmcFault::ReplyLost {
            pending::<()>().await;
        }
    }

    /// The power state as the BMC reports it (the opposite of the truth under
    /// [`BmcFault::LiesAboutPower`]).
    pub(crate) fn read(&self, fault: BmcFault) -> Result<PowerState, DriverError> {
        let truth = self.fleet.snapshot(&self.host).map_err(permanent)?.power;
        Ok(if fault == BmcFault::LiesAboutPower {
            opposite(truth)
        } else {
            truth
        })
    }

    /// Carry out `action` on the true power state, recording each real change in
    /// ground truth with `label`: on and off set the state (nothing changes, and
    /// nothing is recorded, when it already is so); a cycle is [`Self::cycle`]
    /// without a deadline. Each transition first takes the fleet's action latency.
    pub(crate) async fn perform(
        &self,
        action: PowerAction,
        label: &str,
    ) -> Result<(), DriverError> {
        match action {
            PowerAction::On => {
                self.transition(PowerState::On, action, label).await?;
            }
            PowerAction::Off => {
                self.transition(PowerState::Off, action, label).await?;
            }
            PowerAction::Cycle => {
                self.cycle(label, None).await?;
            }
        }
        Ok(())
    }

    /// A power cycle on the true power state, whatever the BMC would report: a host
    /// truly off is left off ([`Cycled::FoundOff`], nothing recorded); one truly on
    /// is powered off, then on. The on step follows only if this cycle's off step
    /// changed the power (someone else may have powered it off during the action
    /// latency: then it stays off, [`Cycled::FoundOff`]) and only before `deadline`
    /// (else [`Cycled::LeftOff`]; an on step that the deadline cuts short does not
    /// happen either).
    pub(crate) async fn cycle(
        &self,
        label: &str,
        deadline: Option<Instant>,
    ) -> Result<Cycled, DriverError> {
        let action = PowerAction::Cycle;
        let truth = self.fleet.snapshot(&self.host).map_err(permanent)?.power;
        if truth == PowerState::Off {
            return Ok(Cycled::FoundOff);
        }
        if !self.transition(PowerState::Off, action, label).await? {
            return Ok(Cycled::FoundOff);
        }
        let Some(deadline) = deadline else {
            self.transition(PowerState::On, action, label).await?;
            return Ok(Cycled::Done);
        };
        if Instant::now() >= deadline {
            return Ok(Cycled::LeftOff);
        }
        let on = self.transition(PowerState::On, action, label);
        match tokio::time::timeout_at(deadline, on).await {
            Ok(r) => r.map(|_| Cycled::Done),
            Err(_) => Ok(Cycled::LeftOff),
        }
    }

    /// One power transition, taking the fleet's action latency first; whether the
    /// power changed (false: it already was `to`).
    async fn transition(
        &self,
        to: PowerState,
        action: PowerAction,
        label: &str,
    ) -> Result<bool, DriverError> {
        let latency = self.fleet.action_latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let cause = Cause {
            action: Some(action),
            label: label.to_string(),
        };
        self.fleet
            .apply_power(&self.host, to, cause)
            .map_err(permanent)
    }
}

/// What [`SimBmc::cycle`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cycled {
    /// The host was off (or went off by another hand before this cycle's off step):
    /// left off, nothing done by this cycle.
    FoundOff,
    /// Off, then on.
    Done,
    /// Powered off by this cycle, but the deadline came before the on step: left
    /// off.
    LeftOff,
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
