//! Deterministic apply of every command. Each command is validated against the current
//! state first and either applied whole or rejected with a reason, identically on every
//! member. Host inputs run the pure engine with the pool's gate computed here, from the
//! replicated ledger, so a stale or buggy proposer cannot exceed a budget or bypass the
//! breaker: the decision is re-made at apply.

use std::collections::{BTreeMap, VecDeque};

use crate::engine::host::{step, Action, Ctx, Gate, Transition};
use crate::engine::input::{ActionResult, Admin, Input};
use crate::engine::policy::{Millis, Overrides, Policy};
use crate::engine::pool::{self, Budget, PoolCounts, PoolStatus};
use crate::engine::record::HaRecord;
use crate::settings;

use crate::state::model::{
    Begin, CycleGuard, Event, EventKind, HistoryEntry, Host, HostSpec, Intent, IntentKind,
    IntentState, LedgerEntry, Pool, PoolSpec, HOST_HISTORY, MAX_INTENT_EXTENSIONS,
};
use crate::state::{
    validate, Command, HostInput, InputOutcome, InventoryChange, Response, SettingRecord, Stamp,
    VigilState,
};

/// Ended intents kept for audit and `explain` (in-flight ones are always kept).
const ENDED_INTENTS_KEPT: usize = 10_000;
/// Ledger entries kept, except fences still inside their pool's budget window, which
/// are never dropped (see `trim_ledger`).
const LEDGER_KEPT: usize = 10_000;

type Outcome = Result<(), String>;

impl VigilState {
    pub(crate) fn apply_command(&mut self, cmd: &Command) -> Response {
        let result = match cmd {
            Command::SetSetting { key, value, stamp } => self.set_setting(key, value, *stamp),
            Command::ResetSetting { key, stamp } => self.reset_setting(key, *stamp),
            Command::CreatePool { spec, stamp } => self.create_pool(spec, *stamp),
            Command::UpdatePool {
                name,
                enabled,
                set,
                unset,
                stamp,
            } => self.update_pool(name, *enabled, set, unset, *stamp),
            Command::RemovePool { name, stamp } => self.remove_pool(name, *stamp),
            Command::AddHost { spec, stamp } => self.add_host(spec, *stamp),
            Command::RemoveHost { name, stamp } => self.remove_host(name, *stamp),
            Command::SetMaintenance { name, on, stamp } => self.set_maintenance(name, *on, *stamp),
            Command::HostInputs { inputs, stamp } => {
                let results = inputs.iter().map(|i| self.host_input(i, *stamp)).collect();
                self.revision += 1;
                return Response::Inputs {
                    revision: self.revision,
                    results,
                };
            }
            Command::SetMemberLiveness {
                id,
                addr,
                alive,
                stamp,
            } => self.set_member_liveness(*id, addr, *alive, *stamp),
            Command::AssignHosts { assignments, stamp } => self.assign_hosts(assignments, *stamp),
            Command::BeginAction {
                host,
                epoch,
                intent,
                incarnation,
                stamp,
            } => {
                return match self.begin_action(host, *epoch, *intent, *incarnation, *stamp) {
                    Ok(earlier) => {
                        self.revision += 1;
                        Response::Begun {
                            revision: self.revision,
                            earlier,
                        }
                    }
                    Err(reason) => Response::Rejected { reason },
                };
            }
            Command::TickAll { stamp } => {
                self.tick_all(*stamp);
                Ok(())
            }
            Command::ApplyInventory { change, stamp } => self.apply_inventory(change, *stamp),
            Command::OperatorPower {
                host,
                action,
                level,
                result,
                stamp,
            } => self.operator_power(host, action, *level, result.as_deref(), *stamp),
            Command::AddWebhook { url, types, stamp } => self.add_webhook(url, types, *stamp),
            Command::RemoveWebhook { id, stamp } => self.remove_webhook(*id, *stamp),
            Command::WebhookProgress {
                id,
                cursor,
                delivered,
                failures,
                last_error,
                stamp,
            } => self.webhook_progress(*id, *cursor, *delivered, *failures, last_error, *stamp),
        };
        match result {
            Ok(()) => {
                self.revision += 1;
                if !matches!(
                    cmd,
                    Command::TickAll { .. }
                        | Command::SetMemberLiveness { .. }
                        | Command::AssignHosts { .. }
                        | Command::OperatorPower { .. }
                        | Command::WebhookProgress { .. }
                ) {
                    self.config_revision += 1;
                }
                Response::Applied {
                    revision: self.revision,
                }
            }
            Err(reason) => Response::Rejected { reason },
        }
    }

    // ----- settings ----------------------------------------------------------------

