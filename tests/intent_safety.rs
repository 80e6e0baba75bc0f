//! The replicated half of the action protocol, through the real apply
//! ([`LocalApply`]): begin records, the power-cycle guard, takeover extensions of an
//! intent's deadline and the ledger bound (issue 10, items 3, 5, 6 and 9).
//!
//! The runtime half (retries, restarts, takeovers against the sim fleet's ground
//! truth) is in `tests/ha.rs`.

use vigil::engine::input::{Activity, HealthObs, Input};
use vigil::engine::policy::{parse_override, Millis};
use vigil::engine::HaState;
use vigil::engine::PowerState;
use vigil::fleet::{pool, sim_host, LocalApply};
use vigil::settings::Scope;
use vigil::state::model::{IntentState, LedgerEntry, MAX_INTENT_EXTENSIONS};
use vigil::state::{Command, HostInput, Response, Stamp};

const T0: Millis = 1_700_000_000_000;

fn at(by: u64, ms: Millis) -> Stamp {
    Stamp { by, at_ms: ms }
}

/// Pool `p` (one activity round decides; breaker and min-available out of the way)
/// with `extra` overrides, host `a` with `levels` fence levels, members 1 and 2 alive,
/// `a` owned by member 1 and Available.
fn fleet(extra: &[(&str, &str)], levels: usize) -> LocalApply {
    let mut l = LocalApply::default();
    let base = [
        ("policy.activity.rounds", "1"),
        ("policy.activity.failure_ratio", "1"),
        ("policy.breaker.min_hosts", "100"),
        ("policy.pool.min_available", "0"),
    ];
    let overrides = base
        .iter()
        .chain(extra.iter())
        .map(|(k, v)| (k.to_string(), parse_override(k, v, Scope::Pool).unwrap()))
        .collect();
    l.must(&Command::CreatePool {
        spec: pool("p", true, overrides),
        stamp: at(0, T0),
    });
    l.must(&Command::AddHost {
        spec: sim_host("a", "p", levels),
        stamp: at(0, T0),
    });
    for id in [1, 2] {
        l.must(&Command::SetMemberLiveness {
            id,
            addr: format!("127.0.0.1:{}", 7000 + id),
            alive: true,
            stamp: at(0, T0),
        });
    }
    assign(&mut l, 1, T0);
    input(
        &mut l,
        1,
        Input::Power {
            state: PowerState::On,
            detail: "test".into(),
        },
        T0,
    );
    input(&mut l, 1, health(true, 0), T0);
    assert_eq!(l.state.hosts["a"].ha.state, HaState::Available);
    l
}

fn assign(l: &mut LocalApply, owner: u64, ms: Millis) {
    l.must(&Command::AssignHosts {
        assignments: vec![("a".into(), Some(owner))],
        stamp: at(0, ms),
    });
}

fn health(pass: bool, failures: u32) -> Input {
    Input::Health(HealthObs {
        pass,
        consecutive_failures: failures,
        window_failures: failures,
        window_len: failures.max(1),
        detail: "test".into(),
    })
}

fn input(l: &mut LocalApply, by: u64, input: Input, ms: Millis) {
    let epoch = l.state.hosts["a"].epoch;
    l.must(&Command::HostInputs {
        inputs: vec![HostInput {
            host: "a".into(),
            epoch: Some(epoch),
            input,
        }],
        stamp: at(by, ms),
    });
}

/// Health failures, the activity round, no activity: the host's first action
/// starts. Returns its intent id.
fn to_action(l: &mut LocalApply, ms: Millis) -> u64 {
    input(l, 1, health(false, 5), ms);
    assert_eq!(l.state.hosts["a"].ha.state, HaState::Suspect);
    let due = l.state.hosts["a"].ha.next_activity_at;
    l.must(&Command::TickAll { stamp: at(1, due) });
    assert_eq!(l.state.hosts["a"].ha.state, HaState::Checking);
    input(
        l,
        1,
        Input::Activity {
            result: Activity::Inactive,
            detail: "test".into(),
        },
        due,
    );
    l.state.hosts["a"].ha.intent.expect("an intent")
}

fn begin(l: &mut LocalApply, by: u64, incarnation: u64, intent: u64, ms: Millis) -> Response {
    let epoch = l.state.hosts["a"].epoch;
    l.apply(&Command::BeginAction {
        host: "a".into(),
        epoch,
        intent,
        incarnation,
        stamp: at(by, ms),
    })
}

fn earlier(r: &Response) -> Vec<(u64, u64)> {
    match r {
        Response::Begun { earlier, .. } => earlier.iter().map(|b| (b.by, b.incarnation)).collect(),
        other => panic!("expected Begun, got {other:?}"),
    }
}

