//! The native IPMI power driver: one reusable RMCP+ session per BMC behind a tokio
//! mutex, and the [`PowerDriver`] semantics shared with the `ipmitool` driver.
//!
//! - **Session reuse**: the driver holds at most one [`Session`]; every command
//!   locks it for the length of one exchange (the status polls of an action do not
//!   hold it between reads). A session unused for longer than
//!   [`IpmiConfig::idle_reconnect`] is closed and opened again first, because BMCs
//!   silently drop idle sessions (ipmi_sim after ~30 s).
//! - **Reconnect once**: a reused session whose command goes unanswered (one send)
//!   is presumed dropped by the BMC: the driver opens a new session and sends the
//!   command once more, with the full number of tries. A fresh session that goes
//!   unanswered is not retried (the BMC itself is not answering). Either way the
//!   caller's deadline bounds everything ([`within`]).
//! - **Closing**: [`IpmiDriver::close`] sends Close Session and waits for the
//!   answer; dropping the driver (or replacing a session) sends it without waiting.
//! - **Actions** go through [`act_verified`] exactly like the `ipmitool` driver:
//!   status first (`already` when nothing needs doing; a cycle of a host that reads
//!   off sends nothing and leaves it off, and a cycle whose status read fails is not
//!   sent), then Chassis Control after Set Session Privilege Level, then Get Chassis
//!   Status polled until the wanted state is read.

use std::fmt;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::chassis::{ChassisControl, SessionInfo};
use super::config::IpmiConfig;
use super::session::{Budget, Session};
use crate::error::DriverError;
use crate::power::{
    act_verified, read_timed, within, ActionReport, Polling, PowerAction, PowerDriver,
    PowerReading, PowerState, PowerSteps,
};

/// Sends of one command on a reused session before it is presumed dropped: a
/// silent reused session is far more often one the BMC forgot (timed out, BMC
/// rebooted) than a lost datagram, and opening a new session costs four round
/// trips, not another try timeout.
const REUSED_TRIES: u32 = 1;

/// One thing to do in a session.
#[derive(Debug, Clone, Copy)]
enum Op {
    Status,
    Control(ChassisControl),
    Info,
}

/// What it gave.
#[derive(Debug)]
enum Done {
    Status(PowerState, String),
    Control(String),
    Info(SessionInfo),
}

/// A power driver speaking IPMI 2.0 / RMCP+ (cipher suite 3) itself, over UDP.
/// `Debug` never shows the password or a session key.
pub struct IpmiDriver {
    config: IpmiConfig,
    session: Mutex<Option<Session>>,
}