    fn set_setting(&mut self, key: &str, value: &settings::SettingValue, stamp: Stamp) -> Outcome {
        let def = settings::lookup(key).map_err(|e| e.to_string())?;
        def.check(key, value).map_err(|e| e.to_string())?;
        self.settings.insert(
            key.to_string(),
            SettingRecord {
                value: value.clone(),
                revision: self.revision + 1,
                stamp,
            },
        );
        if key.starts_with("policy.") {
            self.reevaluate_all_pools(stamp);
        }
        Ok(())
    }

    fn reset_setting(&mut self, key: &str, stamp: Stamp) -> Outcome {
        settings::lookup(key).map_err(|e| e.to_string())?;
        self.settings.remove(key);
        if key.starts_with("policy.") {
            self.reevaluate_all_pools(stamp);
        }
        Ok(())
    }

    // ----- policy, budget, gate ----------------------------------------------------

    fn cluster_value(&self, key: &str) -> Option<settings::SettingValue> {
        self.settings.get(key).map(|r| r.value.clone())
    }

    /// Effective policy of a pool (cluster values and the pool's overrides).
    pub fn pool_policy(&self, pool: &str) -> Policy {
        let empty = Overrides::new();
        let overrides = self
            .pools
            .get(pool)
            .map(|p| &p.spec.policy)
            .unwrap_or(&empty);
        Policy::for_host(|k| self.cluster_value(k), overrides, &empty).unwrap_or_default()
    }

    /// Effective policy of a host (cluster, pool, host).
    pub fn host_policy(&self, spec: &HostSpec) -> Policy {
        let empty = Overrides::new();
        let pool = self
            .pools
            .get(&spec.pool)
            .map(|p| &p.spec.policy)
            .unwrap_or(&empty);
        Policy::for_host(|k| self.cluster_value(k), pool, &spec.policy).unwrap_or_default()
    }

    /// Fence budget of a pool at `now`, from the replicated ledger.
    ///
    /// The ledger is kept in non-decreasing time order (see `start_intent`), so only
    /// its tail inside the window is read.
    pub fn pool_budget(&self, pool: &str, now: Millis) -> Budget {
        let policy = self.pool_policy(pool);
        let from = now.saturating_sub(policy.fence_budget_window);
        pool::budget(
            self.ledger
                .iter()
                .rev()
                .take_while(|e| e.at > from)
                .filter(|e| e.fence && e.pool == pool)
                .map(|e| e.at),
            &policy,
            now,
        )
    }

    /// The gate the engine gets for hosts of `pool` (status as last evaluated).
    pub fn pool_gate(&self, pool: &str, now: Millis) -> Gate {
        match self.pools.get(pool) {
            Some(p) => pool::gate(&p.status, &self.pool_budget(pool, now)),
            None => Gate {
                actions: Err(format!("pool {pool} does not exist")),
                fence_budget_left: 0,
            },
        }
    }

    fn reevaluate_pool(&mut self, name: &str, stamp: Stamp) {
        let Some(p) = self.pools.get(name) else {
            return;
        };
        let policy = self.pool_policy(name);
        let budget = self.pool_budget(name, stamp.at_ms);
        let next = pool::evaluate(
            &p.status,
            p.spec.enabled,
            &p.counts,
            &budget,
            &policy,
            stamp.at_ms,
        );
        if next == p.status {
            return;
        }
        let (from, to, reason) = (p.status.state, next.state, next.reason.clone());
        if let Some(p) = self.pools.get_mut(name) {
            p.status = next;
        }
        if from != to {
            self.push_event(
                stamp,
                None,
                Some(name),
                EventKind::PoolTransition { from, to, reason },
                None,
            );
        }
    }

    fn reevaluate_all_pools(&mut self, stamp: Stamp) {
        let names: Vec<String> = self.pools.keys().cloned().collect();
        for n in names {
            self.reevaluate_pool(&n, stamp);
        }
    }

    /// Count one host in or out of its pool (kept exact incrementally: a full recount
    /// would make every insert O(hosts)).
    fn count_host(&mut self, pool: &str, state: crate::engine::record::HaState, add: bool) {
        if let Some(p) = self.pools.get_mut(pool) {
            if add {
                p.counts.add(state);
            } else {
                remove_state(&mut p.counts, state);
            }
        }
    }

    // ----- events ------------------------------------------------------------------

    fn push_event(
        &mut self,
        stamp: Stamp,
        host: Option<&str>,
        pool: Option<&str>,
        kind: EventKind,
        evidence: Option<Input>,
    ) {
        let seq = self.next_event;
        self.next_event += 1;
        self.events.push_back(Event {
            seq,
            at: stamp.at_ms,
            by: stamp.by,
            host: host.map(str::to_string),
            pool: pool.map(str::to_string),
            kind,
            evidence,
        });
        let keep = match self.setting("events.retention") {
            Some(settings::SettingValue::Integer(n)) => n.max(1) as usize,
            _ => 10_000,
        };
        while self.events.len() > keep {
            self.events.pop_front();
        }
    }

    // ----- pools -------------------------------------------------------------------

