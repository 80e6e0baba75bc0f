//! Property tests of the replicated state (engine + apply together) over random
//! command sequences on a small fleet: the fence budget is never exceeded, nothing is
//! fenced from Available/Degraded, intents and hosts agree, pool counts are exact,
//! epochs never go back, and replay/snapshot give the same bytes.

use std::collections::BTreeMap;

use proptest::prelude::*;
use vigil::engine::health::HealthTracker;
use vigil::engine::{ActionResult, Activity, Admin, HaState, Input, PoolCounts, PowerState};
use vigil::settings::SettingValue;
use vigil::state::model::{EventKind, IntentState};
use vigil::state::{Command, HostInput, Stamp, VigilState};
use vigil_raft::{ApplyContext, StateMachine};

const POOLS: [&str; 2] = ["a", "b"];
const HOSTS_PER_POOL: usize = 5;

#[derive(Debug, Clone)]
enum Op {
    Health {
        host: usize,
        pass: bool,
        n: u8,
    },
    Activity {
        host: usize,
        r: u8,
    },
    Power {
        host: usize,
        p: u8,
    },
    Outcome {
        host: usize,
        done: bool,
        off: bool,
    },
    Admin {
        host: usize,
        op: u8,
    },
    Maintenance {
        host: usize,
        on: bool,
    },
    Pool {
        pool: usize,
        enabled: bool,
    },
    Advance {
        ms: u64,
    },
    /// A scripted death: failing checks, then activity rounds finding nothing.
    Die {
        host: usize,
    },
    /// Members come and go; hosts are (re)assigned.
    Assign {
        host: usize,
        owner: u8,
        member_alive: bool,
    },
    /// An input from a former owner (epoch one behind): must change nothing.
    Stale {
        host: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let h = 0..POOLS.len() * HOSTS_PER_POOL;
    prop_oneof![
        6 => (h.clone(), any::<bool>(), 1u8..4).prop_map(|(host, pass, n)| Op::Health { host, pass, n }),
        4 => (h.clone(), 0u8..3).prop_map(|(host, r)| Op::Activity { host, r }),
        1 => (h.clone(), 0u8..3).prop_map(|(host, p)| Op::Power { host, p }),
        4 => (h.clone(), any::<bool>(), any::<bool>()).prop_map(|(host, done, off)| Op::Outcome { host, done, off }),
        1 => (h.clone(), 0u8..3).prop_map(|(host, op)| Op::Admin { host, op }),
        1 => (h, any::<bool>()).prop_map(|(host, on)| Op::Maintenance { host, on }),
        1 => (0..POOLS.len(), any::<bool>()).prop_map(|(pool, enabled)| Op::Pool { pool, enabled }),
        3 => (0..POOLS.len() * HOSTS_PER_POOL).prop_map(|host| Op::Die { host }),
        2 => (0..POOLS.len() * HOSTS_PER_POOL, 0u8..4, any::<bool>())
            .prop_map(|(host, owner, member_alive)| Op::Assign { host, owner, member_alive }),
        1 => (0..POOLS.len() * HOSTS_PER_POOL).prop_map(|host| Op::Stale { host }),
        6 => prop_oneof![0u64..2_000, 5_000u64..120_000, 600_000u64..4_000_000].prop_map(|ms| Op::Advance { ms }),
    ]
}

#[derive(Debug, Clone)]
struct Setup {
    budget: i64,
    window_min: u64,
    recovery: bool,
    rounds: i64,
    levels: usize,
    min_available: i64,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        0i64..4,
        1u64..90,
        any::<bool>(),
        1i64..4,
        0usize..3,
        0i64..3,
    )
        .prop_map(
            |(budget, window_min, recovery, rounds, levels, min_available)| Setup {
                budget,
                window_min,
                recovery,
                rounds,
                levels,
                min_available,
            },
        )
}

fn host_name(i: usize) -> (String, &'static str) {
    let pool = POOLS[i / HOSTS_PER_POOL];
    (format!("{pool}-{}", i % HOSTS_PER_POOL), pool)
}

struct Run {
    state: VigilState,
    now: u64,
    trackers: BTreeMap<String, HealthTracker>,
    commands: Vec<Command>,
}

impl Run {
    fn apply(&mut self, cmd: Command) {
        let ctx = ApplyContext {
            index: self.commands.len() as u64 + 1,
            term: 1,
            position: 0,
        };
        self.state.apply(ctx, &cmd);
        self.commands.push(cmd);
    }

    fn stamp(&self) -> Stamp {
        Stamp {
            by: 1,
            at_ms: self.now,
        }
    }

    fn input(&mut self, host: &str, input: Input) {
        let epoch = self.state.hosts.get(host).map(|h| h.epoch);
        let stamp = self.stamp();
        self.apply(Command::HostInputs {
            inputs: vec![HostInput {
                host: host.to_string(),
                epoch,
                input,
            }],
            stamp,
        });
    }
}

