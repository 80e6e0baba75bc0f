//! Scale benchmark of the replicated state: 100 000 hosts in 100 pools of 1 000, each
//! with one sim fence driver and sim health/activity checks, powered on and Available,
//! built through `VigilState::apply` exactly as a cluster would build it. Reports:
//!
//! - the time to build it (every `AddHost` command, then one `HostInputs` per pool with
//!   each host's power-on reading and first passing health check);
//! - memory: heap bytes allocated and still live once it is built (the global
//!   allocator is `stats_alloc`'s counting wrapper around the system allocator), the
//!   heap size of a fresh clone, where the bytes go, and the process RSS (`VmRSS`);
//! - the snapshot: `encode_snapshot().len()`, encode and decode times, and a check
//!   that `decode(encode(s)) == s` with identical re-encoded bytes (SHA-256);
//! - apply at that size: a 1 000-input `HostInputs` batch of transitions (500 hosts,
//!   each Available → Suspect → Available), the same with the fence ledger at its cap,
//!   a 1 000-input batch of no-op passes, and a `TickAll` with nothing due.
//!
//! Run: `cargo bench --bench scale` (release). At 100 000 hosts the build alone takes
//! about 5–6 minutes on the 2-vCPU reference VM: every `AddHost` recounts its pool by
//! scanning all hosts, so the build is quadratic (see BENCHMARKS.md). Host count:
//! `VIGIL_BENCH_HOSTS` (default 100 000). Without `--bench` (e.g. `cargo test
//! --all-targets`) it does nothing unless `VIGIL_BENCH_SCALE` is set.

use std::alloc::System;
use std::hint::black_box;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use vigil::engine::HaState;
use vigil::state::model::{Host, LedgerEntry};
use vigil::state::{Command, HostInput, InputOutcome, Response, Stamp, VigilState};
use vigil_raft::StateMachine;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Hosts per pool.
/// Proposer clock used for every command (ms since the epoch).
#[path = "common/mod.rs"]
mod common;
use common::{add_host, bring_up, create_pool, host_name, obs, POOL_SIZE, T0};
/// Inputs per measured `HostInputs` batch.
const BATCH: usize = 1_000;
/// Measured batches (after one warm-up pass).
const ROUNDS: usize = 30;

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    if !bench_mode && std::env::var_os("VIGIL_BENCH_SCALE").is_none() {
        println!("scale: skipped (run `cargo bench --bench scale`)");
        return;
    }
    let hosts = match std::env::var("VIGIL_BENCH_HOSTS").ok().map(|v| v.parse()) {
        None => 100_000,
        Some(Ok(n)) if n >= 2 * BATCH => n,
        Some(_) => {
            eprintln!("VIGIL_BENCH_HOSTS must be an integer >= {}", 2 * BATCH);
            std::process::exit(2);
        }
    };
    run(hosts);
}

/// Heap bytes allocated and not yet freed, process-wide.
fn live() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// Heap bytes that `f`'s result keeps alive (the result itself may live on the stack).
fn heap_of<T>(f: impl FnOnce() -> T) -> (T, i64) {
    let before = live();
    let v = f();
    (v, live() - before)
}

