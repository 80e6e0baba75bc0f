//! Failover benchmark: how long a 3-member cluster of real `vigil serve` processes is
//! without a leader, and unable to take writes, after its leader is SIGKILLed.
//!
//! Each round: find the leader, SIGKILL it, then
//! - *elected*: poll the survivors' `cluster status` every 10 ms until one reports a
//!   leader other than the dead one;
//! - *writable*: from then on, PUT an annotation through the surviving follower (so
//!   the write is forwarded) until it is acknowledged;
//!
//! both measured from the kill. Then the killed member is restarted from its data dir
//! and must catch up before the next round. Default timings (the ones `vigil serve`
//! uses without flags). Prints percentiles and raw samples as Markdown, ready for
//! BENCHMARKS.md.
//!
//! Run: `cargo bench --bench failover` (release build). Rounds: `VIGIL_BENCH_ROUNDS`
//! (default 20). Without `--bench` (e.g. `cargo test --benches`) it does nothing unless
//! `VIGIL_BENCH_ROUNDS` is set. Every wait is bounded; the whole run is bounded too.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::{put_setting, ProcCluster};
use vigil_raft::{ClusterStatus, RaftTimings};

/// Poll interval for "is there a new leader".
const POLL: Duration = Duration::from_millis(10);
/// Longest a single failover may take before the run is declared broken.
const ROUND_LIMIT: Duration = Duration::from_secs(60);

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let rounds_env = std::env::var("VIGIL_BENCH_ROUNDS").ok();
    if !bench_mode && rounds_env.is_none() {
        println!("failover: skipped (run `cargo bench --bench failover`)");
        return;
    }
    let rounds = match rounds_env.as_deref().map(str::parse::<usize>) {
        None => 20,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("VIGIL_BENCH_ROUNDS must be a positive integer");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(rounds)) {
        eprintln!("failover benchmark failed: {e:#}");
        std::process::exit(1);
    }
}

async fn run(rounds: usize) -> Result<()> {
    // Generous but finite: a healthy round takes a few seconds.
    let run_deadline = Instant::now() + Duration::from_secs(120 + 180 * rounds as u64);
    let mut c = ProcCluster::start(3).await?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut elected = Vec::with_capacity(rounds);
    let mut writable = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        if Instant::now() >= run_deadline {
            bail!(
                "benchmark exceeded its time limit after {} rounds",
                round - 1
            );
        }
        let old = c.wait_leader(None, Duration::from_secs(60)).await?;
        let survivors: Vec<u64> = c.ids().into_iter().filter(|&i| i != old).collect();

        let t0 = Instant::now();
        c.kill9(old);
        let new = loop {
            if let Some(l) = new_leader(&c, &survivors, old).await {
                break l;
            }
            if t0.elapsed() >= ROUND_LIMIT {
                c.print_logs();
                bail!("round {round}: no new leader within {ROUND_LIMIT:?}");
            }
            tokio::time::sleep(POLL).await;
        };
        let t_elected = t0.elapsed();

        let via = survivors.iter().copied().find(|&i| i != new).unwrap_or(new);
        let key = format!("meta.failover-r{round}");
        let value = format!("round {round}");
        loop {
            match put_setting(&http, &c.url(via), &key, &value).await {
                Ok(()) => break,
                Err(e) if t0.elapsed() >= ROUND_LIMIT => {
                    c.print_logs();
                    bail!("round {round}: no write acknowledged within {ROUND_LIMIT:?}: {e:#}");
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
        let t_writable = t0.elapsed();
        elected.push(ms(t_elected));
        writable.push(ms(t_writable));
        eprintln!(
            "round {round:>3}: killed leader {old}, member {new} elected after {:.0} ms, write via member {via} acknowledged after {:.0} ms",
            ms(t_elected),
            ms(t_writable)
        );

        c.restart(old)
            .await
            .with_context(|| format!("restarting member {old}"))?;
        c.wait_caught_up(old, Duration::from_secs(120)).await?;
    }
    report(rounds, &elected, &writable);
    Ok(())
}

/// A leader other than `old` reported by any survivor, if one is known yet.
async fn new_leader(c: &ProcCluster, survivors: &[u64], old: u64) -> Option<u64> {
    for &id in survivors {
        let s: Result<ClusterStatus> = c
            .get_json_timeout(id, "/api/v1/cluster/status", Duration::from_secs(1))
            .await;
        if let Ok(ClusterStatus {
            leader: Some(l), ..
        }) = s
        {
            if l != old {
                return Some(l);
            }
        }
    }
    None
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(rounds: usize, elected: &[f64], writable: &[f64]) {
    let t = RaftTimings::default();
    println!();
    println!(
        "### Failover after SIGKILL of the leader (3 `vigil serve` processes on 127.0.0.1, release build)"
    );
    println!();
    println!(
        "`cargo bench --bench failover`, {rounds} rounds, {} CPUs; default timings: heartbeat {} ms, election timeout {}–{} ms; status polled every {} ms; times in ms from the kill.",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        t.heartbeat_ms,
        t.election_min_ms,
        t.election_max_ms,
        POLL.as_millis()
    );
    println!();
    println!("| measure | p50 | p90 | p99 | max | min |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, samples) in [
        ("new leader reported by a survivor", elected),
        ("write acknowledged via the surviving follower", writable),
    ] {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            percentile(&s, 50.0),
            percentile(&s, 90.0),
            percentile(&s, 99.0),
            s[s.len() - 1],
            s[0]
        );
    }
    println!();
    let raw = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "Raw samples, new leader (ms, in round order): {}",
        raw(elected)
    );
    println!();
    println!(
        "Raw samples, write acknowledged (ms, in round order): {}",
        raw(writable)
    );
}
