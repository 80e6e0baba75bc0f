//! Crash durability: a write acknowledged to a client survives SIGKILL.
//!
//! Three real `vigil serve` processes; 32 concurrent writers PUT distinct `meta.*`
//! annotations through the HTTP API (spread over all members, so both the leader's own
//! path and forwarding are exercised) and record every write answered with 2xx. While
//! writes are in flight, members are killed with SIGKILL (all of them at once, or only
//! the leader), restarted from their data dirs, and every member must then return every
//! acknowledged key with its value from a linearizable `GET /api/v1/settings`. Writes
//! that failed or timed out may or may not be present. The count of acknowledged writes
//! must be large, so that the test cannot pass vacuously.
//!
//! The cases run one at a time (they share a lock) to keep the load of a small machine
//! predictable; no assertion depends on timing.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use common::{put_setting, ProcCluster};

/// Concurrent writers.
const WRITERS: usize = 32;
/// Acknowledged writes below this make the test meaningless.
const MIN_ACKED: usize = 100;
/// Per-request timeout of the writers (a write may wait up to ~5 s for a leader).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// One case at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running stream of writes and what it has seen acknowledged.
struct Writers {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(String, String)>>>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    /// Start `WRITERS` tasks; writer `w` writes `meta.{tag}-w{w}-{i}` = `{tag}/{w}/{i}`
    /// for i = 0, 1, … through member `urls[w % urls.len()]`.
    fn start(urls: Vec<String>, tag: &str) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(WRITE_TIMEOUT)
            .build()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(AtomicU64::new(0));
        let tasks = (0..WRITERS)
            .map(|w| {
                let (http, stop, acked, failed) =
                    (http.clone(), stop.clone(), acked.clone(), failed.clone());
                let base = urls[w % urls.len()].clone();
                let tag = tag.to_string();
                tokio::spawn(async move {
                    // Bounded even if `stop` were never set.
                    for i in 0..1_000_000u64 {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let key = format!("meta.{tag}-w{w}-{i}");
                        let value = format!("{tag}/{w}/{i}");
                        match put_setting(&http, &base, &key, &value).await {
                            Ok(()) => acked.lock().unwrap().push((key, value)),
                            Err(_) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            acked,
            failed,
            tasks,
        }
    }

    fn acked_so_far(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Stop every writer (in-flight requests finish or time out) and return the
    /// acknowledged writes and the number of failed ones.
    async fn stop(self) -> (Vec<(String, String)>, u64) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            tokio::time::timeout(WRITE_TIMEOUT * 3, t)
                .await
                .expect("a writer did not stop in time")
                .expect("a writer panicked");
        }
        let acked = std::mem::take(&mut *self.acked.lock().unwrap());
        (acked, self.failed.load(Ordering::Relaxed))
    }
}

/// Which members to SIGKILL, and how to bring them back.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// All three at once; restart the old leader first (openraft lets a member whose
    /// saved vote is its own committed leadership resume as leader in the same term).
    AllLeaderFirst,
    /// All three at once; restart the two followers first and let them elect a leader
    /// among themselves (it must hold every acknowledged entry), then the old leader.
    AllLeaderLast,
    /// Only the leader; the survivors keep taking writes for a while.
    Leader,
}

/// Read every running member's settings (linearizable), retrying transient errors for a
/// bounded time, and check that every acknowledged write is there with its value.
async fn check_all_present(c: &ProcCluster, acked: &[(String, String)]) -> Result<()> {
    for id in c.running_ids() {
        let deadline = Instant::now() + Duration::from_secs(60);
        let list = loop {
            match c.settings(id).await {
                Ok(list) => break list,
                Err(e) if Instant::now() >= deadline => {
                    c.print_logs();
                    bail!("member {id}: cannot list settings: {e:#}");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let present: BTreeMap<&str, &str> = list
            .iter()
            .map(|s| (s.key.as_str(), s.value.as_str()))
            .collect();
        let missing: Vec<String> = acked
            .iter()
            .filter(|(k, v)| present.get(k.as_str()) != Some(&v.as_str()))
            .map(|(k, v)| format!("{k}={v} (found {:?})", present.get(k.as_str())))
            .collect();
        if !missing.is_empty() {
            c.print_logs();
            bail!(
                "member {id}: {} of {} acknowledged writes lost or wrong after the crash, e.g. {:?}",
                missing.len(),
                acked.len(),
                &missing[..missing.len().min(10)]
            );
        }
        let extra = present.len().saturating_sub(acked.len());
        eprintln!(
            "member {id}: all {} acknowledged writes present ({} settings listed, ≥ {extra} unacknowledged or built-in)",
            acked.len(),
            present.len()
        );
    }
    Ok(())
}

/// Start a cluster, write, SIGKILL per `kill` mid-stream, restart, check.
async fn crash_case(kill: Kill, serve_args: &[&str], tag: &str) -> Result<()> {
    let mut c = ProcCluster::start_with(3, serve_args).await?;
    c.wait_leader(None, Duration::from_secs(60)).await?;
    let urls: Vec<String> = c.ids().iter().map(|&id| c.url(id)).collect();
    let writers = Writers::start(urls, tag);

    // Let the stream get going: at least ~1.5 s and some acknowledged writes (bounded).
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while writers.acked_so_far() < MIN_ACKED && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let leader = c.wait_leader(None, Duration::from_secs(30)).await?;
    let followers: Vec<u64> = c.ids().into_iter().filter(|&i| i != leader).collect();
    // Restart order.
    let killed: Vec<u64> = match kill {
        Kill::AllLeaderFirst => {
            c.kill9_all();
            [vec![leader], followers].concat()
        }
        Kill::AllLeaderLast => {
            c.kill9_all();
            [followers, vec![leader]].concat()
        }
        Kill::Leader => {
            c.kill9(leader);
            vec![leader]
        }
    };
    let before_kill = writers.acked_so_far();
    if matches!(kill, Kill::Leader) {
        // The survivors elect a leader and keep taking writes; those must survive too.
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    let (acked, failed) = writers.stop().await;
    eprintln!(
        "{tag}: killed {killed:?} (leader {leader}) with SIGKILL; {} writes acknowledged ({before_kill} before the kill), {failed} failed",
        acked.len()
    );

    for &id in &killed {
        if id == leader && matches!(kill, Kill::AllLeaderLast) {
            let l = c.wait_leader(None, Duration::from_secs(60)).await?;
            eprintln!("{tag}: followers elected member {l} without the old leader");
            // The two followers alone must already hold every acknowledged write.
            check_all_present(&c, &acked).await?;
        }
        c.restart(id).await?;
    }
    c.wait_leader(None, Duration::from_secs(60)).await?;
    for &id in &killed {
        c.wait_caught_up(id, Duration::from_secs(120)).await?;
    }
    check_all_present(&c, &acked).await?;
    let leader = c.wait_leader(None, Duration::from_secs(60)).await?;
    let s = c.status(leader).await?;
    eprintln!(
        "{tag}: leader {leader} term {}: last log {:?}, snapshot {:?}, purged {:?}",
        s.term, s.last_log_index, s.snapshot_index, s.purged_index
    );
    assert!(
        acked.len() > MIN_ACKED,
        "only {} writes were acknowledged: the test proves nothing",
        acked.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_all_members_loses_no_acknowledged_write() -> Result<()> {
    let _serial = SERIAL.lock().await;
    crash_case(Kill::AllLeaderLast, &[], "all").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_leader_loses_no_acknowledged_write() -> Result<()> {
    let _serial = SERIAL.lock().await;
    crash_case(Kill::Leader, &[], "leader").await
}

/// Same as killing all members, with frequent snapshots and a short log behind them,
/// so that recovery goes through snapshot restore plus log replay, and purges race the
/// crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_all_members_with_frequent_snapshots() -> Result<()> {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        "[raft]\nsnapshot_every = 40\nkeep_behind_snapshot = 5\n",
    )?;
    let config = config.to_string_lossy().into_owned();
    crash_case(Kill::AllLeaderFirst, &["--config", &config], "snap").await
}
