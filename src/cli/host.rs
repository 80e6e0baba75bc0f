//! `vigil host …`: add, list, show, remove, maintenance, explain, and the operator
//! actions retry / confirm-off / unfence.
//!
//! BMC passwords: `--fence …,password-env=VAR` reads the password from this process's
//! environment (preferred); `password=…` works but is visible in the process list,
//! so it warns.

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use vigil::api::types::{
    AdminBody, ExplainView, HostView, HostWrite, MaintenanceBody, Removed, TransitionView,
};
use vigil::inventory::{CheckDoc, FenceDoc, HostDoc, Text};
use vigil::state::model::Secret;

use super::client::ApiClient;
use super::output::{self, ago, enc, now_ms, opt, pairs, table, until, Output};
use super::pool::key_values;

/// `vigil host …`.
#[derive(Debug, Subcommand)]
pub enum HostCmd {
    /// Register a host in a pool.
    Add(HostAddArgs),
    /// Hosts with their HA state, power and owner.
    List {
        /// Only hosts of this pool.
        #[arg(long)]
        pool: Option<String>,
        /// Only hosts in this HA state (available, suspect, fenced, fence-failed, …).
        #[arg(long)]
        state: Option<String>,
    },
    /// One host: configuration (never the password) and HA state.
    Show {
        /// Host name.
        name: String,
    },
    /// Remove a host (refused while an action is in flight).
    Remove {
        /// Host name.
        name: String,
    },
    /// Take a host out of HA (on) or back (off).
    Maintenance {
        /// Host name.
        name: String,
        /// on or off.
        #[arg(value_enum)]
        mode: OnOff,
    },
    /// What vigil believes about a host, what it waits for, and whether it may act.
    Explain {
        /// Host name.
        name: String,
    },
    /// Fence a fence-failed host again, from the first level.
    Retry {
        /// Host name.
        name: String,
    },
    /// Confirm that a host is powered off (e.g. unplugged): it becomes fenced.
    ConfirmOff {
        /// Host name.
        name: String,
    },
    /// Return a fenced (or fence-failed) host to service.
    Unfence {
        /// Host name.
        name: String,
    },
}

/// on / off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// `vigil host add` flags.
#[derive(Debug, Args)]
pub struct HostAddArgs {
    /// Host name.
    pub name: String,
    /// Pool it belongs to.
    #[arg(long)]
    pub pool: String,
    /// Provider kind (hypervisor, storage, baremetal, …).
    #[arg(long)]
    pub kind: Option<String>,
    /// A label (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Health check, e.g. http:http://10.0.0.1:8080/health or tcp:10.0.0.1:22.
    #[arg(long, value_name = "KIND:TARGET")]
    pub health: Option<String>,
    /// Activity check, e.g. heartbeat-file:/mnt/shared/hb/node01.
    #[arg(long, value_name = "KIND:TARGET")]
    pub activity: Option<String>,
    /// A fence level (repeatable, in escalation order), e.g.
    /// kind=ipmi,address=10.0.1.1:623,username=admin,password-env=BMC_PW.
    /// Other keys become driver options.
    #[arg(long = "fence", value_name = "kind=K,address=A,...")]
    pub fence: Vec<String>,
    /// A host policy override, e.g. policy.recovery.enabled=false (repeatable).
    #[arg(long = "policy", value_name = "KEY=VALUE")]
    pub policy: Vec<String>,
    /// Add it in maintenance.
    #[arg(long)]
    pub maintenance: bool,
}

/// Parse `KIND:TARGET` (a bare `KIND` has an empty target, e.g. `sim`).
pub fn parse_check(flag: &str, s: &str) -> Result<CheckDoc> {
    let (kind, target) = s.split_once(':').unwrap_or((s, ""));
    if kind.is_empty() {
        bail!("{flag} {s:?}: expected KIND:TARGET, e.g. tcp:10.0.0.1:22");
    }
    Ok(CheckDoc {
        kind: kind.to_string(),
        target: target.to_string(),
        options: Default::default(),
    })
}

