//! Carrying out the schedule: each [`Action`] applied to the cluster and the fleet,
//! recorded as [`Op`]s with what its symbolic target resolved to, and every host
//! failure recorded as an [`Injected`] fact.

use std::collections::BTreeMap;
use std::time::Duration;

use vigil::state::{Command, Stamp};
use vigil_providers::sim::{BmcFault, SimFleet};
use vigil_raft::NodeId;

use crate::cluster::inproc::Inproc;
use crate::history::{FailureKind, Injected, Ms, Op};
use crate::plan::{Action, Who};

/// The nemesis's memory: which member each kill or cut took, which faults are on.
#[derive(Debug, Default)]
pub struct Nemesis {
    killed: BTreeMap<u32, NodeId>,
    cut: BTreeMap<u32, NodeId>,
    bmc: BTreeMap<String, String>,
    /// Host failures injected so far.
    pub injected: Vec<Injected>,
}

fn op(t_ms: Ms, kind: &str, member: Option<NodeId>, host: Option<&str>, detail: String) -> Op {
    Op {
        t_ms,
        kind: kind.to_string(),
        member,
        host: host.map(str::to_string),
        detail,
    }
}

/// A BMC fault mode by its schedule name.
pub fn bmc_fault(name: &str) -> Option<BmcFault> {
    Some(match name {
        "timeout" => BmcFault::Timeout,
        "error" => BmcFault::Error,
        "lies" => BmcFault::LiesAboutPower,
        "dies-with-host" => BmcFault::DiesWithHost,
        "reply-lost" => BmcFault::ReplyLost,
        "slow" => BmcFault::Slow(Duration::from_secs(2)),
        _ => return None,
    })
}

impl Nemesis {
    fn resolve(&self, c: &Inproc, who: &Who) -> Option<NodeId> {
        let up: Vec<NodeId> = c
            .running_ids()
            .into_iter()
            .filter(|id| !self.cut.values().any(|x| x == id))
            .collect();
        let pick = match who {
            Who::Leader => c.leader(),
            Who::OwnerOf(h) => c.owner_of(h),
            Who::Any(i) if !up.is_empty() => Some(up[(*i as usize) % up.len()]),
            Who::Any(_) => None,
            Who::Acting => c.any().and_then(|m| {
                m.read_local(|s| {
                    s.hosts
                        .values()
                        .filter(|h| {
                            matches!(
                                h.ha.state,
                                vigil::engine::HaState::Recovering
                                    | vigil::engine::HaState::Fencing
                            )
                        })
                        .find_map(|h| h.owner)
                })
            }),
        };
        pick.filter(|id| up.contains(id))
    }

    fn describe(c: &Inproc, id: NodeId, who: &Who) -> String {
        let role = match who {
            Who::Leader => "leader".to_string(),
            Who::OwnerOf(h) => format!("owner of {h}"),
            Who::Any(_) => "any".to_string(),
            Who::Acting => "owner of a host with an action in flight".to_string(),
        };
        let term = c.member(id).map_or(0, |m| m.local_status().term);
        format!("{role}, term {term}")
    }

    fn fail_host(&mut self, fleet: &SimFleet, host: &str, how: &str, heals: bool, t: Ms) -> Op {
        let kind = match how {
            "hang" => FailureKind::Hang,
            "isolate" | "isolate-noisy" => FailureKind::Isolate,
            _ => FailureKind::Crash,
        };
        if how == "isolate-noisy" {
            let _ = fleet.set_activity_check_error(host, true);
        }
        let _ = fleet.set_reboot_heals(host, heals);
        let r = match kind {
            FailureKind::Crash => fleet.crash(host),
            FailureKind::Hang => fleet.hang(host),
            FailureKind::Isolate => fleet.isolate(host),
        };
        let bmc_fault = self.bmc.get(host).cloned().unwrap_or_else(|| "none".into());
        self.injected.push(Injected {
            host: host.to_string(),
            kind,
            at: t,
            healed_at: None,
            reboot_heals: heals,
            bmc_fault,
        });
        op(
            t,
            &format!("host-{how}"),
            None,
            Some(host),
            match r {
                Ok(()) => format!("reboot heals: {heals}"),
                Err(e) => format!("refused by the fleet: {e}"),
            },
        )
    }

    fn heal_host(&mut self, fleet: &SimFleet, host: &str, t: Ms) -> Op {
        let r = fleet.heal(host);
        let _ = fleet.set_activity_check_error(host, false);
        if let Some(i) = self
            .injected
            .iter_mut()
            .rev()
            .find(|i| i.host == host && i.healed_at.is_none())
        {
            i.healed_at = Some(t);
        }
        op(
            t,
            "host-heal",
            None,
            Some(host),
            r.map_or_else(|e| format!("refused: {e}"), |()| String::new()),
        )
    }

