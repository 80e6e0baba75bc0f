//! `vigil power status|on|off|cycle --fence SPEC | --host NAME`: read or change one
//! host's power with the same drivers the members use, so an operator can test BMC
//! access before enabling HA. Mutating actions need `--yes` (they really act) or
//! `--dry-run` (read the power state and say what would be done).
//!
//! - `--fence SPEC`: the CLI talks to the BMC itself. Outside HA's control loop: use it
//!   for BMCs of hosts not (yet) registered, or whose pool has HA disabled.
//! - `--host NAME`: a member talks to the registered host's BMC with its replicated
//!   credentials (`POST /api/v1/hosts/NAME/power`); an action is committed as an
//!   operator record first and refused while HA may act on the host (put it in
//!   maintenance first).

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use tokio::time::Instant;
use vigil_providers::{PowerAction, PowerDriver};

use super::client::ApiClient;
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
#[command(group(clap::ArgGroup::new("target").required(true).args(["fence", "host"])))]
pub struct PowerArgs {
    /// The driver, as for `host add --fence`: kind=redfish,address=https://bmc,
    /// username=admin,password-env=VAR[,system_id=…,ca_file=…,insecure=true] or
    /// kind=script,address=/usr/sbin/fence_ipmilan,username=…,password-env=VAR,ip=…
    #[arg(long)]
    pub fence: Option<String>,
    /// A registered host: a member uses its configured fence level (see --level).
    #[arg(long)]
    pub host: Option<String>,
    /// With --host: which fence level's driver (1 = the first).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub level: u32,
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
    driver: String,
    action: String,
    power: String,
    already: bool,
    dry_run: bool,
    detail: String,
    took_ms: u128,
}

/// Run a `vigil power` command (`endpoint`/`timeout`: the API, for `--host`).
pub async fn run(
    out: Output,
    cmd: PowerCmd,
    endpoint: &str,
    timeout: Duration,
    token: Option<String>,
) -> Result<()> {
    let (action, args) = match cmd {
        PowerCmd::Status(a) => (None, a),
        PowerCmd::On(a) => (Some(PowerAction::On), a),
        PowerCmd::Off(a) => (Some(PowerAction::Off), a),
        PowerCmd::Cycle(a) => (Some(PowerAction::Cycle), a),
    };
    if let Some(a) = action {
        if !args.dry_run && !args.yes {
            bail!("refusing to power {a} without --yes: this really acts on the host (use --dry-run to see what would happen)");
        }
    }
    let result = match (&args.host, &args.fence) {
        (Some(host), _) => via_member(host, action, &args, endpoint, timeout, token).await?,
        (None, Some(fence)) => direct(fence, action, &args).await?,
        (None, None) => bail!("give --fence SPEC or --host NAME"),
    };
    print(out, &result)
}

/// `--host`: a member acts with the registered host's driver.
async fn via_member(
    host: &str,
    action: Option<PowerAction>,
    args: &PowerArgs,
    endpoint: &str,
    timeout: Duration,
    token: Option<String>,
) -> Result<PowerOut> {
    // The request lasts as long as the action may: wait for it, plus some slack.
    let api = ApiClient::new(endpoint, timeout.max(args.within + Duration::from_secs(10)))?
        .with_token(token);
    let body = serde_json::json!({
        "action": action.map_or("status".to_string(), |a| a.to_string()),
        "level": args.level - 1,
        "dry_run": args.dry_run,
        "within_ms": args.within.as_millis() as u64,
    });
    let r: vigil::api::power::PowerReport = api
        .post(&format!("/api/v1/hosts/{host}/power"), &body)
        .await?;
    Ok(PowerOut {
        driver: r.driver,
        action: r.action,
        power: r.power,
        already: r.already,
        dry_run: r.dry_run,
        detail: format!("{} (via member {})", r.detail, r.member),
        took_ms: u128::from(r.took_ms),
    })
}

/// `--fence`: the CLI talks to the BMC itself.
async fn direct(fence: &str, action: Option<PowerAction>, args: &PowerArgs) -> Result<PowerOut> {
    let env = |v: &str| std::env::var(v).ok();
    let (doc, inline) = parse_fence(0, fence, &env)?;
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
                driver: driver.kind().to_string(),
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
                driver: driver.kind().to_string(),
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
        Some(a) => {
            let r = driver.act(a, deadline).await?;
            PowerOut {
                driver: driver.kind().to_string(),
                action: a.to_string(),
                power: r.verified.to_string(),
                already: r.already,
                dry_run: false,
                detail: r.detail,
                took_ms: r.took.as_millis(),
            }
        }
    };
    Ok(result)
}

fn print(out: Output, result: &PowerOut) -> Result<()> {
    match out {
        Output::Json | Output::Yaml => output::structured(out, result),
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
