//! The `ipmitool` power driver: IPMI 2.0 (RMCP+, `lanplus`) through the `ipmitool`
//! program.
//!
//! Each call runs `ipmitool -I lanplus -C 3 -N t -R r -H host -p port -U user -E -v
//! chassis power status|on|off|cycle` under the caller's deadline (see
//! [`crate::child`]: at the deadline the process group is killed and reaped).
//!
//! - **Password**: never on a command line (where `ps` shows it). `-E` makes ipmitool
//!   read it from the environment variable `IPMI_PASSWORD`; since [`crate::child`]
//!   gives a program only stdin, a tiny `sh` wrapper reads the password from stdin,
//!   exports it and `exec`s ipmitool. `Debug` shows `(set)` instead of it, and it is
//!   redacted from any output quoted in errors.
//! - **Cipher suite 3** by default (`-C 3`): without it ipmitool negotiates for ~10 s
//!   with some BMCs.
//! - **Idempotence and verification** are shared with the native driver
//!   (`power::act_verified`): before `off` and `on` the status is read; a host
//!   already in the wanted state is not sent anything (`already = true`). A cycle
//!   never powers on an off host: `cycle` on a host that reads off sends nothing
//!   (`already = true`, verified off), and a cycle whose status read fails is not
//!   sent. After the BMC accepts the command, the status is polled until it
//!   reads the wanted state (`off` → off; `on`, `cycle` → on) or the deadline passes
//!   ([`DriverError::Timeout`]). A cycle is an off now and an on a moment later: an
//!   on reading counts once the host was seen off or
//!   [`IpmitoolConfig::cycle_grace`] has passed.
//! - **Errors**: a missing `ipmitool` → Permanent; exit ≠ 0 with RAKP / password /
//!   unauthorized-name / privilege messages, or "Unable to establish IPMI v2 / RMCP+
//!   session" *without* a sign that the BMC did not answer → Permanent (bad
//!   credentials); anything else (no answer, busy BMC) → Retryable with the trimmed
//!   output. ipmitool runs with `-v` so that a failed RAKP and a BMC that never
//!   answers can be told apart (both end with the same "Unable to establish" line).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::child::{self, RunError};
use crate::error::DriverError;
use crate::power::{
    act_verified, read_timed, ActionReport, Polling, PowerAction, PowerDriver, PowerReading,
    PowerState, PowerSteps,
};

/// Most characters of ipmitool output quoted in an error or a detail.
const EXCERPT: usize = 300;

/// Reads the password from stdin into `IPMI_PASSWORD` and runs ipmitool (`$0`) with
/// the remaining arguments.
const WRAPPER: &str = r#"IFS= read -r IPMI_PASSWORD; export IPMI_PASSWORD; exec "$0" "$@""#;

/// How to reach one BMC with ipmitool.
#[derive(Clone)]
pub struct IpmitoolConfig {
    /// BMC address (name or IP).
    pub host: String,
    /// BMC UDP port (623 by default).
    pub port: u16,
    /// IPMI user.
    pub username: String,
    /// IPMI password (sent through `IPMI_PASSWORD`, never on a command line).
    pub password: String,
    /// The ipmitool program (`ipmitool`, looked up in `PATH`, by default).
    pub program: PathBuf,
    /// RMCP+ cipher suite (`-C`), 3 by default.
    pub cipher_suite: u8,
    /// ipmitool's per-try timeout in seconds (`-N`).
    pub timeout_secs: u32,
    /// ipmitool's retries (`-R`).
    pub retries: u32,
    /// Pause between status reads while verifying an action.
    pub poll_interval: Duration,
    /// For a cycle: how long to wait for an off reading before an on reading is
    /// accepted (a fast BMC may cycle between two reads).
    pub cycle_grace: Duration,
}

impl IpmitoolConfig {
    /// Defaults for `host`:623 as `username` / `password`.
    pub fn new(
        host: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        IpmitoolConfig {
            host: host.into(),
            port: 623,
            username: username.into(),
            password: password.into(),
            program: PathBuf::from("ipmitool"),
            cipher_suite: 3,
            timeout_secs: 1,
            retries: 2,
            poll_interval: Duration::from_millis(250),
            cycle_grace: Duration::from_secs(2),
        }
    }
}

