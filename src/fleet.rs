//! Builders for simulated fleets: hosts whose checks and power drivers are the `sim`
//! provider. Used by `vigil dev`, the scenario and property tests, the chaos harness
//! and the benchmarks, so they all describe a simulated host the same way.

use std::collections::BTreeMap;

use vigil_raft::{ApplyContext, StateMachine};

use crate::engine::policy::Overrides;
use crate::state::model::{
    CheckKind, CheckSpec, DriverKind, DriverSpec, HostSpec, PoolSpec, Secret,
};
use crate::state::{Command, InputOutcome, Response, VigilState};

/// A simulated power driver (fence level `level` of `host`).
pub fn sim_driver(host: &str, level: usize) -> DriverSpec {
    DriverSpec {
        kind: DriverKind::Sim,
        address: format!("sim://{host}/{level}"),
        username: String::new(),
        password: Secret::default(),
        options: BTreeMap::new(),
    }
}

fn sim_check() -> CheckSpec {
    CheckSpec {
        kind: CheckKind::Sim,
        target: String::new(),
        options: BTreeMap::new(),
    }
}

/// A simulated host in `pool` with `levels` simulated fence levels.
pub fn sim_host(name: &str, pool: &str, levels: usize) -> HostSpec {
    HostSpec {
        name: name.into(),
        pool: pool.into(),
        kind: "hypervisor".into(),
        labels: BTreeMap::new(),
        health: Some(sim_check()),
        activity: Some(sim_check()),
        fence: (0..levels).map(|i| sim_driver(name, i)).collect(),
        maintenance: false,
        policy: BTreeMap::new(),
    }
}

/// A pool spec.
pub fn pool(name: &str, enabled: bool, policy: Overrides) -> PoolSpec {
    PoolSpec {
        name: name.into(),
        enabled,
        policy,
    }
}

/// Applies commands to a local [`VigilState`] with increasing log positions, as Raft
/// would on every member: for simulations, benchmarks and tests that need the real
/// apply without a cluster.
#[derive(Debug, Default)]
pub struct LocalApply {
    /// The state.
    pub state: VigilState,
    index: u64,
}

impl LocalApply {
    /// Apply one command at the next log position.
    pub fn apply(&mut self, cmd: &Command) -> Response {
        self.index += 1;
        let ctx = ApplyContext {
            index: self.index,
            term: 1,
            position: 0,
        };
        self.state.apply(ctx, cmd)
    }

    /// Apply a command that must be accepted whole.
    ///
    /// # Panics
    /// If the command, or any input of a `HostInputs`, is rejected: for set-up code in
    /// benchmarks and simulations, where a rejection is a bug of the caller.
    pub fn must(&mut self, cmd: &Command) -> Response {
        let r = self.apply(cmd);
        match &r {
            Response::Rejected { reason } => panic!("command rejected: {reason}"),
            Response::Inputs { results, .. } => {
                if let Some(o) = results
                    .iter()
                    .find(|o| matches!(o, InputOutcome::Rejected { .. }))
                {
                    panic!("input rejected: {o:?}");
                }
            }
            Response::Applied { .. } | Response::Begun { .. } => {}
        }
        r
    }
}
