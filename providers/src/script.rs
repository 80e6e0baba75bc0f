//! The `script` power driver: runs an agent that follows the fence-agents
//! convention, so that Pacemaker's agents (`fence_ipmilan`, `fence_redfish`, PDU
//! agents…) and home-grown scripts can fence vigil's hosts.
//!
//! The convention:
//! - the agent is run with **no arguments** (a password is never on a command line,
//!   where `ps` would show it) and receives its options as `key=value` lines on
//!   stdin: `action=…` first, then the driver's options (`ip=…`, `username=…`, any
//!   extra ones from the host's driver spec, in key order), then `password=…`;
//! - `action` is `status`, `off`, `on` or `reboot` (vigil's [`PowerAction::Cycle`]);
//! - exit codes: 0 success; for `status`, 0 = on and 2 = off; anything else (1 is
//!   the agents' generic error) is a failure, reported as [`DriverError::Retryable`]
//!   with the agent's stderr (bounded, single line, password redacted).
//!
//! Every action is verified by a `status` call afterwards (`off` must read off, `on`
//! and `reboot` must read on). Before every action the driver reads the status: when
//! the host is already in the wanted state the agent is not asked to act and the
//! report says `already = true`.
//!
//! A cycle never powers on a host that is off: most agents' `reboot` powers an off
//! host on (fence-agents' default reboot is "off if on, then on"), so a cycle runs
//! `reboot` only after `status` read on. A host that reads off is left off with
//! nothing sent (`already = true`, verified off), and a cycle whose `status` fails
//! is not run at all (unlike `off`, which a fence tries anyway). The agent's
//! `reboot` is one run: its on step is the agent's, bounded by the agent's own
//! timeouts and by vigil's deadline (at which the agent is killed).
//!
//! The deadline covers the whole call; an agent still running at the deadline is
//! killed with its process group and reaped, and the call returns
//! [`DriverError::Timeout`]. A missing or non-executable agent is
//! [`DriverError::Permanent`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::child::{self, RunError};
use crate::error::DriverError;
use crate::power::{
    cycle_found_off, ActionReport, PowerAction, PowerDriver, PowerReading, PowerState,
};

/// Most characters of agent output quoted in an error or a detail.
const EXCERPT: usize = 300;

/// Options the driver sets itself and that a spec may not give.
const RESERVED: [&str; 3] = ["action", "password", "passwd"];

/// How many times the state is read back after an action before giving up (BMCs can
/// lag behind the agent's answer), and the pause between reads.
const VERIFY_READS: u32 = 3;
const VERIFY_PAUSE: Duration = Duration::from_millis(500);

/// A power driver that runs a fence agent. `Debug` never shows the password.
#[derive(Clone)]
pub struct ScriptDriver {
    program: PathBuf,
    options: BTreeMap<String, String>,
    password: String,
}

impl fmt::Debug for ScriptDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptDriver")
            .field("program", &self.program)
            .field("options", &self.options)
            .field("password", &crate::power::redacted(&self.password))
            .finish()
    }
}

impl ScriptDriver {
    /// A driver running `program` with `options` (`ip`, `username`, `plug`, …) and
    /// `password` (empty: no `password=` line).
    ///
    /// [`DriverError::Permanent`] if an option could smuggle extra lines into the
    /// agent's input (a newline, carriage return or NUL in a key or value, `=` in a
    /// key, an empty key) or sets a reserved key (`action`, `password`, `passwd`).
    pub fn new(
        program: impl Into<PathBuf>,
        options: BTreeMap<String, String>,
        password: impl Into<String>,
    ) -> Result<Self, DriverError> {
        let password = password.into();
        for (k, v) in &options {
            if k.is_empty() || k.contains(['=', '\n', '\r', '\0']) || k.trim() != k {
                return Err(DriverError::Permanent(format!(
                    "script driver: invalid option name {k:?}"
                )));
            }
            if RESERVED.contains(&k.as_str()) {
                return Err(DriverError::Permanent(format!(
                    "script driver: option {k:?} is set by vigil, not by the spec"
                )));
            }
            if v.contains(['\n', '\r', '\0']) {
                return Err(DriverError::Permanent(format!(
                    "script driver: option {k:?}: value has a line break or NUL"
                )));
            }
        }
        if password.contains(['\n', '\r', '\0']) {
            return Err(DriverError::Permanent(
                "script driver: password has a line break or NUL".to_string(),
            ));
        }
        Ok(ScriptDriver {
            program: program.into(),
            options,
            password,
        })
    }

