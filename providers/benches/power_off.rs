//! Side-by-side timing of power drivers against the same real emulators: how long
//! each takes to a *verified* power-off, and to read the power status.
//!
//! - Redfish, on one sushy-emulator with TLS: vigil's `redfish` driver (certificate
//!   verified with the test CA) and Debian's `fence_redfish` run by vigil's `script`
//!   driver (`ssl_insecure`, its only TLS mode against a private CA).
//! - IPMI, on one `ipmi_sim`: vigil's native `ipmi` driver (RMCP+ in-process; once
//!   with its session reused across calls, as a long-lived driver does, and once
//!   built anew, with its own session opened and closed, for every call), vigil's
//!   `ipmitool` driver, and `fence_ipmilan` (lanplus, cipher suite 3) run by the
//!   `script` driver.
//!
//! Every driver runs with its defaults (poll intervals included). Each round, every
//! row of a group in turn reads the status (timed), powers the host off (timed until
//! the driver returns a verified off) and powers it back on (verified, not timed), so
//! the rows of a group take turns on the same BMC and share its drift. sushy applies
//! a power change 1–11 s (random) after accepting it, so its rows measure mostly
//! that delay plus how soon the driver notices it.
//!
//! A row is one function returning a [`Row`] (see [`vigil_redfish`]); add it to its
//! group's list in [`main`].
//!
//! Run: `cargo bench -p vigil-providers --bench power_off` (needs `bash
//! scripts/peers.sh install`; about 10 minutes, mostly sushy's delays). Rounds:
//! `VIGIL_BENCH_ROUNDS` (default 20). Without `--bench` (e.g. `cargo test
//! --all-targets`) it does nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;
use vigil_providers::ipmi::{IpmiConfig, IpmiDriver};
use vigil_providers::ipmitool::{IpmitoolConfig, IpmitoolDriver};
use vigil_providers::redfish::{RedfishConfig, RedfishDriver};
use vigil_providers::script::ScriptDriver;
use vigil_providers::{
    ActionReport, DriverError, PowerAction, PowerDriver, PowerReading, PowerState,
};

#[path = "../tests/support/ipmi_sim.rs"]
mod ipmi_sim;
#[path = "../tests/support/sushy.rs"]
mod sushy;
use ipmi_sim::Sim;
use sushy::Sushy;

/// Deadline of one call: sushy may take 11 s to apply a change, and fence agents
/// wait up to 20 s for it.
const CALL: Duration = Duration::from_secs(40);

/// One driver under test.
struct Row {
    name: &'static str,
    driver: Box<dyn PowerDriver>,
}

/// What one row measured.
#[derive(Default)]
struct Times {
    status: Vec<Duration>,
    off: Vec<Duration>,
}

/// vigil's Redfish driver, TLS verified with the test CA.
fn vigil_redfish(s: &Sushy) -> Row {
    let mut c = RedfishConfig::new(&s.url, sushy::USER, sushy::PASSWORD);
    c.ca_file = Some(s.ca.clone());
    Row {
        name: "vigil redfish",
        driver: Box::new(RedfishDriver::new(c).unwrap()),
    }
}

/// fence_redfish through vigil's script driver.
fn fence_redfish(s: &Sushy) -> Row {
    let extra = options(&[
        ("ipport", s.port.to_string()),
        ("ssl_insecure", "1".into()),
        ("systems_uri", s.system_uri(1)),
    ]);
    let d = ScriptDriver::for_bmc(
        "/usr/sbin/fence_redfish",
        "127.0.0.1",
        sushy::USER,
        sushy::PASSWORD,
        extra,
    )
    .unwrap();
    Row {
        name: "fence_redfish (script)",
        driver: Box::new(d),
    }
}

/// vigil's native IPMI driver config for `sim` (defaults otherwise).
fn ipmi_config(sim: &Sim) -> IpmiConfig {
    let mut c = IpmiConfig::new("127.0.0.1", ipmi_sim::USER, ipmi_sim::PASSWORD);
    c.port = sim.port;
    c
}

/// vigil's native IPMI driver, one session reused across calls.
fn vigil_ipmi(sim: &Sim) -> Row {
    Row {
        name: "vigil ipmi (native)",
        driver: Box::new(IpmiDriver::new(ipmi_config(sim)).unwrap()),
    }
}

/// vigil's native IPMI driver built for each call: every call opens its own
/// session and closes it (a caller that does not keep its drivers).
fn vigil_ipmi_fresh(sim: &Sim) -> Row {
    Row {
        name: "vigil ipmi (new session)",
        driver: Box::new(FreshIpmi(ipmi_config(sim))),
    }
}

/// A native IPMI driver built, used once and closed for every call.
#[derive(Debug)]
struct FreshIpmi(IpmiConfig);