    fn create_pool(&mut self, spec: &PoolSpec, stamp: Stamp) -> Outcome {
        validate::pool(spec)?;
        if self.pools.contains_key(&spec.name) {
            return Err(format!("pool {} already exists", spec.name));
        }
        self.pools.insert(
            spec.name.clone(),
            Pool {
                spec: PoolSpec {
                    enabled: false,
                    ..spec.clone()
                },
                status: PoolStatus::new(stamp.at_ms),
                counts: PoolCounts::default(),
            },
        );
        self.push_event(
            stamp,
            None,
            Some(&spec.name),
            EventKind::Config {
                what: format!("pool {} created", spec.name),
            },
            None,
        );
        if spec.enabled {
            self.set_pool_enabled(&spec.name, true, stamp);
        }
        Ok(())
    }

    fn set_pool_enabled(&mut self, name: &str, enabled: bool, stamp: Stamp) {
        let Some(p) = self.pools.get_mut(name) else {
            return;
        };
        if p.spec.enabled == enabled {
            return;
        }
        p.spec.enabled = enabled;
        let hosts: Vec<String> = self
            .hosts
            .values()
            .filter(|h| h.spec.pool == name)
            .map(|h| h.spec.name.clone())
            .collect();
        let op = if enabled {
            Admin::Enable
        } else {
            Admin::Disable
        };
        for h in hosts {
            self.step_host(&h, &Input::Admin(op), stamp);
        }
        self.reevaluate_pool(name, stamp);
    }

    fn update_pool(
        &mut self,
        name: &str,
        enabled: Option<bool>,
        set: &Overrides,
        unset: &[String],
        stamp: Stamp,
    ) -> Outcome {
        let p = self
            .pools
            .get(name)
            .ok_or_else(|| format!("unknown pool {name}"))?;
        let mut spec = p.spec.clone();
        for k in unset {
            spec.policy.remove(k);
        }
        for (k, v) in set {
            spec.policy.insert(k.clone(), v.clone());
        }
        validate::pool(&spec)?;
        let changed_policy = spec.policy != p.spec.policy;
        if let Some(p) = self.pools.get_mut(name) {
            p.spec.policy = spec.policy;
        }
        if changed_policy {
            self.push_event(
                stamp,
                None,
                Some(name),
                EventKind::Config {
                    what: format!("pool {name} policy changed"),
                },
                None,
            );
        }
        if let Some(e) = enabled {
            self.set_pool_enabled(name, e, stamp);
        }
        self.reevaluate_pool(name, stamp);
        Ok(())
    }

    fn remove_pool(&mut self, name: &str, stamp: Stamp) -> Outcome {
        if !self.pools.contains_key(name) {
            return Err(format!("unknown pool {name}"));
        }
        let n = self.hosts.values().filter(|h| h.spec.pool == name).count();
        if n > 0 {
            return Err(format!(
                "pool {name} still has {n} host(s); remove or move them first"
            ));
        }
        self.pools.remove(name);
        self.push_event(
            stamp,
            None,
            Some(name),
            EventKind::Config {
                what: format!("pool {name} removed"),
            },
            None,
        );
        Ok(())
    }

    // ----- hosts -------------------------------------------------------------------

    fn check_new_host(&self, spec: &HostSpec) -> Outcome {
        validate::host(spec)?;
        if !self.pools.contains_key(&spec.pool) {
            return Err(format!("host {}: unknown pool {:?}", spec.name, spec.pool));
        }
        Ok(())
    }

    fn add_host(&mut self, spec: &HostSpec, stamp: Stamp) -> Outcome {
        self.check_new_host(spec)?;
        if self.hosts.contains_key(&spec.name) {
            return Err(format!("host {} already exists", spec.name));
        }
        self.insert_host(spec.clone(), stamp);
        Ok(())
    }

    fn insert_host(&mut self, spec: HostSpec, stamp: Stamp) {
        let name = spec.name.clone();
        let pool = spec.pool.clone();
        self.hosts.insert(
            name.clone(),
            Host {
                spec,
                ha: HaRecord::new(stamp.at_ms),
                owner: None,
                epoch: 0,
                last_owner: None,
                cycle_guard: None,
                history: Vec::new(),
            },
        );
        self.count_host(&pool, crate::engine::record::HaState::Disabled, true);
        self.push_event(
            stamp,
            Some(&name),
            Some(&pool),
            EventKind::Config {
                what: format!("host {name} added to pool {pool}"),
            },
            None,
        );
        if self.pools.get(&pool).is_some_and(|p| p.spec.enabled) {
            self.step_host(&name, &Input::Admin(Admin::Enable), stamp);
        }
        self.reevaluate_pool(&pool, stamp);
    }

