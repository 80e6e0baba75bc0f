//! The pure HA state machine of one host: `step(record, ctx, input, now)` returns the
//! new record, the transition (if any) and the actions to take.
//!
//! No clock, no I/O, no randomness: time comes in as `now`, the pool's permission to
//! act comes in as a [`Gate`], and intents are numbered from `ctx.next_intent_id`.
//! The same call always gives the same answer, which is what lets every member apply
//! a proposed input and reach the same state.
//!
//! Safety rules enforced here (and property-tested):
//! - a host is fenced only after activity rounds found no activity (or a recovery
//!   failed, or the host did not come back after one) — never straight from Available
//!   or Degraded;
//! - no recovery or new fence starts while the gate is closed (breaker open, budget
//!   spent, pool inactive): the host goes back to Suspect with the reason recorded;
//! - every in-flight state has a deadline and an exit on `Tick`.

use serde::{Deserialize, Serialize};

use crate::engine::input::{ActionResult, Activity, Admin, HealthObs, Input};
use crate::engine::policy::{Millis, Policy};
use crate::engine::record::{HaRecord, HaState, IneligibleReason, PowerState};

/// Whether the host's pool may start actions now (computed by the pool FSM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    /// `Err(reason)` when no recovery or new fence may start.
    pub actions: Result<(), String>,
    /// Fences the pool may still start in the budget window.
    pub fence_budget_left: u32,
}

impl Gate {
    /// A gate that allows everything (for tests and tools).
    pub fn open(budget: u32) -> Self {
        Gate {
            actions: Ok(()),
            fence_budget_left: budget,
        }
    }
}

/// What the engine needs besides the record.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// Effective policy of the host.
    pub policy: &'a Policy,
    /// The pool's permission to act.
    pub gate: &'a Gate,
    /// Host is in maintenance.
    pub maintenance: bool,
    /// Number of configured fence levels (power drivers).
    pub fence_levels: u32,
    /// Id the next intent gets.
    pub next_intent_id: u64,
}

/// How an intent ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntentEnd {
    /// Done and verified.
    Succeeded,
    /// Failed (driver error, unverified power state).
    Failed(String),
    /// Not reported within its deadline.
    TimedOut,
    /// Made moot (HA disabled, operator confirmed, power found off…).
    Abandoned(String),
}

/// What the owner (or the apply layer) must do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Run activity round `round` (1-based).
    ActivityCheck {
        /// Round number.
        round: u32,
    },
    /// Power-cycle the host under intent `intent`.
    Recover {
        /// Intent id.
        intent: u64,
        /// Attempt number (1-based).
        attempt: u32,
        /// When the attempt times out.
        deadline: Millis,
    },
    /// Power the host off through fence level `level` under intent `intent`.
    Fence {
        /// Intent id.
        intent: u64,
        /// Fence level (0-based index into the host's drivers).
        level: u32,
        /// True for the first level of a fence (consumes fence budget).
        new_fence: bool,
        /// When the level times out.
        deadline: Millis,
    },
    /// The intent is over.
    CloseIntent {
        /// Intent id.
        intent: u64,
        /// How it ended.
        end: IntentEnd,
    },
    /// Tell an operator.
    Alarm {
        /// What is wrong.
        text: String,
    },
}

/// A state change with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// Old state.
    pub from: HaState,
    /// New state.
    pub to: HaState,
    /// Why, in one line.
    pub reason: String,
}

/// Result of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The new record.
    pub record: HaRecord,
    /// The state change, if any.
    pub transition: Option<Transition>,
    /// Actions, in order.
    pub actions: Vec<Action>,
}

impl Step {
    /// True when nothing at all changed (no need to replicate anything).
    pub fn is_noop(&self, before: &HaRecord) -> bool {
        self.transition.is_none() && self.actions.is_empty() && &self.record == before
    }
}

