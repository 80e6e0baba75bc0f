//! HA benchmark: time from a host crash to its verified fence, and the cost of a
//! healthy fleet in steady state. 3 in-process members (real Raft over loopback HTTP,
//! sled with durable flushes), the HA runtime, and a simulated fleet whose BMCs
//! answer at once; times are read from the fleet's ground-truth log (when the power
//! really went off), not from what vigil reports.
//!
//! - `crash→fence`: one pool per profile (`fast`, and the declared defaults with
//!   recovery off, since a default pool power-cycles a crashed host first); hosts are
//!   crashed one after another, `VIGIL_BENCH_STAGGER_MS` apart (default 2000), and
//!   each is timed from its crash to the real power-off. Budget and breaker are
//!   raised so that they do not hold any of these independent crashes.
//! - `steady state`: `VIGIL_BENCH_HOSTS` (default 10 000) healthy hosts checked every
//!   5 s (default policy) for 60 s: Raft entries per second and CPU.
//!
//! Run: `cargo bench --bench ha`. Crashes per profile: `VIGIL_BENCH_ROUNDS` (default
//! 20). Without `--bench` it does nothing unless `VIGIL_BENCH_ROUNDS` is set.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::time::Instant;
use vigil::dev::DevCluster;
use vigil::engine::policy::{parse_override, FAST_PROFILE};
use vigil::engine::HaState;
use vigil::fleet::{pool, sim_host};
use vigil::settings::{Scope, SettingValue};
use vigil::state::{Command, InventoryChange, Response, Stamp};
use vigil::worker::{Providers, WorkerConfig};
use vigil_providers::sim::SimFleet;
use vigil_raft::RaftTimings;

fn env(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    if !bench_mode && std::env::var("VIGIL_BENCH_ROUNDS").is_err() {
        println!("ha: skipped (run `cargo bench --bench ha`)");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run()) {
        eprintln!("ha benchmark failed: {e:#}");
        std::process::exit(1);
    }
}

fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, SettingValue> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), parse_override(k, v, Scope::Pool).unwrap()))
        .collect()
}

fn stamp() -> Stamp {
    Stamp {
        by: 0,
        at_ms: vigil::api::settings::now_ms(),
    }
}

async fn start(fleet: &SimFleet, dir: &std::path::Path) -> Result<DevCluster> {
    DevCluster::start_with(
        3,
        dir,
        RaftTimings::default(),
        Some((
            Providers {
                sim: Some(fleet.clone()),
                label: String::new(),
            },
            WorkerConfig::default(),
        )),
    )
    .await
    .context("starting the cluster")
}

async fn commit(c: &DevCluster, cmd: Command) -> Result<()> {
    match c.members[0].member.write(cmd).await? {
        Response::Rejected { reason } => bail!("rejected: {reason}"),
        _ => Ok(()),
    }
}

async fn wait(
    c: &DevCluster,
    secs: u64,
    f: impl Fn(&vigil::state::VigilState) -> bool,
) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if c.members[0].member.read_local(&f) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("condition not reached within {secs} s")
}

