//! Takeover benchmark on real processes: time from a host crash to its verified
//! fence when nothing else happens, when the host's owner is SIGKILLed at the crash,
//! and when the leader is SIGKILLed at the crash; and, when a power cycle heals the
//! host, time from the power coming back on to `available` when the owner was
//! SIGKILLed in the middle of the cycle.
//!
//! Set-up (per scenario, a fresh one): 3 `vigil serve` processes on 127.0.0.1
//! (tests/common/mod.rs, default timings), and per host one OpenIPMI `ipmi_sim` as its
//! BMC plus a host model (tests/common/lab.rs: HTTP health endpoint, heartbeat file,
//! both driven by the BMC's chassis power file). Hosts are registered with
//! `vigil apply -f` (`ipmi` fence level — vigil's native IPMI driver, lanplus — `http`
//! health, `heartbeat-file` activity); the pool gets `vigil pool set-policy POOL
//! --profile fast policy.fence.budget=1000` (the budget so that 20 fences an hour are
//! allowed), plus `policy.recovery.enabled=true` for the healed-cycle scenario.
//!
//! Each run: wait until every host is `available` and every member owns hosts; pick
//! the victim (its owner must not be the leader in the kill scenarios; the least
//! recently used such host); crash it (health endpoint 503 and heartbeat stopped at
//! once) and, in the same instant, SIGKILL the member of the scenario. Then an
//! external observer polls `GET /api/v1/hosts/NAME` on the running members every
//! 50 ms until it says `fenced`: that is the measured time, from the crash. The
//! power-off time from the chassis log (ground truth) and the host's transitions
//! (event `at_ms`, same machine clock) are printed per run. Each run also checks that
//! the BMC got exactly one power-off and no power-on. Then the killed member is
//! restarted, the host powered on again behind the BMC's back and repaired; vigil
//! sees the power and brings it back to `available`.
//!
//! Healed cycle: the victim crashes so that a reboot heals it; when the chassis log
//! shows the cycle's power-off, its owner is SIGKILLed; ipmi_sim powers the host on
//! again about a second later; measured: from that power-on (chassis log) to
//! `available` seen by the observer. A host is not reused within 125 s of its
//! cycle (the cycle guard of a dead executor lasts recovery.timeout 2 min + 1 s).
//!
//! Run: `cargo bench --bench takeover_proc` (release build; needs ipmi_sim:
//! `bash scripts/peers.sh install`). Runs per fence scenario: `VIGIL_BENCH_ROUNDS`
//! (default 20); healed-cycle runs: `VIGIL_BENCH_HEAL_ROUNDS` (default 8); a subset:
//! `VIGIL_BENCH_SCENARIOS=undisturbed,owner,leader,heal`. Without `--bench` it does
//! nothing unless `VIGIL_BENCH_ROUNDS` is set. Every wait is bounded.

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "../tests/support/cli.rs"]
mod cli;

#[path = "../tests/common/lab.rs"]
mod lab;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use lab::{wall_secs, Lab};
use tokio::time::Instant;

/// Hosts per pool: two per member.
const HOSTS: usize = 6;
/// Longest a crash may take to be fenced before the run is declared broken.
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// A host whose cycle's executor died is not crashed again before its guard is over.
const GUARD_PAUSE: Duration = Duration::from_secs(125);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    Nobody,
    Owner,
    Leader,
}