impl fmt::Debug for IpmiDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpmiDriver")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl IpmiDriver {
    /// A driver for `config`; no packet is sent until the first call.
    /// [`DriverError::Permanent`] for an empty host, a user name over 16 bytes or a
    /// password over 20 bytes (the IPMI 2.0 limits), or a zero port.
    pub fn new(config: IpmiConfig) -> Result<Self, DriverError> {
        let bad = |m: &str| Err(DriverError::Permanent(format!("ipmi: {m}")));
        if config.host.trim().is_empty() {
            return bad("empty host");
        }
        if config.port == 0 {
            return bad("port 0");
        }
        if config.username.len() > 16 {
            return bad("user name longer than 16 bytes (IPMI limit)");
        }
        if config.password.len() > 20 {
            return bad("password longer than 20 bytes (IPMI 2.0 limit)");
        }
        Ok(IpmiDriver {
            config,
            session: Mutex::new(None),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &IpmiConfig {
        &self.config
    }

    fn what(&self, what: &str) -> String {
        format!("ipmi {}:{} {what}", self.config.host, self.config.port)
    }

    fn tries(&self) -> u32 {
        self.config.retries.saturating_add(1)
    }

    /// Close the session, if one is open, waiting for the BMC's answer (before
    /// `deadline`). The next call opens a new one.
    pub async fn close(&self, deadline: Instant) -> Result<(), DriverError> {
        let what = self.what("Close Session");
        within(deadline, &what, async {
            let session = self.session.lock().await.take();
            match session {
                Some(s) => {
                    s.close(Budget {
                        tries: self.tries(),
                        deadline,
                    })
                    .await
                }
                None => Ok(()),
            }
        })
        .await
    }

    /// Get Session Info for the driver's session (opened if need be): how many
    /// sessions the BMC has open out of how many. A diagnostic: the tests use it to
    /// prove that no session leaks.
    pub async fn session_info(&self, deadline: Instant) -> Result<SessionInfo, DriverError> {
        match self.run(Op::Info, deadline).await? {
            Done::Info(i) => Ok(i),
            other => unreachable!("Info gave {other:?}"),
        }
    }

    /// Run `op` in the session (opening or replacing it as needed), before
    /// `deadline`.
    async fn run(&self, op: Op, deadline: Instant) -> Result<Done, DriverError> {
        let what = self.what(match op {
            Op::Status => "Get Chassis Status",
            Op::Control(_) => "Chassis Control",
            Op::Info => "Get Session Info",
        });
        within(deadline, &what, async {
            let mut slot = self.session.lock().await;
            // An idle session may be gone on the BMC; an unhealthy one probably is.
            // Dropping it sends Close Session (best effort).
            if slot
                .as_ref()
                .is_some_and(|s| !s.healthy() || s.idle() > self.config.idle_reconnect)
            {
                *slot = None;
            }
            let reused = slot.is_some();
            if !reused {
                *slot = Some(Session::open(&self.config, deadline).await?);
            }
            let session = slot.as_mut().expect("a session was just opened");
            // A reused session gets one send and at most half of the time left, so
            // that a new session still fits in the deadline if it stays silent.
            let (tries, first_deadline) = if reused {
                let now = Instant::now();
                (
                    REUSED_TRIES.min(self.tries()),
                    now + deadline.saturating_duration_since(now) / 2,
                )
            } else {
                (self.tries(), deadline)
            };
            let first = self
                .perform(
                    session,
                    op,
                    Budget {
                        tries,
                        deadline: first_deadline,
                    },
                )
                .await;
            let healthy = session.healthy();
            let result = match first {
                Err(e @ (DriverError::Retryable(_) | DriverError::Timeout { .. }))
                    if reused && !healthy && Instant::now() < deadline =>
                {
                    tracing::info!(
                        bmc = %what,
                        error = %e,
                        "ipmi: session stopped answering; reconnecting"
                    );
                    *slot = None;
                    match Session::open(&self.config, deadline).await {
                        Ok(s) => {
                            let session = slot.insert(s);
                            self.perform(
                                session,
                                op,
                                Budget {
                                    tries: self.tries(),
                                    deadline,
                                },
                            )
                            .await
                            .map_err(after_reconnect)
                        }
                        Err(e) => Err(after_reconnect(e)),
                    }
                }
                other => other,
            };
            if slot.as_ref().is_some_and(|s| !s.healthy()) {
                *slot = None;
            }
            result
        })
        .await
    }

    async fn perform(
        &self,
        session: &mut Session,
        op: Op,
        budget: Budget,
    ) -> Result<Done, DriverError> {
        Ok(match op {
            Op::Status => {
                let (state, detail) = session.chassis_status(budget).await?;
                Done::Status(state, detail)
            }
            Op::Control(c) => Done::Control(
                session
                    .chassis_control(c, self.config.privilege, budget)
                    .await?,
            ),
            Op::Info => Done::Info(session.session_info(budget).await?),
        })
    }
}

/// Say that an error happened on the second session, after the first one stopped
/// answering.
fn after_reconnect(e: DriverError) -> DriverError {
    const NOTE: &str = " (reconnecting: the previous session had stopped answering)";
    match e {
        DriverError::Retryable(m) => DriverError::Retryable(format!("{m}{NOTE}")),
        DriverError::Permanent(m) => DriverError::Permanent(format!("{m}{NOTE}")),
        DriverError::Timeout { after, what } => DriverError::Timeout {
            after,
            what: format!("{what}{NOTE}"),
        },
    }
}

#[async_trait]
impl PowerSteps for IpmiDriver {
    async fn read_power(&self, deadline: Instant) -> Result<(PowerState, String), DriverError> {
        match self.run(Op::Status, deadline).await? {
            Done::Status(state, detail) => Ok((state, detail)),
            other => unreachable!("Status gave {other:?}"),
        }
    }

    async fn send_power(
        &self,
        action: PowerAction,
        deadline: Instant,
    ) -> Result<String, DriverError> {
        let op = Op::Control(ChassisControl::for_action(action));
        match self.run(op, deadline).await? {
            Done::Control(detail) => Ok(detail),
            other => unreachable!("Control gave {other:?}"),
        }
    }

    fn describe_read(&self) -> String {
        self.what("Get Chassis Status")
    }
}

#[async_trait]
impl PowerDriver for IpmiDriver {
    fn kind(&self) -> &'static str {
        "ipmi"
    }

    async fn status(&self, deadline: Instant) -> Result<PowerReading, DriverError> {
        read_timed(self, deadline).await
    }

    async fn act(
        &self,
        action: PowerAction,
        deadline: Instant,
    ) -> Result<ActionReport, DriverError> {
        let polling = Polling {
            interval: self.config.poll_interval,
            cycle_grace: self.config.cycle_grace,
        };
        act_verified(self, action, polling, deadline).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn refuses_configurations_ipmi_cannot_carry() {
        let ok = IpmiConfig::new("127.0.0.1", "admin", "password");
        assert!(IpmiDriver::new(ok.clone()).is_ok());
        let mut c = ok.clone();
        c.host = " ".into();
        assert!(IpmiDriver::new(c).is_err());
        let mut c = ok.clone();
        c.username = "a-user-name-of-17".into();
        assert!(matches!(IpmiDriver::new(c), Err(DriverError::Permanent(_))));
        let mut c = ok.clone();
        c.password = "p".repeat(21);
        let e = IpmiDriver::new(c).unwrap_err().to_string();
        assert!(e.contains("20 bytes") && !e.contains("ppp"), "{e}");
        let mut c = ok;
        c.port = 0;
        assert!(IpmiDriver::new(c).is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let d = IpmiDriver::new(IpmiConfig::new("bmc", "admin", "hunter2")).unwrap();
        let s = format!("{d:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert_eq!(d.kind(), "ipmi");
    }

    #[tokio::test]
    async fn a_bmc_that_never_answers_fails_within_the_deadline() {
        // Bound, never read: requests vanish.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut c = IpmiConfig::new("127.0.0.1", "admin", "password");
        c.port = silent.local_addr().unwrap().port();
        let d = IpmiDriver::new(c).unwrap();
        let budget = Duration::from_millis(1500);
        let start = Instant::now();
        let e = d.status(start + budget).await.unwrap_err();
        let took = start.elapsed();
        assert!(e.is_retryable(), "{e:?}");
        assert!(matches!(e, DriverError::Timeout { .. }), "{e:?}");
        assert!(took <= budget + Duration::from_millis(200), "{took:?}");
        let e = d
            .act(PowerAction::Off, Instant::now() + budget)
            .await
            .unwrap_err();
        assert!(e.is_retryable(), "{e:?}");
        // The requests were sent again within the deadline.
        silent.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        let mut received = 0;
        while silent.recv(&mut buf).is_ok() {
            received += 1;
        }
        assert!(received >= 4, "{received} datagrams");
    }
}