async fn run() -> Result<()> {
    let rounds = env("VIGIL_BENCH_ROUNDS", 20) as usize;
    let stagger = Duration::from_millis(env("VIGIL_BENCH_STAGGER_MS", 2000));
    let dir = tempfile::tempdir()?;
    let fleet = SimFleet::new();
    let per_pool = 200usize;
    let profiles: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("fast", FAST_PROFILE.to_vec()),
        ("default", vec![("policy.recovery.enabled", "false")]),
    ];
    let mut change = InventoryChange::default();
    for (name, pairs) in &profiles {
        let mut p = pairs.clone();
        p.push(("policy.fence.budget", "10000"));
        p.push(("policy.breaker.ratio", "0.9"));
        change.pools.push(pool(name, true, overrides(&p)));
        for i in 0..per_pool {
            let h = format!("{name}-{i:03}");
            fleet.add_host(h.clone())?;
            change.hosts.push(sim_host(&h, name, 1));
        }
    }
    let c = start(&fleet, dir.path()).await?;
    commit(
        &c,
        Command::ApplyInventory {
            change,
            stamp: stamp(),
        },
    )
    .await?;
    wait(&c, 60, |s| {
        s.hosts.values().all(|h| h.ha.state == HaState::Available)
    })
    .await?;

    let mut results = Vec::new();
    for (name, _) in &profiles {
        let victims: Vec<String> = (0..rounds)
            .map(|i| format!("{name}-{:03}", i * 7 % per_pool))
            .collect();
        let mut crashed_at = BTreeMap::new();
        for v in &victims {
            fleet.crash(v)?;
            crashed_at.insert(v.clone(), Instant::now());
            tokio::time::sleep(stagger).await;
        }
        // Default policy: 3 failed checks 5 s apart, then 3 of 5 silent activity
        // rounds 10/20/40 s apart: allow several minutes.
        let end = Instant::now() + Duration::from_secs(600);
        let mut times = Vec::new();
        loop {
            let truth = fleet.ground_truth();
            times.clear();
            for v in &victims {
                if let Some(off) = truth.iter().find(|c| &c.host == v && c.is_power_off()) {
                    times.push((off.at - crashed_at[v]).as_secs_f64() * 1000.0);
                }
            }
            if times.len() == victims.len() {
                break;
            }
            if Instant::now() > end {
                bail!(
                    "{name}: only {} of {} crashed hosts fenced in time",
                    times.len(),
                    victims.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let offs = fleet
            .ground_truth()
            .iter()
            .filter(|c| c.is_power_off())
            .count();
        eprintln!(
            "{name}: {} crashes fenced; {offs} power-offs in ground truth so far",
            times.len()
        );
        results.push((name.to_string(), times.clone()));
    }
    let total_offs = fleet
        .ground_truth()
        .iter()
        .filter(|c| c.is_power_off())
        .count();
    if total_offs != rounds * profiles.len() {
        bail!(
            "{total_offs} power-offs in ground truth for {} crashes",
            rounds * profiles.len()
        );
    }
    c.stop().await?;

    let steady = steady_state(env("VIGIL_BENCH_HOSTS", 10_000) as usize).await?;
    report(&results, stagger, steady);
    Ok(())
}

/// Process CPU time (user + system), from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    // Fields after the comm: state is index 0, utime 11, stime 12 (clock ticks).
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

struct Steady {
    hosts: usize,
    secs: f64,
    entries_per_s: f64,
    checks_per_s: f64,
    cpu_percent_per_member: f64,
}

async fn steady_state(n: usize) -> Result<Steady> {
    let dir = tempfile::tempdir()?;
    let fleet = SimFleet::new();
    let mut change = InventoryChange::default();
    change.pools.push(pool("steady", true, BTreeMap::new()));
    for i in 0..n {
        let h = format!("s{i:06}");
        fleet.add_host(h.clone())?;
        change.hosts.push(sim_host(&h, "steady", 1));
    }
    let c = start(&fleet, dir.path()).await?;
    commit(
        &c,
        Command::ApplyInventory {
            change,
            stamp: stamp(),
        },
    )
    .await?;
    wait(&c, 120, |s| {
        s.hosts.values().all(|h| h.ha.state == HaState::Available)
    })
    .await?;
    // Let the first power reads and health rounds settle.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let index = |c: &DevCluster| c.members[0].member.last_applied().unwrap_or(0);
    let checks = |c: &DevCluster| {
        c.members
            .iter()
            .map(|m| {
                m.worker.as_ref().map_or(0, |w| {
                    w.shared
                        .metrics
                        .checks_run(vigil::metrics::runtime::CheckKind::Health)
                })
            })
            .sum::<u64>()
    };
    let (i0, k0, cpu0, t0) = (index(&c), checks(&c), cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(60)).await;
    let secs = t0.elapsed().as_secs_f64();
    let (i1, k1, cpu1) = (index(&c), checks(&c), cpu_time());
    c.stop().await?;
    Ok(Steady {
        hosts: n,
        secs,
        entries_per_s: (i1 - i0) as f64 / secs,
        checks_per_s: (k1 - k0) as f64 / secs,
        cpu_percent_per_member: (cpu1 - cpu0).as_secs_f64() / secs * 100.0 / 3.0,
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(results: &[(String, Vec<f64>)], stagger: Duration, s: Steady) {
    println!();
    println!("### Host crash → verified power-off (3 in-process members, simulated fleet, release build)");
    println!();
    println!(
        "`cargo bench --bench ha`; crashes {} ms apart; time from the crash to the real power-off in the sim's ground truth, ms.",
        stagger.as_millis()
    );
    println!();
    println!("| profile | crashes | p50 | p90 | p99 | max | min |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, t) in results {
        let mut v = t.clone();
        v.sort_by(f64::total_cmp);
        println!(
            "| {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            v.len(),
            percentile(&v, 50.0),
            percentile(&v, 90.0),
            percentile(&v, 99.0),
            v[v.len() - 1],
            v[0]
        );
    }
    println!();
    println!(
        "### Steady state: {} healthy hosts checked every 5 s",
        s.hosts
    );
    println!();
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| window | {:.0} s |", s.secs);
    println!(
        "| Raft entries committed per second | {:.2} |",
        s.entries_per_s
    );
    println!(
        "| health checks per second (all members) | {:.0} |",
        s.checks_per_s
    );
    println!(
        "| CPU per member (process CPU / 3, in-process cluster) | {:.1} % |",
        s.cpu_percent_per_member
    );
}