/// Run the engine for one input.
pub fn step(rec: &HaRecord, ctx: &Ctx<'_>, input: &Input, now: Millis) -> Step {
    let mut s = Stepper {
        rec: rec.clone(),
        ctx,
        now,
        transition: None,
        actions: Vec::new(),
        next_intent: ctx.next_intent_id,
    };
    s.run(input);
    Step {
        record: s.rec,
        transition: s.transition,
        actions: s.actions,
    }
}

struct Stepper<'a> {
    rec: HaRecord,
    ctx: &'a Ctx<'a>,
    now: Millis,
    transition: Option<Transition>,
    actions: Vec<Action>,
    next_intent: u64,
}

fn fmt_ms(ms: Millis) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
}

impl Stepper<'_> {
    fn p(&self) -> &Policy {
        self.ctx.policy
    }

    fn run(&mut self, input: &Input) {
        match input {
            Input::Admin(a) => self.admin(*a),
            Input::Power { state, detail } => self.power(*state, detail),
            _ if matches!(self.rec.state, HaState::Disabled | HaState::Ineligible) => {}
            Input::Health(obs) => self.health(obs),
            Input::Activity { result, detail } => self.activity(*result, detail),
            Input::Outcome { intent, result } => self.outcome(*intent, result),
            Input::Tick => self.tick(),
        }
    }

    // ----- entering states -------------------------------------------------------

    /// Record the state change. Only the first change of a step counts as the step's
    /// transition's origin; a chained change keeps the original `from`.
    fn goto(&mut self, to: HaState, reason: impl Into<String>) {
        let from = self
            .transition
            .as_ref()
            .map(|t| t.from)
            .unwrap_or(self.rec.state);
        self.rec.state = to;
        self.rec.since = self.now;
        self.rec.deadline = 0;
        if to != HaState::Ineligible {
            self.rec.ineligible = None;
        }
        self.transition = Some(Transition {
            from,
            to,
            reason: reason.into(),
        });
    }

    fn close_intent(&mut self, end: IntentEnd) {
        if let Some(intent) = self.rec.intent.take() {
            self.actions.push(Action::CloseIntent { intent, end });
        }
    }

    fn reset_incident(&mut self) {
        self.rec.rounds_done = 0;
        self.rec.rounds_failed = 0;
        self.rec.next_activity_at = 0;
        self.rec.recover_attempts = 0;
        self.rec.fence_level = 0;
        self.rec.blocked = None;
        self.rec.held_since = 0;
    }

    fn enter_initializing(&mut self, reason: impl Into<String>, quiet: bool) {
        if let Some(why) = self.ineligibility() {
            self.enter_ineligible(why);
            return;
        }
        self.close_intent(IntentEnd::Abandoned("host re-initialized".into()));
        self.reset_incident();
        if quiet {
            self.rec.quiet_until = self.now + self.p().quiet_period;
        }
        self.goto(HaState::Initializing, reason);
        self.rec.deadline = self.rec.quiet_until.max(self.now) + self.p().initialize_timeout;
    }

    fn enter_available(&mut self, reason: impl Into<String>) {
        self.close_intent(IntentEnd::Abandoned("host is healthy".into()));
        self.reset_incident();
        self.rec.quiet_until = 0;
        self.rec.alarm = None;
        self.goto(HaState::Available, reason);
    }

    fn enter_ineligible(&mut self, why: IneligibleReason) {
        if self.rec.state == HaState::Ineligible && self.rec.ineligible == Some(why) {
            return;
        }
        self.close_intent(IntentEnd::Abandoned(format!(
            "host became ineligible: {why}"
        )));
        self.reset_incident();
        self.goto(HaState::Ineligible, why.to_string());
        self.rec.ineligible = Some(why);
    }

    /// Start (or restart) a suspicion: activity rounds from the first one.
    fn enter_suspect(&mut self, reason: impl Into<String>) {
        self.rec.rounds_done = 0;
        self.rec.rounds_failed = 0;
        self.goto(HaState::Suspect, reason);
        self.schedule_next_round();
    }

    fn schedule_next_round(&mut self) {
        let at = self.now + self.p().activity_delay(self.rec.rounds_done);
        self.rec.next_activity_at = at;
        self.rec.deadline = at;
    }

    fn enter_checking(&mut self) {
        let round = self.rec.rounds_done + 1;
        self.goto(
            HaState::Checking,
            format!("activity round {round}/{} due", self.p().activity_rounds),
        );
        self.rec.next_activity_at = 0;
        self.rec.deadline = self.now + self.p().activity_timeout;
        self.actions.push(Action::ActivityCheck { round });
    }

    fn enter_degraded(&mut self, reason: impl Into<String>) {
        self.goto(HaState::Degraded, reason);
        self.rec.deadline = self.now + self.p().degraded_max_time;
        self.rec.next_activity_at = self.now + self.p().activity_max_interval;
    }

    fn new_intent(&mut self) -> u64 {
        let id = self.next_intent;
        self.next_intent += 1;
        self.rec.intent = Some(id);
        id
    }

    fn enter_recovering(&mut self, reason: impl Into<String>) {
        self.rec.recover_attempts += 1;
        self.rec.blocked = None;
        self.rec.held_since = 0;
        let attempt = self.rec.recover_attempts;
        self.goto(HaState::Recovering, reason);
        let intent = self.new_intent();
        let deadline = self.now + self.p().recovery_timeout;
        self.rec.deadline = deadline;
        self.actions.push(Action::Recover {
            intent,
            attempt,
            deadline,
        });
    }

    fn enter_fencing(&mut self, level: u32, new_fence: bool, reason: impl Into<String>) {
        self.rec.fence_level = level;
        self.rec.blocked = None;
        self.rec.held_since = 0;
        self.goto(HaState::Fencing, reason);
        let intent = self.new_intent();
        let deadline = self.now + self.p().fence_timeout;
        self.rec.deadline = deadline;
        self.actions.push(Action::Fence {
            intent,
            level,
            new_fence,
            deadline,
        });
    }

    fn enter_fenced(&mut self, reason: impl Into<String>) {
        self.close_intent(IntentEnd::Succeeded);
        self.rec.alarm = None;
        self.rec.blocked = None;
        self.rec.held_since = 0;
        self.goto(HaState::Fenced, reason);
    }

    /// Wait `recovery_wait` for the host to come back after a power cycle whose effect
    /// is not known to have failed to help: a passing health check ends the incident
    /// (Available); only a host still dead at the deadline is acted on again.
    fn enter_recovered_wait(&mut self, reason: impl Into<String>) {
        self.goto(HaState::Recovered, reason);
        self.rec.deadline = self.now + self.p().recovery_wait;
    }

    fn enter_fence_failed(&mut self, reason: String) {
        self.goto(HaState::FenceFailed, reason.clone());
        let text = format!("every fence level failed ({reason}); the host may still be running: fix its power drivers, then `vigil host retry` or confirm it is off with `vigil host confirm-off`");
        self.rec.alarm = Some(text.clone());
        self.actions.push(Action::Alarm { text });
    }

    // ----- decisions -------------------------------------------------------------

    fn ineligibility(&self) -> Option<IneligibleReason> {
        if self.ctx.maintenance {
            Some(IneligibleReason::Maintenance)
        } else if self.ctx.fence_levels == 0 {
            Some(IneligibleReason::NoFenceLevels)
        } else if self.rec.power == PowerState::Off {
            Some(IneligibleReason::PoweredOff)
        } else if self.rec.power == PowerState::Unknown {
            Some(IneligibleReason::PowerUnknown)
        } else {
            None
        }
    }

    /// The evidence says the host is dead: recover it, else fence it — if the pool
    /// may act. Otherwise hold: back to Suspect with the reason, re-verify later.
    fn act_on_dead(&mut self, why: &str) {
        if self.in_maintenance() {
            return;
        }
        if let Some(blocked) = self.hold_reason() {
            self.hold(why, &blocked);
            return;
        }
        if self.can_recover() {
            let p = self.p();
            let n = self.rec.recover_attempts + 1;
            self.enter_recovering(format!("{why}: power cycle {n}/{}", p.recovery_attempts));
        } else {
            self.start_fence(why);
        }
    }

    /// Would the next action on a dead host be a power cycle?
    fn can_recover(&self) -> bool {
        let p = self.p();
        p.recovery_enabled
            && self.rec.recover_attempts < p.recovery_attempts
            && self.rec.power == PowerState::On
    }

    /// Why the action a dead host needs next may not start now (None: it may).
    fn hold_reason(&self) -> Option<String> {
        if let Err(blocked) = &self.ctx.gate.actions {
            Some(blocked.clone())
        } else if self.can_recover() {
            None
        } else {
            self.fence_blocked()
        }
    }

    /// A host put in maintenance while an intent ran (`Reevaluate` leaves Recovering
    /// and Fencing alone) is taken out of HA before anything new starts: no recovery
    /// or fence of a host an operator is working on.
    fn in_maintenance(&mut self) -> bool {
        if self.ctx.maintenance {
            self.enter_ineligible(IneligibleReason::Maintenance);
        }
        self.ctx.maintenance
    }

    /// Why a new fence may not start now, if it may not.
    fn fence_blocked(&self) -> Option<String> {
        if let Err(blocked) = &self.ctx.gate.actions {
            Some(blocked.clone())
        } else if self.ctx.gate.fence_budget_left == 0 {
            Some("fence budget of the pool is spent".into())
        } else if self.ctx.fence_levels == 0 {
            Some("no fence level configured".into())
        } else {
            None
        }
    }

    fn start_fence(&mut self, why: &str) {
        if self.in_maintenance() {
            return;
        }
        match self.fence_blocked() {
            Some(blocked) => self.hold(why, &blocked),
            None => self.enter_fencing(
                0,
                true,
                format!("{why}: fencing (level 1/{})", self.ctx.fence_levels),
            ),
        }
    }

    /// The host is dead but the action it needs may not start: back to Suspect with
    /// the reason. While held, no activity rounds run (they would only re-confirm
    /// the death, at one transition and one Raft entry per round); the gate is
    /// re-checked with a growing backoff instead ([`Stepper::held_check`]), and the
    /// death is re-verified by fresh rounds once the hold lifts.
    fn hold(&mut self, why: &str, blocked: &str) {
        let msg = format!("{why}, but action held: {blocked}");
        self.close_intent(IntentEnd::Abandoned(format!("held: {blocked}")));
        self.enter_suspect(msg);
        self.rec.blocked = Some(blocked.to_string());
        self.rec.held_since = self.now;
        self.schedule_held_check();
    }

    /// Next gate check of a held host: after as long as it has been held (a doubling
    /// backoff), at least the activity interval, at most the activity max interval.
    fn schedule_held_check(&mut self) {
        let p = self.p();
        let held = self.now.saturating_sub(self.rec.held_since);
        let max = p.activity_max_interval.max(p.activity_interval);
        let at = self.now + held.clamp(p.activity_interval, max);
        self.rec.next_activity_at = at;
        self.rec.deadline = at;
    }

    /// A held host's check is due: still held for the same kind of reason → only the
    /// next check is scheduled (no transition, no event); held for another reason →
    /// one transition that says so; no longer held → fresh activity rounds re-verify
    /// the death before anything is done.
    fn held_check(&mut self, held: String) {
        match self.hold_reason() {
            Some(now) if hold_kind(&now) == hold_kind(&held) => {
                self.rec.blocked = Some(now);
                self.schedule_held_check();
            }
            Some(now) => {
                let since = self.rec.held_since;
                self.goto(HaState::Suspect, format!("action still held: {now}"));
                self.rec.blocked = Some(now);
                self.rec.held_since = since;
                self.schedule_held_check();
            }
            None => {
                self.rec.blocked = None;
                self.rec.held_since = 0;
                self.rec.rounds_done = 0;
                self.rec.rounds_failed = 0;
                self.enter_checking();
                if let Some(t) = self.transition.as_mut() {
                    t.reason = format!("hold lifted ({held}); re-verifying: {}", t.reason);
                }
            }
        }
    }

    // ----- inputs ----------------------------------------------------------------

    fn admin(&mut self, a: Admin) {
        use HaState::*;
        match a {
            Admin::Enable => {
                if self.rec.state == Disabled {
                    self.enter_initializing("HA enabled", false);
                }
            }
            Admin::Disable => {
                if self.rec.state != Disabled {
                    self.close_intent(IntentEnd::Abandoned("HA disabled".into()));
                    self.reset_incident();
                    self.rec.alarm = None;
                    self.goto(Disabled, "HA disabled");
                }
            }
            Admin::Reevaluate => match self.rec.state {
                Disabled | Recovering | Fencing | Fenced | FenceFailed => {}
                Ineligible => {
                    if self.ineligibility().is_none() {
                        self.enter_initializing("eligible again", false);
                    } else if let Some(why) = self.ineligibility() {
                        self.enter_ineligible(why);
                    }
                }
                Initializing | Available => {
                    if let Some(why) = self.ineligibility() {
                        self.enter_ineligible(why);
                    }
                }
                Suspect | Checking | Degraded | Recovered => {
                    // A failing host keeps being handled unless an operator takes it
                    // out of HA or vigil could no longer fence it.
                    if let Some(
                        why @ (IneligibleReason::Maintenance | IneligibleReason::NoFenceLevels),
                    ) = self.ineligibility()
                    {
                        self.enter_ineligible(why)
                    }
                }
            },
            Admin::Retry => {
                if self.rec.state == FenceFailed {
                    match self.fence_blocked() {
                        // Held: stays FenceFailed (visible, alarmed), with the reason.
                        Some(blocked) => self.rec.blocked = Some(blocked),
                        None => {
                            self.rec.alarm = None;
                            self.enter_fencing(0, true, "operator retry: fencing (level 1)");
                        }
                    }
                }
            }
            Admin::ConfirmOff => {
                if matches!(
                    self.rec.state,
                    Suspect | Checking | Degraded | Recovered | Fencing | FenceFailed
                ) {
                    self.close_intent(IntentEnd::Abandoned("operator confirmed power off".into()));
                    self.rec.power = PowerState::Off;
                    self.enter_fenced("operator confirmed the host is powered off");
                }
            }
            Admin::Unfence => {
                if matches!(self.rec.state, Fenced | FenceFailed) {
                    self.rec.alarm = None;
                    self.enter_initializing("returned to service by an operator", true);
                }
            }
        }
    }

    fn power(&mut self, new: PowerState, detail: &str) {
        use HaState::*;
        let old = self.rec.power;
        self.rec.power = new;
        if old == new {
            return;
        }
        let state = self.rec.state;
        match new {
            PowerState::On => match state {
                // A running power cycle or fence ends by its outcome or deadline: a
                // reading of "on" (often after the BMC stopped answering during the
                // power operation) must not abandon it.
                Disabled | Recovering | Fencing => {}
                // A fenced host that is on again is running: re-protect it.
                Fenced => {
                    self.enter_initializing(format!("powered on after fencing ({detail})"), true)
                }
                _ if old == PowerState::Off => {
                    self.enter_initializing(format!("powered on ({detail})"), true)
                }
                Ineligible => self
                    .enter_initializing(format!("BMC reachable again, power on ({detail})"), false),
                // Unknown -> On on any other host: the BMC answered again, nothing was
                // powered on; a suspicion in progress goes on (a flapping BMC must not
                // keep resetting it).
                _ => {}
            },
            PowerState::Off => match state {
                Disabled | Recovering | Fenced => {}
                Fencing => self.enter_fenced(format!("power verified off ({detail})")),
                Suspect | Checking | Degraded | Recovered | FenceFailed => {
                    self.close_intent(IntentEnd::Abandoned("host found powered off".into()));
                    self.enter_fenced(format!("failing host found powered off ({detail})"))
                }
                Initializing | Available | Ineligible => {
                    self.enter_ineligible(IneligibleReason::PoweredOff)
                }
            },
            PowerState::Unknown => match state {
                Initializing | Available => self.enter_ineligible(IneligibleReason::PowerUnknown),
                Ineligible if self.rec.ineligible == Some(IneligibleReason::PoweredOff) => {
                    self.enter_ineligible(IneligibleReason::PowerUnknown)
                }
                _ => {}
            },
        }
    }

    fn health(&mut self, obs: &HealthObs) {
        use HaState::*;
        let p = self.p();
        let state = self.rec.state;
        if obs.pass {
            match state {
                // Recovering too: a host that passes its health check is not dead,
                // whatever became of the power cycle (its owner may have died with
                // the outcome unknown); a late outcome of the closed intent is stale.
                Initializing | Suspect | Checking | Degraded | Recovering | Recovered => {
                    self.enter_available(format!("health check passed ({})", obs.detail))
                }
                Fenced if self.rec.alarm.is_none() => {
                    let text = format!(
                        "fenced host passes health checks ({}): its power-off may not have taken effect",
                        obs.detail
                    );
                    self.rec.alarm = Some(text.clone());
                    self.actions.push(Action::Alarm { text });
                }
                _ => {}
            }
            return;
        }
        match state {
            Initializing if self.now >= self.rec.quiet_until => {
                self.enter_suspect(format!(
                    "health check failed after the quiet period ({})",
                    obs.detail
                ));
            }
            Available => {
                let by_streak = obs.consecutive_failures >= p.health_failures;
                let by_window = p.health_window > 0
                    && obs.window_len >= p.health_window
                    && u64::from(obs.window_failures) * 1_000_000
                        >= u64::from(p.health_window_ratio_ppm) * u64::from(obs.window_len);
                if by_streak || by_window {
                    let how = if by_streak {
                        format!(
                            "{} consecutive health checks failed",
                            obs.consecutive_failures
                        )
                    } else {
                        format!(
                            "{}/{} recent health checks failed",
                            obs.window_failures, obs.window_len
                        )
                    };
                    self.enter_suspect(format!("{how} ({})", obs.detail));
                }
            }
            _ => {}
        }
    }

    fn activity(&mut self, result: Activity, detail: &str) {
        use HaState::*;
        // PLANTED BUG `activity-error-is-inactive` (chaos self-test only, compiled out
        // without the `planted-bugs` feature): a checker that could not tell counts as
        // "no activity", so a healthy host the checkers cannot reach looks dead and is
        // power-cycled or fenced: S2.
        let result = match result {
            Activity::Error
                if crate::planted::active(crate::planted::Bug::ActivityErrorIsInactive) =>
            {
                Activity::Inactive
            }
            r => r,
        };
        match self.rec.state {
            Checking => {
                self.rec.rounds_done += 1;
                let round = self.rec.rounds_done;
                let rounds = self.p().activity_rounds;
                match result {
                    Activity::Active => {
                        self.enter_degraded(format!(
                            "activity seen in round {round} ({detail}): alive but not manageable"
                        ));
                    }
                    Activity::Inactive => {
                        self.rec.rounds_failed += 1;
                        let needed = self.p().activity_failures_needed();
                        if self.rec.rounds_failed >= needed {
                            let why = format!(
                                "no activity in {}/{round} rounds ({detail})",
                                self.rec.rounds_failed
                            );
                            self.act_on_dead(&why);
                        } else {
                            self.next_round_or_inconclusive(format!(
                                "no activity in round {round}/{rounds} ({detail})"
                            ));
                        }
                    }
                    Activity::Error => {
                        self.next_round_or_inconclusive(format!(
                            "activity check error in round {round}/{rounds} ({detail})"
                        ));
                    }
                }
            }
            Degraded => match result {
                Activity::Inactive => {
                    self.enter_suspect(format!("degraded host stopped showing activity ({detail})"))
                }
                Activity::Active | Activity::Error => {
                    self.rec.next_activity_at = self.now + self.p().activity_max_interval;
                }
            },
            _ => {}
        }
    }

    fn next_round_or_inconclusive(&mut self, why: String) {
        if self.rec.rounds_done >= self.p().activity_rounds {
            self.enter_degraded(format!("{why}; activity rounds inconclusive"));
        } else {
            let round = self.rec.rounds_done;
            self.goto(HaState::Suspect, why);
            self.rec.rounds_done = round;
            self.schedule_next_round();
        }
    }

    fn outcome(&mut self, intent: u64, result: &ActionResult) {
        if self.rec.intent != Some(intent) {
            return; // stale: an older attempt, or the state moved on
        }
        match result {
            // What the driver verified is the freshest power state there is.
            ActionResult::Done { power_after, .. } => self.rec.power = *power_after,
            ActionResult::Unknown { power, .. } if *power != PowerState::Unknown => {
                self.rec.power = *power
            }
            _ => {}
        }
        match (self.rec.state, result) {
            // HA never powers on a host that is off: a cycle that found it off did
            // nothing, and a host that is off runs no workload.
            (
                HaState::Recovering,
                ActionResult::Done {
                    power_after: PowerState::Off,
                    detail,
                }
                | ActionResult::Unknown {
                    power: PowerState::Off,
                    detail,
                },
            ) => {
                self.close_intent(IntentEnd::Abandoned("host found powered off".into()));
                self.enter_fenced(format!(
                    "host is powered off after the power cycle step ({detail})"
                ));
            }
            (HaState::Recovering, ActionResult::Done { .. }) => {
                self.close_intent(IntentEnd::Succeeded);
                // A verified cycle that does not bring the host back is not repeated.
                self.rec.recover_attempts =
                    self.rec.recover_attempts.max(self.p().recovery_attempts);
                self.enter_recovered_wait("power cycle done; waiting for the host to come back");
            }
            (HaState::Recovering, ActionResult::Unknown { power, detail }) => {
                self.close_intent(IntentEnd::Abandoned(format!("outcome unknown: {detail}")));
                self.enter_recovered_wait(format!(
                    "power cycle outcome unknown ({detail}; power {power}); waiting for the host to come back"
                ));
            }
            (HaState::Recovering, ActionResult::Failed { reason }) => {
                self.close_intent(IntentEnd::Failed(reason.clone()));
                self.recovery_failed(&format!("power cycle failed: {reason}"));
            }
            (
                HaState::Fencing,
                ActionResult::Unknown {
                    power: PowerState::Off,
                    detail,
                },
            ) => {
                let level = self.rec.fence_level + 1;
                self.enter_fenced(format!(
                    "power found off after fence level {level} changed hands ({detail})"
                ));
            }
            (HaState::Fencing, ActionResult::Unknown { power, detail }) => {
                let why = format!("outcome unknown ({detail}), power {power}");
                self.close_intent(IntentEnd::Failed(why.clone()));
                self.fence_level_failed(&why);
            }
            (
                HaState::Fencing,
                ActionResult::Done {
                    power_after: PowerState::Off,
                    ..
                },
            ) => {
                let level = self.rec.fence_level + 1;
                self.enter_fenced(format!("power verified off by fence level {level}"));
            }
            (HaState::Fencing, ActionResult::Done { power_after, .. }) => {
                self.close_intent(IntentEnd::Failed(format!(
                    "power still {power_after} after power-off"
                )));
                self.fence_level_failed(&format!("power still {power_after} after power-off"));
            }
            (HaState::Fencing, ActionResult::Failed { reason }) => {
                self.close_intent(IntentEnd::Failed(reason.clone()));
                self.fence_level_failed(reason);
            }
            _ => {}
        }
    }

    /// A power cycle failed or its outcome is unknown. Another cycle may start at
    /// once only if attempts are left and the host is known to be on; otherwise the
    /// host gets `recovery_wait` to come back: an uncertain cycle is never, by itself,
    /// a reason to fence (the cycle may have worked, or be finishing).
    fn recovery_failed(&mut self, why: &str) {
        if self.can_recover() {
            self.act_on_dead(why);
        } else {
            self.enter_recovered_wait(format!("{why}; waiting for the host to come back"));
        }
    }

    fn fence_level_failed(&mut self, why: &str) {
        let next = self.rec.fence_level + 1;
        // PLANTED BUG `no-fence-escalation` (chaos self-test only, compiled out without
        // the `planted-bugs` feature): the next fence level is never tried, so a host
        // whose second level works ends FenceFailed: L1.
        if next < self.ctx.fence_levels
            && !crate::planted::active(crate::planted::Bug::NoFenceEscalation)
        {
            // An authorized fence continues through its levels even if the gate
            // closed meanwhile: stopping half way helps nobody.
            self.enter_fencing(
                next,
                false,
                format!(
                    "fence level {} failed ({why}): trying level {}/{}",
                    next,
                    next + 1,
                    self.ctx.fence_levels
                ),
            );
        } else {
            self.enter_fence_failed(format!("fence level {next} failed ({why})"));
        }
    }

    fn tick(&mut self) {
        use HaState::*;
        let now = self.now;
        let due = |t: Millis| t != 0 && now >= t;
        match self.rec.state {
            Initializing if due(self.rec.deadline) => {
                let t = fmt_ms(self.p().initialize_timeout);
                self.enter_suspect(format!(
                    "no passing health check within {t} of initializing"
                ));
            }
            Suspect if due(self.rec.next_activity_at) => match self.rec.blocked.clone() {
                Some(held) => self.held_check(held),
                None => self.enter_checking(),
            },
            Checking if due(self.rec.deadline) => {
                self.activity(Activity::Error, "activity check timed out");
            }
            Degraded => {
                if due(self.rec.deadline) && self.rec.alarm.is_none() {
                    let text = format!(
                        "host degraded for more than {}: alive but not manageable; check it (vigil will not fence it for this)",
                        fmt_ms(self.p().degraded_max_time)
                    );
                    self.rec.alarm = Some(text.clone());
                    self.actions.push(Action::Alarm { text });
                }
                if due(self.rec.next_activity_at) {
                    self.rec.next_activity_at = now + self.p().activity_max_interval;
                    self.actions.push(Action::ActivityCheck { round: 0 });
                }
            }
            // No outcome in time (the owner died, the outcome was lost): unknown, so
            // the host gets its recovery wait like after any cycle.
            Recovering if due(self.rec.deadline) => {
                self.close_intent(IntentEnd::TimedOut);
                let t = fmt_ms(self.p().recovery_timeout);
                self.enter_recovered_wait(format!(
                    "power cycle outcome unknown: not reported within {t}; waiting for the host to come back"
                ));
            }
            // Still dead after the wait: another cycle if attempts are left, else a
            // fence, through the gate as usual.
            Recovered if due(self.rec.deadline) => {
                let t = fmt_ms(self.p().recovery_wait);
                self.act_on_dead(&format!(
                    "host did not come back within {t} of a power cycle"
                ));
            }
            Fencing if due(self.rec.deadline) => {
                self.close_intent(IntentEnd::TimedOut);
                self.fence_level_failed("timed out");
            }
            _ => {}
        }
    }
}

/// The kind of a hold reason, for deciding whether a hold "changed": its text up to
/// the first digit (counts and times inside a reason change while its kind does not).
fn hold_kind(reason: &str) -> &str {
    let end = reason
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(reason.len());
    &reason[..end]
}
