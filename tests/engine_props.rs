//! Property tests of the pure HA engine (`src/engine`): the safety rules (never act
//! through a closed gate, never fence straight from Available or Degraded), the
//! structural invariants of the replicated record, liveness when the owner and the
//! BMC fall silent, determinism, and the pool FSM (gate, breaker, budget). A few
//! example-based tests pin down tricky paths found while reading the engine.
//!
//! Random runs drive one host: a random policy (random `policy.*` overrides within
//! the bounds declared in `settings.rs`, resolved through `Policy::resolve`), a gate,
//! maintenance and fence levels that change between steps, and a random sequence of
//! inputs with `now` advancing by 0 ms to hours. Health observations come from a real
//! `HealthTracker`, so their counters are consistent. Besides purely random inputs
//! the generator has a "drive" input that picks what moves the host's current state
//! forward (the due tick, a failing activity round, a failed fence level…), so deep
//! states (Recovering, Fencing, FenceFailed) are reached often.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm};

use vigil::engine::health::HealthTracker;
use vigil::engine::pool::{budget, evaluate, gate, PoolCounts, PoolState, PoolStatus};
use vigil::engine::{
    step, Action, ActionResult, Activity, Admin, Ctx, Gate, HaRecord, HaState, IneligibleReason,
    Input, Millis, Policy, PowerState, Step,
};
use vigil::settings::{SettingDef, SettingKind, SettingValue, SETTINGS};

const SEC: Millis = 1000;
const MIN: Millis = 60 * SEC;
const HOUR: Millis = 60 * MIN;
/// A realistic start time (ms since the Unix epoch), as the proposer stamps it.
const T0: Millis = 1_700_000_000_000;

// ----- generators -------------------------------------------------------------------

/// The `policy.*` keys the engine resolves (the concurrency keys are the runtime's).
fn policy_defs() -> Vec<&'static SettingDef> {
    SETTINGS
        .iter()
        .filter(|d| d.key.starts_with("policy.") && !d.key.starts_with("policy.concurrency."))
        .collect()
}

/// One override for `def` from a random (mode, raw) pair, or None for the default.
/// Modes: 0-2 default, 3 min, 4 max, 5 anywhere in the bounds, 6-7 near the default.
fn pick(def: &SettingDef, mode: u8, raw: u64) -> Option<SettingValue> {
    if mode < 3 {
        return None;
    }
    let within = |lo: u64, hi: u64| lo + raw % (hi - lo + 1);
    Some(match def.kind {
        SettingKind::Duration { min, max } => {
            let (lo, hi) = (min.as_millis() as u64, max.as_millis() as u64);
            let near = match def.default_value() {
                SettingValue::DurationMs(d) => d.saturating_mul(4).clamp(lo, hi),
                _ => hi,
            };
            SettingValue::DurationMs(match mode {
                3 => lo,
                4 => hi,
                5 => within(lo, hi),
                _ => within(lo, near),
            })
        }
        SettingKind::Integer { min, max } => {
            let (lo, hi) = (min as u64, max as u64);
            let near = match def.default_value() {
                SettingValue::Integer(d) => (d as u64).saturating_mul(4).clamp(lo, hi).max(10),
                _ => hi,
            }
            .min(hi);
            SettingValue::Integer(match mode {
                3 => lo,
                4 => hi,
                5 => within(lo, hi),
                _ => within(lo, near),
            } as i64)
        }
        SettingKind::Ratio => SettingValue::RatioPpm(match mode {
            3 => 0,
            4 => 1_000_000,
            _ => within(0, 1_000_000) as u32,
        }),
        SettingKind::Bool => SettingValue::Bool(raw % 2 == 0),
        SettingKind::Text { .. } => return None,
    })
}

/// A random policy: random overrides of `policy.*` keys, validated, then resolved.
fn arb_policy() -> impl Strategy<Value = Policy> {
    let n = policy_defs().len();
    proptest::collection::vec((0u8..8, any::<u64>()), n).prop_map(|choices| {
        let mut overrides = BTreeMap::new();
        for (def, (mode, raw)) in policy_defs().into_iter().zip(choices) {
            if let Some(v) = pick(def, mode, raw) {
                def.check(def.key, &v)
                    .expect("generated override within bounds");
                overrides.insert(def.key, v);
            }
        }
        Policy::resolve(|k| overrides.get(k).cloned()).expect("random policy resolves")
    })
}

fn arb_gate() -> impl Strategy<Value = Gate> {
    let actions = prop_oneof![
        6 => Just(Ok(())),
        1 => Just(Err("pool inactive: circuit breaker open".to_string())),
        1 => Just(Err("HA is disabled for the pool".to_string())),
    ];
    let budget = prop_oneof![1 => Just(0u32), 5 => 1u32..4];
    (actions, budget).prop_map(|(actions, fence_budget_left)| Gate {
        actions,
        fence_budget_left,
    })
}

/// Result of an action as the owner reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Res {
    Done(PowerState),
    Failed,
    /// Outcome unknown (the executor changed mid-action); power as read now.
    Unknown(PowerState),
}

impl Res {
    fn result(self) -> ActionResult {
        match self {
            Res::Done(p) => ActionResult::Done {
                power_after: p,
                detail: String::new(),
            },
            Res::Failed => ActionResult::Failed {
                reason: "driver error".into(),
            },
            Res::Unknown(p) => ActionResult::Unknown {
                power: p,
                detail: "taken over".into(),
            },
        }
    }
}