    /// Replace a host's configuration, keeping its HA record. Moving pools and
    /// changing drivers are refused while an action is in flight.
    fn replace_host(&mut self, spec: &HostSpec, stamp: Stamp) -> Outcome {
        self.check_new_host(spec)?;
        let Some(h) = self.hosts.get(&spec.name) else {
            self.insert_host(spec.clone(), stamp);
            return Ok(());
        };
        if h.spec == *spec {
            return Ok(());
        }
        if let Some(i) = h.ha.intent {
            if h.spec.pool != spec.pool || h.spec.fence != spec.fence {
                return Err(format!(
                    "host {}: intent #{i} is in flight; its pool and power drivers cannot change until it ends",
                    spec.name
                ));
            }
        }
        let old_pool = h.spec.pool.clone();
        let state = h.ha.state;
        let moved = old_pool != spec.pool;
        if let Some(h) = self.hosts.get_mut(&spec.name) {
            h.spec = spec.clone();
        }
        self.push_event(
            stamp,
            Some(&spec.name),
            Some(&spec.pool),
            EventKind::Config {
                what: format!("host {} configuration changed", spec.name),
            },
            None,
        );
        if moved {
            self.count_host(&old_pool, state, false);
            self.count_host(&spec.pool, state, true);
            let enabled = self.pools.get(&spec.pool).is_some_and(|p| p.spec.enabled);
            let op = if enabled {
                Admin::Enable
            } else {
                Admin::Disable
            };
            self.step_host(&spec.name, &Input::Admin(op), stamp);
            self.reevaluate_pool(&old_pool, stamp);
        }
        self.step_host(&spec.name, &Input::Admin(Admin::Reevaluate), stamp);
        Ok(())
    }

    fn remove_host(&mut self, name: &str, stamp: Stamp) -> Outcome {
        let h = self
            .hosts
            .get(name)
            .ok_or_else(|| format!("unknown host {name}"))?;
        if let Some(i) = h.ha.intent {
            return Err(format!(
                "host {name} has an action in flight (intent #{i}); wait for it to end or disable HA for its pool first"
            ));
        }
        let pool = h.spec.pool.clone();
        let state = h.ha.state;
        self.hosts.remove(name);
        self.count_host(&pool, state, false);
        self.push_event(
            stamp,
            Some(name),
            Some(&pool),
            EventKind::Config {
                what: format!("host {name} removed"),
            },
            None,
        );
        self.reevaluate_pool(&pool, stamp);
        Ok(())
    }

    /// Record an operator's power action. The request is refused while HA may act on
    /// the host (it must be in maintenance, or its pool disabled) or an intent is in
    /// flight: an operator and vigil must never both drive one BMC.
    fn operator_power(
        &mut self,
        name: &str,
        action: &str,
        level: u32,
        result: Option<&str>,
        stamp: Stamp,
    ) -> Outcome {
        let h = self
            .hosts
            .get(name)
            .ok_or_else(|| format!("unknown host {name}"))?;
        if !matches!(action, "on" | "off" | "cycle") {
            return Err(format!(
                "power action {action:?}: expected on, off or cycle"
            ));
        }
        if level as usize >= h.spec.fence.len() {
            return Err(format!(
                "host {name} has {} fence level(s); level {} does not exist",
                h.spec.fence.len(),
                level + 1
            ));
        }
        let pool = h.spec.pool.clone();
        let what = match result {
            None => {
                let pool_enabled = self.pools.get(&pool).is_some_and(|p| p.spec.enabled);
                if !h.spec.maintenance && pool_enabled {
                    return Err(format!(
                        "host {name} is under HA (pool {pool} is enabled): put it in maintenance first (`vigil host maintenance {name} on`) so that vigil and you do not both act on its BMC"
                    ));
                }
                if let Some(i) = h.ha.intent {
                    return Err(format!(
                        "host {name} has an action in flight (intent #{i}); wait for it to end"
                    ));
                }
                format!(
                    "operator power {action} requested (fence level {})",
                    level + 1
                )
            }
            Some(r) => format!("operator power {action} (fence level {}): {r}", level + 1),
        };
        self.push_event(
            stamp,
            Some(name),
            Some(&pool),
            EventKind::Config { what },
            None,
        );
        Ok(())
    }

    fn set_maintenance(&mut self, name: &str, on: bool, stamp: Stamp) -> Outcome {
        let h = self
            .hosts
            .get_mut(name)
            .ok_or_else(|| format!("unknown host {name}"))?;
        if h.spec.maintenance == on {
            return Ok(());
        }
        h.spec.maintenance = on;
        let pool = h.spec.pool.clone();
        self.push_event(
            stamp,
            Some(name),
            Some(&pool),
            EventKind::Config {
                what: format!("maintenance {}", if on { "on" } else { "off" }),
            },
            None,
        );
        self.step_host(name, &Input::Admin(Admin::Reevaluate), stamp);
        Ok(())
    }

    // ----- members and ownership ------------------------------------------------------

