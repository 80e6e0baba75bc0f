//! `vigil apply -f FILE [--dry-run] [--prune]`: declarative pools and hosts.
//!
//! The file is checked here first (syntax errors with line and column, schema and
//! value errors with the field path) and its `password_env` variables are read from
//! this process's environment, so secrets need not be in the file. The member plans
//! the diff against a linearizable read and commits it as one atomic command.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use vigil::api::types::{ApplyBody, ApplyResult};
use vigil::inventory::{self, error_text};
use vigil::state::model::Secret;

use super::client::ApiClient;
use super::output::{self, Output};

/// `vigil apply` flags.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Inventory YAML file (`-` for standard input). See docs/inventory.example.yaml.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
    /// Show what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also remove pools and hosts that are not in the file.
    #[arg(long)]
    pub prune: bool,
}

fn read_file(path: &PathBuf) -> Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the inventory from standard input")?;
        return Ok(s);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Check the file locally and resolve its `password_env` variables with `env`.
pub fn prepare(
    name: &str,
    yaml: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, Secret>> {
    let inv = inventory::parse(yaml).map_err(|e| anyhow!("{name}: {e}"))?;
    let mut vars = BTreeMap::new();
    let mut errors = Vec::new();
    for (path, var) in inv.password_envs() {
        match env(&var) {
            Some(v) if !v.is_empty() => {
                vars.insert(var, Secret(v));
            }
            Some(_) => errors.push(format!("{path}: environment variable {var} is empty")),
            None => errors.push(format!("{path}: environment variable {var} is not set")),
        }
    }
    if !errors.is_empty() {
        return Err(anyhow!("{name}: {}", error_text(&errors)));
    }
    Ok(vars)
}

/// Run `vigil apply`.
pub async fn run(api: &ApiClient, out: Output, args: ApplyArgs) -> Result<()> {
    let yaml = read_file(&args.file)?;
    let name = args.file.display().to_string();
    let env = prepare(&name, &yaml, &|v| std::env::var(v).ok())?;
    let body = ApplyBody {
        yaml,
        dry_run: args.dry_run,
        prune: args.prune,
        env,
    };
    let r: ApplyResult = api.post("/api/v1/apply", &body).await?;
    match out {
        Output::Json | Output::Yaml => output::structured(out, &r),
        Output::Table => {
            print_result(&r);
            Ok(())
        }
    }
}

fn print_result(r: &ApplyResult) {
    for c in &r.changes {
        outln!("{}", c.line);
    }
    for c in &r.kept {
        outln!("{}", c.line);
    }
    if r.unchanged > 0 {
        outln!("{} unchanged", r.unchanged);
    }
    let n = r.changes.len();
    if n == 0 {
        outln!("no changes");
    } else if r.dry_run {
        outln!("dry run: {n} change(s), nothing applied");
    } else if r.applied {
        outln!("applied {n} change(s) at revision {}", r.revision);
    }
}
