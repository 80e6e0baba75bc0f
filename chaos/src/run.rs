//! One run of the in-process tier, start to verdicts: fleet and cluster up, warm-up,
//! the schedule applied at its offsets while the observer samples and the workload
//! writes, heal, quiet, then the facts collected from the fleet and the surviving
//! members and judged.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use vigil::engine::policy::parse_override;
use vigil::engine::HaState;
use vigil::fleet::{pool, sim_host};
use vigil::settings::{Scope, SettingValue};
use vigil::state::model::{EventKind, IntentKind};
use vigil::state::{Command, InventoryChange, Response, Stamp, VigilState};
use vigil_providers::sim::{PowerChange, SimFleet};

use crate::check::{self, Verdict};
use crate::cluster::inproc::Inproc;
use crate::error::ChaosError;
use crate::history::{
    Bounds, Condition, EventFact, Facts, HostEnd, IntentFact, LedgerFact, MemberEnd, PowerCause,
    Truth,
};
use crate::nemesis::Nemesis;
use crate::plan::{host_name, Options, Step};
use crate::workload;

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The facts.
    pub facts: Facts,
    /// The verdict of each checker.
    pub verdicts: BTreeMap<String, Verdict>,
}

impl Outcome {
    /// True when every checker passed.
    pub fn passed(&self) -> bool {
        self.verdicts.values().all(|v| v.pass)
    }
}

fn condition(c: vigil_providers::sim::Condition) -> Condition {
    use vigil_providers::sim::Condition as C;
    match c {
        C::Running => Condition::Running,
        C::Isolated => Condition::Isolated,
        C::Hung => Condition::Hung,
        C::Crashed => Condition::Crashed,
    }
}

fn truth(c: &PowerChange, t0: Instant) -> Truth {
    use vigil_providers::PowerAction as A;
    let cause = match c.cause.action {
        Some(A::Off) => PowerCause::Off,
        Some(A::On) => PowerCause::On,
        Some(A::Cycle) => PowerCause::Cycle,
        None => PowerCause::Harness,
    };
    let member = c
        .cause
        .label
        .strip_prefix("member-")
        .and_then(|n| n.parse().ok());
    Truth {
        seq: c.seq,
        t_ms: c.at.saturating_duration_since(t0).as_millis() as u64,
        host: c.host.clone(),
        off: c.is_power_off(),
        cause,
        member: if c.cause.action.is_some() {
            member
        } else {
            None
        },
        condition: condition(c.condition),
    }
}

fn event_fact(e: &vigil::state::model::Event) -> EventFact {
    let (kind, detail) = match &e.kind {
        EventKind::HostTransition(t) => (
            "transition",
            format!("{} -> {}: {}", t.from.name(), t.to.name(), t.reason),
        ),
        EventKind::PoolTransition { from, to, reason } => {
            ("pool", format!("{from} -> {to}: {reason}"))
        }
        EventKind::IntentStarted { intent, kind } => {
            ("intent-started", format!("#{intent} {kind:?}"))
        }
        EventKind::IntentEnded { intent, end } => ("intent-ended", format!("#{intent} {end:?}")),
        EventKind::Alarm { text } => ("alarm", text.clone()),
        EventKind::HostFenced { by, detail, .. } => ("fenced", format!("by {by}: {detail}")),
        EventKind::Config { what } => ("config", what.clone()),
    };
    EventFact {
        seq: e.seq,
        at_wall: e.at,
        host: e.host.clone(),
        pool: e.pool.clone(),
        kind: kind.to_string(),
        detail,
    }
}