    fn set_member_liveness(
        &mut self,
        id: vigil_raft::NodeId,
        addr: &str,
        alive: bool,
        stamp: Stamp,
    ) -> Outcome {
        let changed = self
            .members
            .get(&id)
            .is_none_or(|m| m.alive != alive || m.addr != addr);
        if !changed {
            return Ok(());
        }
        self.members.insert(
            id,
            crate::state::model::MemberRecord {
                id,
                addr: addr.to_string(),
                alive,
                since: stamp.at_ms,
            },
        );
        // A dead member owns nothing: its hosts are released in the same command, so
        // its late proposals carry a stale epoch from this entry on, and the leader's
        // next assignment round gives them to live members.
        let mut released = 0;
        // PLANTED BUG `dead-hosts-kept` (chaos self-test only; the leader's assignment
        // keeps them too, see `worker::leader`): a dead member keeps its hosts, so
        // nobody checks or fences them: L2 (not reassigned) / L1 (failures unhandled).
        if !alive && !crate::planted::active(crate::planted::Bug::DeadHostsKept) {
            for h in self.hosts.values_mut() {
                if h.owner == Some(id) {
                    Self::set_owner(h, None);
                    released += 1;
                }
            }
        }
        let what = if alive {
            format!("member {id} declared alive")
        } else {
            format!("member {id} declared dead; {released} host(s) released")
        };
        self.push_event(stamp, None, None, EventKind::Config { what }, None);
        Ok(())
    }

    /// Change a host's owner: bumps its epoch and remembers the previous owner.
    fn set_owner(h: &mut Host, owner: Option<vigil_raft::NodeId>) {
        if h.owner == owner {
            return;
        }
        if let Some(prev) = h.owner {
            h.last_owner = Some(prev);
        }
        h.owner = owner;
        h.epoch += 1;
    }

    /// All or nothing: every host must exist and every new owner must be a live member.
    fn assign_hosts(
        &mut self,
        assignments: &[(String, Option<vigil_raft::NodeId>)],
        stamp: Stamp,
    ) -> Outcome {
        for (host, owner) in assignments {
            if !self.hosts.contains_key(host) {
                return Err(format!("unknown host {host}"));
            }
            if let Some(o) = owner {
                if !self.members.get(o).is_some_and(|m| m.alive) {
                    return Err(format!(
                        "cannot assign {host} to member {o}: it is not a live member"
                    ));
                }
            }
        }
        let mut moved = 0;
        for (host, owner) in assignments {
            let Some(h) = self.hosts.get(host) else {
                continue;
            };
            if h.owner == *owner {
                continue;
            }
            let Some(h) = self.hosts.get_mut(host) else {
                continue;
            };
            Self::set_owner(h, *owner);
            moved += 1;
            // An intent in flight moves with the host: the new owner gets the
            // intent's own time budget from when it may act (after a running cycle's
            // guard, if any), a bounded number of times.
            let (Some(_), Some(id)) = (owner, h.ha.intent) else {
                continue;
            };
            let Some(i) = self.intents.get_mut(&id) else {
                continue;
            };
            if i.state != IntentState::InFlight || i.extensions >= MAX_INTENT_EXTENSIONS {
                continue;
            }
            let from = h
                .cycle_guard
                .map_or(stamp.at_ms, |g| g.until.max(stamp.at_ms));
            let wanted = from + i.timeout;
            if wanted > i.deadline {
                i.deadline = wanted;
                i.extensions += 1;
                h.ha.deadline = h.ha.deadline.max(i.deadline);
            }
        }
        if moved > 0 {
            self.push_event(
                stamp,
                None,
                None,
                EventKind::Config {
                    what: format!("{moved} host(s) assigned to new owners"),
                },
                None,
            );
        }
        Ok(())
    }

    // ----- engine inputs -----------------------------------------------------------

    fn host_input(&mut self, hi: &HostInput, stamp: Stamp) -> InputOutcome {
        let Some(h) = self.hosts.get(&hi.host) else {
            return InputOutcome::Rejected {
                reason: format!("unknown host {}", hi.host),
            };
        };
        if let Some(e) = hi.epoch {
            if e != h.epoch {
                return InputOutcome::Rejected {
                    reason: format!(
                        "stale epoch {e}: host {} is at epoch {} (owner {:?})",
                        hi.host, h.epoch, h.owner
                    ),
                };
            }
            // An epoch names one owner: only that member may speak for it.
            if h.owner != Some(stamp.by) {
                return InputOutcome::Rejected {
                    reason: format!(
                        "member {} does not own host {} (owner {:?})",
                        stamp.by, hi.host, h.owner
                    ),
                };
            }
        }
        let (transition, intents) = self.step_host(&hi.host, &hi.input, stamp);
        InputOutcome::Applied {
            transition,
            intents,
        }
    }

