//! The `vigil` command line: `serve`, `dev`, `cluster …`, `settings …`, `pool …`,
//! `host …`, `apply`. Each group of commands lives in its own file.

pub mod client;
#[macro_use]
pub mod output;
pub mod apply;
pub mod events;
pub mod host;
pub mod pool;
pub mod power;
pub mod sim;
pub mod webhook;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use vigil::api::types::{JoinBody, SetSettingBody, SettingView, WriteResult};
use vigil::config::{LogFormat, PartialConfig};
use vigil_raft::{ClusterStatus, RaftTimings};

use self::client::ApiClient;
use self::output::{enc, opt, table, Output};

/// vigil: a Raft-replicated HA controller for fleets of physical hosts.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, propagate_version = true)]
pub struct Cli {
    /// Member API URL(s), e.g. http://127.0.0.1:7001 (any member works; several,
    /// comma-separated, are tried in turn). Default: `endpoint` in the CLI config
    /// (~/.config/vigil/cli.toml), else http://127.0.0.1:7001.
    #[arg(long, global = true, env = "VIGIL_ENDPOINT")]
    pub endpoint: Option<String>,
    /// File holding the API token of members started with --api-token-file (else
    /// `VIGIL_TOKEN`, else `token_file` in the CLI config).
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    pub output: Output,
    /// Give up on a request after this long (e.g. 30s, 5m).
    #[arg(long, global = true, default_value = "3m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a member (one per machine).
    Serve(ServeArgs),
    /// Run a whole cluster in this process on loopback, for trying vigil out.
    Dev(DevArgs),
    /// Form and inspect the cluster of members.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Typed, replicated cluster settings.
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Pools: failure domains with HA on/off, breaker, fence budget and policy.
    #[command(subcommand)]
    Pool(pool::PoolCmd),
    /// Hosts: register, inspect, maintenance, explain, operator actions.
    #[command(subcommand)]
    Host(host::HostCmd),
    /// Apply a declarative inventory of pools and hosts (atomic: all or nothing).
    Apply(apply::ApplyArgs),
    /// The event history; with --follow, the live stream.
    Events(events::EventsArgs),
    /// Break and heal the simulated fleet of a running `vigil dev`.
    Sim(sim::SimArgs),
    /// Webhooks: receivers of events (e.g. host.fenced for orchestrators).
    #[command(subcommand)]
    Webhook(webhook::WebhookCmd),
    /// Print a shell completion script, e.g. `vigil completions bash > /etc/bash_completion.d/vigil`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Read or change one BMC's power directly (test BMC access before enabling HA).
    #[command(subcommand)]
    Power(power::PowerCmd),
}

/// `vigil serve` flags; each overrides the same key of `--config`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Member id (≥ 1, unique, persisted in the data dir).
    #[arg(long)]
    pub id: Option<u64>,
    /// Address to bind, HOST:PORT.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Address peers use to reach this member (default: --listen).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Raft heartbeat interval, ms.
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    /// Raft minimum election timeout, ms.
    #[arg(long)]
    pub election_min_ms: Option<u64>,
    /// Raft maximum election timeout, ms.
    #[arg(long)]
    pub election_max_ms: Option<u64>,
    /// Snapshot after this many log entries.
    #[arg(long)]
    pub snapshot_every: Option<u64>,
    /// File holding the API token (≥ 16 characters); when given, `/api/v1/*` and
    /// `/metrics` require `Authorization: Bearer <token>` (clients: `--token-file` or
    /// `VIGIL_TOKEN`).
    #[arg(long)]
    pub api_token_file: Option<PathBuf>,
}

/// `vigil dev` flags.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Number of members.
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Number of simulated hosts (their BMCs speak Redfish on loopback); 0 for none.
    #[arg(long, default_value_t = 50)]
    pub hosts: usize,
    /// Keep data here instead of a temporary directory (restartable).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// `vigil cluster …`.