/// One thing that happens to the host (or its context) between steps.
#[derive(Debug, Clone)]
enum Op {
    /// A health check result, through the tracker.
    Health(bool),
    Activity(Activity),
    Power(PowerState),
    /// Outcome of the record's current intent (of a never-issued id when none).
    Outcome(Res),
    /// Outcome of an intent that is not the current one.
    StaleOutcome(u64, Res),
    Tick,
    Admin(Admin),
    /// The pool's gate changes (no step: it is read by the next one).
    SetGate(Gate),
    /// Maintenance toggled, then `Reevaluate` (as the apply layer does).
    FlipMaintenance,
    /// Fence drivers reconfigured, then `Reevaluate`.
    SetFenceLevels(u32),
    /// Whatever moves the current state forward; the number picks among choices.
    Drive(u8),
}

fn arb_res() -> impl Strategy<Value = Res> {
    prop_oneof![
        Just(Res::Done(PowerState::Off)),
        Just(Res::Done(PowerState::On)),
        Just(Res::Done(PowerState::Unknown)),
        Just(Res::Failed),
        Just(Res::Unknown(PowerState::On)),
        Just(Res::Unknown(PowerState::Off)),
        Just(Res::Unknown(PowerState::Unknown)),
    ]
}

fn arb_power() -> impl Strategy<Value = PowerState> {
    prop_oneof![
        2 => Just(PowerState::On),
        1 => Just(PowerState::Off),
        1 => Just(PowerState::Unknown),
    ]
}

fn arb_admin() -> impl Strategy<Value = Admin> {
    prop_oneof![
        Just(Admin::Enable),
        Just(Admin::Disable),
        Just(Admin::Reevaluate),
        Just(Admin::Retry),
        Just(Admin::ConfirmOff),
        Just(Admin::Unfence),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<bool>().prop_map(Op::Health),
        2 => prop_oneof![
            Just(Activity::Active),
            Just(Activity::Inactive),
            Just(Activity::Error)
        ]
        .prop_map(Op::Activity),
        2 => arb_power().prop_map(Op::Power),
        2 => arb_res().prop_map(Op::Outcome),
        1 => (0u64..4, arb_res()).prop_map(|(k, r)| Op::StaleOutcome(k, r)),
        4 => Just(Op::Tick),
        1 => arb_admin().prop_map(Op::Admin),
        1 => arb_gate().prop_map(Op::SetGate),
        1 => Just(Op::FlipMaintenance),
        1 => (0u32..4).prop_map(Op::SetFenceLevels),
        20 => any::<u8>().prop_map(Op::Drive),
    ]
}

/// How far `now` moves before an op: often not at all, up to hours.
fn arb_dt() -> impl Strategy<Value = Millis> {
    prop_oneof![
        3 => Just(0u64),
        4 => 0u64..5 * SEC,
        3 => 0u64..10 * MIN,
        1 => 0u64..6 * HOUR,
    ]
}

/// A whole run: policy, initial context and the ops.
#[derive(Debug, Clone)]
struct Scenario {
    policy: Policy,
    gate: Gate,
    fence_levels: u32,
    maintenance: bool,
    ops: Vec<(Millis, Op)>,
}

fn arb_scenario(max_ops: usize) -> impl Strategy<Value = Scenario> {
    (
        arb_policy(),
        arb_gate(),
        prop_oneof![1 => Just(0u32), 4 => 1u32..4],
        prop::bool::weighted(0.1),
        proptest::collection::vec((arb_dt(), arb_op()), 1..max_ops),
    )
        .prop_map(|(policy, gate, fence_levels, maintenance, ops)| Scenario {
            policy,
            gate,
            fence_levels,
            maintenance,
            ops,
        })
}

// ----- the simulated apply layer ------------------------------------------------------

/// One engine step with everything it saw.
#[derive(Debug, Clone)]
struct Rec {
    before: HaRecord,
    gate: Gate,
    fence_levels: u32,
    maintenance: bool,
    next_intent: u64,
    input: Input,
    now: Millis,
    out: Step,
}

/// One host and its context, fed like the apply layer feeds the engine.
#[derive(Debug)]
struct Sim {
    policy: Policy,
    gate: Gate,
    maintenance: bool,
    fence_levels: u32,
    next_intent: u64,
    now: Millis,
    rec: HaRecord,
    tracker: HealthTracker,
}

fn power(state: PowerState) -> Input {
    Input::Power {
        state,
        detail: "bmc".into(),
    }
}

fn activity(result: Activity) -> Input {
    Input::Activity {
        result,
        detail: "probe".into(),
    }
}

fn outcome(intent: u64, res: Res) -> Input {
    Input::Outcome {
        intent,
        result: res.result(),
    }
}

impl Sim {
    fn new(s: &Scenario) -> Self {
        Sim {
            policy: s.policy.clone(),
            gate: s.gate.clone(),
            maintenance: s.maintenance,
            fence_levels: s.fence_levels,
            next_intent: 1,
            now: T0,
            rec: HaRecord::new(T0),
            tracker: HealthTracker::default(),
        }
    }

    /// Run the engine on `input` at the current time and keep its result. Intent ids
    /// are fed back as the apply layer does: next = max used + 1.
    fn step(&mut self, input: Input) -> Rec {
        let ctx = Ctx {
            policy: &self.policy,
            gate: &self.gate,
            maintenance: self.maintenance,
            fence_levels: self.fence_levels,
            next_intent_id: self.next_intent,
        };
        let out = step(&self.rec, &ctx, &input, self.now);
        let rec = Rec {
            before: self.rec.clone(),
            gate: self.gate.clone(),
            fence_levels: self.fence_levels,
            maintenance: self.maintenance,
            next_intent: self.next_intent,
            input,
            now: self.now,
            out,
        };
        for a in &rec.out.actions {
            if let Action::Recover { intent, .. } | Action::Fence { intent, .. } = a {
                self.next_intent = self.next_intent.max(intent + 1);
            }
        }
        self.rec = rec.out.record.clone();
        rec
    }

