//! The power-driver contract.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::DriverError;

/// Power state as a BMC reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerState {
    /// On.
    On,
    /// Off.
    Off,
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PowerState::On => "on",
            PowerState::Off => "off",
        })
    }
}

/// A power action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerAction {
    /// Power on.
    On,
    /// Hard power off (a fence).
    Off,
    /// Power cycle (a recovery).
    Cycle,
}

impl fmt::Display for PowerAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PowerAction::On => "on",
            PowerAction::Off => "off",
            PowerAction::Cycle => "cycle",
        })
    }
}

/// A power reading with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerReading {
    /// What the BMC says.
    pub state: PowerState,
    /// How the driver learned it (raw answer, in short).
    pub detail: String,
    /// How long it took.
    pub took: Duration,
}

/// The result of a power action, verified by reading the power state back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionReport {
    /// The action.
    pub action: PowerAction,
    /// Power state read back after the action.
    pub verified: PowerState,
    /// True when nothing had to be done (off on an already-off host).
    pub already: bool,
    /// Evidence, in short.
    pub detail: String,
    /// How long it took, verification included.
    pub took: Duration,
}

/// A way to read and change a host's power.
///
/// Every call gets a deadline and must return by then (with [`DriverError::Timeout`]
/// if need be): a BMC that never answers cannot hang a caller.
#[async_trait]
pub trait PowerDriver: Send + Sync + fmt::Debug {
    /// Driver kind (`sim`, `script`, `redfish`, …).
    fn kind(&self) -> &'static str;

    /// Read the power state.
    async fn status(&self, deadline: Instant) -> Result<PowerReading, DriverError>;

    /// Perform `action` and verify its effect before the deadline. `Off` on a host
    /// that is already off and `On` on one already on succeed with `already = true`.
    async fn act(
        &self,
        action: PowerAction,
        deadline: Instant,
    ) -> Result<ActionReport, DriverError>;
}

/// Run `fut` until `deadline`, mapping expiry to [`DriverError::Timeout`].
pub async fn within<T>(
    deadline: Instant,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, DriverError>>,
) -> Result<T, DriverError> {
    let allowed = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(r) => r,
        Err(_) => Err(DriverError::Timeout {
            after: allowed,
            what: what.to_string(),
        }),
    }
}

/// The two primitive steps of a driver whose BMC takes one chassis command and one
/// status read at a time (IPMI: the `ipmitool` and the native `ipmi` drivers), from
/// which [`act_verified`] builds a verified, idempotent action.
#[async_trait]
pub(crate) trait PowerSteps: Send + Sync {
    /// Read the power state once: the state and the evidence.
    async fn read_power(&self, deadline: Instant) -> Result<(PowerState, String), DriverError>;

    /// Send the command for `action` once, without verifying it: the BMC's answer
    /// as evidence.
    async fn send_power(
        &self,
        action: PowerAction,
        deadline: Instant,
    ) -> Result<String, DriverError>;

    /// How a status read is described in a timeout message.
    fn describe_read(&self) -> String;
}

/// How a driver's `Debug` shows a password: whether one is set, never what it is.
pub(crate) fn redacted(password: &str) -> &'static str {
    if password.is_empty() {
        "(none)"
    } else {
        "(set)"
    }
}

/// One timed status read through `steps` (the `status` of both IPMI drivers).
pub(crate) async fn read_timed<S: PowerSteps + ?Sized>(
    steps: &S,
    deadline: Instant,
) -> Result<PowerReading, DriverError> {
    let start = Instant::now();
    let (state, detail) = steps.read_power(deadline).await?;
    Ok(PowerReading {
        state,
        detail,
        took: start.elapsed(),
    })
}

/// How [`act_verified`] polls the power state after a command.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Polling {
    /// Pause between status reads.
    pub interval: Duration,
    /// For a cycle: how long to wait for an off reading before an on reading is
    /// accepted (a fast BMC may cycle between two reads).
    pub cycle_grace: Duration,
}