#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Make the member at --endpoint a one-member cluster (once, on one member).
    Init,
    /// Add member N: learner → caught up → voter. --endpoint may be any member.
    Join {
        /// Id of the new member (as given to its `vigil serve --id`).
        #[arg(long)]
        id: u64,
        /// Its HOST:PORT (its --advertise address).
        #[arg(long)]
        addr: String,
    },
    /// Remove member N from the cluster (demote, then remove).
    Leave {
        /// Id of the member to remove.
        #[arg(long)]
        id: u64,
    },
    /// Members, roles, term, leader, log positions and replication lag.
    Status,
}

/// `vigil settings …`.
#[derive(Debug, Subcommand)]
pub enum SettingsCmd {
    /// Every setting with its value and default.
    List,
    /// One setting.
    Get {
        /// Setting key.
        key: String,
    },
    /// Change a setting (validated before it is proposed).
    Set {
        /// Setting key.
        key: String,
        /// New value (e.g. 5s, 0.3, true, text).
        value: String,
    },
    /// Return a setting to its default (removes a meta.* annotation).
    Reset {
        /// Setting key.
        key: String,
    },
}

impl ServeArgs {
    /// Merge file and flags into the final configuration.
    pub fn resolve(self) -> Result<vigil::config::ServeConfig> {
        let file = match &self.config {
            Some(p) => PartialConfig::from_file(p)?,
            None => PartialConfig::default(),
        };
        let mut raft = file.raft.clone().unwrap_or_else(RaftTimings::default);
        let raft_flags = self.heartbeat_ms.is_some()
            || self.election_min_ms.is_some()
            || self.election_max_ms.is_some()
            || self.snapshot_every.is_some();
        if let Some(v) = self.heartbeat_ms {
            raft.heartbeat_ms = v;
        }
        if let Some(v) = self.election_min_ms {
            raft.election_min_ms = v;
        }
        if let Some(v) = self.election_max_ms {
            raft.election_max_ms = v;
        }
        if let Some(v) = self.snapshot_every {
            raft.snapshot_every = v;
        }
        let flags = PartialConfig {
            id: self.id,
            listen: self.listen,
            advertise: self.advertise,
            data_dir: self.data_dir,
            log_format: self.log_format,
            raft: raft_flags.then_some(raft),
            api_token_file: self.api_token_file,
        };
        Ok(file.merge(flags)?)
    }
}

/// Run a client command.
pub async fn run_client(cli: Cli) -> Result<()> {
    let out = cli.output;
    if let Command::Completions { shell } = cli.command {
        let mut cmd = <Cli as clap::CommandFactory>::command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "vigil", &mut buf);
        // Through `outln!`: a closed pipe (`… | head`) ends quietly.
        outln!("{}", String::from_utf8_lossy(&buf).trim_end());
        return Ok(());
    }
    let endpoint = client::resolve_endpoint(cli.endpoint.as_deref())?;
    let token = client::resolve_token(cli.token_file.as_deref())?;
    if let Command::Power(cmd) = cli.command {
        return power::run(out, cmd, &endpoint, cli.timeout, token).await;
    }
    if let Command::Sim(args) = cli.command {
        return sim::run(out, args).await;
    }
    let api = ApiClient::new(&endpoint, cli.timeout)?.with_token(token);
    match cli.command {
        Command::Power(_) | Command::Sim(_) | Command::Completions { .. } => {
            unreachable!("handled above")
        }
        Command::Serve(_) | Command::Dev(_) => unreachable!("handled in main"),
        Command::Cluster(cmd) => cluster(&api, out, cmd).await,
        Command::Settings(cmd) => settings(&api, out, cmd).await,
        Command::Pool(cmd) => pool::run(&api, out, cmd).await,
        Command::Host(cmd) => host::run(&api, out, cmd).await,
        Command::Apply(args) => apply::run(&api, out, args).await,
        Command::Events(args) => events::run(&api, out, args).await,
        Command::Webhook(cmd) => webhook::run(&api, out, cmd).await,
    }
}