    fn health(&mut self, pass: bool) -> Input {
        let detail = if pass { "200 OK" } else { "timeout" };
        Input::Health(
            self.tracker
                .observe(pass, detail, self.policy.health_window),
        )
    }

    /// Advance time by `dt` and apply `op`: zero or one engine step.
    fn apply(&mut self, dt: Millis, op: &Op) -> Option<Rec> {
        self.now += dt;
        let input = match op {
            Op::Health(pass) => self.health(*pass),
            Op::Activity(a) => activity(*a),
            Op::Power(p) => power(*p),
            Op::Outcome(res) => outcome(self.rec.intent.unwrap_or(self.next_intent), *res),
            Op::StaleOutcome(k, res) => {
                // An older id, or one that was never issued; never the current one.
                let id = if k % 2 == 0 {
                    self.next_intent.saturating_sub(1 + k)
                } else {
                    self.next_intent + k
                };
                if Some(id) == self.rec.intent {
                    return None;
                }
                outcome(id, *res)
            }
            Op::Tick => Input::Tick,
            Op::Admin(a) => Input::Admin(*a),
            Op::SetGate(g) => {
                self.gate = g.clone();
                return None;
            }
            Op::FlipMaintenance => {
                self.maintenance = !self.maintenance;
                Input::Admin(Admin::Reevaluate)
            }
            Op::SetFenceLevels(n) => {
                self.fence_levels = *n;
                Input::Admin(Admin::Reevaluate)
            }
            Op::Drive(c) => self.drive(*c),
        };
        Some(self.step(input))
    }

    /// Move time to `at` (or just before it, for boundary cases) and tick.
    fn tick_at(&mut self, at: Millis, c: u8) -> Input {
        let at = if c % 5 == 0 { at.saturating_sub(1) } else { at };
        self.now = self.now.max(at);
        Input::Tick
    }

    /// The input that moves the current state forward; `c` picks among choices.
    fn drive(&mut self, c: u8) -> Input {
        use HaState::*;
        let r = self.rec.clone();
        match r.state {
            Disabled => Input::Admin(Admin::Enable),
            Ineligible => {
                if self.maintenance {
                    self.maintenance = false;
                    Input::Admin(Admin::Reevaluate)
                } else if self.fence_levels == 0 {
                    self.fence_levels = 1 + u32::from(c % 3);
                    Input::Admin(Admin::Reevaluate)
                } else if r.power != PowerState::On {
                    power(PowerState::On)
                } else {
                    Input::Admin(Admin::Reevaluate)
                }
            }
            Initializing => match c % 4 {
                0 => self.health(true),
                1 => self.tick_at(r.deadline, c),
                _ => {
                    self.now = self.now.max(r.quiet_until);
                    self.health(false)
                }
            },
            Available => self.health(c % 8 == 0),
            Suspect => self.tick_at(r.next_activity_at, c),
            Checking => match c % 8 {
                0 => activity(Activity::Active),
                1 => activity(Activity::Error),
                2 => self.tick_at(r.deadline, c),
                _ => activity(Activity::Inactive),
            },
            Degraded => match c % 3 {
                0 => self.tick_at(r.next_activity_at, c),
                _ => activity(Activity::Inactive),
            },
            Recovering | Fencing => {
                let id = r.intent.unwrap_or(self.next_intent);
                match c % 8 {
                    0 => outcome(id, Res::Done(PowerState::Off)),
                    1 => outcome(id, Res::Done(PowerState::On)),
                    2 => self.tick_at(r.deadline, c),
                    3 => outcome(id, Res::Unknown(PowerState::On)),
                    4 => outcome(id, Res::Unknown(PowerState::Unknown)),
                    _ => outcome(id, Res::Failed),
                }
            }
            Recovered => match c % 3 {
                0 => self.health(true),
                _ => self.tick_at(r.deadline, c),
            },
            Fenced => match c % 3 {
                0 => power(PowerState::On),
                _ => Input::Admin(Admin::Unfence),
            },
            FenceFailed => match c % 4 {
                0 => Input::Admin(Admin::ConfirmOff),
                _ => Input::Admin(Admin::Retry),
            },
        }
    }
}

/// Run a whole scenario, collecting every step.
fn run(s: &Scenario) -> (Sim, Vec<Rec>) {
    let mut sim = Sim::new(s);
    let mut recs = Vec::with_capacity(s.ops.len());
    for (dt, op) in &s.ops {
        if let Some(r) = sim.apply(*dt, op) {
            recs.push(r);
        }
    }
    (sim, recs)
}

fn is_admin(input: &Input, a: Admin) -> bool {
    *input == Input::Admin(a)
}

fn is_power(input: &Input, s: PowerState) -> bool {
    matches!(input, Input::Power { state, .. } if *state == s)
}

/// `n` cases, with the XorShift generator: the default ChaCha generator dominates the
/// run time in a debug build.
fn cases(n: u32) -> Config {
    Config {
        cases: n,
        rng_algorithm: RngAlgorithm::XorShift,
        ..Config::default()
    }
}

