//! A run's options and its fault schedule, both derived from the seed.
//!
//! Phases: **warm-up** (no faults; the cluster settles), **chaos** (faults from the
//! enabled kinds, each with its undo), **heal** (every outstanding member and BMC fault
//! undone, mass failures healed; single host failures stay so that they must be
//! handled), **quiet** (no faults, long enough for the liveness bounds).
//!
//! The schedule names members symbolically where it matters (`the leader`, `the owner
//! of h007`): what that resolved to is recorded in the history when the step runs.

use serde::{Deserialize, Serialize};

use crate::seed::Stream;

/// Which cluster a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tier {
    /// Members in this process, links cut per member, the sim fleet in memory.
    Inproc,
}

/// Kinds of faults a run may inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FaultKind {
    /// Crash a member (leader, an owner, any) and restart it later.
    Kill,
    /// Cut all of a member's links, heal later.
    Links,
    /// BMC misbehaviour: timeout, error, lies, dies with host, reply lost, slow.
    Bmc,
    /// Single host failures: crash, hang, isolate; some healed.
    Host,
    /// 20–60 % of the hosts fail at once (a shared outage), healed later.
    Mass,
    /// Operator actions: maintenance on/off.
    Ops,
}

impl FaultKind {
    /// Every kind the in-process tier supports.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Kill,
        FaultKind::Links,
        FaultKind::Bmc,
        FaultKind::Host,
        FaultKind::Mass,
        FaultKind::Ops,
    ];

    /// Name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Links => "links",
            FaultKind::Bmc => "bmc",
            FaultKind::Host => "host",
            FaultKind::Mass => "mass",
            FaultKind::Ops => "ops",
        }
    }

    /// Parse a comma-separated list (`all` for every kind).
    pub fn parse_list(s: &str) -> Result<Vec<FaultKind>, String> {
        if s == "all" {
            return Ok(Self::ALL.to_vec());
        }
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let k = Self::ALL
                .into_iter()
                .find(|k| k.name() == part)
                .ok_or_else(|| {
                    format!(
                        "unknown fault kind {part:?}; known: {} (pause, clock and disk need the proc tier, not built yet)",
                        Self::ALL.map(|k| k.name()).join(", ")
                    )
                })?;
            if !out.contains(&k) {
                out.push(k);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Everything a run is, before it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// The seed everything below (and the schedule) comes from.
    pub seed: u64,
    /// Cluster tier.
    pub tier: Tier,
    /// Members.
    pub members: u64,
    /// Simulated hosts.
    pub hosts: usize,
    /// Fault kinds enabled.
    pub faults: Vec<FaultKind>,
    /// Warm-up, chaos and quiet phase lengths (ms).
    pub warmup_ms: u64,
    /// Chaos phase.
    pub chaos_ms: u64,
    /// Quiet phase.
    pub quiet_ms: u64,
    /// Power cycles before fencing (derived from the seed).
    pub recovery: bool,
    /// Fence levels per host (1 or 2, derived).
    pub fence_levels: usize,
    /// Fence budget per hour (small in some seeds, to put S3 under pressure).
    pub fence_budget: u32,
    /// The planted bug this run carries, if any (self-test only).
    pub planted_bug: Option<String>,
    /// Latency of every sim BMC power step (ms): slow cycles and fences widen the
    /// windows in which an executor can die mid-action.
    #[serde(default)]
    pub action_latency_ms: u64,
    /// The host failure kinds to draw from (empty: the default mix).
    #[serde(default)]
    pub host_failures: Vec<String>,
    /// The least time a killed or cut member stays down (ms; 0: 2 s). Longer than
    /// the reassignment bound, a death must be handled by the others.
    #[serde(default)]
    pub min_down_ms: u64,
}

impl Options {
    /// Derive the options of `seed` from what the command line fixed.
    pub fn derive(
        seed: u64,
        members: u64,
        hosts: usize,
        chaos_ms: u64,
        faults: Vec<FaultKind>,
    ) -> Options {
        let mut s = Stream::new(seed, "plan");
        let recovery = s.chance(40);
        let fence_levels = if s.chance(30) { 2 } else { 1 };
        let fence_budget = if s.chance(25) { 2 } else { 100 };
        Options {
            seed,
            tier: Tier::Inproc,
            members,
            hosts,
            faults,
            warmup_ms: 3_000,
            chaos_ms,
            // Long enough for L1's bound with the chaos policy (see `policy`).
            quiet_ms: 45_000,
            recovery,
            fence_levels,
            fence_budget,
            planted_bug: None,
            action_latency_ms: if s.chance(30) { 800 } else { 0 },
            host_failures: Vec::new(),
            min_down_ms: 0,
        }
    }

    /// The pool policy of the run (the fast profile with short action timeouts, so
    /// that whole incidents fit in a run), as `(key, value)` pool overrides.
    pub fn policy(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = vigil::engine::policy::FAST_PROFILE
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut set = |k: &str, v: String| {
            p.retain(|(key, _)| key != k);
            p.push((k.to_string(), v));
        };
        set("policy.fence.timeout", "5s".into());
        set("policy.fence.budget", self.fence_budget.to_string());
        set("policy.recovery.enabled", self.recovery.to_string());
        set("policy.recovery.attempts", "1".into());
        set("policy.recovery.timeout", "5s".into());
        set("policy.recovery.wait", "5s".into());
        set("policy.quiet_period", "5s".into());
        // A tripped breaker closes within the run (the default 10 min would hold every
        // later failure to the end: nothing left to judge but holds).
        set("policy.breaker.cooldown", "10s".into());
        p
    }
}

/// Who a member-level step is aimed at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Who {
    /// The current leader.
    Leader,
    /// The current owner of a host.
    OwnerOf(String),
    /// A member by index into the running members (modulo their number).
    Any(u64),
    /// The owner of a host with an action in flight right now (Recovering or
    /// Fencing): the unluckiest moment to die. Skipped when no action is in flight.
    Acting,
}