/// Perform `action` through `steps` and verify it, with the semantics both IPMI
/// drivers share:
///
/// - **Idempotence**: the status is read first; `off` / `on` on a host already in
///   that state send nothing (`already = true`). `cycle` on a host that is off is
///   sent as `on` (the IPMI spec lets a BMC ignore a cycle when off). A Permanent
///   error or a spent deadline on that read stops here; a Retryable one does not (a
///   fence tries the command anyway).
/// - **Verification**: after the BMC accepts the command, the status is polled until
///   it reads the wanted state (`off` → off; `on`, `cycle` → on) or the deadline
///   passes ([`DriverError::Timeout`]). For a cycle an on reading counts only once
///   off has been seen or `polling.cycle_grace` has passed.
pub(crate) async fn act_verified<S: PowerSteps + ?Sized>(
    steps: &S,
    action: PowerAction,
    polling: Polling,
    deadline: Instant,
) -> Result<ActionReport, DriverError> {
    let start = Instant::now();
    let want = match action {
        PowerAction::Off => PowerState::Off,
        PowerAction::On | PowerAction::Cycle => PowerState::On,
    };
    let mut sent_action = action;
    let before = match steps.read_power(deadline).await {
        Ok((state, detail)) if state == want && action != PowerAction::Cycle => {
            return Ok(ActionReport {
                action,
                verified: state,
                already: true,
                detail: format!("already {state} ({detail}); nothing sent"),
                took: start.elapsed(),
            });
        }
        Ok((PowerState::Off, _)) if action == PowerAction::Cycle => {
            sent_action = PowerAction::On;
            "was off: cycle sent as on; ".to_string()
        }
        Ok((state, _)) => format!("was {state}; "),
        // Bad credentials or a spent deadline will not act either.
        Err(e @ (DriverError::Permanent(_) | DriverError::Timeout { .. })) => return Err(e),
        // A failed read says nothing about whether the action can work: a fence
        // tries anyway.
        Err(DriverError::Retryable(e)) => format!("status before failed ({e}); "),
    };
    let sent = Instant::now();
    let answer = steps.send_power(sent_action, deadline).await?;
    let cycle = sent_action == PowerAction::Cycle;
    let (reads, saw_off) = wait_for(steps, sent_action, want, polling, deadline).await?;
    let mut detail = format!(
        "{before}{sent_action}: {answer}; read {want} after {reads} reads in {:.2}s",
        sent.elapsed().as_secs_f64()
    );
    if cycle {
        detail.push_str(if saw_off {
            " (off seen in between)"
        } else {
            " (off not observed)"
        });
    }
    Ok(ActionReport {
        action,
        verified: want,
        already: false,
        detail,
        took: start.elapsed(),
    })
}

/// Poll the status until it reads `want` (for a cycle: and off was seen or the
/// grace passed). Returns (reads, off seen).
async fn wait_for<S: PowerSteps + ?Sized>(
    steps: &S,
    sent: PowerAction,
    want: PowerState,
    polling: Polling,
    deadline: Instant,
) -> Result<(u32, bool), DriverError> {
    let cycle = sent == PowerAction::Cycle;
    let start = Instant::now();
    let mut reads = 0;
    let mut saw_off = false;
    let mut last = String::from("(not read)");
    loop {
        match steps.read_power(deadline).await {
            Ok((state, detail)) => {
                reads += 1;
                last = detail;
                if state == PowerState::Off {
                    saw_off = true;
                }
                let settled = !cycle || saw_off || start.elapsed() >= polling.cycle_grace;
                if state == want && settled {
                    return Ok((reads, saw_off));
                }
            }
            // A BMC busy applying the change may fail a read: keep polling.
            Err(DriverError::Retryable(m)) => last = m,
            Err(DriverError::Timeout { .. }) => break,
            Err(e) => return Err(e),
        }
        if Instant::now() + polling.interval >= deadline {
            break;
        }
        tokio::time::sleep(polling.interval).await;
    }
    Err(DriverError::Timeout {
        after: start.elapsed(),
        what: format!(
            "{}: power {want} after {sent} (last read: {last}, {reads} reads)",
            steps.describe_read()
        ),
    })
}