// ----- properties -------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(768))]

    /// 1. No recovery and no new fence through a closed gate; no new fence without
    /// budget or without a fence level.
    #[test]
    fn never_acts_through_a_closed_gate(s in arb_scenario(160)) {
        let (_, recs) = run(&s);
        for r in &recs {
            for a in &r.out.actions {
                match a {
                    Action::Recover { .. } => prop_assert!(
                        r.gate.actions.is_ok(),
                        "recovery through a closed gate: {r:#?}"
                    ),
                    Action::Fence { new_fence: true, .. } => {
                        prop_assert!(r.gate.actions.is_ok(), "new fence through a closed gate: {r:#?}");
                        prop_assert!(r.gate.fence_budget_left > 0, "new fence without budget: {r:#?}");
                        prop_assert!(r.fence_levels > 0, "new fence without a fence level: {r:#?}");
                    }
                    _ => {}
                }
            }
        }
    }

    /// 1b. Maintenance takes a host out of HA: no recovery and no new fence starts
    /// while it is on (an operator's explicit retry of a failed fence excepted).
    /// Maintenance switched on while an intent runs applies once it ends.
    #[test]
    fn never_acts_on_a_host_in_maintenance(s in arb_scenario(160)) {
        let (_, recs) = run(&s);
        for r in &recs {
            if !r.maintenance || is_admin(&r.input, Admin::Retry) {
                continue;
            }
            for a in &r.out.actions {
                prop_assert!(
                    !matches!(a, Action::Recover { .. } | Action::Fence { new_fence: true, .. }),
                    "action on a host in maintenance: {r:#?}"
                );
            }
        }
    }

    /// 2. Never fenced straight from Available or Degraded; more generally every entry
    /// into Fencing or Fenced follows a documented path.
    #[test]
    fn never_fenced_from_available_or_degraded(s in arb_scenario(160)) {
        use HaState::*;
        let (_, recs) = run(&s);
        for r in &recs {
            let from = r.before.state;
            let to = r.out.record.state;
            let fences: Vec<_> = r.out.actions.iter()
                .filter(|a| matches!(a, Action::Fence { .. }))
                .collect();
            let off = is_power(&r.input, PowerState::Off);
            let confirm = is_admin(&r.input, Admin::ConfirmOff);
            // The documented exceptions: a failing host found powered off, and the
            // operator confirming it is off. Neither emits any action but closing.
            let found_off = off && matches!(from, Suspect | Checking | Degraded | Recovered | FenceFailed);
            let confirmed = confirm && matches!(from, Suspect | Checking | Degraded | Recovered | Fencing | FenceFailed);
            if matches!(from, Available | Degraded) {
                prop_assert!(fences.is_empty(), "fence action from {from}: {r:#?}");
                prop_assert!(to != Fencing, "{from} -> fencing: {r:#?}");
                if to == Fenced {
                    prop_assert!(from == Degraded && (found_off || confirmed), "{from} -> fenced: {r:#?}");
                }
            }
            if to == Fenced && from != Fenced {
                let reads_off = matches!(
                    &r.input,
                    Input::Outcome {
                        result: ActionResult::Done { power_after: PowerState::Off, .. }
                            | ActionResult::Unknown { power: PowerState::Off, .. },
                        ..
                    }
                );
                // Fencing verified off, or a power cycle that found the host off (it
                // powers on only a host it powered off itself).
                let verified = matches!(from, Fencing | Recovering) && (off || reads_off);
                prop_assert!(verified || found_off || confirmed, "unexpected entry into fenced: {r:#?}");
                prop_assert!(
                    r.out.actions.iter().all(|a| matches!(a, Action::CloseIntent { .. })),
                    "action other than closing the intent while entering fenced: {r:#?}"
                );
            }
            for a in &fences {
                let Action::Fence { new_fence, .. } = a else { unreachable!() };
                if *new_fence {
                    // A new fence needs evidence: a verdict of the activity rounds, a
                    // host that did not come back within the recovery wait after a
                    // power cycle (whatever became of the cycle: a failed or unknown
                    // cycle is never by itself a reason to fence, so never straight
                    // from Recovering), or an operator retry of a failed fence.
                    let ok = match from {
                        Checking => r.input == activity(Activity::Inactive)
                            && r.out.record.rounds_failed >= s.policy.activity_failures_needed(),
                        Recovered => r.input == Input::Tick,
                        FenceFailed => is_admin(&r.input, Admin::Retry),
                        _ => false,
                    };
                    prop_assert!(ok, "new fence without evidence: {r:#?}");
                } else {
                    prop_assert!(from == Fencing, "escalation outside fencing: {r:#?}");
                }
            }
        }
    }

    /// 3. Structural invariants of the record after every step, and intent numbering.
    #[test]
    fn record_invariants_hold(s in arb_scenario(160)) {
        let (_, recs) = run(&s);
        let mut max_intent = 0u64;
        // fence_levels when the current fence level started (it may be reconfigured
        // while the fence runs; the engine then ends at FenceFailed).
        let mut levels_at_fence = 0u32;
        for r in &recs {
            let rec = &r.out.record;
            let st = rec.state;
            prop_assert_eq!(
                rec.intent.is_some(),
                matches!(st, HaState::Recovering | HaState::Fencing),
                "intent vs state: {:#?}", r
            );
            if st.in_flight() {
                prop_assert!(rec.deadline != 0 || rec.next_activity_at != 0, "in-flight without deadline: {r:#?}");
            }
            prop_assert_eq!(rec.ineligible.is_some(), st == HaState::Ineligible, "ineligible reason: {:#?}", r);
            let mut k = 0;
            for a in &r.out.actions {
                if let Action::Recover { intent, deadline, .. } | Action::Fence { intent, deadline, .. } = a {
                    prop_assert_eq!(*intent, r.next_intent + k, "intent id: {:#?}", r);
                    prop_assert!(*intent > max_intent, "intent ids must grow: {r:#?}");
                    prop_assert!(*deadline > r.now, "action deadline in the past: {r:#?}");
                    prop_assert_eq!(rec.intent, Some(*intent), "record intent is the last one: {:#?}", r);
                    max_intent = *intent;
                    k += 1;
                }
                if let Action::Fence { level, .. } = a {
                    prop_assert!(*level < r.fence_levels, "fence level out of range: {r:#?}");
                    levels_at_fence = r.fence_levels;
                }
            }
            if st == HaState::Fencing {
                prop_assert!(rec.fence_level < levels_at_fence, "fence level out of range: {r:#?}");
            }
            // An outcome for any intent but the current one changes nothing.
            if let Input::Outcome { intent, .. } = &r.input {
                if r.before.intent != Some(*intent) {
                    prop_assert!(r.out.is_noop(&r.before), "stale outcome acted: {r:#?}");
                }
            }
            // `since` is the time of the last transition, never in the future.
            prop_assert!(rec.since <= r.now, "since in the future: {r:#?}");
            if r.out.transition.is_some() {
                prop_assert_eq!(rec.since, r.now);
            }
        }
    }

    /// 3b. An authorized intent ends only as DESIGN.md §4 says: Recovering ends in
    /// Recovered (done, failed, unknown or timed out: the host gets its recovery
    /// wait), another attempt, (gate closed) back to Suspect, Available (it passed a
    /// health check), Fenced (the cycle found it off) or (put in maintenance
    /// meanwhile) Ineligible — never straight in Fencing; Fencing ends in the next
    /// level, Fenced or FenceFailed. HA disabled ends either.
    #[test]
    fn intents_end_only_through_documented_exits(s in arb_scenario(160)) {
        use HaState::*;
        let (_, recs) = run(&s);
        for r in &recs {
            let to = r.out.record.state;
            match r.before.state {
                Recovering => prop_assert!(
                    matches!(to, Recovering | Recovered | Suspect | Available | Fenced | Ineligible | Disabled),
                    "recovering -> {to}: {r:#?}"
                ),
                Fencing => prop_assert!(
                    matches!(to, Fencing | Fenced | FenceFailed | Disabled),
                    "fencing -> {to}: {r:#?}"
                ),
                _ => {}
            }
            if r.before.state == Recovering && to == Suspect {
                prop_assert!(r.out.record.blocked.is_some(), "recovering -> suspect without a hold: {r:#?}");
            }
            if r.before.state == Recovering && to == Ineligible {
                prop_assert!(
                    r.maintenance && r.out.record.ineligible == Some(IneligibleReason::Maintenance),
                    "recovering -> ineligible: {r:#?}"
                );
            }
        }
    }

    /// 5. The same (policy, gates, inputs) give the same records, transitions and
    /// actions at every step.
    #[test]
    fn engine_is_deterministic(s in arb_scenario(160)) {
        let (sim1, a) = run(&s);
        let (sim2, b) = run(&s);
        prop_assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            prop_assert_eq!(&x.out, &y.out);
        }
        prop_assert_eq!(sim1.rec, sim2.rec);
        prop_assert_eq!(sim1.next_intent, sim2.next_intent);
    }
}

