//! The simulated fleet of `vigil dev`: N hosts whose BMCs speak Redfish over HTTP on
//! loopback, so dev mode runs the real Redfish driver and the real `redfish-power`
//! activity check, not a shortcut.
//!
//! Each host gets: a `sim` health check (the simulated OS answers or not), a
//! `redfish-power` activity check (power draw above the idle floor = working), and
//! one Redfish fence level pointing at the shared [`SimRedfishServer`] with the host
//! name as system id. The pool `dev` uses the documented fast profile, so a crash is
//! fenced within seconds.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use vigil_providers::sim::{SimCredentials, SimFleet, SimRedfishServer};

use crate::engine::policy::{parse_override, FAST_PROFILE};
use crate::error::VigilError;
use crate::settings::Scope;
use crate::state::model::{CheckKind, CheckSpec, DriverKind, DriverSpec, HostSpec, Secret};
use crate::state::InventoryChange;

/// The BMC user of the dev fleet.
pub const BMC_USER: &str = "admin";
/// The BMC password of the dev fleet (loopback only; write-only in vigil like any other).
pub const BMC_PASSWORD: &str = "dev-password";
/// Name of the dev pool.
pub const POOL: &str = "dev";
/// Power draw (W) above which a simulated host counts as working (the sim draws 60 W
/// idle or hung, 240 W working).
const ACTIVE_WATTS: &str = "100";

/// The simulated hosts and their Redfish BMCs.
#[derive(Debug)]
pub struct DevFleet {
    /// The simulated fleet (true power, OS condition, BMC faults, ground truth).
    pub fleet: SimFleet,
    /// Its BMCs as Redfish over HTTP.
    pub server: SimRedfishServer,
    /// Host names, in order.
    pub hosts: Vec<String>,
}

impl DevFleet {
    /// `n` hosts named `host-001`…, their BMCs served on a free loopback port.
    pub async fn start(n: usize) -> Result<Self, VigilError> {
        let fleet = SimFleet::new();
        let hosts: Vec<String> = (1..=n).map(|i| format!("host-{i:03}")).collect();
        for h in &hosts {
            fleet
                .add_host(h.clone())
                .map_err(|e| VigilError::Config(e.to_string()))?;
        }
        let bind: SocketAddr = ([127, 0, 0, 1], 0).into();
        let server = SimRedfishServer::start(
            fleet.clone(),
            bind,
            SimCredentials::new(BMC_USER, BMC_PASSWORD),
        )
        .await
        .map_err(|e| VigilError::io("starting the simulated Redfish BMCs", e))?;
        Ok(Self {
            fleet,
            server,
            hosts,
        })
    }

    /// The host as registered in vigil.
    fn spec(&self, name: &str) -> HostSpec {
        let mut fence_opts = BTreeMap::new();
        fence_opts.insert("system_id".to_string(), name.to_string());
        fence_opts.insert("poll_interval_ms".to_string(), "100".to_string());
        let mut activity_opts = BTreeMap::new();
        activity_opts.insert("threshold_watts".to_string(), ACTIVE_WATTS.to_string());
        HostSpec {
            name: name.to_string(),
            pool: POOL.to_string(),
            kind: "simulated".into(),
            labels: BTreeMap::new(),
            health: Some(CheckSpec {
                kind: CheckKind::Sim,
                target: String::new(),
                options: BTreeMap::new(),
            }),
            activity: Some(CheckSpec {
                kind: CheckKind::RedfishPower,
                target: String::new(),
                options: activity_opts,
            }),
            fence: vec![DriverSpec {
                kind: DriverKind::Redfish,
                address: self.server.url(),
                username: BMC_USER.into(),
                password: Secret(BMC_PASSWORD.into()),
                options: fence_opts,
            }],
            maintenance: false,
            policy: BTreeMap::new(),
        }
    }

    /// The inventory that registers the fleet: pool `dev` (fast profile, enabled) and
    /// every host.
    pub fn inventory(&self) -> InventoryChange {
        let policy = FAST_PROFILE
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    parse_override(k, v, Scope::Pool).expect("the fast profile parses"),
                )
            })
            .collect();
        InventoryChange {
            pools: vec![crate::fleet::pool(POOL, true, policy)],
            hosts: self.hosts.iter().map(|h| self.spec(h)).collect(),
            ..Default::default()
        }
    }
}