async fn cluster(api: &ApiClient, out: Output, cmd: ClusterCmd) -> Result<()> {
    let status: ClusterStatus = match cmd {
        ClusterCmd::Init => {
            api.post("/api/v1/cluster/init", &serde_json::json!({}))
                .await?
        }
        ClusterCmd::Join { id, addr } => {
            if id == 0 {
                bail!("--id must be ≥ 1");
            }
            eprintln!("adding member {id} ({addr}) as a learner, waiting for it to catch up, then promoting it to voter ...");
            api.post("/api/v1/cluster/members", &JoinBody { id, addr })
                .await?
        }
        ClusterCmd::Leave { id } => {
            eprintln!("removing member {id} ...");
            api.delete(&format!("/api/v1/cluster/members/{id}")).await?
        }
        ClusterCmd::Status => api.get("/api/v1/cluster/status").await?,
    };
    match out {
        Output::Json | Output::Yaml => output::structured(out, &status),
        Output::Table => {
            print_status(&status);
            Ok(())
        }
    }
}

fn print_status(s: &ClusterStatus) {
    outln!(
        "leader: {}   term: {}   (view of member {})",
        opt(s.leader),
        s.term,
        s.answered_by
    );
    outln!(
        "log: last {}   applied {}   snapshot {}   purged {}",
        opt(s.last_log_index),
        opt(s.last_applied),
        opt(s.snapshot_index),
        opt(s.purged_index)
    );
    if !s.initialized {
        outln!("\nnot initialized: run `vigil cluster init` on one member, then `vigil cluster join` the others");
        return;
    }
    let rows: Vec<Vec<String>> = s
        .members
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                m.addr.clone(),
                m.role.to_string(),
                opt(m.matched_index),
                opt(m.lag),
                m.last_contact_ms
                    .map(|ms| format!("{:.1}s ago", ms as f64 / 1000.0))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    outln!();
    outln!(
        "{}",
        table(
            &["ID", "ADDR", "ROLE", "MATCHED", "LAG", "LAST CONTACT"],
            &rows
        )
    );
}

async fn settings(api: &ApiClient, out: Output, cmd: SettingsCmd) -> Result<()> {
    match cmd {
        SettingsCmd::List => {
            let list: Vec<SettingView> = api.get("/api/v1/settings").await?;
            match out {
                Output::Json | Output::Yaml => output::structured(out, &list),
                Output::Table => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|s| {
                            vec![
                                s.key.clone(),
                                s.value.clone(),
                                if s.explicit {
                                    "set".into()
                                } else {
                                    "default".into()
                                },
                                s.kind.clone(),
                                s.help.clone(),
                            ]
                        })
                        .collect();
                    outln!(
                        "{}",
                        table(&["KEY", "VALUE", "SOURCE", "TYPE", "DESCRIPTION"], &rows)
                    );
                    Ok(())
                }
            }
        }
        SettingsCmd::Get { key } => {
            let s: SettingView = api.get(&format!("/api/v1/settings/{}", enc(&key))).await?;
            match out {
                Output::Json | Output::Yaml => output::structured(out, &s),
                Output::Table => {
                    outln!("{}", s.value);
                    Ok(())
                }
            }
        }
        SettingsCmd::Set { key, value } => {
            let r: WriteResult = api
                .put(
                    &format!("/api/v1/settings/{}", enc(&key)),
                    &SetSettingBody { value },
                )
                .await?;
            print_write(out, &r)
        }
        SettingsCmd::Reset { key } => {
            let r: WriteResult = api
                .delete(&format!("/api/v1/settings/{}", enc(&key)))
                .await?;
            print_write(out, &r)
        }
    }
}

fn print_write(out: Output, r: &WriteResult) -> Result<()> {
    match out {
        Output::Json | Output::Yaml => output::structured(out, r),
        Output::Table => {
            outln!(
                "{} = {}   (revision {})",
                r.setting.key,
                r.setting.value,
                r.revision
            );
            Ok(())
        }
    }
}
