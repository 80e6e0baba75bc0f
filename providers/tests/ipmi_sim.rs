//! The ipmitool driver against a real, independent BMC emulator: OpenIPMI's
//! `ipmi_sim` (IPMI 2.0 / RMCP+, lanplus, cipher suite 3).
//!
//! Needs `ipmi_sim` and `ipmitool` (`bash scripts/peers.sh install` installs the
//! Debian packages openipmi and ipmitool when missing); run with
//! `cargo test -p vigil-providers --test ipmi_sim -- --ignored --test-threads=1`
//! (`make test` does). Each test spawns its own ipmi_sim on a free UDP port on
//! 127.0.0.1 through the shared harness (`support/ipmi_sim.rs`): config generated
//! from `scripts/peers/ipmi/lan.conf.in` into its own temp directory, its own chassis
//! power-state file, killed by PID on drop.
//!
//! ipmi_sim models power only through the external chassis-control program
//! (`scripts/peers/ipmi/chassis.sh`), which keeps the state in a file (`1` on, `0`
//! off) and logs every `set` to `<name>.chassis.log`: the tests read both as the
//! ground truth.

use std::time::Duration;

use tokio::time::Instant;
use vigil_providers::ipmitool::{IpmitoolConfig, IpmitoolDriver};
use vigil_providers::{DriverError, PowerAction, PowerDriver, PowerState};

#[path = "support/ipmi_sim.rs"]
mod ipmi_sim;
use ipmi_sim::{free_udp_port, Sim};

