//! The owner loop: run the checks of the hosts this member owns and execute their
//! committed intents.
//!
//! Every tick it (1) folds finished checks into observations — health results go
//! through the in-memory [`HealthTracker`] — and keeps only those the pure engine
//! says would change something ([`VigilState::would_change`]), (2) reconciles the set
//! of owned hosts with the replicated state (a new epoch resets the host's local
//! memory; its probes are built after the state-machine lock is released, so a
//! large takeover never blocks apply), (3) starts the checks and actions that are
//! due, bounded by the per-member concurrency limits, and (4) proposes everything
//! collected as one `HostInputs` command (many hosts per Raft entry), one proposal in
//! flight at a time so that a host's inputs stay in order.
//!
//! There is no blanket takeover wait: an action needs a committed begin record at
//! the current epoch ([`action`]), so a predecessor can only still be acting on an
//! intent it had begun, and only a begun power cycle needs waiting for — its
//! replicated cycle guard says until when. A fence taken over runs at once (power-off
//! is idempotent; the power is read first).
//!
//! An intent is retried while it is in flight until an attempt reaches the BMC (or is
//! refused for good); an outcome whose proposal failed is proposed again.
//!
//! Without a valid lease nothing new starts: a member cut off from the majority
//! finishes what it started (each bounded by its deadline) and then does nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use vigil_providers::check::{ActivityResult, Health};

use super::action::{self, Attempt, Job};
use super::probes::{check_budget, Probes, Providers};
use super::{pause, Shared, WorkerConfig};
use crate::engine::health::HealthTracker;
use crate::engine::input::{Activity, HealthObs, Input};
use crate::engine::policy::{Millis, Policy};
use crate::engine::record::{HaState, PowerState};
use crate::metrics::runtime::{CheckKind, CheckResult};
use crate::settings::SettingValue;
use crate::state::model::{HostSpec, IntentState};
use crate::state::{Command, HostInput, VigilState};

/// How often a healthy, powered-on host's power state is re-read.
const POWER_SYNC_MS: Millis = 30_000;

/// First pause before an action is tried again after an attempt that did not reach
/// the BMC (doubling, capped by [`ACTION_RETRY_MAX_MS`]).
const ACTION_RETRY_MS: Millis = 250;
const ACTION_RETRY_MAX_MS: Millis = 2_000;

/// The longest a proposal of host inputs may wait for its commit: a deposed leader
/// cut off from the majority must not hold the owner's proposals until it heals.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// One owned host's local memory (lost on restart by design: a new incarnation starts
/// from the replicated state).
struct Owned {
    epoch: u64,
    spec: HostSpec,
    /// Built outside the state-machine lock, right after the host is reconciled.
    probes: Option<Arc<Probes>>,
    policy: Policy,
    tracker: HealthTracker,
    next_health: Millis,
    health_busy: bool,
    /// When the power state was last read (None: never).
    power_read_at: Option<Millis>,
    power_busy: bool,
    activity_busy: bool,
    /// The Checking episode (its `since`) whose round was started.
    activity_round: Option<Millis>,
    /// The degraded host's last seen `next_activity_at`.
    degraded_at: Option<Millis>,
    /// The suspicion (its `since`) whose activity baseline was taken.
    primed: Option<Millis>,
}

enum Outcome {
    Health(Health),
    Power(Result<vigil_providers::PowerReading, String>),
    /// An activity result; `true` for a priming read, whose result is not used.
    Activity(ActivityResult, bool),
    Action {
        intent: u64,
        attempt: Attempt,
    },
}

struct Done {
    host: String,
    epoch: u64,
    outcome: Outcome,
}

enum Start {
    Health(Arc<Probes>),
    Power(Arc<Probes>, Millis),
    /// An activity check; `true` to prime the checker's baseline only.
    Activity(Arc<Probes>, Millis, bool),
    Action(Arc<Probes>, Box<Job>),
}