/// Parse one `--fence` value. Returns the level and whether a password was given on
/// the command line. `env` looks up `password-env` variables.
pub fn parse_fence(
    i: usize,
    s: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(FenceDoc, bool)> {
    let mut f = FenceDoc {
        driver: String::new(),
        address: String::new(),
        username: String::new(),
        password: None,
        password_env: None,
        options: Default::default(),
    };
    let mut inline_password = false;
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            bail!("--fence #{}: {part:?} is not KEY=VALUE", i + 1);
        };
        let v = v.to_string();
        match k.trim() {
            "kind" | "driver" => f.driver = v,
            "address" => f.address = v,
            "username" | "user" => f.username = v,
            "password" => {
                f.password = Some(Secret(v));
                inline_password = true;
            }
            "password-env" | "password_env" => {
                let Some(pw) = env(&v) else {
                    bail!(
                        "--fence #{}: password-env: environment variable {v} is not set",
                        i + 1
                    );
                };
                if pw.is_empty() {
                    bail!(
                        "--fence #{}: password-env: environment variable {v} is empty",
                        i + 1
                    );
                }
                f.password = Some(Secret(pw));
            }
            other => {
                f.options.insert(other.to_string(), Text(v));
            }
        }
    }
    if f.driver.is_empty() {
        bail!(
            "--fence #{}: kind=… is required (redfish, ipmi, ipmitool, script, sim)",
            i + 1
        );
    }
    Ok((f, inline_password))
}

impl HostAddArgs {
    /// The host document to send.
    pub fn to_doc(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<(HostDoc, bool)> {
        let mut fence = Vec::new();
        let mut inline = false;
        for (i, s) in self.fence.iter().enumerate() {
            let (f, warn) = parse_fence(i, s, env)?;
            inline |= warn;
            fence.push(f);
        }
        Ok((
            HostDoc {
                name: self.name.clone(),
                pool: self.pool.clone(),
                kind: self.kind.clone(),
                labels: key_values("--label", &self.labels)?,
                maintenance: Some(self.maintenance),
                health: self
                    .health
                    .as_deref()
                    .map(|s| parse_check("--health", s))
                    .transpose()?,
                activity: self
                    .activity
                    .as_deref()
                    .map(|s| parse_check("--activity", s))
                    .transpose()?,
                fence,
                policy: key_values("--policy", &self.policy)?,
            },
            inline,
        ))
    }
}

/// Run `vigil host …`.
pub async fn run(api: &ApiClient, out: Output, cmd: HostCmd) -> Result<()> {
    match cmd {
        HostCmd::Add(args) => {
            let (doc, inline) = args.to_doc(&|v| std::env::var(v).ok())?;
            if inline {
                eprintln!("warning: a password given with --fence password=… is visible in the process list; prefer password-env=VAR");
            }
            let w: HostWrite = api.post("/api/v1/hosts", &doc).await?;
            print_write(out, &w, "added")
        }
        HostCmd::List { pool, state } => {
            let mut q = Vec::new();
            if let Some(p) = pool {
                q.push(format!("pool={}", enc(&p)));
            }
            if let Some(s) = state {
                q.push(format!("state={}", enc(&s)));
            }
            let path = if q.is_empty() {
                "/api/v1/hosts".to_string()
            } else {
                format!("/api/v1/hosts?{}", q.join("&"))
            };
            let hosts: Vec<HostView> = api.get(&path).await?;
            match out {
                Output::Json | Output::Yaml => output::structured(out, &hosts),
                Output::Table => {
                    print_list(&hosts);
                    Ok(())
                }
            }
        }
        HostCmd::Show { name } => {
            let h: HostView = api.get(&format!("/api/v1/hosts/{}", enc(&name))).await?;
            match out {
                Output::Json | Output::Yaml => output::structured(out, &h),
                Output::Table => {
                    print_host(&h);
                    Ok(())
                }
            }
        }
        HostCmd::Remove { name } => {
            let r: Removed = api.delete(&format!("/api/v1/hosts/{}", enc(&name))).await?;
            match out {
                Output::Json | Output::Yaml => output::structured(out, &r),
                Output::Table => {
                    outln!("host {} removed   (revision {})", r.removed, r.revision);
                    Ok(())
                }
            }
        }
        HostCmd::Maintenance { name, mode } => {
            let w: HostWrite = api
                .put(
                    &format!("/api/v1/hosts/{}/maintenance", enc(&name)),
                    &MaintenanceBody {
                        on: mode == OnOff::On,
                    },
                )
                .await?;
            let what = if mode == OnOff::On {
                "maintenance on"
            } else {
                "maintenance off"
            };
            print_write(out, &w, what)
        }
        HostCmd::Explain { name } => {
            let e: ExplainView = api
                .get(&format!("/api/v1/hosts/{}/explain", enc(&name)))
                .await?;
            match out {
                Output::Json | Output::Yaml => output::structured(out, &e),
                Output::Table => {
                    print_explain(&e);
                    Ok(())
                }
            }
        }
        HostCmd::Retry { name } => admin(api, out, &name, "retry").await,
        HostCmd::ConfirmOff { name } => admin(api, out, &name, "confirm-off").await,
        HostCmd::Unfence { name } => admin(api, out, &name, "unfence").await,
    }
}

async fn admin(api: &ApiClient, out: Output, name: &str, op: &str) -> Result<()> {
    let w: HostWrite = api
        .post(
            &format!("/api/v1/hosts/{}/admin", enc(name)),
            &AdminBody { op: op.into() },
        )
        .await?;
    print_write(out, &w, op)
}

fn print_write(out: Output, w: &HostWrite, what: &str) -> Result<()> {
    match out {
        Output::Json | Output::Yaml => output::structured(out, w),
        Output::Table => {
            let h = &w.host;
            outln!(
                "host {} ({}) {what}: {}   (revision {})",
                h.name,
                h.pool,
                state_text(h),
                w.revision
            );
            if let Some(t) = &w.transition {
                outln!("{} -> {}: {}", t.from, t.to, t.reason);
            }
            if let Some(n) = &w.note {
                outln!("{n}");
            }
            Ok(())
        }
    }
}

fn state_text(h: &HostView) -> String {
    match &h.ineligible {
        Some(why) => format!("{} ({why})", h.state),
        None => h.state.clone(),
    }
}

fn print_list(hosts: &[HostView]) {
    let now = now_ms();
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            vec![
                h.name.clone(),
                h.pool.clone(),
                h.state.clone(),
                h.power.clone(),
                opt(h.owner),
                ago(h.since_ms, now),
            ]
        })
        .collect();
    outln!(
        "{}",
        table(&["NAME", "POOL", "STATE", "POWER", "OWNER", "SINCE"], &rows)
    );
}