fn build(s: &Setup) -> Run {
    let mut r = Run {
        state: VigilState::default(),
        now: 1_000,
        trackers: BTreeMap::new(),
        commands: Vec::new(),
    };
    let mut policy = BTreeMap::new();
    policy.insert(
        "policy.fence.budget".to_string(),
        SettingValue::Integer(s.budget),
    );
    policy.insert(
        "policy.fence.budget_window".to_string(),
        SettingValue::DurationMs(s.window_min * 60_000),
    );
    policy.insert(
        "policy.recovery.enabled".to_string(),
        SettingValue::Bool(s.recovery),
    );
    policy.insert(
        "policy.activity.rounds".to_string(),
        SettingValue::Integer(s.rounds),
    );
    policy.insert(
        "policy.pool.min_available".to_string(),
        SettingValue::Integer(s.min_available),
    );
    for p in POOLS {
        let stamp = r.stamp();
        r.apply(Command::CreatePool {
            spec: vigil::fleet::pool(p, true, policy.clone()),
            stamp,
        });
    }
    for i in 0..POOLS.len() * HOSTS_PER_POOL {
        let (name, pool) = host_name(i);
        let stamp = r.stamp();
        r.apply(Command::AddHost {
            spec: vigil::fleet::sim_host(&name, pool, s.levels.max(if i % 3 == 0 { 0 } else { 1 })),
            stamp,
        });
        r.input(
            &name,
            Input::Power {
                state: PowerState::On,
                detail: String::new(),
            },
        );
        let obs = r
            .trackers
            .entry(name.clone())
            .or_default()
            .observe(true, "", 0);
        r.input(&name, Input::Health(obs));
    }
    r
}

fn step(r: &mut Run, op: &Op) {
    match op {
        Op::Die { host } => {
            step(
                r,
                &Op::Health {
                    host: *host,
                    pass: false,
                    n: 3,
                },
            );
            for _ in 0..4 {
                step(r, &Op::Advance { ms: 100_000 });
                step(r, &Op::Activity { host: *host, r: 1 });
            }
        }
        Op::Assign {
            host,
            owner,
            member_alive,
        } => {
            let (name, _) = host_name(*host);
            let id = u64::from(*owner) + 1;
            let stamp = r.stamp();
            r.apply(Command::SetMemberLiveness {
                id,
                addr: format!("127.0.0.1:{}", 7000 + id),
                alive: *member_alive,
                stamp,
            });
            r.apply(Command::AssignHosts {
                assignments: vec![(name, Some(id))],
                stamp,
            });
        }
        Op::Stale { host } => {
            let (name, _) = host_name(*host);
            let h = &r.state.hosts[&name];
            if h.epoch > 0 {
                let before = r.state.hosts[&name].clone();
                let stamp = r.stamp();
                let obs = vigil::engine::HealthObs {
                    pass: false,
                    consecutive_failures: 99,
                    window_failures: 0,
                    window_len: 0,
                    detail: String::new(),
                };
                let resp = r.state.apply(
                    ApplyContext {
                        index: 0,
                        term: 1,
                        position: 0,
                    },
                    &Command::HostInputs {
                        inputs: vec![HostInput {
                            host: name.clone(),
                            epoch: Some(h.epoch - 1),
                            input: Input::Health(obs.clone()),
                        }],
                        stamp,
                    },
                );
                r.commands.push(Command::HostInputs {
                    inputs: vec![HostInput {
                        host: name.clone(),
                        epoch: Some(before.epoch - 1),
                        input: Input::Health(obs),
                    }],
                    stamp,
                });
                assert!(
                    matches!(&resp, vigil::state::Response::Inputs { results, .. } if matches!(results[0], vigil::state::InputOutcome::Rejected { .. })),
                    "stale epoch accepted: {resp:?}"
                );
                assert_eq!(
                    r.state.hosts[&name], before,
                    "a stale input changed the host"
                );
            }
        }
        Op::Advance { ms } => {
            r.now += ms;
            let stamp = r.stamp();
            r.apply(Command::TickAll { stamp });
        }
        Op::Health { host, pass, n } => {
            let (name, _) = host_name(*host);
            for _ in 0..*n {
                let obs = r
                    .trackers
                    .entry(name.clone())
                    .or_default()
                    .observe(*pass, "", 0);
                r.input(&name, Input::Health(obs));
            }
        }
        Op::Activity { host, r: res } => {
            let (name, _) = host_name(*host);
            let result = [Activity::Active, Activity::Inactive, Activity::Error][*res as usize];
            r.input(
                &name,
                Input::Activity {
                    result,
                    detail: String::new(),
                },
            );
        }
        Op::Power { host, p } => {
            let (name, _) = host_name(*host);
            let state = [PowerState::On, PowerState::Off, PowerState::Unknown][*p as usize];
            r.input(
                &name,
                Input::Power {
                    state,
                    detail: String::new(),
                },
            );
        }
        Op::Outcome { host, done, off } => {
            let (name, _) = host_name(*host);
            let intent = r.state.hosts[&name].ha.intent.unwrap_or(424_242);
            let result = if *done {
                ActionResult::Done {
                    power_after: if *off {
                        PowerState::Off
                    } else {
                        PowerState::On
                    },
                    detail: String::new(),
                }
            } else {
                ActionResult::Failed { reason: "x".into() }
            };
            r.input(&name, Input::Outcome { intent, result });
        }
        Op::Admin { host, op } => {
            let (name, _) = host_name(*host);
            let a = [Admin::Retry, Admin::ConfirmOff, Admin::Unfence][*op as usize];
            r.input(&name, Input::Admin(a));
        }
        Op::Maintenance { host, on } => {
            let (name, _) = host_name(*host);
            let stamp = r.stamp();
            r.apply(Command::SetMaintenance {
                name,
                on: *on,
                stamp,
            });
        }
        Op::Pool { pool, enabled } => {
            let stamp = r.stamp();
            r.apply(Command::UpdatePool {
                name: POOLS[*pool].into(),
                enabled: Some(*enabled),
                set: BTreeMap::new(),
                unset: vec![],
                stamp,
            });
        }
    }
}