    async fn kill(&mut self, c: &mut Inproc, who: &Who, slot: u32, t: Ms) -> Op {
        match self.resolve(c, who) {
            Some(id) => {
                let detail = Self::describe(c, id, who);
                c.kill(id).await;
                self.killed.insert(slot, id);
                op(t, "kill", Some(id), None, detail)
            }
            None => op(
                t,
                "kill-skipped",
                None,
                None,
                format!("no target for {who:?}"),
            ),
        }
    }

    /// Apply one step at run time `t`.
    pub async fn apply(&mut self, c: &mut Inproc, fleet: &SimFleet, a: &Action, t: Ms) -> Vec<Op> {
        match a {
            Action::Phase { name } => {
                let mut ops = vec![op(t, "phase", None, None, name.clone())];
                if name == "heal" {
                    ops.extend(self.heal_all(c, fleet, t).await);
                }
                ops
            }
            Action::Kill { who, slot } => vec![self.kill(c, who, *slot, t).await],
            Action::FailAndKill { host, who, slot } => {
                // Resolve the target before the host fails (its owner now).
                let first = self.fail_host(fleet, host, "crash", false, t);
                vec![first, self.kill(c, who, *slot, t).await]
            }
            Action::Restart { slot } => match self.killed.remove(slot) {
                Some(id) => {
                    let detail = match c.restart(id).await {
                        Ok(()) => String::new(),
                        Err(e) => format!("failed: {e}"),
                    };
                    vec![op(t, "restart", Some(id), None, detail)]
                }
                None => vec![],
            },
            Action::Cut { who, slot } => match self.resolve(c, who) {
                Some(id) => {
                    let detail = Self::describe(c, id, who);
                    c.set_cut(id, true);
                    self.cut.insert(*slot, id);
                    vec![op(t, "links-cut", Some(id), None, detail)]
                }
                None => vec![op(
                    t,
                    "cut-skipped",
                    None,
                    None,
                    format!("no target for {who:?}"),
                )],
            },
            Action::Heal { slot } => match self.cut.remove(slot) {
                Some(id) => {
                    c.set_cut(id, false);
                    vec![op(t, "links-heal", Some(id), None, String::new())]
                }
                None => vec![],
            },
            Action::HostFail {
                host,
                how,
                reboot_heals,
            } => vec![self.fail_host(fleet, host, how, *reboot_heals, t)],
            Action::HostHeal { host } => vec![self.heal_host(fleet, host, t)],
            Action::Bmc { host, fault } => {
                let detail = match bmc_fault(fault) {
                    Some(f) => match fleet.set_fault(host, f) {
                        Ok(()) => {
                            self.bmc.insert(host.clone(), fault.clone());
                            fault.clone()
                        }
                        Err(e) => format!("{fault}: refused: {e}"),
                    },
                    None => format!("unknown fault {fault}"),
                };
                vec![op(t, "bmc-fault", None, Some(host), detail)]
            }
            Action::BmcClear { host } => {
                self.bmc.remove(host);
                let _ = fleet.set_fault(host, BmcFault::None);
                vec![op(t, "bmc-clear", None, Some(host), String::new())]
            }
            Action::Mass { hosts } => {
                let mut ops = Vec::new();
                for h in hosts {
                    ops.push(self.fail_host(fleet, h, "crash", false, t));
                }
                ops.push(op(t, "mass", None, None, format!("{} hosts", hosts.len())));
                ops
            }
            Action::MassHeal { hosts } => {
                hosts.iter().map(|h| self.heal_host(fleet, h, t)).collect()
            }
            Action::Maintenance { host, on } => {
                let r = match c.any() {
                    Some(m) => tokio::time::timeout(
                        Duration::from_secs(5),
                        m.write(Command::SetMaintenance {
                            name: host.clone(),
                            on: *on,
                            stamp: Stamp {
                                by: 0,
                                at_ms: vigil::api::settings::now_ms(),
                            },
                        }),
                    )
                    .await
                    .map_err(|_| "timed out".to_string())
                    .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string())),
                    None => Err("no member running".into()),
                };
                vec![op(
                    t,
                    if *on {
                        "maintenance-on"
                    } else {
                        "maintenance-off"
                    },
                    None,
                    Some(host),
                    r.err().unwrap_or_default(),
                )]
            }
        }
    }

    /// Undo every member and BMC fault still in force (the heal phase).
    pub async fn heal_all(&mut self, c: &mut Inproc, fleet: &SimFleet, t: Ms) -> Vec<Op> {
        let mut ops = Vec::new();
        for (_, id) in std::mem::take(&mut self.cut) {
            c.set_cut(id, false);
            ops.push(op(t, "links-heal", Some(id), None, "heal phase".into()));
        }
        for (_, id) in std::mem::take(&mut self.killed) {
            let detail = match c.restart(id).await {
                Ok(()) => "heal phase".to_string(),
                Err(e) => format!("heal phase: failed: {e}"),
            };
            ops.push(op(t, "restart", Some(id), None, detail));
        }
        for (h, _) in std::mem::take(&mut self.bmc) {
            let _ = fleet.set_fault(&h, BmcFault::None);
            ops.push(op(t, "bmc-clear", None, Some(&h), "heal phase".into()));
        }
        ops
    }
}
