//! `vigil pool …`: create, list, show, enable/disable, set-policy, remove.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use clap::Subcommand;
use vigil::api::types::{PoolView, PoolWrite, Removed, SetPolicyBody};
use vigil::inventory::{PoolDoc, Text};

use super::client::ApiClient;
use super::output::{self, ago, enc, now_ms, opt, pairs, table, until, Output};

/// `vigil pool …`.
#[derive(Debug, Subcommand)]
pub enum PoolCmd {
    /// Create a pool (HA enabled unless --disabled).
    Create {
        /// Pool name.
        name: String,
        /// Create it with HA disabled.
        #[arg(long)]
        disabled: bool,
        /// A policy override, e.g. policy.fence.budget=5 (repeatable).
        #[arg(long = "policy", value_name = "KEY=VALUE")]
        policy: Vec<String>,
    },
    /// Pools with their state, host counts, fence budget and breaker.
    List,
    /// One pool: state, breaker, budget, counts, overrides and effective policy.
    Show {
        /// Pool name.
        name: String,
    },
    /// Enable HA for a pool.
    Enable {
        /// Pool name.
        name: String,
    },
    /// Disable HA for a pool (its hosts stop being handled).
    Disable {
        /// Pool name.
        name: String,
    },
    /// Change a pool's policy overrides.
    SetPolicy {
        /// Pool name.
        name: String,
        /// Overrides to set, e.g. policy.fence.budget=5.
        #[arg(value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// An override to remove (back to the cluster value); repeatable.
        #[arg(long, value_name = "KEY")]
        unset: Vec<String>,
        /// Set every key of a profile first (`fast`: host death to fence in seconds).
        #[arg(long)]
        profile: Option<String>,
    },
    /// Remove an empty pool.
    Remove {
        /// Pool name.
        name: String,
    },
}

/// Parse `KEY=VALUE` arguments of `flag`.
pub fn key_values(flag: &str, args: &[String]) -> Result<BTreeMap<String, Text>> {
    let mut out = BTreeMap::new();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            bail!("{flag} {a:?}: expected KEY=VALUE");
        };
        if k.trim().is_empty() {
            bail!("{flag} {a:?}: empty key");
        }
        if out
            .insert(k.trim().to_string(), Text(v.to_string()))
            .is_some()
        {
            bail!("{flag}: {k} given twice");
        }
    }
    Ok(out)
}

/// Run `vigil pool …`.
pub async fn run(api: &ApiClient, out: Output, cmd: PoolCmd) -> Result<()> {
    match cmd {
        PoolCmd::Create {
            name,
            disabled,
            policy,
        } => {
            let doc = PoolDoc {
                name,
                enabled: Some(!disabled),
                policy: key_values("--policy", &policy)?,
            };
            let w: PoolWrite = api.post("/api/v1/pools", &doc).await?;
            print_write(out, &w, "created")
        }
        PoolCmd::List => {
            let pools: Vec<PoolView> = api.get("/api/v1/pools").await?;
            match out {
                Output::Json | Output::Yaml => output::structured(out, &pools),
                Output::Table => {
                    print_list(&pools);
                    Ok(())
                }
            }
        }
        PoolCmd::Show { name } => {
            let p: PoolView = api.get(&format!("/api/v1/pools/{}", enc(&name))).await?;
            match out {
                Output::Json | Output::Yaml => output::structured(out, &p),
                Output::Table => {
                    print_pool(&p);
                    Ok(())
                }
            }
        }
        PoolCmd::Enable { name } => {
            let w: PoolWrite = api
                .post(
                    &format!("/api/v1/pools/{}/enable", enc(&name)),
                    &serde_json::json!({}),
                )
                .await?;
            print_write(out, &w, "enabled")
        }
        PoolCmd::Disable { name } => {
            let w: PoolWrite = api
                .post(
                    &format!("/api/v1/pools/{}/disable", enc(&name)),
                    &serde_json::json!({}),
                )
                .await?;
            print_write(out, &w, "disabled")
        }
        PoolCmd::SetPolicy {
            name,
            set,
            unset,
            profile,
        } => {
            let body = SetPolicyBody {
                set: key_values("set-policy", &set)?,
                unset,
                profile,
            };
            let w: PoolWrite = api
                .put(&format!("/api/v1/pools/{}/policy", enc(&name)), &body)
                .await?;
            print_write(out, &w, "policy updated")
        }
        PoolCmd::Remove { name } => {
            let r: Removed = api.delete(&format!("/api/v1/pools/{}", enc(&name))).await?;
            match out {
                Output::Json | Output::Yaml => output::structured(out, &r),
                Output::Table => {
                    outln!("pool {} removed   (revision {})", r.removed, r.revision);
                    Ok(())
                }
            }
        }
    }
}

