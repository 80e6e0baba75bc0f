//! The power-driver contract.
//!
//! One safety rule binds every driver: **HA never powers on a host that is off.** A
//! cycle (a recovery) only turns on a host that the same call turned off: a cycle of
//! a host that reads off sends nothing and reports `already = true`, verified off
//! (`cycle_found_off`); a cycle whose status read fails is not sent blindly; a
//! cycle built from two steps (off, then on) sends the on step only after this call
//! saw the host off and only before the deadline (`cycle_left_off` otherwise). An
//! off host may be off for a reason nobody told vigil about (maintenance, a fence by
//! someone else, a failed PSU): turning it on is a human's decision. This is also what
//! IPMI 2.0 §28.3 recommends for a chassis power cycle of a system that is off.

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
    ///
    /// `Cycle` never powers on a host that is off (see the module documentation): the
    /// state is read first, and a host that reads off is left off, with nothing sent
    /// and `already = true`, `verified = Off`. A failed read fails the cycle (unlike
    /// `Off`, which a fence may try anyway): a cycle sent blindly could power on an
    /// off host. A cycle made of two steps sends the on step only after this call
    /// verified the host off, and only before the deadline; if the deadline passes in
    /// between, the call fails with [`DriverError::Timeout`] saying the host was left
    /// off.
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

/// The report of a cycle of a host that reads off: nothing was sent, the host stays
/// off (`already = true`, verified off). `evidence` is the status read that said so.
pub(crate) fn cycle_found_off(start: Instant, evidence: &str) -> ActionReport {
    ActionReport {
        action: PowerAction::Cycle,
        verified: PowerState::Off,
        already: true,
        detail: format!(
            "off: a cycle powers on only a host it powered off itself; nothing sent ({evidence})"
        ),
        took: start.elapsed(),
    }
}