proptest! {
    #![proptest_config(cases(512))]

    /// 4. From any reached state, if the owner and the BMC never answer again, time
    /// alone takes the host out of every in-flight state within a bound, and it
    /// stays out.
    #[test]
    fn silence_ends_every_in_flight_state(
        s in arb_scenario(120),
        gates in proptest::collection::vec(arb_gate(), 0..8),
    ) {
        let (mut sim, _) = run(&s);
        let p = sim.policy.clone();
        let longest = [
            p.health_interval, p.health_timeout, p.activity_interval, p.activity_max_interval,
            p.activity_timeout, p.recovery_timeout, p.recovery_wait, p.fence_timeout,
            p.quiet_period, p.initialize_timeout, p.degraded_max_time,
        ].into_iter().max().unwrap_or(0);
        let dt = longest + p.activity_max_interval + SEC;
        // Each power cycle attempt takes two steps (Recovering, then the recovery wait).
        let bound = 4 * p.activity_rounds + 2 * sim.fence_levels + 2 * p.recovery_attempts + 10;
        let start = sim.rec.clone();
        for i in 0..bound as usize {
            if sim.rec.state.in_flight() {
                // The pool's gate may still change meanwhile.
                if !gates.is_empty() {
                    sim.gate = gates[i % gates.len()].clone();
                }
                sim.now += dt;
                sim.step(Input::Tick);
            }
        }
        // A host held by a closed gate waits in Suspect, visibly (its `blocked`
        // reason), for as long as the gate stays closed: that is its exit.
        let held = sim.rec.state == HaState::Suspect
            && sim.rec.blocked.is_some()
            && (sim.gate.actions.is_err() || sim.gate.fence_budget_left == 0);
        prop_assert!(
            !sim.rec.state.in_flight() || held,
            "still {} after {bound} ticks of {dt} ms from {start:#?}\nnow {:#?}",
            sim.rec.state, sim.rec
        );
        let settled = sim.rec.state;
        for _ in 0..3 {
            sim.now += dt;
            let r = sim.step(Input::Tick);
            prop_assert!(r.out.transition.is_none(), "left {settled} on a tick: {r:#?}");
        }
    }
}

// ----- pool FSM ------------------------------------------------------------------------

/// Pool policy knobs within their declared bounds (small enough to trip and heal).
fn arb_pool_policy() -> impl Strategy<Value = Policy> {
    (
        0u32..6,
        0u32..=1_000_000,
        1u32..6,
        SEC..=2 * HOUR,
        0u32..5,
        MIN..=3 * HOUR,
    )
        .prop_map(
            |(min_available, ratio, min_hosts, cooldown, fences, window)| Policy {
                pool_min_available: min_available,
                breaker_ratio_ppm: ratio,
                breaker_min_hosts: min_hosts,
                breaker_cooldown: cooldown,
                fence_budget: fences,
                fence_budget_window: window,
                ..Policy::default()
            },
        )
}

#[derive(Debug, Clone)]
struct PoolOp {
    dt: Millis,
    enabled: bool,
    counts: PoolCounts,
    /// A fence started now (goes to the ledger before the evaluation).
    fence: bool,
    /// Instead of `dt`, move to a boundary ± 1 ms: 1 the breaker's closing time,
    /// 2 the moment the oldest counted fence leaves the budget window.
    snap: (u8, i8),
}