    /// Run the engine for one host and apply its result: record, counts, intents,
    /// ledger, events, pool re-evaluation.
    fn step_host(
        &mut self,
        name: &str,
        input: &Input,
        stamp: Stamp,
    ) -> (Option<Transition>, Vec<u64>) {
        let now = stamp.at_ms;
        let Some(pool_name) = self.hosts.get(name).map(|h| h.spec.pool.clone()) else {
            return (None, vec![]);
        };
        // Time-based pool changes (breaker cooldown, budget window) first.
        self.reevaluate_pool(&pool_name, stamp);
        let Some(h) = self.hosts.get(name) else {
            return (None, vec![]);
        };
        let policy = self.host_policy(&h.spec);
        let gate = self.pool_gate(&pool_name, now);
        let ctx = Ctx {
            policy: &policy,
            gate: &gate,
            maintenance: h.spec.maintenance,
            fence_levels: h.spec.fence.len() as u32,
            next_intent_id: self.next_intent,
        };
        let out = step(&h.ha, &ctx, input, now);
        if out.is_noop(&h.ha) {
            return (None, vec![]);
        }
        let epoch = h.epoch;
        let owner = h.owner;
        let drivers: Vec<_> = h.spec.fence.iter().map(|d| d.kind).collect();
        let old_state = h.ha.state;
        // An intent started while a power cycle may still be running gets its time
        // counted from the end of the cycle's guard (see `Host::cycle_guard`).
        let starts = out
            .actions
            .iter()
            .any(|a| matches!(a, Action::Recover { .. } | Action::Fence { .. }));
        let shift = match h.cycle_guard {
            Some(g) if starts => g.until.saturating_sub(now),
            _ => 0,
        };
        if let Some(h) = self.hosts.get_mut(name) {
            h.ha = out.record.clone();
            if shift > 0 {
                h.ha.deadline += shift;
            }
            if let Some(t) = &out.transition {
                h.history.push(HistoryEntry {
                    at: now,
                    by: stamp.by,
                    transition: t.clone(),
                    evidence: input.clone(),
                });
                if h.history.len() > HOST_HISTORY {
                    h.history.remove(0);
                }
            }
        }
        if old_state != out.record.state {
            if let Some(p) = self.pools.get_mut(&pool_name) {
                let mut c = p.counts;
                remove_state(&mut c, old_state);
                c.add(out.record.state);
                p.counts = c;
            }
        }
        if let Some(t) = &out.transition {
            self.push_event(
                stamp,
                Some(name),
                Some(&pool_name),
                EventKind::HostTransition(t.clone()),
                Some(input.clone()),
            );
        }
        let mut started = Vec::new();
        for action in &out.actions {
            match action {
                Action::Recover {
                    intent,
                    attempt,
                    deadline,
                } => {
                    let kind = IntentKind::Recover { attempt: *attempt };
                    self.start_intent(
                        *intent,
                        name,
                        &pool_name,
                        (epoch, owner),
                        kind,
                        (*deadline + shift, deadline.saturating_sub(now)),
                        false,
                        stamp,
                    );
                    started.push(*intent);
                }
                Action::Fence {
                    intent,
                    level,
                    new_fence,
                    deadline,
                } => {
                    let driver = drivers
                        .get(*level as usize)
                        .copied()
                        .unwrap_or(crate::state::model::DriverKind::Sim);
                    let kind = IntentKind::Fence {
                        level: *level,
                        driver,
                    };
                    self.start_intent(
                        *intent,
                        name,
                        &pool_name,
                        (epoch, owner),
                        kind,
                        (*deadline + shift, deadline.saturating_sub(now)),
                        *new_fence,
                        stamp,
                    );
                    started.push(*intent);
                }
                Action::CloseIntent { intent, end } => {
                    if let Some(i) = self.intents.get_mut(intent) {
                        i.state = IntentState::Ended {
                            end: end.clone(),
                            at: now,
                        };
                    }
                    self.push_event(
                        stamp,
                        Some(name),
                        Some(&pool_name),
                        EventKind::IntentEnded {
                            intent: *intent,
                            end: end.clone(),
                        },
                        None,
                    );
                }
                Action::Alarm { text } => {
                    self.push_event(
                        stamp,
                        Some(name),
                        Some(&pool_name),
                        EventKind::Alarm { text: text.clone() },
                        Some(input.clone()),
                    );
                }
                Action::ActivityCheck { .. } => {}
            }
        }
        // Last, once the intent is closed: the signal orchestrators act on.
        if out
            .transition
            .as_ref()
            .is_some_and(|t| t.to == crate::engine::record::HaState::Fenced)
        {
            let fenced = self.fenced_event(input, out.record.power);
            self.push_event(
                stamp,
                Some(name),
                Some(&pool_name),
                fenced,
                Some(input.clone()),
            );
        }
        self.prune_intents();
        self.reevaluate_pool(&pool_name, stamp);
        (out.transition, started)
    }