fn bounds(s: &VigilState, levels: usize) -> Bounds {
    let p = s.pool_policy("p");
    let detect = p.health_interval * u64::from(p.health_failures) + p.health_timeout;
    let verify = u64::from(p.activity_rounds) * (p.activity_max_interval + p.activity_timeout);
    let recover = if p.recovery_enabled {
        u64::from(p.recovery_attempts) * (p.recovery_timeout + p.recovery_wait)
    } else {
        0
    };
    let fence = levels as u64 * p.fence_timeout;
    let lease = s.member_lease();
    Bounds {
        lease_ms: lease,
        detect_ms: detect,
        verify_ms: verify,
        recover_ms: recover,
        fence_ms: fence,
        recovery_attempts: if p.recovery_enabled {
            p.recovery_attempts
        } else {
            0
        },
        fence_budget: p.fence_budget,
        budget_window_ms: p.fence_budget_window,
        // An intent decided just before a heal may still land: detection and
        // verification windows, the action's own timeout, a lease and a margin.
        healthy_grace_ms: detect + verify + fence.max(p.recovery_timeout) + lease + 2_000,
    }
}

async fn commit(c: &Inproc, cmd: Command) -> Result<(), ChaosError> {
    let m = c
        .any()
        .ok_or_else(|| ChaosError::Cluster("no member running".into()))?;
    match tokio::time::timeout(Duration::from_secs(15), m.write(cmd)).await {
        Ok(Ok(Response::Rejected { reason })) => Err(ChaosError::Cluster(reason)),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(ChaosError::Cluster(e.to_string())),
        Err(_) => Err(ChaosError::Cluster("write timed out".into())),
    }
}