fn print_write(out: Output, w: &PoolWrite, what: &str) -> Result<()> {
    match out {
        Output::Json | Output::Yaml => output::structured(out, w),
        Output::Table => {
            let p = &w.pool;
            outln!(
                "pool {} {what}: {}{}   (revision {})",
                p.name,
                p.state,
                if p.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", p.reason)
                },
                w.revision
            );
            if !p.policy.is_empty() {
                outln!("overrides: {}", pairs(&p.policy));
            }
            Ok(())
        }
    }
}

fn breaker(p: &PoolView) -> String {
    if p.breaker.open {
        "open".into()
    } else {
        "closed".into()
    }
}

fn print_list(pools: &[PoolView]) {
    let rows: Vec<Vec<String>> = pools
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.state.clone(),
                p.counts.hosts.to_string(),
                p.counts.available.to_string(),
                p.counts.failing.to_string(),
                format!("{}/{}", p.fence_budget.used, p.fence_budget.max),
                breaker(p),
                if p.reason.is_empty() {
                    "-".into()
                } else {
                    p.reason.clone()
                },
            ]
        })
        .collect();
    outln!(
        "{}",
        table(
            &[
                "NAME",
                "STATE",
                "HOSTS",
                "AVAILABLE",
                "FAILING",
                "FENCES",
                "BREAKER",
                "REASON"
            ],
            &rows
        )
    );
}

fn print_pool(p: &PoolView) {
    let now = now_ms();
    outln!(
        "pool {}: {} since {} (HA {})",
        p.name,
        p.state,
        ago(p.since_ms, now),
        if p.enabled { "enabled" } else { "disabled" }
    );
    if !p.reason.is_empty() {
        outln!("reason: {}", p.reason);
    }
    match (&p.breaker.open, &p.breaker.reason) {
        (true, r) => outln!(
            "breaker: open since {}: {}{}",
            opt(p.breaker.open_since_ms.map(|t| ago(t, now))),
            r.clone().unwrap_or_default(),
            p.breaker
                .clear_since_ms
                .map(|t| format!(" (clear since {})", ago(t, now)))
                .unwrap_or_default()
        ),
        (false, _) => outln!("breaker: closed"),
    }
    let b = &p.fence_budget;
    outln!(
        "fence budget: {}/{} used, {} left{}",
        b.used,
        b.max,
        b.left,
        b.next_free_at_ms
            .map(|t| format!(" (oldest leaves the window {})", until(t, now)))
            .unwrap_or_default()
    );
    let c = &p.counts;
    outln!(
        "hosts: {} ({} HA-enabled, {} available, {} failing)",
        c.hosts,
        c.enabled,
        c.available,
        c.failing
    );
    outln!("overrides: {}", pairs(&p.policy));
    outln!();
    let rows: Vec<Vec<String>> = p
        .effective_policy
        .iter()
        .map(|v| vec![v.key.clone(), v.value.clone(), v.source.clone()])
        .collect();
    outln!("{}", table(&["POLICY", "VALUE", "SOURCE"], &rows));
}
