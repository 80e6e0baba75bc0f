//! Reassignment benchmark: how long after a SIGKILL of a member every host it owned
//! has a live owner again, with 3 real `vigil serve` processes on loopback.
//!
//! Set-up: one enabled pool of `VIGIL_BENCH_HOSTS` hosts (default 300), spread over
//! the three members by the leader's assignment. Each round SIGKILLs one member —
//! alternately a follower and the leader — then polls a survivor's host list every
//! 20 ms until no host names the dead member as owner and every host has an owner.
//! The time runs from the kill. It includes the member lease (default 2 s: the
//! leader must not declare a member dead earlier), and, when the leader was killed,
//! the election and the new leader's grace of one lease. The killed member is then
//! restarted, must be declared alive and get its share back before the next round.
//!
//! The hosts' checks and drivers are not exercised here (a process has no simulated
//! fleet): this measures liveness detection and assignment. The crash-to-fence
//! times are in `benches/ha.rs`.
//!
//! Run: `cargo bench --bench reassign` (release build). Rounds: `VIGIL_BENCH_ROUNDS`
//! (default 20). Without `--bench` it does nothing unless `VIGIL_BENCH_ROUNDS` is set.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::ProcCluster;
use serde_json::Value;

const POLL: Duration = Duration::from_millis(20);
const ROUND_LIMIT: Duration = Duration::from_secs(60);

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let rounds_env = std::env::var("VIGIL_BENCH_ROUNDS").ok();
    if !bench_mode && rounds_env.is_none() {
        println!("reassign: skipped (run `cargo bench --bench reassign`)");
        return;
    }
    let rounds: usize = rounds_env.and_then(|r| r.parse().ok()).unwrap_or(20).max(2);
    let hosts: usize = std::env::var("VIGIL_BENCH_HOSTS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(300);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(rounds, hosts)) {
        eprintln!("reassign benchmark failed: {e:#}");
        std::process::exit(1);
    }
}

/// Owner of every host, from member `via`.
async fn owners(c: &ProcCluster, via: u64) -> Result<BTreeMap<String, Option<u64>>> {
    let v: Value = c
        .get_json_timeout(via, "/api/v1/hosts", Duration::from_secs(2))
        .await?;
    let list = v
        .as_array()
        .or_else(|| v.get("hosts").and_then(Value::as_array))
        .context("host list")?;
    Ok(list
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap_or_default().to_string(),
                h["owner"].as_u64(),
            )
        })
        .collect())
}

async fn run(rounds: usize, n_hosts: usize) -> Result<()> {
    let run_deadline = Instant::now() + Duration::from_secs(120 + 120 * rounds as u64);
    let mut c = ProcCluster::start(3).await?;
    let leader = c.wait_leader(None, Duration::from_secs(30)).await?;
    let mut yaml = String::from("pools:\n  - name: bench\n    enabled: true\nhosts:\n");
    for i in 0..n_hosts {
        yaml.push_str(&format!("  - {{name: h{i:05}, pool: bench}}\n"));
    }
    c.post_json(
        leader,
        "/api/v1/apply",
        &serde_json::json!({ "yaml": yaml }),
    )
    .await
    .context("applying the inventory")?;
    wait_balanced(&c, leader, n_hosts, 3).await?;
    let (mut follower_kill, mut leader_kill) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        if Instant::now() >= run_deadline {
            bail!(
                "benchmark exceeded its time limit after {} rounds",
                round - 1
            );
        }
        let leader = c.wait_leader(None, Duration::from_secs(30)).await?;
        let kill_leader = round % 2 == 0;
        let victim = if kill_leader {
            leader
        } else {
            *c.ids().iter().find(|&&i| i != leader).unwrap()
        };
        let via = *c.ids().iter().find(|&&i| i != victim).unwrap();
        let before = owners(&c, via).await?;
        let owned = before.values().filter(|o| **o == Some(victim)).count();
        let t0 = Instant::now();
        c.kill9(victim);
        loop {
            if let Ok(o) = owners(&c, via).await {
                if o.values().all(|x| x.is_some() && *x != Some(victim)) {
                    break;
                }
            }
            if t0.elapsed() > ROUND_LIMIT {
                c.print_logs();
                bail!(
                    "round {round}: hosts of member {victim} not reassigned within {ROUND_LIMIT:?}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
        let t = t0.elapsed().as_secs_f64() * 1000.0;
        eprintln!(
            "round {round:>3}: killed {} {victim} ({owned} hosts), all reassigned after {t:.0} ms",
            if kill_leader { "leader" } else { "follower" }
        );
        if kill_leader {
            leader_kill.push(t);
        } else {
            follower_kill.push(t);
        }
        c.restart(victim).await?;
        c.wait_caught_up(victim, Duration::from_secs(60)).await?;
        let l = c.wait_leader(None, Duration::from_secs(30)).await?;
        wait_balanced(&c, l, n_hosts, 3).await?;
    }
    report(n_hosts, &follower_kill, &leader_kill);
    Ok(())
}

/// Wait until `members` members each own about `n / members` hosts.
async fn wait_balanced(c: &ProcCluster, via: u64, n: usize, members: usize) -> Result<()> {
    let t0 = Instant::now();
    loop {
        if let Ok(o) = owners(c, via).await {
            let mut load: BTreeMap<u64, usize> = BTreeMap::new();
            for x in o.values().flatten() {
                *load.entry(*x).or_default() += 1;
            }
            let cap = n.div_ceil(members);
            if o.len() == n
                && load.len() == members
                && load.values().all(|l| *l + 1 >= cap)
                && o.values().all(Option::is_some)
            {
                return Ok(());
            }
        }
        if t0.elapsed() > Duration::from_secs(60) {
            c.print_logs();
            bail!("hosts not balanced over {members} members within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(n: usize, follower: &[f64], leader: &[f64]) {
    println!();
    println!("### Member SIGKILL → all of its hosts reassigned (3 `vigil serve` processes, {n} hosts, release build)");
    println!();
    println!(
        "`cargo bench --bench reassign`; default member lease 2 s; host list polled every {} ms; times in ms from the kill.",
        POLL.as_millis()
    );
    println!();
    println!("| member killed | rounds | p50 | p99 | max | min |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, samples) in [("a follower", follower), ("the leader", leader)] {
        if samples.is_empty() {
            continue;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        println!(
            "| {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            s.len(),
            percentile(&s, 50.0),
            percentile(&s, 99.0),
            s[s.len() - 1],
            s[0]
        );
    }
}