fn env_usize(key: &str, default: usize) -> usize {
    match std::env::var(key) {
        Err(_) => default,
        Ok(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("{key} must be a positive integer");
                std::process::exit(2);
            }
        },
    }
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    if !bench_mode && std::env::var("VIGIL_BENCH_ROUNDS").is_err() {
        println!("takeover_proc: skipped (run `cargo bench --bench takeover_proc`)");
        return;
    }
    let rounds = env_usize("VIGIL_BENCH_ROUNDS", 20);
    let heal_rounds = env_usize("VIGIL_BENCH_HEAL_ROUNDS", 8);
    let scenarios = std::env::var("VIGIL_BENCH_SCENARIOS")
        .unwrap_or_else(|_| "undisturbed,owner,leader,heal".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let res = rt.block_on(async {
        let mut tables = Vec::new();
        for s in scenarios.split(',').map(str::trim) {
            let t = match s {
                "undisturbed" => fence_scenario(Kill::Nobody, rounds).await?,
                "owner" => fence_scenario(Kill::Owner, rounds).await?,
                "leader" => fence_scenario(Kill::Leader, rounds).await?,
                "heal" => heal_scenario(heal_rounds).await?,
                other => bail!("unknown scenario {other:?}"),
            };
            println!("{t}");
            tables.push(t);
        }
        println!("\n==================== summary ====================\n");
        println!("| scenario | runs | p50 ms | p99 ms | max ms | min ms |");
        println!("|---|---:|---:|---:|---:|---:|");
        for t in &tables {
            println!("{}", t.lines().next().unwrap_or(""));
        }
        Ok::<(), anyhow::Error>(())
    });
    if let Err(e) = res {
        eprintln!("takeover_proc benchmark failed: {e:#}");
        std::process::exit(1);
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// First line: the summary table row; then the raw samples.
fn table(name: &str, samples: &[f64], extra: &str) -> String {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let raw = samples
        .iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "| {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} |\n\nRaw samples ({name}, ms, in run order): {raw}\n{extra}",
        s.len(),
        percentile(&s, 50.0),
        percentile(&s, 99.0),
        s[s.len() - 1],
        s[0]
    )
}

/// Ms from `wall0` (s) to `at_ms` (ms since the epoch).
fn since(wall0: f64, at_ms: u64) -> f64 {
    at_ms as f64 - wall0 * 1e3
}

/// The victim: least recently used host whose owner is running and, unless
/// `any_owner`, not the leader. Returns (host, owner).
async fn pick(
    lab: &Lab,
    leader: u64,
    any_owner: bool,
    used: &BTreeMap<String, Instant>,
) -> Result<(String, u64)> {
    let mut best: Option<(Option<Instant>, String, u64)> = None;
    for h in &lab.hosts {
        let v = lab.view(&h.name).await?;
        let Some(owner) = v.owner else { continue };
        if !any_owner && owner == leader {
            continue;
        }
        let last = used.get(&h.name).copied();
        if best.as_ref().is_none_or(|(b, _, _)| last < *b) {
            best = Some((last, h.name.clone(), owner));
        }
    }
    best.map(|(_, n, o)| (n, o))
        .context("no host fits (owner not the leader)")
}

/// A host's transitions after `wall0`, as (ms from wall0, "from -> to").
async fn transitions_since(lab: &Lab, host: &str, wall0: f64) -> Result<Vec<(f64, String)>> {
    Ok(lab
        .events(host)
        .await?
        .iter()
        .filter(|e| e["type"] == "host.transition")
        .filter_map(|e| {
            let at = e["at_ms"].as_u64()?;
            let t = since(wall0, at);
            // The text is "from -> to: reason".
            let text = e["text"].as_str()?;
            let change = text.split(": ").next()?.replace(" -> ", "->");
            (t >= 0.0).then_some((t, change))
        })
        .collect())
}

/// When (ms from wall0) the leader committed a reassignment after wall0, if it did.
async fn reassigned_since(lab: &Lab, wall0: f64) -> Result<Option<f64>> {
    let page: serde_json::Value = lab.get("/api/v1/events?type=config&limit=1000").await?;
    Ok(page["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["text"]
                .as_str()
                .is_some_and(|t| t.contains("assigned to new owners"))
        })
        .filter_map(|e| e["at_ms"].as_u64())
        .map(|at| since(wall0, at))
        .find(|&t| t >= 0.0))
}

async fn fence_lab() -> Result<Lab> {
    let mut lab = Lab::start(3).await?;
    lab.add_pool("fast", HOSTS, &["policy.fence.budget=1000"])
        .await?;
    Ok(lab)
}

