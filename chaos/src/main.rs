//! `vigil-chaos`: run seeded faults against a vigil cluster and judge what happened.
//!
//! ```text
//! vigil-chaos run [--seed N | --seeds K] [--duration 60s] [--members 3] [--hosts 20]
//!                 [--faults kill,links,bmc,host,mass,ops|all] --out DIR
//! vigil-chaos replay DIR        # the saved schedule again, into DIR/replay
//! vigil-chaos check DIR         # the checkers on saved facts only
//! vigil-chaos selftest [--bugs a,b] [--seeds K] --out DIR
//!                               # each planted bug must be caught (needs the
//!                               # `planted-bugs` feature)
//! ```
//! Exit status: 0 when every check passed, 1 on any violation, 2 on a usage or
//! harness error.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use vigil_chaos::plan::{self, FaultKind, Options, Step};
use vigil_chaos::{check, report, run};

#[derive(Parser, Debug)]
#[command(
    name = "vigil-chaos",
    version,
    about = "Chaos harness for vigil: seeded nemeses, histories, invariant checkers"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run one or more seeds and judge them.
    Run(RunArgs),
    /// Run a saved schedule again (same options, same faults at the same offsets).
    Replay {
        /// A run directory written by `run`.
        dir: PathBuf,
    },
    /// Judge a saved run again from its facts only (no cluster).
    Check {
        /// A run directory written by `run`.
        dir: PathBuf,
    },
    /// Run the cluster with each planted bug; fail unless a checker catches every
    /// bug this tier can show (build with `--features planted-bugs`).
    Selftest {
        /// Bugs to plant, comma-separated (default: all).
        #[arg(long)]
        bugs: Option<String>,
        /// Seeds tried per bug before it counts as not caught.
        #[arg(long, default_value_t = 2)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value = "1")]
        seed: String,
        /// Length of each run's chaos phase.
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Where runs are written.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Cluster tier (only `inproc` exists so far).
    #[arg(long, default_value = "inproc")]
    tier: String,
    /// The seed (decimal or 0x-hex); random when not given.
    #[arg(long)]
    seed: Option<String>,
    /// Run this many seeds (seed, seed+1, …).
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Length of the chaos phase.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Members (3 or 5).
    #[arg(long, default_value_t = 3)]
    members: u64,
    /// Simulated hosts.
    #[arg(long, default_value_t = 20)]
    hosts: usize,
    /// Fault kinds, comma-separated, or `all`.
    #[arg(long, default_value = "all")]
    faults: String,
    /// Where runs are written (one sub-directory per seed).
    #[arg(long)]
    out: PathBuf,
}

fn parse_seed(s: &str) -> Result<u64> {
    let r = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.with_context(|| format!("--seed {s:?}: not a number (decimal or 0x-hex)"))
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Send the members' tracing output to `DIR/members.log` (the terminal keeps the
/// timeline and the verdicts).
fn log_to(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = std::fs::File::create(dir.join("members.log"))
        .with_context(|| format!("creating {}/members.log", dir.display()))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn,sled=warn".into()),
        )
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}

/// Run one seed into `dir`; true when every check passed.
async fn one(opts: &Options, steps: &[Step], dir: &Path) -> Result<bool> {
    report::save_inputs(dir, opts, steps)?;
    println!("{}", report::header(opts, steps));
    let data = tempfile::tempdir_in(dir).context("creating the data dir")?;
    let mut progress = |line: String| println!("  {line}");
    let out = run::run(opts, steps, data.path(), &mut progress).await?;
    report::save_outputs(dir, &out.facts, &out.verdicts)?;
    report::print_verdicts(&mut std::io::stdout(), &out.verdicts);
    if out.passed() {
        drop(data);
    } else {
        let kept = dir.join("data");
        let _ = std::fs::rename(data.keep(), &kept);
        println!(
            "  violation: data dirs kept in {}; replay with: vigil-chaos replay {}",
            kept.display(),
            dir.display()
        );
    }
    let _ = std::io::stdout().flush();
    Ok(out.passed())
}

async fn cmd_run(a: RunArgs) -> Result<bool> {
    if a.tier != "inproc" {
        bail!(
            "--tier {}: only `inproc` exists so far (the process tier is being built)",
            a.tier
        );
    }
    if !(3..=7).contains(&a.members) {
        bail!("--members {}: use 3, 5 or 7", a.members);
    }
    if a.hosts < 4 || a.hosts > 2_000 {
        bail!("--hosts {}: use 4..2000", a.hosts);
    }
    let faults = FaultKind::parse_list(&a.faults).map_err(anyhow::Error::msg)?;
    let first = match &a.seed {
        Some(s) => parse_seed(s)?,
        None => random_seed(),
    };
    log_to(&a.out)?;
    let mut failed = Vec::new();
    for k in 0..a.seeds.max(1) {
        let seed = first.wrapping_add(k);
        let opts = Options::derive(
            seed,
            a.members,
            a.hosts,
            a.duration.as_millis() as u64,
            faults.clone(),
        );
        let steps = plan::schedule(&opts);
        let dir = a.out.join(format!("{seed:016x}"));
        if !one(&opts, &steps, &dir).await? {
            failed.push(seed);
        }
    }
    if a.seeds > 1 {
        println!(
            "{} of {} seeds passed{}",
            a.seeds as usize - failed.len(),
            a.seeds,
            if failed.is_empty() {
                String::new()
            } else {
                format!(
                    "; failed: {}",
                    failed
                        .iter()
                        .map(|s| format!("{s:#x}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
    }
    Ok(failed.is_empty())
}

async fn cmd_replay(dir: &Path) -> Result<bool> {
    let opts: Options = report::load(dir, "options.json")?;
    let steps: Vec<Step> = report::load(dir, "schedule.json")?;
    let out = dir.join("replay");
    log_to(&out)?;
    one(&opts, &steps, &out).await
}

fn cmd_check(dir: &Path) -> Result<bool> {
    let facts = report::load(dir, "facts.json")?;
    let verdicts = check::run_all(&facts);
    report::print_verdicts(&mut std::io::stdout(), &verdicts);
    Ok(verdicts.values().all(|v| v.pass))
}

async fn cmd_selftest(
    bugs: Option<String>,
    seeds: u64,
    seed: &str,
    duration: Duration,
    out: &Path,
) -> Result<bool> {
    let bugs: Vec<vigil::planted::Bug> = match bugs {
        None => vigil::planted::Bug::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(|b| b.trim().parse().map_err(anyhow::Error::msg))
            .collect::<Result<_>>()?,
    };
    log_to(out)?;
    let mut progress = |line: String| println!("  {line}");
    let findings = vigil_chaos::selftest::run(
        &bugs,
        parse_seed(seed)?,
        seeds,
        duration.as_millis() as u64,
        out,
        &mut progress,
    )
    .await?;
    for l in vigil_chaos::selftest::matrix(&findings) {
        println!("{l}");
    }
    Ok(findings.iter().all(|f| f.ok()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vigil-chaos: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let r = match cli.cmd {
        Cmd::Run(a) => rt.block_on(cmd_run(a)),
        Cmd::Replay { dir } => rt.block_on(cmd_replay(&dir)),
        Cmd::Check { dir } => cmd_check(&dir),
        Cmd::Selftest {
            bugs,
            seeds,
            seed,
            duration,
            out,
        } => rt.block_on(cmd_selftest(bugs, seeds, &seed, duration, &out)),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("vigil-chaos: {e:#}");
            ExitCode::from(2)
        }
    }
}