/// One fault step (or its undo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Crash a member; `slot` names it for the matching restart.
    Kill {
        /// Target.
        who: Who,
        /// Name for the undo.
        slot: u32,
    },
    /// Start the member of `slot` again (same id, address and data dir).
    Restart {
        /// Which kill.
        slot: u32,
    },
    /// Cut every link of a member.
    Cut {
        /// Target.
        who: Who,
        /// Name for the undo.
        slot: u32,
    },
    /// Restore the links of the member of `slot`.
    Heal {
        /// Which cut.
        slot: u32,
    },
    /// A host fails: `crash`, `hang`, `isolate`, or `isolate-noisy` (isolated, and its
    /// activity checker errors: inconclusive, never a reason to fence).
    HostFail {
        /// Host.
        host: String,
        /// How.
        how: String,
        /// Whether a power cycle brings it back.
        reboot_heals: bool,
    },
    /// A host fails and, at the same instant, a member is crashed.
    FailAndKill {
        /// Host.
        host: String,
        /// Member to crash (usually the host's owner or the leader).
        who: Who,
        /// Name for the restart.
        slot: u32,
    },
    /// The harness heals a failed host (its OS comes back).
    HostHeal {
        /// Host.
        host: String,
    },
    /// A BMC fault mode (`timeout`, `error`, `lies`, `dies-with-host`, `reply-lost`,
    /// `slow`).
    Bmc {
        /// Host.
        host: String,
        /// Mode.
        fault: String,
    },
    /// The BMC behaves again.
    BmcClear {
        /// Host.
        host: String,
    },
    /// Many hosts fail at once.
    Mass {
        /// Hosts.
        hosts: Vec<String>,
    },
    /// The shared outage ends.
    MassHeal {
        /// Hosts.
        hosts: Vec<String>,
    },
    /// Maintenance on or off.
    Maintenance {
        /// Host.
        host: String,
        /// On or off.
        on: bool,
    },
    /// Phase boundary (for the timeline and the checkers).
    Phase {
        /// `chaos`, `heal`, `quiet`.
        name: String,
    },
}

/// A step at an offset from the start of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Offset (ms).
    pub at_ms: u64,
    /// What.
    pub action: Action,
}

/// Host name of index `i` (the fleet's naming).
pub fn host_name(i: usize) -> String {
    format!("h{i:03}")
}

