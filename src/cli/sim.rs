//! `vigil sim …`: drive the simulated fleet of a running `vigil dev` (crash and heal
//! hosts, kill members, read the ground truth) through its control API, whose URL
//! `vigil dev` prints (`export VIGIL_SIM_ENDPOINT=…`).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::client::ApiClient;
use super::output::{self, Output};

/// Where the dev control API is.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// The control URL `vigil dev` printed.
    #[arg(long, env = "VIGIL_SIM_ENDPOINT")]
    pub sim_endpoint: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub cmd: SimCmd,
}

/// `vigil sim …`.
#[derive(Debug, Subcommand)]
pub enum SimCmd {
    /// The host's OS dies; power stays on, its BMC answers.
    Crash {
        /// Host name.
        host: String,
    },
    /// The host's OS hangs (like crash, for the checks).
    Hang {
        /// Host name.
        host: String,
    },
    /// The host keeps working but health checks cannot reach it.
    Isolate {
        /// Host name.
        host: String,
    },
    /// The host's OS runs again (power is left as it is).
    Heal {
        /// Host name.
        host: String,
    },
    /// Cut the host's power behind vigil's back.
    PowerOff {
        /// Host name.
        host: String,
    },
    /// Restore the host's power behind vigil's back.
    PowerOn {
        /// Host name.
        host: String,
    },
    /// Kill member N at once (Raft, API and runtime stop, as with SIGKILL).
    KillMember {
        /// Member id.
        id: u64,
    },
    /// Every simulated host's true state.
    Hosts,
    /// Every real power change so far (what really happened, whatever vigil says).
    Truth,
}

/// Run `vigil sim`.
pub async fn run(out: Output, a: SimArgs) -> Result<()> {
    let Some(endpoint) = a.sim_endpoint else {
        bail!("no sim endpoint: run `vigil dev` and export the VIGIL_SIM_ENDPOINT it prints (or pass --sim-endpoint)");
    };
    let api = ApiClient::new(&endpoint, Duration::from_secs(30))?;
    let empty = serde_json::json!({});
    let v: Value = match &a.cmd {
        SimCmd::Crash { host } => api.post(&format!("/sim/hosts/{host}/crash"), &empty).await,
        SimCmd::Hang { host } => api.post(&format!("/sim/hosts/{host}/hang"), &empty).await,
        SimCmd::Isolate { host } => {
            api.post(&format!("/sim/hosts/{host}/isolate"), &empty)
                .await
        }
        SimCmd::Heal { host } => api.post(&format!("/sim/hosts/{host}/heal"), &empty).await,
        SimCmd::PowerOff { host } => {
            api.post(&format!("/sim/hosts/{host}/power-off"), &empty)
                .await
        }
        SimCmd::PowerOn { host } => {
            api.post(&format!("/sim/hosts/{host}/power-on"), &empty)
                .await
        }
        SimCmd::KillMember { id } => api.post(&format!("/sim/members/{id}/kill"), &empty).await,
        SimCmd::Hosts => api.get("/sim/hosts").await,
        SimCmd::Truth => api.get("/sim/truth").await,
    }
    .with_context(|| format!("talking to the vigil dev control API at {endpoint}"))?;
    if out != Output::Table {
        return output::structured(out, &v);
    }
    match &a.cmd {
        SimCmd::Hosts => {
            let rows: Vec<Vec<String>> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| {
                    ["name", "power", "condition", "working"]
                        .iter()
                        .map(|k| match &h[*k] {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .collect();
            outln!(
                "{}",
                output::table(&["HOST", "POWER", "CONDITION", "WORKING"], &rows)
            );
        }
        SimCmd::Truth => {
            let list = v.as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                outln!("no real power change yet");
            }
            for c in list {
                outln!(
                    "#{} {} {} -> {} by {} (host was {})",
                    c["seq"],
                    c["host"].as_str().unwrap_or("?"),
                    c["from"].as_str().unwrap_or("?"),
                    c["to"].as_str().unwrap_or("?"),
                    c["cause"]["label"].as_str().unwrap_or("?"),
                    c["condition"].as_str().unwrap_or("?"),
                );
            }
        }
        _ => outln!("{}", v["what"].as_str().unwrap_or("done")),
    }
    Ok(())
}
