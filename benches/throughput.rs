//! Replicated write throughput of a 3-member in-process cluster (real HTTP between the
//! members on loopback, one sled flush per log append on every member).
//!
//! Run with `cargo bench --bench throughput` (without `--bench`, e.g. under
//! `cargo test --benches`, it does nothing unless `VIGIL_BENCH_SECS` is set).
//! `VIGIL_BENCH_SECS` sets the measured duration of each run (default 5),
//! `VIGIL_BENCH_DIR` where the members' data dirs go (default: a temp dir under the
//! system temp dir; use a real disk, not tmpfs).
//! For tuning experiments, `VIGIL_BENCH_MAX_BATCH` / `VIGIL_BENCH_MAX_INFLIGHT` override
//! the batched configuration and `VIGIL_BENCH_SKIP_UNBATCHED=1` skips the baseline.
//!
//! Every writer is a tokio task that loops `member.write(SetSetting meta.k<i>)` and
//! times each call. Keys cycle through a bounded set so the replicated state stays the
//! same size however long the run. The same runs are repeated with batching disabled
//! (`max_batch = 1`: every write is its own log entry and its own leader flush, with
//! many `client_write` calls in flight at once) to show what the batcher buys.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vigil::dev::DevCluster;
use vigil::settings::SettingValue;
use vigil::state::{Command, Response, Stamp, VigilState};
use vigil_raft::{Member, RaftTimings};

/// Distinct keys written; bounds the state size.
const KEYS: u64 = 10_000;
/// Longest a single write may take before the run is declared broken.
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Leader,
    Follower,
}

#[derive(Debug)]
struct RunResult {
    config: &'static str,
    target: Target,
    writers: usize,
    ok: u64,
    errors: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
    batches: u64,
    commands: u64,
    entries: u64,
}

impl RunResult {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn fmt_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.1}")
    }
}