/// A small, stable per-host spread so that hosts added together are not checked in
/// lock step (0..span).
fn spread(host: &str, salt: u64, span: Millis) -> Millis {
    if span == 0 {
        return 0;
    }
    crate::assign::score(host, salt) % span
}

fn int_setting(s: &VigilState, key: &str, default: usize) -> usize {
    match s.setting(key) {
        Some(SettingValue::Integer(n)) => n.max(1) as usize,
        _ => default,
    }
}

#[derive(Debug, Clone, Copy)]
struct JobClock {
    deadline: Instant,
    retry_at: Millis,
    backoff: Millis,
}

struct Loop {
    sh: Arc<Shared>,
    providers: Providers,
    owned: BTreeMap<String, Owned>,
    /// Hosts with an action task running (kept even if ownership moves meanwhile:
    /// never two actions on one host from this member).
    acting: BTreeSet<String>,
    /// Intents this member is done with: an attempt reached the BMC (its outcome may
    /// not be applied yet) or was refused for good.
    started: BTreeSet<u64>,
    /// Per intent this member may act on: its job deadline (fixed on this member's
    /// monotonic clock the first time it could act) and, after an attempt that did
    /// not reach the BMC, when to try again and the pause after that.
    jobs_due: BTreeMap<u64, JobClock>,
    pending: Vec<HostInput>,
    /// Outcomes whose proposal failed, to be proposed again.
    unsent: Arc<Mutex<Vec<HostInput>>>,
    checks: Arc<Semaphore>,
    recoveries: Arc<Semaphore>,
    fences: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<Done>,
    jobs: JoinSet<()>,
    proposing: Option<JoinHandle<()>>,
    tick: u64,
    /// State revision and configuration revision last reconciled.
    seen_revision: Option<u64>,
    seen_config: Option<u64>,
}