const ACT: Duration = Duration::from_secs(15);
const TEST_BOUND: Duration = Duration::from_secs(60);

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_BOUND, f)
        .await
        .expect("test exceeded its bound");
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn status_reads_on_and_off() {
    bounded(async {
        let sim = Sim::start().await;
        let d = sim.driver("password");
        assert_eq!(d.kind(), "ipmitool");
        let r = d.status(Instant::now() + ACT).await.unwrap();
        assert_eq!(r.state, PowerState::On, "{r:?}");
        assert!(r.detail.contains("Chassis Power is on"), "{r:?}");
        sim.set_power(PowerState::Off);
        let r = d.status(Instant::now() + ACT).await.unwrap();
        assert_eq!(r.state, PowerState::Off, "{r:?}");
        eprintln!("status took {:?}", r.took);
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn off_is_verified() {
    bounded(async {
        let sim = Sim::start().await;
        let d = sim.driver("password");
        let r = d.act(PowerAction::Off, Instant::now() + ACT).await.unwrap();
        assert_eq!(r.verified, PowerState::Off, "{r:?}");
        assert!(!r.already, "{r:?}");
        assert_eq!(sim.power(), PowerState::Off);
        assert_eq!(sim.power_sets().len(), 1, "{:?}", sim.power_sets());
        eprintln!("verified off in {:?}: {}", r.took, r.detail);
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn off_on_an_off_host_sends_nothing() {
    bounded(async {
        let sim = Sim::start().await;
        sim.set_power(PowerState::Off);
        let d = sim.driver("password");
        let r = d.act(PowerAction::Off, Instant::now() + ACT).await.unwrap();
        assert!(r.already, "{r:?}");
        assert_eq!(r.verified, PowerState::Off);
        assert!(sim.power_sets().is_empty(), "{:?}", sim.power_sets());
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn on_is_verified_and_idempotent() {
    bounded(async {
        let sim = Sim::start().await;
        sim.set_power(PowerState::Off);
        let d = sim.driver("password");
        let r = d.act(PowerAction::On, Instant::now() + ACT).await.unwrap();
        assert_eq!(r.verified, PowerState::On, "{r:?}");
        assert!(!r.already, "{r:?}");
        assert_eq!(sim.power(), PowerState::On);
        let r = d.act(PowerAction::On, Instant::now() + ACT).await.unwrap();
        assert!(r.already, "{r:?}");
        assert_eq!(sim.power_sets().len(), 1, "{:?}", sim.power_sets());
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn cycle_goes_off_then_on() {
    bounded(async {
        let sim = Sim::start().await;
        let d = sim.driver("password");
        let r = d
            .act(PowerAction::Cycle, Instant::now() + ACT)
            .await
            .unwrap();
        assert_eq!(r.verified, PowerState::On, "{r:?}");
        assert!(!r.already, "{r:?}");
        assert!(r.detail.contains("off seen"), "{r:?}");
        assert_eq!(sim.power(), PowerState::On);
        let sets = sim.power_sets();
        assert!(sets.iter().any(|l| l.ends_with("set power 0")), "{sets:?}");
        assert!(sets.last().unwrap().ends_with("set power 1"), "{sets:?}");
        eprintln!("cycle verified in {:?}: {}", r.took, r.detail);
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn cycle_of_an_off_host_sends_nothing_and_stays_off() {
    bounded(async {
        let sim = Sim::start().await;
        sim.set_power(PowerState::Off);
        let d = sim.driver("password");
        let r = d
            .act(PowerAction::Cycle, Instant::now() + ACT)
            .await
            .unwrap();
        assert_eq!((r.verified, r.already), (PowerState::Off, true), "{r:?}");
        assert!(r.detail.contains("nothing sent"), "{r:?}");
        assert!(r.detail.contains("Chassis Power is off"), "{r:?}");
        assert_eq!(sim.power(), PowerState::Off);
        assert!(sim.power_sets().is_empty(), "{:?}", sim.power_sets());
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn wrong_password_is_permanent() {
    bounded(async {
        let sim = Sim::start().await;
        let d = sim.driver("not-the-password");
        let start = Instant::now();
        let e = d.status(Instant::now() + ACT).await.unwrap_err();
        assert!(matches!(e, DriverError::Permanent(_)), "{e:?}");
        assert!(!e.to_string().contains("not-the-password"), "{e}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        // No action is sent with bad credentials.
        let e = d
            .act(PowerAction::Off, Instant::now() + ACT)
            .await
            .unwrap_err();
        assert!(matches!(e, DriverError::Permanent(_)), "{e:?}");
        assert_eq!(sim.power(), PowerState::On);
        assert!(sim.power_sets().is_empty());
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn bmc_not_answering_fails_within_the_deadline() {
    bounded(async {
        let mut sim = Sim::start().await;
        let d = sim.driver("password");
        sim.child.kill().unwrap();
        sim.child.wait().unwrap();

        // ipmitool gives up by itself (-N 1 -R 2): a retryable error, not a hang.
        let budget = Duration::from_secs(8);
        let start = Instant::now();
        let e = d.status(start + budget).await.unwrap_err();
        assert!(e.is_retryable(), "{e:?}");
        assert!(
            start.elapsed() <= budget + Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );

        // ipmitool set to wait far longer than the deadline: killed at the deadline.
        let mut c = sim.config("password");
        c.timeout_secs = 30;
        let slow = IpmitoolDriver::new(c).unwrap();
        let budget = Duration::from_secs(2);
        let start = Instant::now();
        let e = slow
            .act(PowerAction::Off, start + budget)
            .await
            .unwrap_err();
        assert!(matches!(e, DriverError::Timeout { .. }), "{e:?}");
        let took = start.elapsed();
        assert!(
            took >= budget && took <= budget + Duration::from_millis(500),
            "{took:?}"
        );
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn unused_port_fails_within_the_deadline() {
    bounded(async {
        let mut c = IpmitoolConfig::new("127.0.0.1", "admin", "password");
        c.port = free_udp_port();
        let d = IpmitoolDriver::new(c).unwrap();
        let budget = Duration::from_secs(3);
        let start = Instant::now();
        let e = d.act(PowerAction::Off, start + budget).await.unwrap_err();
        assert!(e.is_retryable(), "{e:?}");
        assert!(
            start.elapsed() <= budget + Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn many_sequential_operations_do_not_leak_sessions() {
    bounded(async {
        // The admin user has 10 sessions (lan.conf.in) and idle ones linger ~30 s: if
        // ipmitool left its sessions open, this would fail well before the end.
        let sim = Sim::start().await;
        let d = sim.driver("password");
        let mut ops = 0;
        for i in 0..8 {
            let (action, want) = if i % 2 == 0 {
                (PowerAction::Off, PowerState::Off)
            } else {
                (PowerAction::On, PowerState::On)
            };
            let r = d.act(action, Instant::now() + ACT).await.unwrap();
            assert_eq!(r.verified, want, "op {ops}: {r:?}");
            assert!(!r.already, "op {ops}: {r:?}");
            assert_eq!(sim.power(), want);
            ops += 1;
            for _ in 0..2 {
                let s = d.status(Instant::now() + ACT).await.unwrap();
                assert_eq!(s.state, want, "op {ops}");
                ops += 1;
            }
        }
        assert!(ops >= 24, "{ops}");
        assert_eq!(sim.power_sets().len(), 8, "{:?}", sim.power_sets());
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn a_disabled_bmc_fails_every_command_clearly_then_recovers() {
    bounded(async {
        // ipmi_sim's console: `mc_disable 0x20` makes every command routed to the BMC
        // answer 0xFF (unspecified error) while sessions still open.
        let sim = Sim::start_with_console().await;
        let d = sim.driver("password");
        let said = sim.console("mc_disable 0x20").await;
        assert!(said.contains("mc_disable"), "{said:?}");
        let budget = Duration::from_secs(8);
        let start = Instant::now();
        let e = d.status(start + budget).await.unwrap_err();
        assert!(start.elapsed() < budget, "{:?}", start.elapsed());
        assert!(matches!(e, DriverError::Retryable(_)), "{e:?}");
        let m = e.to_string();
        assert!(
            m.contains("Get Chassis Power Status failed: Unspecified error"),
            "{m}"
        );
        for action in [PowerAction::Off, PowerAction::On, PowerAction::Cycle] {
            let start = Instant::now();
            let e = d.act(action, start + budget).await.unwrap_err();
            assert!(start.elapsed() < budget, "{action}: {:?}", start.elapsed());
            assert!(matches!(e, DriverError::Retryable(_)), "{action}: {e:?}");
            assert!(e.to_string().contains("Unspecified error"), "{action}: {e}");
            // A cycle stops at the failed status read: no chassis command.
            let cycle_stopped = e.to_string().contains("cycle not sent");
            assert_eq!(cycle_stopped, action == PowerAction::Cycle, "{action}: {e}");
        }
        assert_eq!(sim.power(), PowerState::On);
        assert!(sim.power_sets().is_empty(), "{:?}", sim.power_sets());

        sim.console("mc_enable 0x20").await;
        let r = d.act(PowerAction::Off, Instant::now() + ACT).await.unwrap();
        assert_eq!(r.verified, PowerState::Off, "{r:?}");
        assert_eq!(sim.power(), PowerState::Off);
    })
    .await
}