/// A line of /proc/self/status, in KiB (0 where unavailable).
fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn mib(b: i64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

use vigil::fleet::LocalApply as Applier;

struct BuildTimes {
    total: Duration,
    add_hosts: Duration,
    inputs: Duration,
}

fn build(a: &mut Applier, hosts: usize) -> BuildTimes {
    let pools = hosts.div_ceil(POOL_SIZE);
    let t0 = Instant::now();
    let mut add_hosts = Duration::ZERO;
    let mut inputs_time = Duration::ZERO;
    for p in 0..pools {
        a.must(&create_pool(p));
        let n = POOL_SIZE.min(hosts - p * POOL_SIZE);
        let cmds: Vec<Command> = (0..n).map(|i| add_host(p, i)).collect();
        let t = Instant::now();
        for c in &cmds {
            a.must(c);
        }
        add_hosts += t.elapsed();
        drop(cmds);
        let cmd = bring_up(p, n);
        let t = Instant::now();
        a.must(&cmd);
        inputs_time += t.elapsed();
        if (p + 1) % 10 == 0 || p + 1 == pools {
            eprintln!(
                "scale: {:>6} hosts built after {:.1} s",
                (p * POOL_SIZE + n),
                t0.elapsed().as_secs_f64()
            );
        }
    }
    BuildTimes {
        total: t0.elapsed(),
        add_hosts,
        inputs: inputs_time,
    }
}

/// Median and minimum of `runs` timings of `f`.
fn time_runs(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut ts: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    ts.sort();
    (ts[ts.len() / 2], ts[0])
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn run(hosts: usize) {
    let rss0 = proc_status_kib("VmRSS:");
    let mut a = Applier::default();
    let live0 = live();
    let times = build(&mut a, hosts);
    let state_live = live() - live0;
    let rss1 = proc_status_kib("VmRSS:");
    assert_eq!(a.state.hosts.len(), hosts);
    assert!(a
        .state
        .hosts
        .values()
        .all(|h| h.ha.state == HaState::Available));

    // Where the bytes go: heap size of fresh copies of the parts.
    let s = &a.state;
    let (copy, clone_bytes) = heap_of(|| s.clone());
    drop(copy);
    let (copy, hosts_bytes) = heap_of(|| s.hosts.clone());
    drop(copy);
    let (copy, events_bytes) = heap_of(|| s.events.clone());
    drop(copy);
    let sample: &Host = s.hosts.values().nth(hosts / 2).expect("a host");
    let (copy, spec_heap) = heap_of(|| sample.spec.clone());
    drop(copy);
    let (copy, history_heap) = heap_of(|| sample.history.clone());
    drop(copy);
    let (copy, host_heap) = heap_of(|| sample.clone());
    drop(copy);
    let (copy, key_heap) = heap_of(|| sample.spec.name.clone());
    drop(copy);
    let sample_name = sample.spec.name.clone();
    let sample_history = sample.history.len();
    let events_kept = s.events.len();
    let entry_inline = std::mem::size_of::<String>() + std::mem::size_of::<Host>();
    let node_bytes = hosts_bytes - hosts as i64 * (host_heap + key_heap);

    // Snapshot.
    let bytes = s.encode_snapshot();
    let (enc_med, enc_min) = time_runs(5, || {
        black_box(s.encode_snapshot());
    });
    let (dec_med, dec_min) = time_runs(5, || {
        black_box(VigilState::decode_snapshot(&bytes).expect("decodes"));
    });
    let back = VigilState::decode_snapshot(&bytes).expect("decodes");
    let same = back == *s;
    let digest = sha(&bytes);
    let digest_back = sha(&back.encode_snapshot());
    drop(back);
    assert!(same, "decode(encode(s)) != s");
    assert_eq!(digest, digest_back, "re-encoded snapshot differs");

    // Apply at this size.
    let threshold = s.host_policy(&sample.spec).health_failures;
    let pools = hosts.div_ceil(POOL_SIZE);
    // Round-robin over pools: at most one failing host per pool at any time.
    let order: Vec<String> = (0..POOL_SIZE)
        .flat_map(|i| (0..pools).map(move |p| (p, i)))
        .filter(|(p, i)| p * POOL_SIZE + i < hosts)
        .map(|(p, i)| host_name(p, i))
        .collect();
    let stamp = Stamp {
        by: 1,
        at_ms: T0 + 2,
    };
    let hi = |host: &str, pass: bool| HostInput {
        host: host.to_string(),
        epoch: Some(0),
        input: if pass {
            obs(true, 0)
        } else {
            obs(false, threshold)
        },
    };
    let transitions: Vec<Command> = order
        .chunks(BATCH / 2)
        .take(ROUNDS)
        .map(|c| Command::HostInputs {
            inputs: c.iter().flat_map(|h| [hi(h, false), hi(h, true)]).collect(),
            stamp,
        })
        .collect();
    // Warm-up pass (also checks that every input is a transition).
    for cmd in &transitions {
        let Response::Inputs { results, .. } = a.must(cmd) else {
            panic!("unexpected response");
        };
        assert!(results.iter().all(|o| matches!(
            o,
            InputOutcome::Applied {
                transition: Some(_),
                ..
            }
        )));
    }
    let mut i = 0;
    let (tr_med, tr_min) = time_runs(ROUNDS, || {
        black_box(a.apply(&transitions[i % transitions.len()]));
        i += 1;
    });
    let noop = Command::HostInputs {
        inputs: order.iter().take(BATCH).map(|h| hi(h, true)).collect(),
        stamp,
    };
    let (noop_med, _) = time_runs(ROUNDS, || {
        black_box(a.apply(&noop));
    });
    let tick = Command::TickAll {
        stamp: Stamp {
            by: 1,
            at_ms: T0 + 3,
        },
    };
    let (tick_med, _) = time_runs(10, || {
        black_box(a.apply(&tick));
    });
    // The same batches once the fence ledger is at its cap (`LEDGER_KEPT`, 10 000
    // entries): apply scans the whole ledger for every pool-budget computation. The
    // entries are old fences (outside the budget window, so the budget is unchanged),
    // pushed straight into the state: 10 000 real fences would take hours of policy
    // time to reach through apply.
    let window = a.state.pool_policy("p000").fence_budget_window;
    for i in 0..10_000u64 {
        let p = i as usize % pools;
        a.state.ledger.push_back(LedgerEntry {
            intent: 1_000_000 + i,
            host: host_name(p, 0),
            pool: format!("p{p:03}"),
            fence: true,
            at: T0 - 2 * window - i,
        });
    }
    let mut i = 0;
    let (ledger_med, _) = time_runs(ROUNDS, || {
        let r = a.apply(&transitions[i % transitions.len()]);
        i += 1;
        black_box(r);
    });
    let rss2 = proc_status_kib("VmRSS:");
    let hwm = proc_status_kib("VmHWM:");

    let per_host = |b: i64| b as f64 / hosts as f64;
    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    println!();
    println!("## scale: {hosts} hosts in {pools} pools of {POOL_SIZE}");
    println!();
    println!("| metric | value |");
    println!("|---|---:|");
    println!(
        "| build through apply (total) | {:.1} s |",
        times.total.as_secs_f64()
    );
    println!(
        "| of which `AddHost` × {hosts} | {:.1} s ({:.0} µs/host) |",
        times.add_hosts.as_secs_f64(),
        times.add_hosts.as_secs_f64() * 1e6 / hosts as f64
    );
    println!(
        "| of which `HostInputs` (power on + health pass, {pools} × {}) | {:.2} s |",
        2 * POOL_SIZE,
        times.inputs.as_secs_f64()
    );
    println!(
        "| heap live after build | {:.1} MiB = {:.0} B/host |",
        mib(state_live),
        per_host(state_live)
    );
    println!(
        "| heap of a fresh clone of the state | {:.1} MiB = {:.0} B/host |",
        mib(clone_bytes),
        per_host(clone_bytes)
    );
    println!(
        "| RSS: before / after build / end | {:.0} / {:.0} / {:.0} MiB (peak {:.0} MiB) |",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        rss2 as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "| RSS growth during build | {:.0} B/host |",
        (rss1.saturating_sub(rss0) * 1024) as f64 / hosts as f64
    );
    println!(
        "| snapshot size | {} B = {:.1} MiB = {:.0} B/host |",
        bytes.len(),
        mib(bytes.len() as i64),
        per_host(bytes.len() as i64)
    );
    println!(
        "| snapshot encode (median / min of 5) | {:.0} / {:.0} ms |",
        ms(enc_med),
        ms(enc_min)
    );
    println!(
        "| snapshot decode (median / min of 5) | {:.0} / {:.0} ms |",
        ms(dec_med),
        ms(dec_min)
    );
    println!(
        "| decode(encode(s)) == s, SHA-256 of re-encoding equal | {same}, {} |",
        &digest[..16]
    );
    println!(
        "| `HostInputs` {BATCH} transitions (median / best of {ROUNDS}) | {:.2} / {:.2} ms = {:.0} / {:.0} inputs/s |",
        ms(tr_med),
        ms(tr_min),
        rate(BATCH, tr_med),
        rate(BATCH, tr_min)
    );
    println!(
        "| `HostInputs` {BATCH} no-op passes (median of {ROUNDS}) | {:.2} ms = {:.0} inputs/s |",
        ms(noop_med),
        rate(BATCH, noop_med)
    );
    println!(
        "| same transitions, fence ledger full (10 000 old entries; median of {ROUNDS}) | {:.2} ms = {:.0} inputs/s |",
        ms(ledger_med),
        rate(BATCH, ledger_med)
    );
    println!(
        "| `TickAll`, nothing due (median of 10) | {:.2} ms |",
        ms(tick_med)
    );
    println!();
    println!("Heap of the state by part (fresh copies):");
    println!();
    println!("| part | bytes | per host |");
    println!("|---|---:|---:|");
    println!(
        "| hosts map | {hosts_bytes} | {:.0} |",
        per_host(hosts_bytes)
    );
    println!(
        "| events ({} kept) | {events_bytes} | {:.0} |",
        events_kept,
        per_host(events_bytes)
    );
    println!(
        "| everything else (pools, settings, intents, ledger) | {} | {:.0} |",
        clone_bytes - hosts_bytes - events_bytes,
        per_host(clone_bytes - hosts_bytes - events_bytes)
    );
    println!();
    println!("One host (`{sample_name}`), heap it owns:");
    println!();
    println!("| part | bytes |");
    println!("|---|---:|");
    println!("| spec (name, pool, kind, checks, driver) | {spec_heap} |");
    println!(
        "| history ({} transitions kept, max 8) | {history_heap} |",
        sample_history
    );
    println!("| whole host (spec + history + record strings) | {host_heap} |");
    println!("| map key (host name) | {key_heap} |");
    println!(
        "| B-tree nodes (key + `Host` inline = {entry_inline} B/entry, plus slack) | {:.0} |",
        per_host(node_bytes)
    );
}