#[test]
fn begin_records_are_checked_at_apply_and_a_running_cycle_guards_the_host() {
    let mut l = fleet(
        &[
            ("policy.recovery.enabled", "true"),
            ("policy.recovery.timeout", "30s"),
        ],
        1,
    );
    let t = T0 + 60_000;
    let id = to_action(&mut l, t);
    assert_eq!(l.state.hosts["a"].ha.state, HaState::Recovering);
    // Only the owner, at its epoch, may begin.
    let r = begin(&mut l, 2, 9, id, t);
    assert!(
        matches!(&r, Response::Rejected { reason } if reason.contains("does not own")),
        "{r:?}"
    );
    let epoch = l.state.hosts["a"].epoch;
    let r = l.apply(&Command::BeginAction {
        host: "a".into(),
        epoch: epoch + 1,
        intent: id,
        incarnation: 7,
        stamp: at(1, t),
    });
    assert!(matches!(r, Response::Rejected { .. }), "{r:?}");
    // The owner begins; a retry of the same begin (its answer was lost) is harmless.
    assert_eq!(earlier(&begin(&mut l, 1, 7, id, t + 10)), vec![]);
    assert_eq!(earlier(&begin(&mut l, 1, 7, id, t + 20)), vec![]);
    let guard = l.state.hosts["a"].cycle_guard.expect("a cycle guard");
    // until = begin + the intent's 30 s budget + the 1 s default skew margin.
    assert_eq!(guard.until, t + 10 + 30_000 + 1_000);
    // The owner restarted (same member, same epoch, new process): the cycle its
    // previous process began may still be running, so it must wait...
    let r = begin(&mut l, 1, 8, id, t + 5_000);
    assert!(
        matches!(&r, Response::Rejected { reason } if reason.contains("may still be running")),
        "{r:?}"
    );
    // ...and afterwards learns that it was begun before: never repeated blindly.
    l.state.intents.get_mut(&id).unwrap().deadline = guard.until + 60_000;
    assert_eq!(earlier(&begin(&mut l, 1, 8, id, guard.until)), vec![(1, 7)]);
    // A new owner gets the intent's own budget from the end of the guard...
    let guard = l.state.hosts["a"].cycle_guard.unwrap();
    assign(&mut l, 2, guard.until - 20_000);
    let i = &l.state.intents[&id];
    assert_eq!(i.deadline, guard.until + i.timeout);
    assert_eq!(i.extensions, 1);
    // ...and may not begin before the guard is over.
    let r = begin(&mut l, 2, 1, id, guard.until - 1);
    assert!(matches!(r, Response::Rejected { .. }), "{r:?}");
    assert_eq!(
        earlier(&begin(&mut l, 2, 1, id, guard.until)),
        vec![(1, 7), (1, 8)]
    );
}

#[test]
fn a_fence_taken_over_needs_no_wait_and_an_unbegun_intent_is_nobodys() {
    let mut l = fleet(
        &[
            ("policy.fence.timeout", "5m"),
            ("policy.recovery.enabled", "false"),
        ],
        1,
    );
    let t = T0 + 60_000;
    let id = to_action(&mut l, t);
    assert_eq!(l.state.hosts["a"].ha.state, HaState::Fencing);
    // Nothing begun: the new owner begins at once, and nobody acted before it.
    assign(&mut l, 2, t + 100);
    assert_eq!(earlier(&begin(&mut l, 2, 1, id, t + 100)), vec![]);
    // A fence sets no guard (power-off is idempotent): a third owner may act at
    // once, knowing someone began it before (it reads the power first).
    assert!(l.state.hosts["a"].cycle_guard.is_none());
    assign(&mut l, 1, t + 200);
    assert_eq!(earlier(&begin(&mut l, 1, 3, id, t + 200)), vec![(2, 1)]);
}

#[test]
fn takeovers_extend_an_intent_a_bounded_number_of_times_then_it_times_out() {
    let mut l = fleet(
        &[
            ("policy.fence.timeout", "10s"),
            ("policy.recovery.enabled", "false"),
        ],
        1,
    );
    let t = T0 + 60_000;
    let id = to_action(&mut l, t);
    let mut deadlines = vec![l.state.intents[&id].deadline];
    for k in 1..=(MAX_INTENT_EXTENSIONS as u64 + 3) {
        // Each reassignment comes 9 s later, just before the deadline.
        assign(&mut l, if k % 2 == 1 { 2 } else { 1 }, t + k * 9_000);
        deadlines.push(l.state.intents[&id].deadline);
    }
    let i = &l.state.intents[&id];
    assert_eq!(i.extensions, MAX_INTENT_EXTENSIONS, "{deadlines:?}");
    // Once capped, later takeovers leave the deadline alone.
    let n = deadlines.len();
    let last = deadlines[n - 1];
    assert_eq!(deadlines[n - 2], last, "{deadlines:?}");
    // Past the deadline: the one level failed, FenceFailed with an alarm — no loop.
    l.must(&Command::TickAll { stamp: at(2, last) });
    let h = &l.state.hosts["a"];
    assert_eq!(h.ha.state, HaState::FenceFailed);
    assert!(h.ha.alarm.is_some());
    assert!(matches!(
        l.state.intents[&id].state,
        IntentState::Ended { .. }
    ));
}

#[test]
fn the_ledger_never_drops_a_fence_that_still_counts_against_the_budget() {
    // Budget 3 per hour; two fences 10 minutes ago, then 10 000 recoveries since.
    let mut l = fleet(&[("policy.recovery.enabled", "true")], 1);
    let t = T0 + 3_600_000;
    let fence_at = t - 600_000;
    let entry = |i: u64, fence: bool, at: Millis| LedgerEntry {
        intent: 1_000_000 + i,
        host: "gone".into(),
        pool: "p".into(),
        fence,
        at,
    };
    l.state.ledger.push_back(entry(0, true, fence_at));
    l.state.ledger.push_back(entry(1, true, fence_at));
    for i in 0..10_000 {
        l.state
            .ledger
            .push_back(entry(2 + i, false, fence_at + 1 + i / 100));
    }
    assert_eq!(l.state.pool_budget("p", t).used, 2);
    // A new recovery is recorded: the ledger is over its cap and is trimmed.
    to_action(&mut l, t);
    assert_eq!(l.state.hosts["a"].ha.state, HaState::Recovering);
    assert!(l.state.ledger.len() <= 10_000, "{}", l.state.ledger.len());
    assert_eq!(
        l.state.pool_budget("p", t).used,
        2,
        "fences inside the window were evicted"
    );
}