/// The error of a two-step cycle whose deadline passed after its off step and
/// before its on step took effect: the host was left off (a driver returns it only
/// when it knows that no on was sent or took effect). `allowed` is the time the call
/// had; `what` names the driver and the steps.
pub(crate) fn cycle_left_off(allowed: Duration, what: &str) -> DriverError {
    DriverError::Timeout {
        after: allowed,
        what: format!(
            "{what}: powered off, but the deadline passed before the on step; \
             the host was left off"
        ),
    }
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
///   that state send nothing (`already = true`). A Permanent error or a spent
///   deadline on that read stops here; for `off` and `on` a Retryable one does not
///   (a fence tries the command anyway).
/// - **A cycle never powers on an off host**: `cycle` on a host that reads off sends
///   nothing and reports `already = true`, verified off ([`cycle_found_off`]; IPMI
///   2.0 §28.3 recommends that a BMC ignore a power cycle when off, and not every
///   BMC does). A cycle whose status read fails in any way is not sent: a blind
///   cycle could power on an off host. IPMI's power cycle is one command, so there
///   is no separate on step to guard. (The host can still go off between the read
///   and the command; a BMC that follows §28.3 then does nothing.)
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
    let cycle = action == PowerAction::Cycle;
    let before = match steps.read_power(deadline).await {
        Ok((PowerState::Off, detail)) if cycle => {
            return Ok(cycle_found_off(start, &detail));
        }
        Ok((state, detail)) if state == want && !cycle => {
            return Ok(ActionReport {
                action,
                verified: state,
                already: true,
                detail: format!("already {state} ({detail}); nothing sent"),
                took: start.elapsed(),
            });
        }
        Ok((state, _)) => format!("was {state}; "),
        // Bad credentials or a spent deadline will not act either.
        Err(e @ (DriverError::Permanent(_) | DriverError::Timeout { .. })) => return Err(e),
        // A cycle sent without knowing the state could power on an off host.
        Err(DriverError::Retryable(e)) if cycle => {
            return Err(DriverError::Retryable(format!(
                "{e}; cycle not sent: the power state must read on first"
            )));
        }
        // A failed read says nothing about whether the action can work: a fence
        // tries anyway.
        Err(DriverError::Retryable(e)) => format!("status before failed ({e}); "),
    };
    let sent = Instant::now();
    let answer = steps.send_power(action, deadline).await?;
    let (reads, saw_off) = wait_for(steps, action, want, polling, deadline).await?;
    let mut detail = format!(
        "{before}{action}: {answer}; read {want} after {reads} reads in {:.2}s",
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A BMC in memory: one power state, a log of the commands sent, and an
    /// optional failure of every status read.
    struct FakeBmc {
        power: Mutex<PowerState>,
        sent: Mutex<Vec<PowerAction>>,
        read_fails: Option<DriverError>,
    }

    impl FakeBmc {
        fn new(power: PowerState) -> Self {
            FakeBmc {
                power: Mutex::new(power),
                sent: Mutex::new(Vec::new()),
                read_fails: None,
            }
        }

        fn power(&self) -> PowerState {
            *self.power.lock().unwrap()
        }

        fn sent(&self) -> Vec<PowerAction> {
            self.sent.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl PowerSteps for FakeBmc {
        async fn read_power(&self, _: Instant) -> Result<(PowerState, String), DriverError> {
            if let Some(e) = &self.read_fails {
                return Err(e.clone());
            }
            let p = self.power();
            Ok((p, format!("fake: power {p}")))
        }

        async fn send_power(&self, action: PowerAction, _: Instant) -> Result<String, DriverError> {
            self.sent.lock().unwrap().push(action);
            // A BMC that powers on from a cycle when off: only the driver's rule
            // keeps an off host off.
            *self.power.lock().unwrap() = match action {
                PowerAction::Off => PowerState::Off,
                PowerAction::On | PowerAction::Cycle => PowerState::On,
            };
            Ok(format!("fake: {action} accepted"))
        }

        fn describe_read(&self) -> String {
            "fake status".into()
        }
    }

    const POLLING: Polling = Polling {
        interval: Duration::from_millis(10),
        cycle_grace: Duration::ZERO,
    };

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test(start_paused = true)]
    async fn cycle_of_an_off_host_sends_nothing_and_stays_off() {
        let bmc = FakeBmc::new(PowerState::Off);
        let r = act_verified(&bmc, PowerAction::Cycle, POLLING, deadline())
            .await
            .unwrap();
        assert_eq!(r.action, PowerAction::Cycle);
        assert_eq!((r.verified, r.already), (PowerState::Off, true));
        assert!(
            r.detail.starts_with(
                "off: a cycle powers on only a host it powered off itself; nothing sent ("
            ),
            "{}",
            r.detail
        );
        assert!(r.detail.contains("fake: power off"), "{}", r.detail);
        assert!(bmc.sent().is_empty(), "{:?}", bmc.sent());
        assert_eq!(bmc.power(), PowerState::Off);
    }

    #[tokio::test(start_paused = true)]
    async fn cycle_of_an_on_host_is_sent_and_verified_on() {
        let bmc = FakeBmc::new(PowerState::On);
        let r = act_verified(&bmc, PowerAction::Cycle, POLLING, deadline())
            .await
            .unwrap();
        assert_eq!((r.verified, r.already), (PowerState::On, false));
        assert_eq!(bmc.sent(), [PowerAction::Cycle]);
        assert!(r.detail.starts_with("was on; cycle: "), "{}", r.detail);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_stops_a_cycle_but_not_a_fence() {
        let mut bmc = FakeBmc::new(PowerState::Off);
        bmc.read_fails = Some(DriverError::Retryable("fake: busy".into()));
        let e = act_verified(&bmc, PowerAction::Cycle, POLLING, deadline())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, DriverError::Retryable(m) if m.contains("fake: busy") && m.contains("cycle not sent")),
            "{e:?}"
        );
        assert!(bmc.sent().is_empty(), "{:?}", bmc.sent());
        assert_eq!(bmc.power(), PowerState::Off);

        // Off is still tried (and here cannot be verified: every read fails).
        let e = act_verified(&bmc, PowerAction::Off, POLLING, deadline())
            .await
            .unwrap_err();
        assert!(matches!(e, DriverError::Timeout { .. }), "{e:?}");
        assert_eq!(bmc.sent(), [PowerAction::Off]);
    }

    #[test]
    fn left_off_is_a_timeout_that_says_so() {
        let e = cycle_left_off(Duration::from_secs(3), "redfish ForceOff then On");
        assert!(e.is_retryable());
        let m = e.to_string();
        assert!(
            m.starts_with("no answer within 3.0s: redfish ForceOff then On:"),
            "{m}"
        );
        assert!(m.contains("the host was left off"), "{m}");
    }
}