fn arb_pool_op() -> impl Strategy<Value = PoolOp> {
    let dt = prop_oneof![1 => Just(0u64), 3 => 0u64..10 * MIN, 1 => 0u64..2 * HOUR];
    (
        dt,
        prop::bool::weighted(0.9),
        (0u32..12, 0u32..12, 0u32..12),
        prop::bool::weighted(0.2),
        (prop_oneof![3 => Just(0u8), 1 => 1u8..3], -1i8..=1),
    )
        .prop_map(|(dt, enabled, (n, a, f), fence, snap)| {
            let failing = f.min(n);
            let available = a.min(n - failing);
            PoolOp {
                dt,
                enabled,
                counts: PoolCounts {
                    hosts: n + 1,
                    enabled: n,
                    available,
                    failing,
                },
                fence,
                snap,
            }
        })
}

fn tripped(c: &PoolCounts, p: &Policy) -> bool {
    c.failing >= p.breaker_min_hosts
        && u64::from(c.failing) * 1_000_000 >= u64::from(p.breaker_ratio_ppm) * u64::from(c.enabled)
}

proptest! {
    #![proptest_config(cases(1024))]

    /// 6. Pool FSM: Active only when allowed; the breaker closes no earlier than its
    /// cooldown after the failures cleared; the budget counts exactly the window.
    #[test]
    fn pool_gate_breaker_and_budget(
        p in arb_pool_policy(),
        early in proptest::collection::vec(0u64..4 * HOUR, 0..4),
        ops in proptest::collection::vec(arb_pool_op(), 1..80),
    ) {
        let mut now = T0;
        let mut status = PoolStatus::new(now);
        // Older ledger entries, some inside the first window.
        let mut starts: Vec<Millis> = early.iter().map(|d| now - d).collect();
        // Model: last evaluation that saw the breaker condition, and the first one
        // after it that did not.
        let mut clear_since: Option<Millis> = None;
        for op in &ops {
            let boundary = match op.snap.0 {
                1 => status.breaker_clear_since.map(|c| c + p.breaker_cooldown),
                2 => budget(starts.iter().copied(), &p, now).next_free_at,
                _ => None,
            };
            now = match boundary {
                Some(t) => now.max(t.saturating_add_signed(op.snap.1.into())),
                None => now + op.dt,
            };
            if op.fence {
                starts.push(now);
            }
            let b = budget(starts.iter().copied(), &p, now);
            let in_window = starts
                .iter()
                .filter(|t| **t > now.saturating_sub(p.fence_budget_window) && **t <= now)
                .count() as u32;
            prop_assert!(b.used <= in_window);
            prop_assert_eq!(b.used, in_window);
            prop_assert_eq!(b.max, p.fence_budget);
            prop_assert_eq!(b.left(), p.fence_budget.saturating_sub(in_window));
            if in_window > 0 {
                prop_assert!(b.next_free_at.is_some_and(|t| t > now && t <= now + p.fence_budget_window));
            }

            let trip = tripped(&op.counts, &p);
            let next = evaluate(&status, op.enabled, &op.counts, &b, &p, now);

            if next.state == PoolState::Active {
                prop_assert!(op.enabled);
                prop_assert!(next.breaker_open_since.is_none());
                prop_assert!(b.left() > 0);
                prop_assert!(op.counts.available >= p.pool_min_available);
            }
            prop_assert_eq!(next.state == PoolState::Disabled, !op.enabled);
            prop_assert_eq!(
                gate(&next, &b).actions.is_ok(),
                next.state == PoolState::Active
            );
            if op.enabled && trip {
                prop_assert!(next.breaker_open_since.is_some(), "tripped but closed");
                prop_assert_eq!(next.state, PoolState::Inactive);
            }

            if !op.enabled || trip {
                clear_since = None;
            } else if status.breaker_open_since.is_some() {
                let cleared = *clear_since.get_or_insert(now);
                if next.breaker_open_since.is_none() {
                    prop_assert!(
                        now >= cleared + p.breaker_cooldown,
                        "breaker closed at {now}, cleared at {cleared}, cooldown {}",
                        p.breaker_cooldown
                    );
                } else if now >= cleared + p.breaker_cooldown {
                    prop_assert!(false, "breaker still open at {now}, cleared at {cleared}");
                }
            }
            if next.breaker_open_since.is_none() {
                clear_since = None;
            }
            if next.state != status.state {
                prop_assert_eq!(next.since, now);
            }
            status = next;
        }
    }
}

// ----- examples ------------------------------------------------------------------------

/// A small, fast policy: one health failure suspects, one round without activity is
/// a verdict, one power cycle, short timeouts, quiet period of a minute.
fn example_policy() -> Policy {
    Policy {
        health_failures: 1,
        activity_rounds: 1,
        activity_failure_ratio_ppm: 1_000_000,
        activity_interval: SEC,
        activity_max_interval: SEC,
        recovery_enabled: true,
        recovery_attempts: 1,
        quiet_period: MIN,
        ..Policy::default()
    }
}

fn example_sim(policy: Policy, fence_levels: u32) -> Sim {
    Sim::new(&Scenario {
        policy,
        gate: Gate::open(3),
        fence_levels,
        maintenance: false,
        ops: vec![],
    })
}