impl fmt::Debug for IpmitoolConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpmitoolConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &crate::power::redacted(&self.password))
            .field("program", &self.program)
            .field("cipher_suite", &self.cipher_suite)
            .field("timeout_secs", &self.timeout_secs)
            .field("retries", &self.retries)
            .field("poll_interval", &self.poll_interval)
            .field("cycle_grace", &self.cycle_grace)
            .finish()
    }
}

/// A power driver running `ipmitool` (lanplus). `Debug` never shows the password.
#[derive(Clone, Debug)]
pub struct IpmitoolDriver {
    config: IpmitoolConfig,
}

impl IpmitoolDriver {
    /// A driver for `config`. [`DriverError::Permanent`] for an empty host, a NUL in
    /// any field, or a line break in the password (it travels as one line).
    pub fn new(config: IpmitoolConfig) -> Result<Self, DriverError> {
        if config.host.trim().is_empty() {
            return Err(DriverError::Permanent("ipmitool: empty host".to_string()));
        }
        for (name, v) in [("host", &config.host), ("username", &config.username)] {
            if v.contains(['\0', '\n', '\r']) {
                return Err(DriverError::Permanent(format!(
                    "ipmitool: {name} has a line break or NUL"
                )));
            }
        }
        if config.password.contains(['\0', '\n', '\r']) {
            return Err(DriverError::Permanent(
                "ipmitool: password has a line break or NUL".to_string(),
            ));
        }
        Ok(IpmitoolDriver { config })
    }

    /// The configuration.
    pub fn config(&self) -> &IpmitoolConfig {
        &self.config
    }

    /// `sh` arguments: the wrapper, then ipmitool and its arguments.
    fn args(&self, verb: &str) -> Vec<String> {
        let c = &self.config;
        let mut a = vec![
            "-c".to_string(),
            WRAPPER.to_string(),
            c.program.to_string_lossy().into_owned(),
            "-I".into(),
            "lanplus".into(),
            "-C".into(),
            c.cipher_suite.to_string(),
            "-N".into(),
            c.timeout_secs.max(1).to_string(),
            "-R".into(),
            c.retries.max(1).to_string(),
            "-H".into(),
            c.host.clone(),
            "-p".into(),
            c.port.to_string(),
        ];
        if !c.username.is_empty() {
            a.push("-U".into());
            a.push(c.username.clone());
        }
        a.extend(
            ["-E", "-v", "chassis", "power", verb]
                .iter()
                .map(|s| s.to_string()),
        );
        a
    }

    fn secret(&self) -> Option<&str> {
        Some(self.config.password.as_str()).filter(|p| !p.is_empty())
    }

    fn what(&self, verb: &str) -> String {
        format!(
            "ipmitool {}:{} chassis power {verb}",
            self.config.host, self.config.port
        )
    }

    /// Run `chassis power <verb>` once; stdout excerpt on success.
    async fn call(&self, verb: &str, deadline: Instant) -> Result<String, DriverError> {
        let allowed = deadline.saturating_duration_since(Instant::now());
        let what = self.what(verb);
        let mut input = self.config.password.clone().into_bytes();
        input.push(b'\n');
        let done = match child::run("/bin/sh".as_ref(), &self.args(verb), &input, deadline).await {
            Ok(done) => done,
            Err(RunError::Timeout) => {
                return Err(DriverError::Timeout {
                    after: allowed,
                    what: format!("{what} (killed)"),
                })
            }
            Err(RunError::Spawn(io)) => {
                return Err(DriverError::Permanent(format!(
                    "{what}: cannot run /bin/sh: {io}"
                )))
            }
            Err(RunError::Wait(io)) => {
                return Err(DriverError::Retryable(format!(
                    "{what}: waiting for it failed: {io}"
                )))
            }
        };
        let stdout = child::excerpt(&done.stdout, self.secret(), EXCERPT);
        if done.status.success() {
            return Ok(stdout);
        }
        let stderr = child::excerpt(&quiet(&done.stderr), self.secret(), EXCERPT);
        Err(classify(
            &what,
            done.status.code(),
            &child::describe(&done.status),
            &stdout,
            &stderr,
        ))
    }