/// The schedule of `opts`: sorted by time, every fault undone by the heal phase
/// except single host failures the schedule leaves for vigil to handle.
pub fn schedule(opts: &Options) -> Vec<Step> {
    let mut s = Stream::new(opts.seed, "nemesis");
    let mut steps = Vec::new();
    let start = opts.warmup_ms;
    let end = start + opts.chaos_ms;
    steps.push(Step {
        at_ms: start,
        action: Action::Phase {
            name: "chaos".into(),
        },
    });
    // Members down (killed or cut) until: at most a minority at a time.
    let max_down = ((opts.members - 1) / 2) as usize;
    let mut down: Vec<(u64, u32)> = Vec::new(); // (until, slot)
    let mut slot = 0u32;
    // Hosts busy (failed, faulty BMC, in maintenance) until.
    let mut busy: Vec<(u64, String)> = Vec::new();
    let mut t = start + s.range(500, 2_000);
    while t < end && !opts.faults.is_empty() {
        down.retain(|(until, _)| *until > t);
        busy.retain(|(until, _)| *until > t);
        let kind = *s.pick(&opts.faults);
        let free_host = |s: &mut Stream, busy: &[(u64, String)]| -> Option<String> {
            for _ in 0..20 {
                let h = host_name(s.range(0, opts.hosts as u64) as usize);
                if !busy.iter().any(|(_, b)| *b == h) {
                    return Some(h);
                }
            }
            None
        };
        let until_end = u64::MAX / 2;
        match kind {
            FaultKind::Kill | FaultKind::Links if down.len() < max_down => {
                slot += 1;
                let lo = opts.min_down_ms.max(2_000);
                let back = (t + s.range(lo, lo.max(10_000) + 2_000)).min(end);
                let who = match s.range(0, 4) {
                    0 => Who::Leader,
                    1 => Who::OwnerOf(host_name(s.range(0, opts.hosts as u64) as usize)),
                    2 => Who::Acting,
                    _ => Who::Any(s.range(0, opts.members)),
                };
                let (act, undo) = if kind == FaultKind::Kill {
                    if s.chance(30) {
                        // A host crash at the very moment its owner dies.
                        if let Some(h) = free_host(&mut s, &busy) {
                            busy.push((until_end, h.clone()));
                            steps.push(Step {
                                at_ms: t,
                                action: Action::FailAndKill {
                                    host: h.clone(),
                                    who: if s.chance(70) {
                                        Who::OwnerOf(h)
                                    } else {
                                        Who::Leader
                                    },
                                    slot,
                                },
                            });
                            steps.push(Step {
                                at_ms: back,
                                action: Action::Restart { slot },
                            });
                            down.push((back, slot));
                            t += s.range(1_000, 4_000);
                            continue;
                        }
                    }
                    (Action::Kill { who, slot }, Action::Restart { slot })
                } else {
                    (Action::Cut { who, slot }, Action::Heal { slot })
                };
                steps.push(Step {
                    at_ms: t,
                    action: act,
                });
                steps.push(Step {
                    at_ms: back,
                    action: undo,
                });
                down.push((back, slot));
            }
            FaultKind::Host => {
                if let Some(h) = free_host(&mut s, &busy) {
                    let default_mix = [
                        "crash",
                        "crash",
                        "crash",
                        "hang",
                        "isolate",
                        "isolate-noisy",
                    ];
                    let how = if opts.host_failures.is_empty() {
                        s.pick(&default_mix).to_string()
                    } else {
                        s.pick(&opts.host_failures).clone()
                    };
                    let heal = how.starts_with("isolate") || s.chance(35);
                    let reboot_heals = s.chance(50);
                    steps.push(Step {
                        at_ms: t,
                        action: Action::HostFail {
                            host: h.clone(),
                            how,
                            reboot_heals,
                        },
                    });
                    if heal {
                        let at = (t + s.range(2_000, 15_000)).min(end);
                        steps.push(Step {
                            at_ms: at,
                            action: Action::HostHeal { host: h.clone() },
                        });
                        busy.push((at, h));
                    } else {
                        busy.push((until_end, h));
                    }
                }
            }
            FaultKind::Bmc => {
                if let Some(h) = free_host(&mut s, &busy) {
                    let fault = s
                        .pick(&[
                            "timeout",
                            "error",
                            "lies",
                            "dies-with-host",
                            "reply-lost",
                            "slow",
                        ])
                        .to_string();
                    let at = (t + s.range(3_000, 15_000)).min(end);
                    steps.push(Step {
                        at_ms: t,
                        action: Action::Bmc {
                            host: h.clone(),
                            fault,
                        },
                    });
                    // Sometimes the host fails while its BMC misbehaves.
                    if s.chance(50) {
                        steps.push(Step {
                            at_ms: t + 200,
                            action: Action::HostFail {
                                host: h.clone(),
                                how: "crash".into(),
                                reboot_heals: s.chance(50),
                            },
                        });
                        busy.push((until_end, h.clone()));
                    } else {
                        busy.push((at, h.clone()));
                    }
                    steps.push(Step {
                        at_ms: at,
                        action: Action::BmcClear { host: h },
                    });
                }
            }
            FaultKind::Mass => {
                let pct = s.range(20, 61) as usize;
                let n = (opts.hosts * pct / 100).max(2);
                let mut hosts = Vec::new();
                for _ in 0..n * 3 {
                    if hosts.len() >= n {
                        break;
                    }
                    if let Some(h) = free_host(&mut s, &busy) {
                        if !hosts.contains(&h) {
                            hosts.push(h);
                        }
                    }
                }
                if hosts.len() >= 2 {
                    let at = (t + s.range(3_000, 10_000)).min(end);
                    for h in &hosts {
                        busy.push((at + 1, h.clone()));
                    }
                    steps.push(Step {
                        at_ms: t,
                        action: Action::Mass {
                            hosts: hosts.clone(),
                        },
                    });
                    steps.push(Step {
                        at_ms: at,
                        action: Action::MassHeal { hosts },
                    });
                }
            }
            FaultKind::Ops => {
                if let Some(h) = free_host(&mut s, &busy) {
                    let at = (t + s.range(2_000, 10_000)).min(end);
                    steps.push(Step {
                        at_ms: t,
                        action: Action::Maintenance {
                            host: h.clone(),
                            on: true,
                        },
                    });
                    steps.push(Step {
                        at_ms: at,
                        action: Action::Maintenance {
                            host: h.clone(),
                            on: false,
                        },
                    });
                    busy.push((at, h));
                }
            }
            _ => {}
        }
        t += s.range(1_000, 4_000);
    }
    steps.push(Step {
        at_ms: end,
        action: Action::Phase {
            name: "heal".into(),
        },
    });
    steps.push(Step {
        at_ms: end + 1,
        action: Action::Phase {
            name: "quiet".into(),
        },
    });
    // Stable: the order of steps at the same instant is their order of creation.
    steps.sort_by_key(|st| st.at_ms);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_decides_everything_and_faults_are_undone() {
        let o = Options::derive(7, 3, 20, 30_000, FaultKind::ALL.to_vec());
        assert_eq!(
            o,
            Options::derive(7, 3, 20, 30_000, FaultKind::ALL.to_vec())
        );
        let a = schedule(&o);
        assert_eq!(a, schedule(&o));
        assert!(a.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        // Every kill and cut has its undo, no later than the heal phase.
        let heal = o.warmup_ms + o.chaos_ms;
        for st in &a {
            let undo = match &st.action {
                Action::Kill { slot, .. } | Action::FailAndKill { slot, .. } => {
                    Some(Action::Restart { slot: *slot })
                }
                Action::Cut { slot, .. } => Some(Action::Heal { slot: *slot }),
                _ => None,
            };
            if let Some(u) = undo {
                assert!(
                    a.iter()
                        .any(|x| x.action == u && x.at_ms >= st.at_ms && x.at_ms <= heal),
                    "{st:?} has no undo"
                );
            }
        }
        let other = schedule(&Options::derive(8, 3, 20, 30_000, FaultKind::ALL.to_vec()));
        assert_ne!(a, other);
    }

    #[test]
    fn never_more_than_a_minority_down_at_once() {
        for seed in 0..50 {
            let o = Options::derive(seed, 3, 20, 60_000, vec![FaultKind::Kill, FaultKind::Links]);
            let mut down = 0i32;
            for st in schedule(&o) {
                match st.action {
                    Action::Kill { .. } | Action::Cut { .. } | Action::FailAndKill { .. } => {
                        down += 1
                    }
                    Action::Restart { .. } | Action::Heal { .. } => down -= 1,
                    _ => {}
                }
                assert!(down <= 1, "seed {seed}: {down} members down");
            }
        }
    }

    #[test]
    fn fault_lists_parse_with_clear_errors() {
        assert_eq!(
            FaultKind::parse_list("kill,host").unwrap(),
            vec![FaultKind::Kill, FaultKind::Host]
        );
        assert_eq!(
            FaultKind::parse_list("all").unwrap().len(),
            FaultKind::ALL.len()
        );
        let e = FaultKind::parse_list("kill,clock").unwrap_err();
        assert!(e.contains("clock") && e.contains("proc tier"), "{e}");
    }
}