    /// A driver for a BMC: `ip` and `username` (each when non-empty) plus `extra`
    /// options, and `password`.
    pub fn for_bmc(
        program: impl Into<PathBuf>,
        ip: &str,
        username: &str,
        password: impl Into<String>,
        extra: BTreeMap<String, String>,
    ) -> Result<Self, DriverError> {
        let mut options = extra;
        if !ip.is_empty() {
            options.insert("ip".to_string(), ip.to_string());
        }
        if !username.is_empty() {
            options.insert("username".to_string(), username.to_string());
        }
        ScriptDriver::new(program, options, password)
    }

    /// The agent's path.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The options sent (the password excepted).
    pub fn options(&self) -> &BTreeMap<String, String> {
        &self.options
    }

    /// What the agent reads on stdin for `action`.
    fn input(&self, action: &str) -> Vec<u8> {
        let mut s = format!("action={action}\n");
        for (k, v) in &self.options {
            s.push_str(k);
            s.push('=');
            s.push_str(v);
            s.push('\n');
        }
        if !self.password.is_empty() {
            s.push_str("password=");
            s.push_str(&self.password);
            s.push('\n');
        }
        s.into_bytes()
    }

    fn secret(&self) -> Option<&str> {
        Some(self.password.as_str()).filter(|p| !p.is_empty())
    }

    fn what(&self, action: &str) -> String {
        format!("fence agent {} action={action}", self.program.display())
    }

    /// Run the agent once for `action`; the exit code, with output excerpts.
    async fn call(&self, action: &str, deadline: Instant) -> Result<Outcome, DriverError> {
        let allowed = deadline.saturating_duration_since(Instant::now());
        let what = self.what(action);
        match child::run(&self.program, &[], &self.input(action), deadline).await {
            Ok(done) => {
                let stdout = child::excerpt(&done.stdout, self.secret(), EXCERPT);
                let stderr = child::excerpt(&done.stderr, self.secret(), EXCERPT);
                Ok(Outcome {
                    code: done.status.code(),
                    exit: child::describe(&done.status),
                    stdout,
                    stderr,
                })
            }
            Err(RunError::Timeout) => Err(DriverError::Timeout {
                after: allowed,
                what: format!("{what} (killed)"),
            }),
            Err(RunError::Spawn(io))
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                Err(DriverError::Permanent(format!("{what}: cannot run: {io}")))
            }
            Err(RunError::Spawn(io)) => Err(DriverError::Retryable(format!(
                "{what}: cannot start: {io}"
            ))),
            Err(RunError::Wait(io)) => Err(DriverError::Retryable(format!(
                "{what}: waiting for it failed: {io}"
            ))),
        }
    }

    /// One `status` call, without timing.
    async fn read(&self, deadline: Instant) -> Result<(PowerState, String), DriverError> {
        let out = self.call("status", deadline).await?;
        let state = match out.code {
            Some(0) => PowerState::On,
            Some(2) => PowerState::Off,
            _ => return Err(out.failure(&self.what("status"))),
        };
        Ok((state, out.detail(state)))
    }

    /// Read back until the state is `want` (up to [`VERIFY_READS`] reads).
    async fn verify(
        &self,
        action: &str,
        want: PowerState,
        deadline: Instant,
    ) -> Result<String, DriverError> {
        let mut last = None;
        for i in 0..VERIFY_READS {
            if i > 0 {
                if Instant::now() + VERIFY_PAUSE >= deadline {
                    break;
                }
                tokio::time::sleep(VERIFY_PAUSE).await;
            }
            let (state, detail) = self.read(deadline).await?;
            if state == want {
                return Ok(detail);
            }
            last = Some(detail);
        }
        Err(DriverError::Retryable(format!(
            "{}: agent reported success but power reads {} ({}), not {want}",
            self.what(action),
            want.other(),
            last.unwrap_or_default()
        )))
    }
}

/// What one agent run gave.
struct Outcome {
    code: Option<i32>,
    exit: String,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn detail(&self, state: PowerState) -> String {
        if self.stdout.is_empty() {
            format!("{} ({state})", self.exit)
        } else {
            format!("{} ({state}): {}", self.exit, self.stdout)
        }
    }