async fn wait_for(
    c: &Inproc,
    what: &str,
    secs: u64,
    f: impl Fn(&VigilState) -> bool,
) -> Result<(), ChaosError> {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if c.any().is_some_and(|m| m.read_local(&f)) {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(ChaosError::Cluster(format!("{what}: not within {secs}s")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Run `steps` under `opts` with the cluster's data dirs in `data`; `progress` gets
/// one line per step as it happens (the timeline).
pub async fn run(
    opts: &Options,
    steps: &[Step],
    data: &Path,
    progress: &mut dyn FnMut(String),
) -> Result<Outcome, ChaosError> {
    let bug = opts
        .planted_bug
        .as_deref()
        .map(str::parse::<vigil::planted::Bug>)
        .transpose()
        .map_err(ChaosError::Usage)?;
    vigil::planted::plant(bug).map_err(ChaosError::Usage)?;
    let r = run_planted(opts, steps, data, progress).await;
    let _ = vigil::planted::plant(None);
    r
}

async fn run_planted(
    opts: &Options,
    steps: &[Step],
    data: &Path,
    progress: &mut dyn FnMut(String),
) -> Result<Outcome, ChaosError> {
    let fleet = SimFleet::new();
    let hosts: Vec<String> = (0..opts.hosts).map(host_name).collect();
    for h in &hosts {
        fleet
            .add_host(h.clone())
            .map_err(|e| ChaosError::Fleet(e.to_string()))?;
    }
    let mut c = Inproc::start(opts.members, data, &fleet).await?;
    fleet.set_action_latency(Duration::from_millis(opts.action_latency_ms));
    let overrides = opts
        .policy()
        .into_iter()
        .map(|(k, v)| {
            parse_override(&k, &v, Scope::Pool)
                .map(|v| (k.clone(), v))
                .map_err(|e| ChaosError::Usage(format!("policy {k}={v}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    commit(
        &c,
        Command::ApplyInventory {
            change: InventoryChange {
                pools: vec![pool("p", true, overrides)],
                hosts: hosts
                    .iter()
                    .map(|h| sim_host(h, "p", opts.fence_levels))
                    .collect(),
                ..Default::default()
            },
            stamp: Stamp {
                by: 0,
                at_ms: vigil::api::settings::now_ms(),
            },
        },
    )
    .await?;
    wait_for(&c, "every host Available", 60, |s| {
        s.hosts.values().all(|h| h.ha.state == HaState::Available)
    })
    .await?;
    let bounds = c
        .any()
        .map(|m| m.read_local(|s| bounds(s, opts.fence_levels)));

    let t0 = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let observer = crate::observe::spawn(c.live.clone(), t0, stop_rx.clone());
    let writes = workload::spawn(
        c.live.clone(),
        opts.seed,
        Duration::from_millis(200),
        t0,
        stop_rx,
    );
    let mut nemesis = Nemesis::default();
    let mut ops = Vec::new();
    let mut healed_at = opts.warmup_ms + opts.chaos_ms;
    for st in steps {
        tokio::time::sleep_until(t0 + Duration::from_millis(st.at_ms)).await;
        let t = t0.elapsed().as_millis() as u64;
        for o in nemesis.apply(&mut c, &fleet, &st.action, t).await {
            if o.kind == "phase" && o.detail == "heal" {
                healed_at = t;
            }
            let who = o.member.map(|m| format!(" member {m}")).unwrap_or_default();
            let host = o.host.clone().map(|h| format!(" {h}")).unwrap_or_default();
            let detail = if o.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", o.detail)
            };
            progress(format!(
                "+{:>8.3}s {}{who}{host}{detail}",
                t as f64 / 1000.0,
                o.kind
            ));
            ops.push(o);
        }
    }
    let end = opts.warmup_ms + opts.chaos_ms + opts.quiet_ms;
    tokio::time::sleep_until(t0 + Duration::from_millis(end)).await;
    let _ = stop_tx.send(true);
    let samples = observer.await.unwrap_or_default();
    let writes = writes.await.unwrap_or_default();
    let end_ms = t0.elapsed().as_millis() as u64;

    // Let the running members converge before reading them.
    let converge = Instant::now() + Duration::from_secs(15);
    loop {
        let applied: Vec<_> = c
            .running_ids()
            .iter()
            .filter_map(|id| c.member(*id).map(|m| m.last_applied()))
            .collect();
        if applied.windows(2).all(|w| w[0] == w[1]) || Instant::now() > converge {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut facts = Facts {
        ops,
        injected: nemesis.injected.clone(),
        truth: fleet
            .ground_truth()
            .iter()
            .map(|ch| truth(ch, t0))
            .collect(),
        samples,
        writes,
        healed_at,
        end_ms,
        bounds,
        ..Default::default()
    };
    for id in c.running_ids() {
        let Some(m) = c.member(id) else { continue };
        let (applied, settings) = m.with_applied(|a| {
            let settings: BTreeMap<String, String> = a
                .app
                .settings
                .iter()
                .filter(|(k, _)| k.starts_with(workload::PREFIX))
                .map(|(k, r)| {
                    let v = match &r.value {
                        SettingValue::Text(t) => t.clone(),
                        other => format!("{other:?}"),
                    };
                    (k.clone(), v)
                })
                .collect();
            (a.last_applied.map(|l| l.index), settings)
        });
        facts.members.push(MemberEnd {
            member: id,
            applied,
            digest: m.digest(),
        });
        facts.final_settings.insert(id, settings);
    }
    if let Some(m) = c.any() {
        m.read_local(|s| {
            facts.events = s.events.iter().map(event_fact).collect();
            facts.ledger = s
                .ledger
                .iter()
                .map(|e| LedgerFact {
                    intent: e.intent,
                    host: e.host.clone(),
                    pool: e.pool.clone(),
                    fence: e.fence,
                    at_wall: e.at,
                })
                .collect();
            facts.intents = s
                .intents
                .values()
                .map(|i| IntentFact {
                    id: i.id,
                    host: i.host.clone(),
                    kind: match i.kind {
                        IntentKind::Recover { .. } => "recover".into(),
                        IntentKind::Fence { .. } => "fence".into(),
                    },
                    begun_by: i.begun.iter().map(|b| b.by).collect(),
                })
                .collect();
            facts.hosts = s
                .hosts
                .values()
                .map(|h| {
                    let snap = fleet.snapshot(&h.spec.name).ok();
                    HostEnd {
                        host: h.spec.name.clone(),
                        state: h.ha.state.name().to_string(),
                        alarm: h.ha.alarm.is_some(),
                        owner: h.owner,
                        powered: snap
                            .as_ref()
                            .is_some_and(|s| s.power == vigil_providers::PowerState::On),
                        condition: snap.map_or(Condition::Running, |s| condition(s.condition)),
                    }
                })
                .collect();
        });
    }
    c.stop().await;
    let verdicts = check::run_all(&facts);
    Ok(Outcome { facts, verdicts })
}
