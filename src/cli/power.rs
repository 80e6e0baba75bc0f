//! `vigil power status|on|off|cycle --fence SPEC`: talk to one BMC directly from the
//! CLI, with the same drivers the members use, so an operator can test BMC access
//! before enabling HA. Mutating actions need `--yes` (they really act) or `--dry-run`
//! (read the power state and say what would be done).
//!
//! These calls are outside HA's control loop: no intent is committed, so use them on
//! hosts whose pool has HA disabled, or in maintenance.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use tokio::time::Instant;
use vigil_providers::{PowerAction, PowerDriver};

use super::host::parse_fence;
use super::output::{self, Output};

/// `vigil power …`.
#[derive(Debug, Subcommand)]
pub enum PowerCmd {
    /// Read the power state.
    Status(PowerArgs),
    /// Power on (needs --yes or --dry-run).
    On(PowerArgs),
    /// Hard power off, verified (needs --yes or --dry-run).
    Off(PowerArgs),
    /// Power cycle, verified (needs --yes or --dry-run).
    Cycle(PowerArgs),
}

/// Which BMC and how.
#[derive(Debug, Args)]
pub struct PowerArgs {
    /// The driver, as for `host add --fence`: kind=redfish,address=https://bmc,
    /// username=admin,password-env=VAR[,system_id=…,ca_file=…,insecure=true] or
    /// kind=script,address=/usr/sbin/fence_ipmilan,username=…,password-env=VAR,ip=…
    #[arg(long)]
    pub fence: String,
    /// Give up (and report a timeout) after this long, verification included.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub within: Duration,
    /// Only read the state and print what would be done.
    #[arg(long)]
    pub dry_run: bool,
    /// Really act (required for on/off/cycle unless --dry-run).
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Serialize)]
struct PowerOut {
    driver: &'static str,
    action: String,
    power: String,
    already: bool,
    dry_run: bool,
    detail: String,
    took_ms: u128,
}

/// Run a `vigil power` command.
pub async fn run(out: Output, cmd: PowerCmd) -> Result<()> {
    let (action, args) = match cmd {
        PowerCmd::Status(a) => (None, a),
        PowerCmd::On(a) => (Some(PowerAction::On), a),
        PowerCmd::Off(a) => (Some(PowerAction::Off), a),
        PowerCmd::Cycle(a) => (Some(PowerAction::Cycle), a),
    };
    let env = |v: &str| std::env::var(v).ok();
    let (doc, inline) = parse_fence(0, &args.fence, &env)?;
    if inline {
        eprintln!("warning: a password given with --fence password=… is visible in the process list; prefer password-env=VAR");
    }
    let spec = doc.to_spec("--fence").map_err(|e| anyhow!(e))?;
    let driver: Box<dyn PowerDriver> =
        vigil::drivers::power_driver(&spec).map_err(|e| anyhow!(e))?;
    let deadline = Instant::now() + args.within;
    let result = match action {
        None => {
            let r = driver.status(deadline).await?;
            PowerOut {
                driver: driver.kind(),
                action: "status".into(),
                power: r.state.to_string(),
                already: false,
                dry_run: false,
                detail: r.detail,
                took_ms: r.took.as_millis(),
            }
        }
        Some(a) if args.dry_run => {
            let r = driver.status(deadline).await?;
            PowerOut {
                driver: driver.kind(),
                action: a.to_string(),
                power: r.state.to_string(),
                already: false,
                dry_run: true,
                detail: format!(
                    "would power {a} (the host is {} now); nothing was sent",
                    r.state
                ),
                took_ms: r.took.as_millis(),
            }
        }
        Some(a) if !args.yes => {
            bail!("refusing to power {a} without --yes: this really acts on the host (use --dry-run to see what would happen)");
        }
        Some(a) => {
            let r = driver.act(a, deadline).await?;
            PowerOut {
                driver: driver.kind(),
                action: a.to_string(),
                power: r.verified.to_string(),
                already: r.already,
                dry_run: false,
                detail: r.detail,
                took_ms: r.took.as_millis(),
            }
        }
    };
    match out {
        Output::Json => output::json(&result),
        Output::Table => {
            let verb = if result.action == "status" {
                "power is".to_string()
            } else if result.dry_run {
                "dry run: power is".to_string()
            } else if result.already {
                format!("power {} (already): power is", result.action)
            } else {
                format!("power {} verified: power is", result.action)
            };
            outln!(
                "{verb} {}   ({} driver, {} ms)\n{}",
                result.power,
                result.driver,
                result.took_ms,
                result.detail
            );
            Ok(())
        }
    }
}