    /// The `HostFenced` event for a host that just became Fenced because of `input`:
    /// which driver (or operator, or power reading) established it, and what it saw.
    fn fenced_event(&self, input: &Input, power: crate::engine::record::PowerState) -> EventKind {
        let (by, level, intent, detail) = match input {
            Input::Outcome { intent, result } => {
                let (by, level) = match self.intents.get(intent).map(|i| &i.kind) {
                    Some(IntentKind::Fence { level, driver }) => {
                        (driver.name().to_string(), Some(*level))
                    }
                    _ => ("driver".to_string(), None),
                };
                let detail = match result {
                    ActionResult::Done { detail, .. } | ActionResult::Unknown { detail, .. } => {
                        detail.clone()
                    }
                    ActionResult::Failed { reason } => reason.clone(),
                };
                (by, level, Some(*intent), detail)
            }
            Input::Admin(Admin::ConfirmOff) => (
                "operator".to_string(),
                None,
                None,
                "operator confirmed the host is powered off".to_string(),
            ),
            Input::Power { detail, .. } => {
                ("power-reading".to_string(), None, None, detail.clone())
            }
            other => (other.kind().to_string(), None, None, String::new()),
        };
        EventKind::HostFenced {
            by,
            level,
            intent,
            power,
            detail,
        }
    }

    /// Record a new intent (`at`: the host's epoch and owner; `time`: its deadline
    /// and its own time budget) and, for a recovery or a new fence, its ledger entry.
    #[allow(clippy::too_many_arguments)]
    fn start_intent(
        &mut self,
        id: u64,
        host: &str,
        pool: &str,
        (epoch, owner): (u64, Option<vigil_raft::NodeId>),
        kind: IntentKind,
        (deadline, timeout): (Millis, Millis),
        new_fence: bool,
        stamp: Stamp,
    ) {
        self.next_intent = self.next_intent.max(id + 1);
        let is_fence = matches!(kind, IntentKind::Fence { .. });
        self.intents.insert(
            id,
            Intent {
                id,
                host: host.to_string(),
                pool: pool.to_string(),
                epoch,
                owner,
                kind: kind.clone(),
                created_at: stamp.at_ms,
                deadline,
                timeout,
                begun: Vec::new(),
                extensions: 0,
                state: IntentState::InFlight,
            },
        );
        if new_fence || !is_fence {
            // Never earlier than the previous entry: proposers' clocks may disagree a
            // little, and a sorted ledger lets the budget read only its tail.
            let at = self
                .ledger
                .back()
                .map_or(stamp.at_ms, |last| last.at.max(stamp.at_ms));
            self.ledger.push_back(LedgerEntry {
                intent: id,
                host: host.to_string(),
                pool: pool.to_string(),
                fence: is_fence,
                at,
            });
            self.trim_ledger(stamp.at_ms);
        }
        self.push_event(
            stamp,
            Some(host),
            Some(pool),
            EventKind::IntentStarted { intent: id, kind },
            None,
        );
    }

    /// Keep the ledger bounded without ever dropping a fence that still counts
    /// against its pool's budget: over [`LEDGER_KEPT`], the oldest entries that no
    /// longer count (recoveries, fences older than their pool's window) go first, down
    /// to 90 % of the cap so that the scan is amortized. If every entry still counts,
    /// the ledger grows: the budget (at most a few fences per window) bounds that.
    fn trim_ledger(&mut self, now: Millis) {
        if self.ledger.len() <= LEDGER_KEPT {
            return;
        }
        let target = LEDGER_KEPT * 9 / 10;
        let mut excess = self.ledger.len() - target;
        let mut windows: BTreeMap<String, Millis> = BTreeMap::new();
        let mut kept = VecDeque::with_capacity(self.ledger.len());
        for e in std::mem::take(&mut self.ledger) {
            if excess > 0 {
                let counts = e.fence && {
                    let w = *windows
                        .entry(e.pool.clone())
                        .or_insert_with(|| self.pool_policy(&e.pool).fence_budget_window);
                    e.at + w > now
                };
                if !counts {
                    excess -= 1;
                    continue;
                }
            }
            kept.push_back(e);
        }
        self.ledger = kept;
    }

