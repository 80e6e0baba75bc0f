//! Fleet set-up shared by the `engine` and `scale` benchmarks: the same pools, hosts
//! and bring-up inputs, all through the real apply.

use vigil::engine::{HealthObs, Input, PowerState};
use vigil::state::{Command, HostInput, Stamp};

/// Hosts per pool.
pub const POOL_SIZE: usize = 1_000;
/// Proposer clock used for every command (ms since the epoch).
pub const T0: u64 = 1_700_000_000_000;
/// The stamp of set-up commands.
pub const SETUP: Stamp = Stamp { by: 1, at_ms: T0 };

/// A health observation as the owner's tracker would send it.
pub fn obs(pass: bool, consecutive: u32) -> Input {
    Input::Health(HealthObs {
        pass,
        consecutive_failures: consecutive,
        window_failures: consecutive,
        window_len: consecutive.max(1),
        detail: if pass { "200 OK" } else { "connect timeout" }.into(),
    })
}

/// Name of host `i` of pool `pool`.
pub fn host_name(pool: usize, i: usize) -> String {
    format!("p{pool:03}-h{i:04}")
}

/// Create enabled pool number `p`.
pub fn create_pool(p: usize) -> Command {
    Command::CreatePool {
        spec: vigil::fleet::pool(&format!("p{p:03}"), true, Default::default()),
        stamp: SETUP,
    }
}

/// Add host `i` of pool `p`: a sim fence driver and sim checks.
pub fn add_host(p: usize, i: usize) -> Command {
    Command::AddHost {
        spec: vigil::fleet::sim_host(&host_name(p, i), &format!("p{p:03}"), 1),
        stamp: SETUP,
    }
}

/// Power-on reading and a first passing check for hosts `0..n` of pool `p`: one
/// command that makes them Available.
pub fn bring_up(p: usize, n: usize) -> Command {
    let inputs = (0..n)
        .flat_map(|i| {
            let host = host_name(p, i);
            [
                HostInput {
                    host: host.clone(),
                    epoch: Some(0),
                    input: Input::Power {
                        state: PowerState::On,
                        detail: "bench setup".into(),
                    },
                },
                HostInput {
                    host,
                    epoch: Some(0),
                    input: obs(true, 0),
                },
            ]
        })
        .collect();
    Command::HostInputs {
        inputs,
        stamp: Stamp {
            by: 1,
            at_ms: T0 + 1,
        },
    }
}