/// The owner loop.
pub async fn run(
    sh: Arc<Shared>,
    providers: Providers,
    cfg: WorkerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let (checks, recoveries, fences) = sh.member.read_local(|s| {
        (
            int_setting(s, "policy.concurrency.checks", 256),
            int_setting(s, "policy.concurrency.recoveries", 4),
            int_setting(s, "policy.concurrency.fences", 4),
        )
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut l = Loop {
        sh,
        providers,
        owned: BTreeMap::new(),
        acting: BTreeSet::new(),
        started: BTreeSet::new(),
        jobs_due: BTreeMap::new(),
        pending: Vec::new(),
        unsent: Arc::new(Mutex::new(Vec::new())),
        checks: Arc::new(Semaphore::new(checks)),
        recoveries: Arc::new(Semaphore::new(recoveries)),
        fences: Arc::new(Semaphore::new(fences)),
        tx,
        jobs: JoinSet::new(),
        proposing: None,
        tick: 0,
        seen_revision: None,
        seen_config: None,
    };
    loop {
        if pause(cfg.tick, &mut stop).await {
            l.jobs.abort_all();
            return;
        }
        l.tick += 1;
        let mut done = Vec::new();
        while let Ok(d) = rx.try_recv() {
            done.push(d);
        }
        while l.jobs.try_join_next().is_some() {}
        let (starts, builds) = {
            let sh = l.sh.clone();
            sh.member.read_local(|s| {
                l.absorb(s, done);
                let builds = l.reconcile(s);
                (l.schedule(s), builds)
            })
        };
        l.build(builds);
        for (host, epoch, start) in starts {
            l.spawn(host, epoch, start);
        }
        l.propose();
    }
}

impl Loop {
    /// Fold finished jobs into inputs worth proposing.
    fn absorb(&mut self, s: &VigilState, done: Vec<Done>) {
        let now = crate::api::settings::now_ms();
        let unsent = std::mem::take(&mut *self.unsent.lock().expect("unsent lock"));
        for hi in unsent {
            // Still the host's current intent at the same epoch? Then it still matters.
            if s.would_change(&hi.host, &hi.input, now) {
                self.pending.push(hi);
            }
        }
        let mono = self.sh.mono_ms();
        for d in done {
            if let Outcome::Action { intent, attempt } = &d.outcome {
                self.acting.remove(&d.host);
                match attempt {
                    Attempt::Retry(_) => {
                        if let Some(c) = self.jobs_due.get_mut(intent) {
                            c.retry_at = mono + c.backoff;
                            c.backoff = (c.backoff * 2).min(ACTION_RETRY_MAX_MS);
                        }
                    }
                    Attempt::Stop(_) | Attempt::Outcome(_) => {
                        self.started.insert(*intent);
                        self.jobs_due.remove(intent);
                    }
                }
            }
            let Some(o) = self.owned.get_mut(&d.host) else {
                continue;
            };
            if o.epoch != d.epoch {
                continue; // ownership moved meanwhile: the new epoch starts afresh
            }
            let input = match d.outcome {
                Outcome::Health(h) => {
                    o.health_busy = false;
                    let (pass, detail) = match h {
                        Health::Pass { detail } => (true, detail),
                        Health::Fail { reason } => (false, reason),
                        Health::Error { reason } => {
                            tracing::debug!(host = %d.host, %reason, "health checker error (not a host failure)");
                            continue;
                        }
                    };
                    let obs: HealthObs = o.tracker.observe(pass, detail, o.policy.health_window);
                    Input::Health(obs)
                }
                Outcome::Power(r) => {
                    o.power_busy = false;
                    match r {
                        Ok(r) => Input::Power {
                            state: match r.state {
                                vigil_providers::PowerState::On => PowerState::On,
                                vigil_providers::PowerState::Off => PowerState::Off,
                            },
                            detail: r.detail,
                        },
                        Err(e) => Input::Power {
                            state: PowerState::Unknown,
                            detail: e,
                        },
                    }
                }
                Outcome::Activity(_, true) => {
                    o.activity_busy = false;
                    continue; // a baseline only: it says nothing yet
                }
                Outcome::Activity(a, false) => {
                    o.activity_busy = false;
                    let (result, detail) = match a {
                        ActivityResult::Active { detail } => (Activity::Active, detail),
                        ActivityResult::Inactive { detail } => (Activity::Inactive, detail),
                        ActivityResult::Error { reason } => (Activity::Error, reason),
                    };
                    Input::Activity { result, detail }
                }
                Outcome::Action { intent, attempt } => match attempt {
                    Attempt::Outcome(_) if self.sh.faults.take_lost_outcome() => {
                        tracing::warn!(host = %d.host, intent, "outcome lost (injected fault)");
                        continue;
                    }
                    Attempt::Outcome(result) => Input::Outcome { intent, result },
                    Attempt::Retry(_) | Attempt::Stop(_) => continue,
                },
            };
            if s.would_change(&d.host, &input, now) {
                self.pending.push(HostInput {
                    host: d.host,
                    epoch: Some(d.epoch),
                    input,
                });
            }
        }
    }

    /// Match the owned set to the replicated assignment. Skipped while the state did
    /// not change (every ownership or configuration change bumps its revision).
    /// Returns the hosts whose probes must be (re)built, which [`Loop::build`] does
    /// once the state-machine lock is released.
    fn reconcile(&mut self, s: &VigilState) -> Vec<(String, u64, HostSpec)> {
        let mut builds = Vec::new();
        if self.seen_revision == Some(s.revision) {
            return builds;
        }
        self.seen_revision = Some(s.revision);
        let config_changed = self.seen_config != Some(s.config_revision);
        self.seen_config = Some(s.config_revision);
        let me = self.sh.member.id();
        let now = self.sh.mono_ms();
        let mut seen = BTreeSet::new();
        for h in s.owned_by(me) {
            seen.insert(h.spec.name.clone());
            let fresh = match self.owned.get(&h.spec.name) {
                Some(o) => o.epoch != h.epoch,
                None => true,
            };
            if !fresh && !config_changed {
                continue;
            }
            let policy = s.host_policy(&h.spec);
            if fresh {
                if h.last_owner.is_some_and(|o| o != me) {
                    tracing::info!(host = %h.spec.name, epoch = h.epoch, previous = ?h.last_owner, intent = ?h.ha.intent, guard = ?h.cycle_guard, "took over host");
                }
                let first = spread(&h.spec.name, me, policy.health_interval);
                builds.push((h.spec.name.clone(), h.epoch, h.spec.clone()));
                self.owned.insert(
                    h.spec.name.clone(),
                    Owned {
                        epoch: h.epoch,
                        probes: None,
                        spec: h.spec.clone(),
                        policy,
                        tracker: HealthTracker::default(),
                        next_health: now + first,
                        health_busy: false,
                        power_read_at: None,
                        power_busy: false,
                        activity_busy: false,
                        activity_round: None,
                        degraded_at: None,
                        primed: None,
                    },
                );
            } else if let Some(o) = self.owned.get_mut(&h.spec.name) {
                if o.spec != h.spec {
                    o.spec = h.spec.clone();
                    builds.push((h.spec.name.clone(), h.epoch, h.spec.clone()));
                }
                o.policy = policy;
            }
        }
        self.owned.retain(|name, _| seen.contains(name));
        builds
    }

    /// Build probes for reconciled hosts (outside the state-machine lock: building a
    /// driver may read files or set up TLS, and a takeover may concern thousands of
    /// hosts). A host whose epoch or spec moved meanwhile is rebuilt next time.
    fn build(&mut self, builds: Vec<(String, u64, HostSpec)>) {
        for (name, epoch, spec) in builds {
            let probes = Arc::new(self.providers.build(&spec));
            if let Some(o) = self.owned.get_mut(&name) {
                if o.epoch == epoch && o.spec == spec {
                    o.probes = Some(probes);
                }
            }
        }
    }

    /// What to start now.
    fn schedule(&mut self, s: &VigilState) -> Vec<(String, u64, Start)> {
        let mut out = Vec::new();
        // PLANTED BUG `skip-lease-check` (chaos self-test only, compiled out without the
        // `planted-bugs` feature): a cut-off member keeps starting checks and actions on
        // the hosts of its last view (see `action::act`): S1 / S5 / S2.
        if !self.sh.lease_valid() && !crate::planted::active(crate::planted::Bug::SkipLeaseCheck) {
            return out;
        }
        let now = self.sh.mono_ms();
        let wall = crate::api::settings::now_ms();
        let me = (self.sh.member.id(), self.sh.incarnation);
        for (name, o) in self.owned.iter_mut() {
            let Some(h) = s.hosts.get(name) else { continue };
            let Some(probes) = o.probes.clone() else {
                continue;
            };
            let rec = &h.ha;
            if rec.state == HaState::Disabled {
                continue;
            }
            let p = &o.policy;
            if o.spec.health.is_some() && !o.health_busy && now >= o.next_health {
                o.health_busy = true;
                let jitter = spread(name, now, (p.health_interval / 10).max(1));
                o.next_health = now + p.health_interval + jitter;
                out.push((name.clone(), o.epoch, Start::Health(probes.clone())));
            }
            // Power is re-read slowly while the host is healthy and on, and at the
            // health interval otherwise (a fenced host powered on again, a host whose
            // BMC stopped answering…); the interval follows the host's *current* state.
            let steady = rec.power == PowerState::On
                && matches!(rec.state, HaState::Available | HaState::Initializing);
            let power_every = if steady {
                POWER_SYNC_MS
            } else {
                p.health_interval
            };
            if !o.spec.fence.is_empty()
                && !o.power_busy
                && now >= o.power_read_at.map_or(0, |t| t + power_every)
            {
                o.power_busy = true;
                o.power_read_at = Some(now);
                let budget = p.health_timeout.max(2000);
                out.push((name.clone(), o.epoch, Start::Power(probes.clone(), budget)));
            }
            // Activity: one round per Checking episode; a degraded host's periodic
            // check each time the engine moved its schedule.
            let activity_due = match rec.state {
                HaState::Checking => o.activity_round != Some(rec.since),
                HaState::Degraded => {
                    let moved = o.degraded_at.is_some_and(|t| t != rec.next_activity_at);
                    if o.degraded_at.is_none() || moved {
                        o.degraded_at = Some(rec.next_activity_at);
                    }
                    moved
                }
                _ => {
                    o.degraded_at = None;
                    false
                }
            };
            // When a suspicion starts, the activity checker takes a fresh baseline
            // (checkers that compare rounds would otherwise spend round 1 on it, or
            // compare with a reading left from an earlier incident).
            let prime = rec.state == HaState::Suspect
                && rec.rounds_done == 0
                && rec.blocked.is_none()
                && o.primed != Some(rec.since);
            if (activity_due || prime) && !o.activity_busy && o.spec.activity.is_some() {
                o.activity_busy = true;
                if rec.state == HaState::Checking {
                    o.activity_round = Some(rec.since);
                }
                if prime {
                    o.primed = Some(rec.since);
                }
                out.push((
                    name.clone(),
                    o.epoch,
                    Start::Activity(probes.clone(), p.activity_timeout, prime),
                ));
            }
            // Actions: a committed intent of this host, unless another executor's
            // power cycle may still be running on it (its cycle guard).
            if let Some(id) = rec.intent {
                let Some(intent) = s.intents.get(&id) else {
                    continue;
                };
                // PLANTED BUG `no-cycle-guard` (chaos self-test only): another
                // executor's running power cycle does not hold this member back (apply's
                // begin ignores the guard too): S1b (a fence undone by the old cycle's
                // power-on) / S5.
                let guarded = h
                    .cycle_guard
                    .is_some_and(|g| (g.by, g.incarnation) != me && wall < g.until)
                    && !crate::planted::active(crate::planted::Bug::NoCycleGuard);
                if intent.state != IntentState::InFlight
                    || self.acting.contains(name)
                    || self.started.contains(&id)
                    || guarded
                {
                    continue;
                }
                // The job's deadline is fixed the first time this member may act:
                // the intent's own budget from now, and never past its deadline.
                let clock = *self.jobs_due.entry(id).or_insert_with(|| JobClock {
                    deadline: Instant::now() + action::job_budget(intent, wall),
                    retry_at: 0,
                    backoff: ACTION_RETRY_MS,
                });
                if now < clock.retry_at {
                    continue;
                }
                self.acting.insert(name.clone());
                out.push((
                    name.clone(),
                    o.epoch,
                    Start::Action(
                        probes,
                        Box::new(Job {
                            host: name.clone(),
                            epoch: o.epoch,
                            intent: intent.clone(),
                            deadline: clock.deadline,
                        }),
                    ),
                ));
            }
        }
        // Forget intents that are over (bounded memory).
        if self.tick % 100 == 0 {
            let live = |id: &u64| {
                s.intents
                    .get(id)
                    .is_some_and(|i| i.state == IntentState::InFlight)
            };
            self.started.retain(live);
            self.jobs_due.retain(|id, _| live(id));
        }
        out
    }

    fn spawn(&mut self, host: String, epoch: u64, start: Start) {
        let tx = self.tx.clone();
        let sh = self.sh.clone();
        match start {
            Start::Health(probes) => {
                let sem = self.checks.clone();
                let budget = self
                    .owned
                    .get(&host)
                    .map_or(1000, |o| o.policy.health_timeout);
                self.jobs.spawn(async move {
                    let Ok(_permit) = sem.acquire_owned().await else {
                        return;
                    };
                    let started = Instant::now();
                    let h = match &probes.health {
                        Some(c) => c.check(started + check_budget(budget)).await,
                        None => return,
                    };
                    let result = match &h {
                        Health::Pass { .. } => CheckResult::Pass,
                        Health::Fail { .. } => CheckResult::Fail,
                        Health::Error { .. } => CheckResult::Error,
                    };
                    sh.metrics
                        .check(CheckKind::Health, result, started.elapsed());
                    let _ = tx.send(Done {
                        host,
                        epoch,
                        outcome: Outcome::Health(h),
                    });
                });
            }
            Start::Power(probes, budget) => {
                let sem = self.checks.clone();
                self.jobs.spawn(async move {
                    let Ok(_permit) = sem.acquire_owned().await else {
                        return;
                    };
                    let started = Instant::now();
                    let r = match probes.driver(0) {
                        Ok(d) => d
                            .status(started + check_budget(budget))
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e),
                    };
                    // A reading (on or off) passes; no reading is the checker's error.
                    let result = if r.is_ok() {
                        CheckResult::Pass
                    } else {
                        CheckResult::Error
                    };
                    sh.metrics
                        .check(CheckKind::Power, result, started.elapsed());
                    let _ = tx.send(Done {
                        host,
                        epoch,
                        outcome: Outcome::Power(r),
                    });
                });
            }
            Start::Activity(probes, budget, prime) => {
                let sem = self.checks.clone();
                self.jobs.spawn(async move {
                    let Ok(_permit) = sem.acquire_owned().await else {
                        return;
                    };
                    let started = Instant::now();
                    let a = match &probes.activity {
                        Some(c) => c.check(started + check_budget(budget)).await,
                        None => return,
                    };
                    let result = match &a {
                        ActivityResult::Active { .. } => CheckResult::Pass,
                        ActivityResult::Inactive { .. } => CheckResult::Fail,
                        ActivityResult::Error { .. } => CheckResult::Error,
                    };
                    sh.metrics
                        .check(CheckKind::Activity, result, started.elapsed());
                    let _ = tx.send(Done {
                        host,
                        epoch,
                        outcome: Outcome::Activity(a, prime),
                    });
                });
            }
            Start::Action(probes, job) => {
                let sem = match job.intent.kind {
                    crate::state::model::IntentKind::Recover { .. } => self.recoveries.clone(),
                    crate::state::model::IntentKind::Fence { .. } => self.fences.clone(),
                };
                self.jobs.spawn(async move {
                    let Ok(_permit) = sem.acquire_owned().await else {
                        return;
                    };
                    let intent = job.intent.id;
                    let attempt = action::execute(&sh, probes, *job).await;
                    let _ = tx.send(Done {
                        host,
                        epoch,
                        outcome: Outcome::Action { intent, attempt },
                    });
                });
            }
        }
    }

    /// Propose what was collected, one proposal in flight at a time.
    fn propose(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.proposing.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let inputs = std::mem::take(&mut self.pending);
        let sh = self.sh.clone();
        let unsent = self.unsent.clone();
        sh.metrics.owner_proposal(inputs.len());
        self.proposing = Some(tokio::spawn(async move {
            // Outcomes matter most: retry a few times on a transient failure (no
            // leader for a moment), then hand them back to the loop, which proposes
            // them again while they still matter. Observations are simply observed
            // again.
            for attempt in 0..3u32 {
                let cmd = Command::HostInputs {
                    inputs: inputs.clone(),
                    stamp: sh.stamp(),
                };
                let e = match tokio::time::timeout(PROPOSE_TIMEOUT, sh.member.write(cmd)).await {
                    Ok(Ok(_)) => return,
                    Ok(Err(e)) if !e.is_retryable() => {
                        tracing::debug!(error = %e, "proposing host inputs failed");
                        break;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("not committed within {PROPOSE_TIMEOUT:?}"),
                };
                tracing::debug!(error = %e, attempt, "proposing host inputs failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let outcomes: Vec<HostInput> = inputs
                .into_iter()
                .filter(|i| matches!(i.input, Input::Outcome { .. }))
                .collect();
            if !outcomes.is_empty() {
                tracing::warn!(
                    n = outcomes.len(),
                    "action outcomes not committed yet; proposing them again"
                );
                unsent.lock().expect("unsent lock").extend(outcomes);
            }
        }));
    }
}