fn print_host(h: &HostView) {
    let now = now_ms();
    outln!("host:         {}", h.name);
    outln!("pool:         {}", h.pool);
    outln!("kind:         {}", h.kind);
    outln!("labels:       {}", pairs(&h.labels));
    outln!(
        "state:        {} since {}",
        state_text(h),
        ago(h.since_ms, now)
    );
    outln!("power:        {}", h.power);
    outln!("owner:        {} (epoch {})", opt(h.owner), h.epoch);
    outln!("maintenance:  {}", if h.maintenance { "on" } else { "off" });
    let check = |c: &Option<vigil::api::types::CheckView>| match c {
        Some(c) if c.options.is_empty() => format!("{} {}", c.kind, c.target),
        Some(c) => format!("{} {} ({})", c.kind, c.target, pairs(&c.options)),
        None => "-".into(),
    };
    outln!("health:       {}", check(&h.health));
    outln!("activity:     {}", check(&h.activity));
    outln!("overrides:    {}", pairs(&h.policy));
    if let Some(i) = h.intent {
        outln!("intent:       #{i} in flight");
    }
    if let Some(b) = &h.blocked {
        outln!("blocked:      {b}");
    }
    if let Some(a) = &h.alarm {
        outln!("ALARM:        {a}");
    }
    outln!();
    if h.fence.is_empty() {
        outln!("fence levels: none (the host cannot be fenced, so it is ineligible)");
        return;
    }
    let rows: Vec<Vec<String>> = h
        .fence
        .iter()
        .enumerate()
        .map(|(i, f)| {
            vec![
                (i + 1).to_string(),
                f.kind.clone(),
                f.address.clone(),
                if f.username.is_empty() {
                    "-".into()
                } else {
                    f.username.clone()
                },
                if f.password_set { "set" } else { "-" }.into(),
                pairs(&f.options),
            ]
        })
        .collect();
    outln!(
        "{}",
        table(
            &["LEVEL", "DRIVER", "ADDRESS", "USERNAME", "PASSWORD", "OPTIONS"],
            &rows
        )
    );
}

