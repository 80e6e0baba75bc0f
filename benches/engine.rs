//! HA engine and deterministic-apply micro-benchmarks (criterion).
//!
//! - `step/*`: one call of the pure engine, `engine::step(record, ctx, input, now)`, for
//!   the inputs a running fleet sees most: a passing health check on an Available host
//!   (the steady-state no-op), a failing one that crosses the threshold
//!   (Available → Suspect), a `Tick` on a Suspect host whose activity round is due
//!   (Suspect → Checking) and an activity result (Checking → Suspect, next round).
//!   `owner_check_pass` adds the owner-side `HealthTracker::observe` in front of the
//!   no-op step: the whole per-check CPU cost on the owner in steady state.
//! - `apply/*`: `VigilState::apply(Command::HostInputs)` on a 10 000-host state (10 pools
//!   of 1 000, every host Available). A batch of N inputs is N/2 hosts, spread over all
//!   pools, each failing at the threshold (Available → Suspect) and then passing again
//!   (Suspect → Available): every input is a transition, and the state is back to
//!   all-Available after every command, so iterations are alike. A batch of 1 alternates
//!   between a failure and a pass. `apply_noop` is 1024 passes on Available hosts: the
//!   per-input price of apply when the engine changes nothing.
//!
//! Throughput is per engine step (`step/*`) or per input (`apply/*`): criterion prints
//! it as `thrpt: … elem/s`.
//!
//! Run: `cargo bench --bench engine` (about a minute). `cargo test --benches` runs each
//! benchmark once, as a smoke test.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vigil::engine::health::HealthTracker;
use vigil::engine::{
    step, Activity, Admin, Ctx, Gate, HaRecord, HaState, Input, Policy, PowerState,
};
use vigil::state::{Command, HostInput, InputOutcome, Response, Stamp};

/// Hosts in the apply benchmarks' state.
const HOSTS: usize = 10_000;

#[path = "common/mod.rs"]
mod common;
use common::{add_host, bring_up, create_pool, host_name, obs, POOL_SIZE, T0};

// ----- engine::step ------------------------------------------------------------------

/// Drive a record with the real engine; panics if an input did not do what the
/// benchmark relies on.
fn drive(ctx: &Ctx<'_>, rec: HaRecord, input: &Input, now: u64, want: HaState) -> HaRecord {
    let out = step(&rec, ctx, input, now);
    assert_eq!(out.record.state, want, "setup step {input:?}");
    out.record
}

fn bench_step(c: &mut Criterion) {
    let policy = Policy::default();
    let gate = Gate::open(policy.fence_budget);
    let ctx = Ctx {
        policy: &policy,
        gate: &gate,
        maintenance: false,
        fence_levels: 1,
        next_intent_id: 1,
    };
    let power_on = Input::Power {
        state: PowerState::On,
        detail: "bench".into(),
    };
    let mut now = T0;
    let rec = HaRecord::new(now);
    let rec = drive(&ctx, rec, &power_on, now, HaState::Disabled);
    let rec = drive(
        &ctx,
        rec,
        &Input::Admin(Admin::Enable),
        now,
        HaState::Initializing,
    );
    now += 1_000;
    let available = drive(&ctx, rec, &obs(true, 0), now, HaState::Available);
    let fail_at_threshold = obs(false, policy.health_failures);
    now += 1_000;
    let suspect = drive(
        &ctx,
        available.clone(),
        &fail_at_threshold,
        now,
        HaState::Suspect,
    );
    let due = suspect.next_activity_at;
    let checking = drive(&ctx, suspect.clone(), &Input::Tick, due, HaState::Checking);
    let inactive = Input::Activity {
        result: Activity::Inactive,
        detail: "heartbeat unchanged".into(),
    };
    // Round 1 of 5 without activity: back to Suspect until the next round.
    drive(
        &ctx,
        checking.clone(),
        &inactive,
        due + 10,
        HaState::Suspect,
    );
    let pass = obs(true, 0);
    assert!(step(&available, &ctx, &pass, now).is_noop(&available));

    let mut g = c.benchmark_group("step");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.bench_function("health_pass_available_noop", |b| {
        b.iter(|| step(black_box(&available), &ctx, black_box(&pass), now))
    });
    g.bench_function("health_fail_available_to_suspect", |b| {
        b.iter(|| {
            step(
                black_box(&available),
                &ctx,
                black_box(&fail_at_threshold),
                now,
            )
        })
    });
    g.bench_function("tick_suspect_to_checking", |b| {
        b.iter(|| step(black_box(&suspect), &ctx, black_box(&Input::Tick), due))
    });
    g.bench_function("activity_inactive_checking_to_suspect", |b| {
        b.iter(|| step(black_box(&checking), &ctx, black_box(&inactive), due + 10))
    });
    g.bench_function("owner_check_pass", |b| {
        // Owner side of one passing check: aggregate, step, see there is nothing to
        // propose.
        let mut tracker = HealthTracker::default();
        b.iter(|| {
            let input = Input::Health(tracker.observe(true, "200 OK", policy.health_window));
            let out = step(black_box(&available), &ctx, &input, now);
            out.is_noop(&available)
        })
    });
    g.bench_function("tick_available_noop", |b| {
        b.iter(|| step(black_box(&available), &ctx, black_box(&Input::Tick), now))
    });
    g.finish();
}