#[async_trait::async_trait]
impl PowerDriver for FreshIpmi {
    fn kind(&self) -> &'static str {
        "ipmi"
    }

    async fn status(&self, deadline: Instant) -> Result<PowerReading, DriverError> {
        let d = IpmiDriver::new(self.0.clone())?;
        let r = d.status(deadline).await;
        d.close(deadline).await?;
        r
    }

    async fn act(
        &self,
        action: PowerAction,
        deadline: Instant,
    ) -> Result<ActionReport, DriverError> {
        let d = IpmiDriver::new(self.0.clone())?;
        let r = d.act(action, deadline).await;
        d.close(deadline).await?;
        r
    }
}

/// vigil's ipmitool driver.
fn vigil_ipmitool(sim: &Sim) -> Row {
    let mut c = IpmitoolConfig::new("127.0.0.1", ipmi_sim::USER, ipmi_sim::PASSWORD);
    c.port = sim.port;
    Row {
        name: "vigil ipmitool",
        driver: Box::new(IpmitoolDriver::new(c).unwrap()),
    }
}

/// fence_ipmilan through vigil's script driver.
fn fence_ipmilan(sim: &Sim) -> Row {
    let extra = options(&[
        ("ipport", sim.port.to_string()),
        ("lanplus", "1".into()),
        ("cipher", "3".into()),
    ]);
    let d = ScriptDriver::for_bmc(
        "/usr/sbin/fence_ipmilan",
        "127.0.0.1",
        ipmi_sim::USER,
        ipmi_sim::PASSWORD,
        extra,
    )
    .unwrap();
    Row {
        name: "fence_ipmilan (script)",
        driver: Box::new(d),
    }
}

fn options(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("power_off: skipped (run `cargo bench -p vigil-providers --bench power_off`)");
        return;
    }
    let rounds = match std::env::var("VIGIL_BENCH_ROUNDS").ok().map(|v| v.parse()) {
        None => 20,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => {
            eprintln!("VIGIL_BENCH_ROUNDS must be a positive integer");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        println!("power_off: {rounds} verified power-offs per driver\n");
        let sim = Sim::start().await;
        let rows = vec![
            vigil_ipmi(&sim),
            vigil_ipmi_fresh(&sim),
            vigil_ipmitool(&sim),
            fence_ipmilan(&sim),
        ];
        let times = run_group(&rows, rounds).await;
        report(
            "IPMI: ipmi_sim (OpenIPMI), lanplus, cipher suite 3",
            &rows,
            &times,
        );
        drop(sim);

        let s = Sushy::start(1, true).await;
        let rows = vec![vigil_redfish(&s), fence_redfish(&s)];
        let times = run_group(&rows, rounds).await;
        report("Redfish: sushy-emulator 2.2.0 over TLS", &rows, &times);
    });
}

/// `rounds` rounds, each row in turn: status, off (both timed), on.
async fn run_group(rows: &[Row], rounds: usize) -> Vec<Times> {
    let mut times: Vec<Times> = rows.iter().map(|_| Times::default()).collect();
    for round in 1..=rounds {
        for (row, t) in rows.iter().zip(&mut times) {
            let d = &row.driver;
            let start = Instant::now();
            let st = d.status(Instant::now() + CALL).await;
            t.status.push(start.elapsed());
            match st {
                Ok(r) if r.state == PowerState::On => {}
                other => panic!("{}: round {round}: status before off: {other:?}", row.name),
            }
            let start = Instant::now();
            let r = d.act(PowerAction::Off, Instant::now() + CALL).await;
            let took = start.elapsed();
            match r {
                Ok(r) if r.verified == PowerState::Off && !r.already => t.off.push(took),
                other => panic!("{}: round {round}: off: {other:?}", row.name),
            }
            match d.act(PowerAction::On, Instant::now() + CALL).await {
                Ok(r) if r.verified == PowerState::On => {}
                other => panic!("{}: round {round}: on: {other:?}", row.name),
            }
        }
        eprint!("\r  round {round}/{rounds}");
    }
    eprintln!();
    times
}

fn report(title: &str, rows: &[Row], times: &[Times]) {
    println!("{title}");
    println!(
        "  {:<24} {:<8} {:>9} {:>9} {:>9} {:>9} {:>4}",
        "driver", "", "median", "p90", "min", "max", "n"
    );
    for (row, t) in rows.iter().zip(times) {
        for (what, samples) in [("off", &t.off), ("status", &t.status)] {
            let s = Stats::of(samples);
            println!(
                "  {:<24} {:<8} {:>9} {:>9} {:>9} {:>9} {:>4}",
                row.name,
                what,
                secs(s.median),
                secs(s.p90),
                secs(s.min),
                secs(s.max),
                samples.len()
            );
        }
    }
    println!();
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// Order statistics (nearest rank).
struct Stats {
    median: Duration,
    p90: Duration,
    min: Duration,
    max: Duration,
}

impl Stats {
    fn of(samples: &[Duration]) -> Stats {
        let mut v = samples.to_vec();
        v.sort();
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Stats {
            median: rank(0.5),
            p90: rank(0.9),
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}