/// Rows of the transitions table.
fn transition_rows(ts: &[TransitionView], now: u64) -> Vec<Vec<String>> {
    ts.iter()
        .rev()
        .map(|t| {
            vec![
                ago(t.at_ms, now),
                format!("{} -> {}", t.from, t.to),
                t.reason.clone(),
                t.evidence.clone(),
            ]
        })
        .collect()
}

fn print_explain(e: &ExplainView) {
    let now = e.now_ms;
    let why = e
        .ineligible
        .as_ref()
        .map(|w| format!(" ({w})"))
        .unwrap_or_default();
    outln!(
        "{} (pool {}): {}{why} since {}, power {}, owner {} (epoch {})",
        e.host,
        e.pool,
        e.state,
        ago(e.since_ms, now),
        e.power,
        opt(e.owner),
        e.epoch
    );
    outln!("waiting for: {}", e.waiting_for);
    if let Some(t) = e.next_at_ms {
        outln!("next: {}", until(t, now));
    }
    outln!("can act: {}", e.can_act);
    if let Some(b) = &e.blocked {
        outln!("blocked: {b}");
    }
    if let Some(a) = &e.alarm {
        outln!("ALARM: {a}");
    }
    if let Some(i) = &e.intent {
        let what = match (i.kind.as_str(), i.level, &i.driver, i.attempt) {
            ("fence", Some(l), Some(d), _) => format!("fence level {} ({d})", l + 1),
            (_, _, _, Some(a)) => format!("power cycle, attempt {a}"),
            (k, _, _, _) => k.to_string(),
        };
        outln!(
            "intent: #{} {what}, {}, deadline {}",
            i.id,
            i.state,
            until(i.deadline_ms, now)
        );
    }
    let g = &e.pool_gate;
    outln!(
        "pool: {}{}; fence budget left {}",
        g.state,
        if g.reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", g.reason)
        },
        g.fence_budget_left
    );
    outln!();
    if e.transitions.is_empty() {
        outln!("no transitions yet");
    } else {
        outln!("last transitions (newest first):");
        outln!(
            "{}",
            table(
                &["WHEN", "CHANGE", "REASON", "EVIDENCE"],
                &transition_rows(&e.transitions, now)
            )
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_flags() {
        let env = |v: &str| (v == "PW").then(|| "s3cr3t".to_string());
        let (f, inline) = parse_fence(
            0,
            "kind=ipmi,address=127.0.0.1:9001,username=admin,password-env=PW,insecure=true",
            &env,
        )
        .unwrap();
        assert!(!inline);
        assert_eq!(f.driver, "ipmi");
        assert_eq!(f.password.unwrap().expose(), "s3cr3t");
        assert_eq!(f.options["insecure"].0, "true");
        let (_, inline) = parse_fence(0, "kind=sim,address=x,password=p", &env).unwrap();
        assert!(inline);
        let e = parse_fence(1, "kind=ipmi,password-env=NOPE", &env).unwrap_err();
        assert!(e.to_string().contains("NOPE is not set"), "{e}");
        assert!(parse_fence(0, "address=x", &env).is_err());
        let c = parse_check("--health", "http:http://10.0.0.1:8080/h").unwrap();
        assert_eq!(
            (c.kind.as_str(), c.target.as_str()),
            ("http", "http://10.0.0.1:8080/h")
        );
        assert_eq!(parse_check("--health", "sim").unwrap().target, "");
    }
}