/// `writers` tasks write through `member` for `duration`; returns (ok, errors,
/// elapsed, sorted latencies of the successful writes).
async fn drive(
    member: &Member<VigilState>,
    writers: usize,
    duration: Duration,
) -> (u64, u64, Duration, Vec<Duration>) {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let start = Instant::now();
    let deadline = start + duration;
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(writers);
    for _ in 0..writers {
        let m = member.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(4096);
            while Instant::now() < deadline {
                let n = SEQ.fetch_add(1, Ordering::Relaxed);
                let cmd = Command::SetSetting {
                    key: format!("meta.k{}", n % KEYS),
                    value: SettingValue::Text(format!("v{n}")),
                    stamp: Stamp {
                        by: m.id(),
                        at_ms: now_ms(),
                    },
                };
                let t = Instant::now();
                match tokio::time::timeout(WRITE_TIMEOUT, m.write(cmd)).await {
                    Ok(Ok(Response::Applied { .. })) => lat.push(t.elapsed()),
                    Ok(Ok(other)) => panic!("benchmark write not applied: {other:?}"),
                    Ok(Err(e)) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("write failed: {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("write timed out after {WRITE_TIMEOUT:?}");
                    }
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("writer task panicked"));
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    (
        all.len() as u64,
        errors.load(Ordering::Relaxed),
        elapsed,
        all,
    )
}

async fn run_one(
    config: &'static str,
    cluster: &DevCluster,
    target: Target,
    writers: usize,
    duration: Duration,
) -> RunResult {
    let leader_id = cluster.members[0]
        .member
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("no leader");
    let leader = cluster
        .members
        .iter()
        .find(|m| m.member.id() == leader_id)
        .expect("leader is a member");
    let member = match target {
        Target::Leader => &leader.member,
        Target::Follower => {
            &cluster
                .members
                .iter()
                .find(|m| m.member.id() != leader_id)
                .expect("a follower")
                .member
        }
    };
    let stats = member.batch_stats();
    let b0 = stats.batches.load(Ordering::Relaxed);
    let c0 = stats.commands.load(Ordering::Relaxed);
    let e0 = leader.member.raft().metrics().borrow().last_log_index;
    let (ok, errors, elapsed, lat) = drive(member, writers, duration).await;
    let e1 = leader.member.raft().metrics().borrow().last_log_index;
    let r = RunResult {
        config,
        target,
        writers,
        ok,
        errors,
        elapsed,
        p50: percentile(&lat, 0.50),
        p99: percentile(&lat, 0.99),
        max: lat.last().copied().unwrap_or_default(),
        batches: stats.batches.load(Ordering::Relaxed) - b0,
        commands: stats.commands.load(Ordering::Relaxed) - c0,
        entries: e1.unwrap_or(0) - e0.unwrap_or(0),
    };
    eprintln!(
        "{config:>10} {:?} {writers:>4} writers: {:>8.0} writes/s  p50 {} ms  p99 {} ms  max {} ms  avg batch {:.1}  log entries {}  errors {}",
        r.target,
        r.rate(),
        fmt_ms(r.p50),
        fmt_ms(r.p99),
        fmt_ms(r.max),
        r.commands as f64 / r.batches.max(1) as f64,
        r.entries,
        r.errors
    );
    r
}

/// Start a cluster with `timings`, run every scenario, stop it.
async fn scenario(
    config: &'static str,
    timings: RaftTimings,
    base: &std::path::Path,
    runs: &[(Target, usize)],
    duration: Duration,
) -> Vec<RunResult> {
    let dir = base.join(config);
    let cluster =
        tokio::time::timeout(Duration::from_secs(60), DevCluster::start(3, &dir, timings))
            .await
            .expect("cluster start timed out")
            .expect("cluster start failed");
    // Warm up connections, allocator and page cache; not measured.
    let warm = (duration / 5).min(Duration::from_secs(1));
    let _ = drive(&cluster.members[0].member, 16, warm).await;
    let mut out = Vec::new();
    for &(target, writers) in runs {
        out.push(run_one(config, &cluster, target, writers, duration).await);
    }
    tokio::time::timeout(Duration::from_secs(60), cluster.stop())
        .await
        .expect("cluster stop timed out")
        .expect("cluster stop failed");
    out
}

fn print_table(results: &[RunResult], duration: Duration) {
    println!();
    println!(
        "3 members in one process, loopback HTTP, sled flush per log append; {} s per run",
        duration.as_secs_f64()
    );
    println!();
    println!("| batching | writers | target | writes/s | p50 ms | p99 ms | max ms | avg cmds/entry | errors |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let target = match r.target {
            Target::Leader => "leader",
            Target::Follower => "follower (forwarded)",
        };
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {:.1} | {} |",
            r.config,
            r.writers,
            target,
            r.rate(),
            fmt_ms(r.p50),
            fmt_ms(r.p99),
            fmt_ms(r.max),
            r.commands as f64 / r.batches.max(1) as f64,
            r.errors
        );
    }
    println!();
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not, and must not
    // spend minutes here.
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let secs_env = std::env::var("VIGIL_BENCH_SECS").ok();
    if !bench_mode && secs_env.is_none() {
        println!("throughput: skipped (run `cargo bench --bench throughput`)");
        return;
    }
    let secs: f64 = secs_env.and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let duration = Duration::from_secs_f64(secs);
    let base = match std::env::var_os("VIGIL_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let runs = [
        (Target::Leader, 1),
        (Target::Leader, 16),
        (Target::Leader, 256),
        (Target::Follower, 256),
    ];
    // Everything together is bounded: 8 runs plus cluster start/stop and warm-ups.
    let budget = duration * 8 + Duration::from_secs(300);
    let results = rt.block_on(async {
        tokio::time::timeout(budget, async {
            let mut defaults = RaftTimings::default();
            if let Some(v) = env_usize("VIGIL_BENCH_MAX_BATCH") {
                defaults.max_batch = v;
            }
            if let Some(v) = env_usize("VIGIL_BENCH_MAX_INFLIGHT") {
                defaults.max_inflight = v;
            }
            eprintln!(
                "batched: max_batch {} max_inflight {}",
                defaults.max_batch, defaults.max_inflight
            );
            let mut all = scenario("on", defaults, base.path(), &runs, duration).await;
            // One command per entry, many client_write calls in flight: the
            // openraft-without-a-batcher baseline.
            let unbatched = RaftTimings {
                max_batch: 1,
                max_inflight: 1024,
                ..RaftTimings::default()
            };
            if std::env::var_os("VIGIL_BENCH_SKIP_UNBATCHED").is_some() {
                return all;
            }
            all.extend(scenario("off", unbatched, base.path(), &runs, duration).await);
            all
        })
        .await
        .expect("benchmark exceeded its time budget")
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    print_table(&results, duration);
}