    /// One status read.
    async fn read(&self, deadline: Instant) -> Result<(PowerState, String), DriverError> {
        let out = self.call("status", deadline).await?;
        match parse_status(&out) {
            Some(s) => Ok((s, out)),
            None => Err(DriverError::Retryable(format!(
                "{}: unexpected answer: {}",
                self.what("status"),
                if out.is_empty() { "(no output)" } else { &out }
            ))),
        }
    }
}

/// stderr without ipmitool's `-v` chatter that says nothing about the failure.
fn quiet(stderr: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| {
            let l = l.trim();
            !l.is_empty()
                && !l.starts_with("Loading IANA PEN Registry")
                && !l.starts_with("Running Get VSO Capabilities")
                && !l.starts_with("Discovered IPMB address")
        })
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

/// `Chassis Power is on|off` → the state.
fn parse_status(out: &str) -> Option<PowerState> {
    let lower = out.to_ascii_lowercase();
    let at = lower.find("chassis power is ")?;
    let rest = &lower[at + "chassis power is ".len()..];
    if rest.starts_with("on") {
        Some(PowerState::On)
    } else if rest.starts_with("off") {
        Some(PowerState::Off)
    } else {
        None
    }
}

/// Sort a failed ipmitool run into Permanent (fix something first) or Retryable.
fn classify(what: &str, code: Option<i32>, exit: &str, stdout: &str, stderr: &str) -> DriverError {
    let said = if !stderr.is_empty() {
        stderr
    } else if !stdout.is_empty() {
        stdout
    } else {
        "(no output)"
    };
    let msg = format!("{what}: {exit}: {said}");
    // sh's exec: 127 not found, 126 not executable.
    if matches!(code, Some(126 | 127)) {
        return DriverError::Permanent(format!("{msg} (is ipmitool installed?)"));
    }
    let lower = format!("{stderr} {stdout}").to_ascii_lowercase();
    let no_answer = lower.contains("get auth capabilities error")
        || lower.contains("error issuing get channel authentication")
        || lower.contains("no response")
        || lower.contains("timeout");
    let bad_credentials = lower.contains("rakp")
        || lower.contains("password")
        || lower.contains("unauthorized name")
        || lower.contains("insufficient privilege");
    let no_session = lower.contains("unable to establish ipmi v2 / rmcp+ session");
    if bad_credentials || (no_session && !no_answer) {
        DriverError::Permanent(msg)
    } else {
        DriverError::Retryable(msg)
    }
}

#[async_trait]
impl PowerDriver for IpmitoolDriver {
    fn kind(&self) -> &'static str {
        "ipmitool"
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

#[async_trait]
impl PowerSteps for IpmitoolDriver {
    async fn read_power(&self, deadline: Instant) -> Result<(PowerState, String), DriverError> {
        self.read(deadline).await
    }

    async fn send_power(
        &self,
        action: PowerAction,
        deadline: Instant,
    ) -> Result<String, DriverError> {
        // `chassis power on|off|cycle`: the verbs are the actions' names.
        self.call(&action.to_string(), deadline).await
    }