// ----- apply -------------------------------------------------------------------------

use vigil::fleet::LocalApply as Applier;

/// `hosts` hosts in pools of `POOL_SIZE`, each with a sim fence driver and sim
/// health/activity checks, powered on and Available — all through apply.
fn build(hosts: usize) -> (Applier, Vec<String>) {
    let mut a = Applier::default();
    let pools = hosts.div_ceil(POOL_SIZE);
    let mut names = Vec::with_capacity(hosts);
    for p in 0..pools {
        a.must(&create_pool(p));
        let n = POOL_SIZE.min(hosts - p * POOL_SIZE);
        for i in 0..n {
            a.must(&add_host(p, i));
            names.push(host_name(p, i));
        }
        a.must(&bring_up(p, n));
    }
    assert!(a
        .state
        .hosts
        .values()
        .all(|h| h.ha.state == HaState::Available));
    (a, names)
}

/// Host order for the batches: round-robin over the pools, so no pool ever has more
/// than one failing host at a time.
fn spread(names: &[String]) -> Vec<String> {
    let pools = names.len().div_ceil(POOL_SIZE);
    let mut out = Vec::with_capacity(names.len());
    for i in 0..POOL_SIZE {
        for p in 0..pools {
            if let Some(n) = names.get(p * POOL_SIZE + i) {
                out.push(n.clone());
            }
        }
    }
    out
}

fn input(host: &str, pass: bool, threshold: u32) -> HostInput {
    HostInput {
        host: host.to_string(),
        epoch: Some(0),
        input: if pass {
            obs(true, 0)
        } else {
            obs(false, threshold)
        },
    }
}

/// Commands of `batch` inputs each; applying any one of them leaves every host
/// Available again (see the module comment).
fn transition_batches(order: &[String], batch: usize, threshold: u32) -> Vec<Command> {
    let stamp = Stamp {
        by: 1,
        at_ms: T0 + 2,
    };
    if batch == 1 {
        return order
            .iter()
            .flat_map(|h| [false, true].map(|pass| input(h, pass, threshold)))
            .map(|i| Command::HostInputs {
                inputs: vec![i],
                stamp,
            })
            .collect();
    }
    assert!(batch % 2 == 0);
    order
        .chunks(batch / 2)
        .filter(|c| c.len() == batch / 2)
        .map(|hosts| Command::HostInputs {
            inputs: hosts
                .iter()
                .flat_map(|h| [false, true].map(|pass| input(h, pass, threshold)))
                .collect(),
            stamp,
        })
        .collect()
}

fn check_transitions(r: &Response, n: usize) {
    let Response::Inputs { results, .. } = r else {
        panic!("unexpected response {r:?}");
    };
    assert_eq!(results.len(), n);
    for o in results {
        assert!(
            matches!(
                o,
                InputOutcome::Applied {
                    transition: Some(_),
                    ..
                }
            ),
            "every benchmark input must be a transition: {o:?}"
        );
    }
}

fn bench_apply(c: &mut Criterion) {
    let (mut a, names) = build(HOSTS);
    let order = spread(&names);
    let threshold = a
        .state
        .host_policy(&a.state.hosts[&names[0]].spec)
        .health_failures;

    let mut g = c.benchmark_group("apply");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(4));
    for batch in [1usize, 64, 1024] {
        let cmds = transition_batches(&order, batch, threshold);
        // A full pass over the commands first: checks every input is a transition and
        // fills each host's bounded history and the bounded event log, so what is
        // measured is the steady state.
        for cmd in &cmds {
            let r = a.apply(cmd);
            check_transitions(&r, batch);
        }
        g.throughput(Throughput::Elements(batch as u64));
        if batch >= 1024 {
            g.sample_size(20);
        }
        let mut next = 0;
        g.bench_function(format!("host_inputs_transitions/{batch}"), |b| {
            b.iter(|| {
                let cmd = &cmds[next % cmds.len()];
                next += 1;
                a.apply(cmd)
            })
        });
        if batch == 1 && next % 2 == 1 {
            // A batch of 1 stopped after a failure: let that host pass again so the
            // next benchmark starts from an all-Available state.
            let r = a.apply(&cmds[next % cmds.len()]);
            check_transitions(&r, batch);
        }
    }
    // Passes on Available hosts: the engine changes nothing.
    let noop = Command::HostInputs {
        inputs: order.iter().take(1024).map(|h| input(h, true, 0)).collect(),
        stamp: Stamp {
            by: 1,
            at_ms: T0 + 3,
        },
    };
    g.throughput(Throughput::Elements(1024));
    g.bench_function("host_inputs_noop/1024", |b| b.iter(|| a.apply(&noop)));
    // TickAll with nothing due: a scan of every host.
    let tick = Command::TickAll {
        stamp: Stamp {
            by: 1,
            at_ms: T0 + 4,
        },
    };
    g.throughput(Throughput::Elements(HOSTS as u64));
    g.bench_function("tick_all_nothing_due/10000", |b| b.iter(|| a.apply(&tick)));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = bench_step, bench_apply
}
criterion_main!(benches);