    fn failure(&self, what: &str) -> DriverError {
        let said = if !self.stderr.is_empty() {
            &self.stderr
        } else if !self.stdout.is_empty() {
            &self.stdout
        } else {
            "(no output)"
        };
        DriverError::Retryable(format!("{what}: {}: {said}", self.exit))
    }
}

trait Other {
    fn other(self) -> Self;
}

impl Other for PowerState {
    fn other(self) -> Self {
        match self {
            PowerState::On => PowerState::Off,
            PowerState::Off => PowerState::On,
        }
    }
}

#[async_trait]
impl PowerDriver for ScriptDriver {
    fn kind(&self) -> &'static str {
        "script"
    }

    async fn status(&self, deadline: Instant) -> Result<PowerReading, DriverError> {
        let start = Instant::now();
        let (state, detail) = self.read(deadline).await?;
        Ok(PowerReading {
            state,
            detail,
            took: start.elapsed(),
        })
    }

    async fn act(
        &self,
        action: PowerAction,
        deadline: Instant,
    ) -> Result<ActionReport, DriverError> {
        let start = Instant::now();
        let (verb, want) = match action {
            PowerAction::Off => ("off", PowerState::Off),
            PowerAction::On => ("on", PowerState::On),
            PowerAction::Cycle => ("reboot", PowerState::On),
        };
        let cycle = action == PowerAction::Cycle;
        let before = match self.read(deadline).await {
            // `reboot` would power it on: a cycle leaves an off host off.
            Ok((PowerState::Off, detail)) if cycle => {
                return Ok(cycle_found_off(start, &format!("status {detail}")));
            }
            Ok((state, detail)) if state == want && !cycle => {
                return Ok(ActionReport {
                    action,
                    verified: state,
                    already: true,
                    detail: format!("already {state}: status {detail}"),
                    took: start.elapsed(),
                });
            }
            Ok((state, _)) => format!("was {state}; "),
            // A broken agent or a spent deadline will not act either.
            Err(e @ (DriverError::Permanent(_) | DriverError::Timeout { .. })) => return Err(e),
            // A `reboot` run without knowing the state could power on an off host.
            Err(DriverError::Retryable(e)) if cycle => {
                return Err(DriverError::Retryable(format!(
                    "{e}; reboot not run: the power state must read on first"
                )));
            }
            // A status that failed says nothing about whether `off` can work: a
            // fence tries anyway.
            Err(DriverError::Retryable(e)) => format!("status before failed ({e}); "),
        };
        let out = self.call(verb, deadline).await?;
        if out.code != Some(0) {
            return Err(out.failure(&self.what(verb)));
        }
        let verified = self.verify(verb, want, deadline).await?;
        Ok(ActionReport {
            action,
            verified: want,
            already: false,
            detail: format!("{before}{verb}: {}; status {verified}", out.exit),
            took: start.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn input_follows_the_convention() {
        let d = ScriptDriver::for_bmc(
            "/bin/agent",
            "10.0.0.5",
            "admin",
            "pw",
            opts(&[("lanplus", "1")]),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(d.input("off")).unwrap(),
            "action=off\nip=10.0.0.5\nlanplus=1\nusername=admin\npassword=pw\n"
        );
        let d = ScriptDriver::new("/bin/agent", BTreeMap::new(), "").unwrap();
        assert_eq!(
            String::from_utf8(d.input("status")).unwrap(),
            "action=status\n"
        );
    }

    #[test]
    fn debug_never_shows_the_password() {
        let d = ScriptDriver::new("/bin/agent", opts(&[("ip", "h")]), "hunter2").unwrap();
        let s = format!("{d:?} {d:#?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("(set)"), "{s}");
    }

    #[test]
    fn rejects_options_that_could_inject_lines() {
        for bad in [
            opts(&[("ip", "h\naction=on")]),
            opts(&[("a=b", "x")]),
            opts(&[("", "x")]),
            opts(&[("action", "on")]),
            opts(&[("password", "x")]),
            opts(&[("passwd", "x")]),
        ] {
            assert!(matches!(
                ScriptDriver::new("/bin/agent", bad.clone(), ""),
                Err(DriverError::Permanent(_))
            ));
        }
        assert!(matches!(
            ScriptDriver::new("/bin/agent", BTreeMap::new(), "a\nb"),
            Err(DriverError::Permanent(_))
        ));
    }
}