    /// Commit that an executor is cleared to call the BMC for an intent (see
    /// [`crate::state::model::Begin`]); returns the executors that began it before.
    fn begin_action(
        &mut self,
        host: &str,
        epoch: u64,
        intent: u64,
        incarnation: u64,
        stamp: Stamp,
    ) -> Result<Vec<Begin>, String> {
        let skew = self.max_clock_skew();
        let h = self
            .hosts
            .get_mut(host)
            .ok_or_else(|| format!("unknown host {host}"))?;
        if h.epoch != epoch || h.owner != Some(stamp.by) {
            return Err(format!(
                "member {} at epoch {epoch} does not own host {host} (owner {:?}, epoch {})",
                stamp.by, h.owner, h.epoch
            ));
        }
        if h.ha.intent != Some(intent) {
            return Err(format!(
                "intent {intent} is not the current intent of host {host}"
            ));
        }
        let i = self
            .intents
            .get_mut(&intent)
            .ok_or_else(|| format!("unknown intent {intent}"))?;
        if i.state != IntentState::InFlight {
            return Err(format!("intent {intent} is over"));
        }
        if stamp.at_ms >= i.deadline {
            return Err(format!("intent {intent} is past its deadline"));
        }
        // PLANTED BUG `no-cycle-guard` (chaos self-test only, compiled out without the
        // `planted-bugs` feature; process-wide, so every member applies it alike): a
        // begin is accepted while another executor's power cycle may still be running,
        // e.g. a new owner's fence racing the old owner's cycle, whose power-on then
        // undoes it: S1b / S5.
        let ignore_guard = crate::planted::active(crate::planted::Bug::NoCycleGuard);
        if let Some(g) = h.cycle_guard.filter(|_| !ignore_guard) {
            let mine = g.by == stamp.by && g.incarnation == incarnation;
            if !mine && stamp.at_ms < g.until {
                return Err(format!(
                    "a power cycle of host {host} begun by member {} (intent {}) may still be running until {}",
                    g.by, g.intent, g.until
                ));
            }
        }
        let same = |b: &Begin| b.by == stamp.by && b.incarnation == incarnation;
        let earlier: Vec<Begin> = i.begun.iter().filter(|b| !same(b)).copied().collect();
        if !i.begun.iter().any(same) {
            i.begun.push(Begin {
                by: stamp.by,
                epoch,
                incarnation,
                at: stamp.at_ms,
            });
            if let IntentKind::Recover { .. } = i.kind {
                h.cycle_guard = Some(CycleGuard {
                    intent,
                    by: stamp.by,
                    incarnation,
                    until: stamp.at_ms + i.timeout + skew,
                });
            }
        }
        Ok(earlier)
    }

    fn prune_intents(&mut self) {
        if self.intents.len() <= ENDED_INTENTS_KEPT {
            return;
        }
        let excess = self.intents.len() - ENDED_INTENTS_KEPT;
        let old: Vec<u64> = self
            .intents
            .values()
            .filter(|i| i.state != IntentState::InFlight)
            .take(excess)
            .map(|i| i.id)
            .collect();
        for id in old {
            self.intents.remove(&id);
        }
    }

    fn tick_all(&mut self, stamp: Stamp) {
        let now = stamp.at_ms;
        self.reevaluate_all_pools(stamp);
        let due: Vec<String> = self
            .hosts
            .values()
            .filter(|h| {
                let d = |t: Millis| t != 0 && now >= t;
                d(h.ha.deadline) || d(h.ha.next_activity_at)
            })
            .map(|h| h.spec.name.clone())
            .collect();
        for name in due {
            self.step_host(&name, &Input::Tick, stamp);
        }
    }

    // ----- inventory ---------------------------------------------------------------

    fn apply_inventory(&mut self, change: &InventoryChange, stamp: Stamp) -> Outcome {
        if let Some(based_on) = change.based_on {
            if based_on != self.config_revision {
                return Err(format!(
                    "the configuration changed since this change was planned (revision {based_on}, now {}): nothing applied; plan it again",
                    self.config_revision
                ));
            }
        }
        // All or nothing: apply to a copy, keep it only if every part succeeded.
        let mut next = self.clone();
        next.apply_inventory_parts(change, stamp)?;
        *self = next;
        Ok(())
    }

    fn apply_inventory_parts(&mut self, change: &InventoryChange, stamp: Stamp) -> Outcome {
        for (k, v) in &change.settings {
            self.set_setting(k, v, stamp)
                .map_err(|e| format!("policy: {e}"))?;
        }
        for spec in &change.pools {
            validate::pool(spec)?;
            if self.pools.contains_key(&spec.name) {
                let p = &self.pools[&spec.name];
                let unset: Vec<String> = p
                    .spec
                    .policy
                    .keys()
                    .filter(|k| !spec.policy.contains_key(*k))
                    .cloned()
                    .collect();
                self.update_pool(&spec.name, Some(spec.enabled), &spec.policy, &unset, stamp)?;
            } else {
                self.create_pool(spec, stamp)?;
            }
        }
        for spec in &change.hosts {
            self.replace_host(spec, stamp)?;
        }
        for name in &change.remove_hosts {
            self.remove_host(name, stamp)?;
        }
        for name in &change.remove_pools {
            self.remove_pool(name, stamp)?;
        }
        Ok(())
    }
}

fn remove_state(c: &mut PoolCounts, s: crate::engine::record::HaState) {
    let mut minus = PoolCounts::default();
    minus.add(s);
    c.hosts -= minus.hosts;
    c.enabled -= minus.enabled;
    c.available -= minus.available;
    c.failing -= minus.failing;
}
