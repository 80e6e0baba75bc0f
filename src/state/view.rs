//! Read-side questions the runtime asks of the replicated state: what is due, what
//! would an input change, which hosts does a member own.
//!
//! They keep the workers cheap: an owner proposes an observation only when the same
//! pure engine that apply runs says it would change something (so a healthy fleet
//! costs no Raft writes), and the leader proposes a `TickAll` only when some deadline
//! or schedule is actually due.

use vigil_raft::NodeId;

use crate::engine::host::{step, Ctx};
use crate::engine::input::Input;
use crate::engine::policy::Millis;
use crate::engine::pool::PoolState;
use crate::state::model::Host;
use crate::state::VigilState;

impl VigilState {
    /// Would a `TickAll` at `now` change anything? A host deadline or activity round
    /// that is due and that the engine would act on (a due time the engine already
    /// handled, such as a degraded host's raised alarm, does not count: the leader
    /// would otherwise tick forever), an open breaker whose cooldown is over, or a
    /// pool held by its budget whose oldest fence left the window.
    pub fn tick_due(&self, now: Millis) -> bool {
        let due = |t: Millis| t != 0 && t <= now;
        let hosts = self.hosts.values().any(|h| {
            (due(h.ha.deadline) || due(h.ha.next_activity_at))
                && self.would_change(&h.spec.name, &Input::Tick, now)
        });
        hosts
            || self.pools.values().any(|p| {
                if !p.spec.enabled || p.status.state != PoolState::Inactive {
                    return false;
                }
                match p.status.breaker_clear_since {
                    Some(t) => t + self.pool_policy(&p.spec.name).breaker_cooldown <= now,
                    None if p.status.breaker_open_since.is_none() => self
                        .pool_budget(&p.spec.name, now)
                        .next_free_at
                        .is_some_and(due),
                    None => false,
                }
            })
    }

    /// Would `input` for `host` at `now` change its record, start an action or make a
    /// transition? The same pure step apply runs (apply re-runs it at commit; this is
    /// only the owner's filter against proposing no-ops). False for unknown hosts.
    pub fn would_change(&self, host: &str, input: &Input, now: Millis) -> bool {
        let Some(h) = self.hosts.get(host) else {
            return false;
        };
        let policy = self.host_policy(&h.spec);
        let gate = self.pool_gate(&h.spec.pool, now);
        let ctx = Ctx {
            policy: &policy,
            gate: &gate,
            maintenance: h.spec.maintenance,
            fence_levels: h.spec.fence.len() as u32,
            next_intent_id: self.next_intent,
        };
        !step(&h.ha, &ctx, input, now).is_noop(&h.ha)
    }

    /// Hosts owned by `member`, in name order.
    pub fn owned_by(&self, member: NodeId) -> impl Iterator<Item = &Host> + '_ {
        self.hosts.values().filter(move |h| h.owner == Some(member))
    }

    /// `member.lease` in milliseconds (the setting always has a value, its default
    /// when not set, and only durations pass its validation).
    pub fn member_lease(&self) -> Millis {
        match self.setting("member.lease") {
            Some(crate::settings::SettingValue::DurationMs(ms)) => ms,
            _ => 0,
        }
    }

    /// `cluster.max_clock_skew` in ms: the clock margin the cycle guard adds.
    pub fn max_clock_skew(&self) -> Millis {
        match self.setting("cluster.max_clock_skew") {
            Some(crate::settings::SettingValue::DurationMs(ms)) => ms,
            _ => 1000,
        }
    }

    /// Live members, in id order.
    pub fn live_members(&self) -> Vec<NodeId> {
        self.members
            .values()
            .filter(|m| m.alive)
            .map(|m| m.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::input::{HealthObs, Input};
    use crate::engine::record::{HaState, PowerState};
    use crate::fleet::{pool, sim_host, LocalApply};
    use crate::state::{Command, HostInput, Stamp};

    fn stamp(at: u64) -> Stamp {
        Stamp { by: 1, at_ms: at }
    }

    fn obs(pass: bool, n: u32) -> Input {
        Input::Health(HealthObs {
            pass,
            consecutive_failures: n,
            window_failures: n,
            window_len: n.max(1),
            detail: String::new(),
        })
    }

    #[test]
    fn only_changing_inputs_are_worth_proposing_and_ticks_only_when_due() {
        let mut l = LocalApply::default();
        l.must(&Command::CreatePool {
            spec: pool("p", true, Default::default()),
            stamp: stamp(0),
        });
        l.must(&Command::AddHost {
            spec: sim_host("a", "p", 1),
            stamp: stamp(0),
        });
        // Power unknown: Ineligible, nothing due.
        assert_eq!(l.state.hosts["a"].ha.state, HaState::Ineligible);
        assert!(!l.state.tick_due(u64::MAX / 2));
        let on = Input::Power {
            state: PowerState::On,
            detail: String::new(),
        };
        assert!(l.state.would_change("a", &on, 10));
        l.must(&Command::HostInputs {
            inputs: vec![HostInput {
                host: "a".into(),
                epoch: None,
                input: on.clone(),
            }],
            stamp: stamp(10),
        });
        assert!(!l.state.would_change("a", &on, 20), "same power again");
        assert_eq!(l.state.hosts["a"].ha.state, HaState::Initializing);
        // Initializing has a deadline.
        assert!(!l.state.tick_due(20));
        assert!(l.state.tick_due(u64::MAX / 2));
        assert!(l.state.would_change("a", &obs(true, 0), 20));
        l.must(&Command::HostInputs {
            inputs: vec![HostInput {
                host: "a".into(),
                epoch: None,
                input: obs(true, 0),
            }],
            stamp: stamp(20),
        });
        assert_eq!(l.state.hosts["a"].ha.state, HaState::Available);
        assert!(
            !l.state.tick_due(u64::MAX / 2),
            "a healthy fleet has nothing due"
        );
        assert!(!l.state.would_change("a", &obs(true, 0), 30));
        assert!(
            !l.state.would_change("a", &obs(false, 1), 30),
            "below threshold"
        );
        assert!(l.state.would_change("a", &obs(false, 3), 30));
        assert!(!l.state.would_change("nope", &obs(false, 3), 30));
    }
}