async fn fence_scenario(kill: Kill, rounds: usize) -> Result<String> {
    let name = match kill {
        Kill::Nobody => "crash -> fenced, undisturbed",
        Kill::Owner => "crash -> fenced, owner SIGKILLed at the crash",
        Kill::Leader => "crash -> fenced, leader SIGKILLed at the crash",
    };
    eprintln!("\n=== {name}: {rounds} runs ===");
    let mut lab = fence_lab().await?;
    let mut used: BTreeMap<String, Instant> = BTreeMap::new();
    let mut samples = Vec::new();
    let mut offs = Vec::new();
    let mut violations = Vec::new();
    for run in 1..=rounds {
        lab.wait_settled("fast", Duration::from_secs(120))
            .await
            .with_context(|| format!("before run {run}"))?;
        let leader = lab.c.wait_leader(None, Duration::from_secs(30)).await?;
        let (host, owner) = pick(&lab, leader, kill == Kill::Nobody, &used).await?;
        used.insert(host.clone(), Instant::now());
        let victim = match kill {
            Kill::Nobody => None,
            Kill::Owner => Some(owner),
            Kill::Leader => Some(leader),
        };
        let before = lab.host(&host).bmc.power_sets().len();

        let t0 = Instant::now();
        let wall0 = wall_secs();
        lab.host(&host).model.crash(false);
        if let Some(id) = victim {
            lab.c.kill9(id);
        }
        let seen = lab
            .wait_state(&host, "fenced", RUN_LIMIT)
            .await
            .with_context(|| format!("run {run}: {host}"))?;
        let took = (seen - t0).as_secs_f64() * 1e3;

        let sets = lab.host(&host).bmc.power_sets();
        let new = &sets[before..];
        let off = new.iter().find(|s| !s.on).map(|s| (s.at - wall0) * 1e3);
        if new.len() != 1 || new[0].on {
            violations.push(format!("run {run} ({host}): chassis sets {new:?}"));
        }
        let steps = transitions_since(&lab, &host, wall0).await?;
        let moved = if victim.is_some() {
            reassigned_since(&lab, wall0).await?
        } else {
            None
        };
        let first = |to: &str| {
            steps
                .iter()
                .find(|(_, s)| s.ends_with(to))
                .map_or("-".into(), |(t, _)| format!("{t:.0}"))
        };
        eprintln!(
            "run {run:>2}: {host} (owner {owner}, leader {leader}, killed {victim:?}): fenced seen {took:.0} ms, power off {} ms; suspect {} | fencing {} | reassigned {} ms; {} transitions: {}",
            off.map_or("-".into(), |o| format!("{o:.0}")),
            first("->suspect"),
            first("->fencing"),
            moved.map_or("-".into(), |m| format!("{m:.0}")),
            steps.len(),
            steps
                .iter()
                .map(|(t, s)| format!("{t:.0} {s}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        samples.push(took);
        if let Some(o) = off {
            offs.push(o);
        }

        // Restore: the killed member comes back, the host is repaired and powered on.
        if let Some(id) = victim {
            lab.c
                .restart(id)
                .await
                .with_context(|| format!("restarting member {id}"))?;
            lab.c.wait_caught_up(id, Duration::from_secs(120)).await?;
        }
        let h = lab.host(&host);
        h.model.repair();
        h.bmc.set_power(true)?;
        lab.wait_state(&host, "available", Duration::from_secs(60))
            .await
            .with_context(|| format!("run {run}: {host} back to available"))?;
    }
    let mut extra = String::new();
    if !offs.is_empty() {
        let mut s = offs.clone();
        s.sort_by(f64::total_cmp);
        extra.push_str(&format!(
            "Crash -> power off (chassis log): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms\n",
            percentile(&s, 50.0),
            percentile(&s, 99.0),
            s[s.len() - 1]
        ));
    }
    extra.push_str(&format!(
        "Runs with other than exactly one power-off and no power-on: {}{}\n",
        violations.len(),
        if violations.is_empty() {
            String::new()
        } else {
            format!(": {violations:?}")
        }
    ));
    Ok(table(name, &samples, &extra))
}

async fn heal_scenario(rounds: usize) -> Result<String> {
    let name = "healed cycle: power back on -> available, owner SIGKILLed mid-cycle";
    eprintln!("\n=== {name}: {rounds} runs ===");
    let mut lab = Lab::start(3).await?;
    lab.add_pool("heal", HOSTS, &["policy.recovery.enabled=true"])
        .await?;
    let mut used: BTreeMap<String, Instant> = BTreeMap::new();
    let mut samples = Vec::new();
    let mut from_kill = Vec::new();
    let mut violations = Vec::new();
    for run in 1..=rounds {
        lab.wait_settled("heal", Duration::from_secs(120))
            .await
            .with_context(|| format!("before run {run}"))?;
        let leader = lab.c.wait_leader(None, Duration::from_secs(30)).await?;
        let (host, owner) = pick(&lab, leader, false, &used).await?;
        if let Some(t) = used.get(&host) {
            let wait = GUARD_PAUSE.saturating_sub(t.elapsed());
            if !wait.is_zero() {
                eprintln!("waiting {wait:?} for {host}'s last cycle guard to pass");
                tokio::time::sleep(wait).await;
            }
        }
        let before = lab.host(&host).bmc.power_sets().len();
        let wall0 = wall_secs();
        lab.host(&host).model.crash(true);
        let end = Instant::now() + RUN_LIMIT;
        let off = loop {
            let sets = lab.host(&host).bmc.power_sets();
            if let Some(s) = sets[before..].iter().find(|s| !s.on) {
                break *s;
            }
            if Instant::now() >= end {
                bail!("run {run}: no power cycle of {host} within {RUN_LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        lab.c.kill9(owner);
        let killed = wall_secs();
        used.insert(host.clone(), Instant::now());
        lab.wait_state(&host, "available", Duration::from_secs(60))
            .await
            .with_context(|| format!("run {run}: {host}"))?;
        let available = wall_secs();
        let sets = lab.host(&host).bmc.power_sets();
        let new = &sets[before..];
        let Some(on) = new.iter().find(|s| s.on && s.at >= off.at) else {
            bail!("run {run}: no power-on after the cycle of {host}: {new:?}");
        };
        if new.iter().filter(|s| !s.on).count() != 1 {
            violations.push(format!("run {run} ({host}): chassis sets {new:?}"));
        }
        let took = (available - on.at) * 1e3;
        let steps = transitions_since(&lab, &host, wall0).await?;
        eprintln!(
            "run {run:>2}: {host} (owner {owner} killed {:.0} ms after the power-off at {:.0} ms; leader {leader}): power on at {:.0} ms, available seen {took:.0} ms after it ({:.0} ms after the kill); transitions: {}",
            (killed - off.at) * 1e3,
            (off.at - wall0) * 1e3,
            (on.at - wall0) * 1e3,
            (available - killed) * 1e3,
            steps
                .iter()
                .map(|(t, s)| format!("{t:.0} {s}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if steps.iter().any(|(_, s)| s.ends_with("fencing")) {
            violations.push(format!("run {run} ({host}): a fence started"));
        }
        samples.push(took);
        from_kill.push((available - killed) * 1e3);
        lab.c
            .restart(owner)
            .await
            .with_context(|| format!("restarting member {owner}"))?;
        lab.c
            .wait_caught_up(owner, Duration::from_secs(120))
            .await?;
    }
    let mut s = from_kill.clone();
    s.sort_by(f64::total_cmp);
    let extra = format!(
        "From the kill to available: p50 {:.0} ms, max {:.0} ms\nRuns with a second power-off or a fence: {}{}\n",
        percentile(&s, 50.0),
        s[s.len() - 1],
        violations.len(),
        if violations.is_empty() {
            String::new()
        } else {
            format!(": {violations:?}")
        }
    );
    Ok(table(name, &samples, &extra))
}
