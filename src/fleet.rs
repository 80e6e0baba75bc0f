//! Builders for simulated fleets: hosts whose checks and power drivers are the `sim`
//! provider. Used by `vigil dev`, the scenario and property tests, the chaos harness
//! and the benchmarks, so they all describe a simulated host the same way.

use std::collections::BTreeMap;

use crate::engine::policy::Overrides;
use crate::state::model::{
    CheckKind, CheckSpec, DriverKind, DriverSpec, HostSpec, PoolSpec, Secret,
};

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