fn check_invariants(
    r: &Run,
    s: &Setup,
    epochs: &mut BTreeMap<String, u64>,
) -> Result<(), TestCaseError> {
    let st = &r.state;
    // Budget: in every window ending at a fence start, at most `budget` fence starts.
    let window = s.window_min * 60_000;
    for p in POOLS {
        let starts: Vec<u64> = st
            .ledger
            .iter()
            .filter(|e| e.fence && e.pool == p)
            .map(|e| e.at)
            .collect();
        for &t in &starts {
            let n = starts
                .iter()
                .filter(|&&x| x > t.saturating_sub(window) && x <= t)
                .count();
            prop_assert!(
                n as i64 <= s.budget,
                "pool {p}: {n} fences in a window, budget {}",
                s.budget
            );
        }
    }
    // Never fenced from Available/Degraded/Initializing/Suspect.
    for e in &st.events {
        if let EventKind::HostTransition(t) = &e.kind {
            if t.to == HaState::Fencing {
                prop_assert!(
                    matches!(
                        t.from,
                        HaState::Checking
                            | HaState::Recovering
                            | HaState::Recovered
                            | HaState::FenceFailed
                            | HaState::Fencing
                    ),
                    "fenced from {:?}: {t:?}",
                    t.from
                );
            }
        }
    }
    // Intents and hosts agree.
    for (name, h) in &st.hosts {
        let inflight: Vec<_> = st
            .intents
            .values()
            .filter(|i| i.host == *name && i.state == IntentState::InFlight)
            .collect();
        prop_assert!(
            inflight.len() <= 1,
            "{name}: {} intents in flight",
            inflight.len()
        );
        match h.ha.intent {
            Some(id) => {
                prop_assert!(matches!(h.ha.state, HaState::Recovering | HaState::Fencing));
                prop_assert!(
                    inflight.first().map(|i| i.id) == Some(id),
                    "{name}: record intent {id} not in flight"
                );
            }
            None => prop_assert!(
                inflight.is_empty(),
                "{name}: intent in flight without the record knowing"
            ),
        }
        let prev = epochs.insert(name.clone(), h.epoch).unwrap_or(0);
        prop_assert!(h.epoch >= prev, "epoch of {name} went back");
    }
    // Pool counts are exact.
    for p in POOLS {
        let want = PoolCounts::of(
            st.hosts
                .values()
                .filter(|h| h.spec.pool == p)
                .map(|h| h.ha.state),
        );
        prop_assert_eq!(st.pools[p].counts, want, "pool {} counts", p);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn replicated_state_invariants(s in setup(), ops in proptest::collection::vec(op(), 1..160)) {
        let mut r = build(&s);
        let mut epochs = BTreeMap::new();
        for o in &ops {
            step(&mut r, o);
            check_invariants(&r, &s, &mut epochs)?;
        }
        if std::env::var("VIGIL_PROP_STATS").is_ok() { eprintln!("STATS fences={} intents={} transitions={}", r.state.ledger.iter().filter(|e| e.fence).count(), r.state.next_intent, r.state.events.iter().filter(|e| matches!(e.kind, EventKind::HostTransition(_))).count()); }
        // Determinism: replaying the same commands gives the same bytes.
        let mut replay = VigilState::default();
        for (i, c) in r.commands.iter().enumerate() {
            replay.apply(ApplyContext { index: i as u64 + 1, term: 1, position: 0 }, c);
        }
        prop_assert_eq!(replay.encode_snapshot(), r.state.encode_snapshot());
        // Snapshot round trip.
        let back = VigilState::decode_snapshot(&r.state.encode_snapshot()).unwrap();
        prop_assert_eq!(back, r.state);
    }
}