/// Enable, power on, pass, fail, run the one activity round: the host is Checking.
fn to_checking(sim: &mut Sim) {
    sim.step(Input::Admin(Admin::Enable));
    assert_eq!(sim.rec.state, HaState::Ineligible); // power not read yet
    sim.step(power(PowerState::On));
    assert_eq!(sim.rec.state, HaState::Initializing);
    let pass = sim.health(true);
    sim.step(pass);
    assert_eq!(sim.rec.state, HaState::Available);
    let fail = sim.health(false);
    sim.step(fail);
    assert_eq!(sim.rec.state, HaState::Suspect);
    sim.now = sim.rec.next_activity_at;
    let r = sim.step(Input::Tick);
    assert_eq!(sim.rec.state, HaState::Checking);
    assert_eq!(r.out.actions, [Action::ActivityCheck { round: 1 }]);
}

#[test]
fn outcome_of_a_stale_intent_is_ignored() {
    let mut sim = example_sim(example_policy(), 2);
    to_checking(&mut sim);
    let r = sim.step(activity(Activity::Inactive));
    assert_eq!(sim.rec.state, HaState::Recovering);
    assert!(matches!(
        r.out.actions[..],
        [Action::Recover {
            intent: 1,
            attempt: 1,
            ..
        }]
    ));
    // A late "power is off" for an intent that is not the current one changes nothing.
    for stale in [0, 2, 7] {
        let r = sim.step(outcome(stale, Res::Done(PowerState::Off)));
        assert!(r.out.is_noop(&r.before), "{r:#?}");
    }
    // The current one counts.
    sim.step(outcome(1, Res::Done(PowerState::On)));
    assert_eq!(sim.rec.state, HaState::Recovered);
    assert_eq!(sim.rec.intent, None);
    // And once closed, its late duplicate is ignored too.
    let r = sim.step(outcome(1, Res::Failed));
    assert!(r.out.is_noop(&r.before), "{r:#?}");
}

#[test]
fn quiet_period_after_power_on_ignores_failures() {
    let p = example_policy();
    let mut sim = example_sim(p.clone(), 1);
    to_checking(&mut sim);
    sim.step(Input::Admin(Admin::ConfirmOff));
    assert_eq!(sim.rec.state, HaState::Fenced);
    assert_eq!(sim.rec.power, PowerState::Off);
    // Returned to service while still off: not protected until it is powered on.
    sim.step(Input::Admin(Admin::Unfence));
    assert_eq!(sim.rec.state, HaState::Ineligible);
    sim.now += 5 * SEC;
    sim.step(power(PowerState::On));
    assert_eq!(sim.rec.state, HaState::Initializing);
    let quiet_until = sim.now + p.quiet_period;
    assert_eq!(sim.rec.quiet_until, quiet_until);
    // Failing checks (and ticks) inside the quiet period change nothing.
    for _ in 0..5 {
        sim.now += 10 * SEC;
        let fail = sim.health(false);
        let r = sim.step(fail);
        assert!(r.out.transition.is_none(), "{r:#?}");
        let r = sim.step(Input::Tick);
        assert!(r.out.transition.is_none(), "{r:#?}");
    }
    sim.now = quiet_until - 1;
    let fail = sim.health(false);
    sim.step(fail);
    assert_eq!(sim.rec.state, HaState::Initializing);
    // The first failure after it suspects the host.
    sim.now = quiet_until;
    let fail = sim.health(false);
    sim.step(fail);
    assert_eq!(sim.rec.state, HaState::Suspect);
}

#[test]
fn fence_levels_escalate_in_order_and_only_the_first_is_new() {
    let mut p = example_policy();
    p.recovery_enabled = false;
    let mut sim = example_sim(p.clone(), 3);
    to_checking(&mut sim);
    let r = sim.step(activity(Activity::Inactive));
    assert_eq!(sim.rec.state, HaState::Fencing);
    let deadline = sim.now + p.fence_timeout;
    assert_eq!(
        r.out.actions,
        [Action::Fence {
            intent: 1,
            level: 0,
            new_fence: true,
            deadline
        }]
    );
    // The gate closing now does not stop an authorized fence half way.
    sim.gate = Gate {
        actions: Err("pool inactive".into()),
        fence_budget_left: 0,
    };
    sim.now += SEC;
    let r = sim.step(outcome(1, Res::Failed));
    assert!(
        matches!(
            r.out.actions[..],
            [
                Action::CloseIntent { intent: 1, .. },
                Action::Fence {
                    intent: 2,
                    level: 1,
                    new_fence: false,
                    ..
                }
            ]
        ),
        "{r:#?}"
    );
    // Level 2 is silent: its deadline moves on to level 3.
    sim.now = sim.rec.deadline;
    let r = sim.step(Input::Tick);
    assert!(
        matches!(
            r.out.actions[..],
            [
                Action::CloseIntent {
                    intent: 2,
                    end: vigil::engine::IntentEnd::TimedOut
                },
                Action::Fence {
                    intent: 3,
                    level: 2,
                    new_fence: false,
                    ..
                }
            ]
        ),
        "{r:#?}"
    );
    // Level 3 powers off but the host is still on: every level failed.
    let r = sim.step(outcome(3, Res::Done(PowerState::On)));
    assert_eq!(sim.rec.state, HaState::FenceFailed);
    assert!(sim.rec.alarm.is_some());
    assert!(matches!(r.out.actions.last(), Some(Action::Alarm { .. })));
    // A retry is held while the gate is closed, and visible.
    let r = sim.step(Input::Admin(Admin::Retry));
    assert_eq!(sim.rec.state, HaState::FenceFailed);
    assert!(r.out.actions.is_empty());
    assert!(sim.rec.blocked.is_some());
    // Once open, the retry is a new fence from level 1.
    sim.gate = Gate::open(1);
    let r = sim.step(Input::Admin(Admin::Retry));
    assert!(
        matches!(
            r.out.actions[..],
            [Action::Fence {
                intent: 4,
                level: 0,
                new_fence: true,
                ..
            }]
        ),
        "{r:#?}"
    );
}