    fn describe_read(&self) -> String {
        self.what("status")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver(program: &str) -> IpmitoolDriver {
        let mut c = IpmitoolConfig::new("127.0.0.1", "admin", "hunter2");
        c.program = program.into();
        IpmitoolDriver::new(c).unwrap()
    }

    #[test]
    fn debug_never_shows_the_password() {
        let d = driver("ipmitool");
        let s = format!("{d:?} {d:#?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("(set)"), "{s}");
    }

    #[test]
    fn password_is_never_an_argument() {
        let d = driver("ipmitool");
        let args = d.args("off");
        assert!(args.iter().all(|a| !a.contains("hunter2")), "{args:?}");
        let joined = args.join(" ");
        assert!(joined.contains("-I lanplus -C 3"), "{joined}");
        assert!(
            joined.ends_with("-U admin -E -v chassis power off"),
            "{joined}"
        );
    }

    #[test]
    fn rejects_line_breaks() {
        let mut c = IpmitoolConfig::new("h", "u", "a\nb");
        assert!(IpmitoolDriver::new(c.clone()).is_err());
        c.password = "ok".into();
        c.host = " ".into();
        assert!(IpmitoolDriver::new(c).is_err());
    }

    #[test]
    fn parses_status() {
        assert_eq!(parse_status("Chassis Power is on"), Some(PowerState::On));
        assert_eq!(parse_status("Chassis Power is off"), Some(PowerState::Off));
        assert_eq!(parse_status("Chassis Power Control: Up/On"), None);
        assert_eq!(parse_status(""), None);
    }

    #[test]
    fn classifies_failures() {
        let e = |stderr: &str| classify("x", Some(1), "exit 1", "", stderr);
        assert!(matches!(
            e("> RAKP 2 HMAC is invalid Error: Unable to establish IPMI v2 / RMCP+ session"),
            DriverError::Permanent(_)
        ));
        assert!(matches!(
            e("Error: Unable to establish IPMI v2 / RMCP+ session"),
            DriverError::Permanent(_)
        ));
        assert!(matches!(
            e(
                "Get Auth Capabilities error Error issuing Get Channel Authentication \
               Capabilities request Error: Unable to establish IPMI v2 / RMCP+ session"
            ),
            DriverError::Retryable(_)
        ));
        assert!(matches!(
            e("Set Chassis Power Control to Down/Off failed: Unspecified error"),
            DriverError::Retryable(_)
        ));
        assert!(matches!(
            classify("x", Some(127), "exit 127", "", "not found"),
            DriverError::Permanent(_)
        ));
    }

    /// A fake `ipmitool`: logs its last argument (the verb) to `verbs.log` next to
    /// it and answers `status` from the `power` file there (`on` / `off`); any other
    /// verb sets the power the way a careless BMC would (a cycle powers on).
    const FAKE: &str = r#"#!/bin/sh
dir=$(dirname "$0")
for verb; do :; done
echo "$verb" >> "$dir/verbs.log"
case "$verb" in
    status) echo "Chassis Power is $(cat "$dir/power")" ;;
    off) echo off > "$dir/power"; echo "Chassis Power Control: Down/Off" ;;
    *) echo on > "$dir/power"; echo "Chassis Power Control: Up/On" ;;
esac
"#;

    fn fake(power: &str) -> (tempfile::TempDir, IpmitoolDriver) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("ipmitool");
        std::fs::write(&program, FAKE).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("power"), power).unwrap();
        let mut c = IpmitoolConfig::new("127.0.0.1", "admin", "hunter2");
        c.program = program;
        c.poll_interval = Duration::from_millis(20);
        c.cycle_grace = Duration::ZERO;
        (dir, IpmitoolDriver::new(c).unwrap())
    }

    fn verbs(dir: &tempfile::TempDir) -> Vec<String> {
        std::fs::read_to_string(dir.path().join("verbs.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[tokio::test]
    async fn cycle_of_an_off_host_sends_nothing_and_stays_off() {
        let (dir, d) = fake("off");
        let deadline = Instant::now() + Duration::from_secs(10);
        let r = d.act(PowerAction::Cycle, deadline).await.unwrap();
        assert_eq!((r.verified, r.already), (PowerState::Off, true));
        assert!(r.detail.contains("nothing sent"), "{}", r.detail);
        assert_eq!(verbs(&dir), ["status"]);
        let power = std::fs::read_to_string(dir.path().join("power")).unwrap();
        assert_eq!(power.trim(), "off");

        // On: the cycle is sent.
        std::fs::write(dir.path().join("power"), "on").unwrap();
        let r = d.act(PowerAction::Cycle, deadline).await.unwrap();
        assert_eq!((r.verified, r.already), (PowerState::On, false));
        assert_eq!(verbs(&dir)[1..3], ["status", "cycle"]);
    }

    #[tokio::test]
    async fn missing_ipmitool_is_permanent() {
        let d = driver("/nonexistent/ipmitool");
        let deadline = Instant::now() + Duration::from_secs(5);
        match d.status(deadline).await {
            Err(DriverError::Permanent(m)) => {
                assert!(m.contains("ipmitool"), "{m}");
                assert!(!m.contains("hunter2"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }
}