#[test]
fn closed_gate_holds_the_verdict_and_reverifies() {
    let mut sim = example_sim(example_policy(), 1);
    to_checking(&mut sim);
    sim.gate = Gate {
        actions: Err("circuit breaker open".into()),
        fence_budget_left: 3,
    };
    let r = sim.step(activity(Activity::Inactive));
    assert_eq!(sim.rec.state, HaState::Suspect);
    assert!(r.out.actions.is_empty(), "{r:#?}");
    assert_eq!(sim.rec.blocked.as_deref(), Some("circuit breaker open"));
    assert_eq!(sim.rec.rounds_done, 0, "re-verified from the first round");
    assert!(sim.rec.next_activity_at > sim.now);
    // Budget spent with recovery off: the fence is held too.
    let mut p = example_policy();
    p.recovery_enabled = false;
    let mut sim = example_sim(p, 1);
    to_checking(&mut sim);
    sim.gate = Gate::open(0);
    sim.step(activity(Activity::Inactive));
    assert_eq!(sim.rec.state, HaState::Suspect);
    assert_eq!(
        sim.rec.blocked.as_deref(),
        Some("fence budget of the pool is spent")
    );
}

/// Regression (found by `intents_end_only_through_documented_exits`): a power sync
/// reading "on" after "unknown" used to re-initialize a Fencing host, abandoning the
/// authorized fence half way (BMCs often stop answering during a power operation). If
/// the power-off then took effect, the host sat Ineligible (powered off) and was never
/// reported Fenced, so its workloads were never restarted elsewhere.
#[test]
fn power_on_reading_does_not_abandon_a_running_fence() {
    let mut p = example_policy();
    p.recovery_enabled = false;
    // Fence started while the host was on; the BMC goes quiet, then answers "on".
    let mut sim = example_sim(p.clone(), 2);
    to_checking(&mut sim);
    sim.step(activity(Activity::Inactive));
    assert_eq!(sim.rec.state, HaState::Fencing);
    sim.now += SEC;
    sim.step(power(PowerState::Unknown));
    sim.now += SEC;
    let r = sim.step(power(PowerState::On));
    assert_eq!(sim.rec.state, HaState::Fencing, "{r:#?}");
    assert_eq!(sim.rec.intent, Some(1));
    assert!(r.out.actions.is_empty(), "{r:#?}");
    // The fence goes on to its verdict.
    sim.step(outcome(1, Res::Done(PowerState::Off)));
    assert_eq!(sim.rec.state, HaState::Fenced);

    // Fence started while the BMC was unreachable (so no power cycle was possible);
    // the BMC comes back reading "on" before the power-off took effect.
    p.recovery_enabled = true;
    let mut sim = example_sim(p, 2);
    to_checking(&mut sim);
    sim.step(power(PowerState::Unknown));
    assert_eq!(sim.rec.state, HaState::Checking);
    let r = sim.step(activity(Activity::Inactive));
    assert!(
        matches!(
            r.out.actions[..],
            [Action::Fence {
                intent: 1,
                level: 0,
                new_fence: true,
                ..
            }]
        ),
        "{r:#?}"
    );
    let r = sim.step(power(PowerState::On));
    assert_eq!(sim.rec.state, HaState::Fencing, "{r:#?}");
    sim.now = sim.rec.deadline;
    let r = sim.step(Input::Tick);
    assert!(
        matches!(
            r.out.actions[..],
            [
                Action::CloseIntent { intent: 1, .. },
                Action::Fence {
                    intent: 2,
                    level: 1,
                    new_fence: false,
                    ..
                }
            ]
        ),
        "{r:#?}"
    );
}

/// Regression (found by `never_acts_on_a_host_in_maintenance`): `Reevaluate` leaves a
/// Recovering host alone, so maintenance switched on during a power cycle was never
/// applied: when the cycle failed, timed out, or the host did not come back, the
/// engine started another power cycle or a fence of a host in maintenance.
#[test]
fn maintenance_during_a_power_cycle_stops_further_actions() {
    let p = example_policy();
    for end in ["failed", "timed out", "did not come back"] {
        let mut sim = example_sim(p.clone(), 2);
        to_checking(&mut sim);
        sim.step(activity(Activity::Inactive));
        assert_eq!(sim.rec.state, HaState::Recovering);
        sim.maintenance = true;
        let r = sim.step(Input::Admin(Admin::Reevaluate));
        assert_eq!(
            sim.rec.state,
            HaState::Recovering,
            "the running cycle goes on: {r:#?}"
        );
        // Every end leads to the recovery wait first (an uncertain cycle is never by
        // itself a reason to act again), then, at its deadline, out of HA.
        let r = match end {
            "failed" => sim.step(outcome(1, Res::Failed)),
            "timed out" => {
                sim.now = sim.rec.deadline;
                sim.step(Input::Tick)
            }
            _ => sim.step(outcome(1, Res::Done(PowerState::On))),
        };
        assert_eq!(sim.rec.state, HaState::Recovered, "{end}: {r:#?}");
        assert!(
            !r.out
                .actions
                .iter()
                .any(|a| matches!(a, Action::Recover { .. } | Action::Fence { .. })),
            "{end}: {r:#?}"
        );
        sim.now = sim.rec.deadline;
        let r = sim.step(Input::Tick);
        assert_eq!(sim.rec.state, HaState::Ineligible, "{end}: {r:#?}");
        assert_eq!(sim.rec.ineligible, Some(IneligibleReason::Maintenance));
        assert!(
            !r.out
                .actions
                .iter()
                .any(|a| matches!(a, Action::Recover { .. } | Action::Fence { .. })),
            "{end}: {r:#?}"
        );
        assert_eq!(sim.rec.intent, None);
    }
}
