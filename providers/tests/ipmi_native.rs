//! The native IPMI driver (`vigil_providers::ipmi`) against a real, independent BMC
//! emulator: OpenIPMI's `ipmi_sim` (IPMI 2.0 / RMCP+, cipher suite 3).
//!
//! Needs `ipmi_sim` (and `ipmitool`, which the shared harness uses to know when
//! ipmi_sim is ready): `bash scripts/peers.sh install`. Run with
//! `cargo test -p vigil-providers --test ipmi_native -- --ignored --test-threads=1`
//! (`make test` does). Each test spawns its own ipmi_sim on a free UDP port through
//! `support/ipmi_sim.rs` and kills it by PID on drop; the chassis power file and the
//! chassis program's log are the ground truth, and ipmi_sim's own session count (Get
//! Session Info) proves that sessions are closed.

use std::time::Duration;

use tokio::time::Instant;
use vigil_providers::ipmi::{IpmiConfig, IpmiDriver, Privilege};
use vigil_providers::{DriverError, PowerAction, PowerDriver, PowerState};

#[path = "support/ipmi_sim.rs"]
mod ipmi_sim;
use ipmi_sim::{free_udp_port, Sim, PASSWORD};

const ACT: Duration = Duration::from_secs(15);
const TEST_BOUND: Duration = Duration::from_secs(90);

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_BOUND, f)
        .await
        .expect("test exceeded its bound");
}

/// How many sessions ipmi_sim has open, counted from a fresh session of our own
/// (which is then closed): 1 means nobody else holds one.
async fn sessions_open(sim: &Sim) -> u8 {
    let d = sim.native_driver(PASSWORD);
    let info = d.session_info(Instant::now() + ACT).await.unwrap();
    assert_eq!(info.slots, 63, "{info:?}");
    d.close(Instant::now() + ACT).await.unwrap();
    info.active
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn status_reads_on_and_off() {
    bounded(async {
        let sim = Sim::start().await;
        let d = sim.native_driver(PASSWORD);
        assert_eq!(d.kind(), "ipmi");
        let r = d.status(Instant::now() + ACT).await.unwrap();
        assert_eq!(r.state, PowerState::On, "{r:?}");
        assert!(r.detail.contains("Get Chassis Status: power on"), "{r:?}");
        sim.set_power(PowerState::Off);
        let r = d.status(Instant::now() + ACT).await.unwrap();
        assert_eq!(r.state, PowerState::Off, "{r:?}");
        eprintln!("status (session reused) took {:?}", r.took);
        d.close(Instant::now() + ACT).await.unwrap();
        assert_eq!(sessions_open(&sim).await, 1);
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn off_is_verified() {
    bounded(async {
        let sim = Sim::start().await;
        let d = sim.native_driver(PASSWORD);
        let r = d.act(PowerAction::Off, Instant::now() + ACT).await.unwrap();
        assert_eq!(r.verified, PowerState::Off, "{r:?}");
        assert!(!r.already, "{r:?}");
        assert!(
            r.detail.contains("Chassis Control (power down) accepted"),
            "{r:?}"
        );
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
        let d = sim.native_driver(PASSWORD);
        let r = d.act(PowerAction::Off, Instant::now() + ACT).await.unwrap();
        assert!(r.already, "{r:?}");
        assert_eq!(r.verified, PowerState::Off);
        assert!(r.detail.contains("nothing sent"), "{r:?}");
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
        let d = sim.native_driver(PASSWORD);
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
        let d = sim.native_driver(PASSWORD);
        let r = d
            .act(PowerAction::Cycle, Instant::now() + ACT)
            .await
            .unwrap();
        assert_eq!(r.verified, PowerState::On, "{r:?}");
        assert!(!r.already, "{r:?}");
        assert!(r.detail.contains("off seen"), "{r:?}");
        assert!(r.detail.contains("power cycle"), "{r:?}");
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
        let d = sim.native_driver(PASSWORD);
        let r = d
            .act(PowerAction::Cycle, Instant::now() + ACT)
            .await
            .unwrap();
        assert_eq!((r.verified, r.already), (PowerState::Off, true), "{r:?}");
        assert!(r.detail.contains("nothing sent"), "{r:?}");
        assert!(r.detail.contains("Get Chassis Status: power off"), "{r:?}");
        assert_eq!(sim.power(), PowerState::Off);
        assert!(sim.power_sets().is_empty(), "{:?}", sim.power_sets());
        d.close(Instant::now() + ACT).await.unwrap();
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn wrong_password_is_permanent_and_leaves_no_half_open_session() {
    bounded(async {
        let sim = Sim::start().await;
        let d = sim.native_driver("not-the-password");
        let start = Instant::now();
        let e = d.status(Instant::now() + ACT).await.unwrap_err();
        assert!(matches!(e, DriverError::Permanent(_)), "{e:?}");
        let m = e.to_string();
        assert!(m.contains("RAKP 2") && m.contains("wrong password"), "{m}");
        assert!(!m.contains("not-the-password"), "{m}");
        assert!(
            start.elapsed() < Duration::from_secs(1),
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
        // Failed logins told the BMC to drop their half-open sessions: 70 of them
        // (more than its 63 slots) leave only the counting session open.
        for _ in 0..70 {
            let e = d.status(Instant::now() + ACT).await.unwrap_err();
            assert!(matches!(e, DriverError::Permanent(_)), "{e:?}");
        }
        assert_eq!(sessions_open(&sim).await, 1);
        // An unknown user is refused by the BMC itself.
        let mut c = sim.native_config(PASSWORD);
        c.username = "nobody".into();
        let e = IpmiDriver::new(c)
            .unwrap()
            .status(Instant::now() + ACT)
            .await
            .unwrap_err();
        assert!(matches!(e, DriverError::Permanent(_)), "{e:?}");
        assert!(e.to_string().contains("\"nobody\""), "{e}");
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn user_privilege_cannot_change_power() {
    bounded(async {
        let sim = Sim::start().await;
        let mut c = sim.native_config(PASSWORD);
        c.privilege = Privilege::User;
        let d = IpmiDriver::new(c).unwrap();
        assert_eq!(
            d.status(Instant::now() + ACT).await.unwrap().state,
            PowerState::On
        );
        let e = d
            .act(PowerAction::Off, Instant::now() + ACT)
            .await
            .unwrap_err();
        assert!(matches!(e, DriverError::Permanent(_)), "{e:?}");
        let m = e.to_string();
        assert!(
            m.contains("insufficient privilege") && m.contains("0xd4"),
            "{m}"
        );
        assert!(sim.power_sets().is_empty());
        // Operator is enough.
        let mut c = sim.native_config(PASSWORD);
        c.privilege = Privilege::Operator;
        let r = IpmiDriver::new(c)
            .unwrap()
            .act(PowerAction::Off, Instant::now() + ACT)
            .await
            .unwrap();
        assert_eq!(r.verified, PowerState::Off);
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn a_disabled_bmc_fails_every_command_clearly_then_recovers() {
    bounded(async {
        let sim = Sim::start_with_console().await;
        let d = sim.native_driver(PASSWORD);
        d.status(Instant::now() + ACT).await.unwrap();

        let said = sim.console("mc_disable 0x20").await;
        assert!(said.contains("mc_disable"), "{said:?}");
        let budget = Duration::from_secs(5);
        // The reused session, a fresh driver's new session, and every action.
        let fresh = sim.native_driver(PASSWORD);
        for (name, driver) in [("reused", &d), ("fresh", &fresh)] {
            let start = Instant::now();
            let e = driver.status(start + budget).await.unwrap_err();
            assert!(start.elapsed() < budget, "{name}: {:?}", start.elapsed());
            assert!(matches!(e, DriverError::Retryable(_)), "{name}: {e:?}");
            let m = e.to_string();
            assert!(
                m.contains("Get Chassis Status: unspecified error (completion code 0xff)"),
                "{name}: {m}"
            );
            for action in [PowerAction::Off, PowerAction::On, PowerAction::Cycle] {
                let start = Instant::now();
                let e = driver.act(action, start + budget).await.unwrap_err();
                assert!(
                    start.elapsed() < budget,
                    "{name} {action}: {:?}",
                    start.elapsed()
                );
                assert!(e.is_retryable(), "{name} {action}: {e:?}");
                let m = e.to_string();
                if action == PowerAction::Cycle {
                    // The failed status read stops a cycle before Chassis Control.
                    assert!(
                        m.contains("Get Chassis Status") && m.contains("cycle not sent"),
                        "{name} {action}: {m}"
                    );
                } else {
                    assert!(
                        m.contains("Chassis Control") && m.contains("completion code 0xff"),
                        "{name} {action}: {m}"
                    );
                }
            }
        }
        assert_eq!(sim.power(), PowerState::On);
        assert!(sim.power_sets().is_empty(), "{:?}", sim.power_sets());

        sim.console("mc_enable 0x20").await;
        assert_eq!(
            d.status(Instant::now() + ACT).await.unwrap().state,
            PowerState::On
        );
        let r = fresh
            .act(PowerAction::Off, Instant::now() + ACT)
            .await
            .unwrap();
        assert_eq!(r.verified, PowerState::Off, "{r:?}");
        assert_eq!(sim.power(), PowerState::Off);
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn a_bmc_that_never_answers_fails_within_the_deadline() {
    bounded(async {
        // A bound UDP port that nobody reads: requests vanish without an ICMP error.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut c = IpmiConfig::new("127.0.0.1", "admin", PASSWORD);
        c.port = silent.local_addr().unwrap().port();
        let d = IpmiDriver::new(c).unwrap();
        let budget = Duration::from_secs(3);
        for action in [None, Some(PowerAction::Off), Some(PowerAction::Cycle)] {
            let start = Instant::now();
            let e = match action {
                None => d.status(start + budget).await.unwrap_err(),
                Some(a) => d.act(a, start + budget).await.unwrap_err(),
            };
            let took = start.elapsed();
            assert!(e.is_retryable(), "{action:?}: {e:?}");
            assert!(
                took <= budget + Duration::from_millis(250),
                "{action:?}: {took:?}"
            );
            eprintln!("{action:?}: {e} after {took:?}");
        }
        // Requests were sent again within each deadline.
        silent.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 128];
        let mut received = 0;
        while silent.recv(&mut buf).is_ok() {
            received += 1;
        }
        assert!(received >= 6, "{received} datagrams");

        // Nothing listening at all (ICMP port unreachable): also bounded.
        let mut c = IpmiConfig::new("127.0.0.1", "admin", PASSWORD);
        c.port = free_udp_port();
        let d = IpmiDriver::new(c).unwrap();
        let start = Instant::now();
        let e = d.act(PowerAction::Off, start + budget).await.unwrap_err();
        assert!(e.is_retryable(), "{e:?}");
        assert!(start.elapsed() <= budget + Duration::from_millis(250));
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn a_bmc_that_dies_mid_session_fails_within_the_deadline() {
    bounded(async {
        let mut sim = Sim::start().await;
        let d = sim.native_driver(PASSWORD);
        d.status(Instant::now() + ACT).await.unwrap();
        sim.child.kill().unwrap();
        sim.child.wait().unwrap();
        let budget = Duration::from_secs(4);
        let start = Instant::now();
        let e = d.act(PowerAction::Off, start + budget).await.unwrap_err();
        let took = start.elapsed();
        assert!(e.is_retryable(), "{e:?}");
        assert!(took <= budget + Duration::from_millis(250), "{took:?}");
        eprintln!("{e} after {took:?}");
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn a_session_the_bmc_forgot_is_reopened_once() {
    bounded(async {
        let mut sim = Sim::start().await;
        let d = sim.native_driver(PASSWORD);
        d.status(Instant::now() + ACT).await.unwrap();
        // A rebooted BMC: same address, no sessions. The reused session goes
        // unanswered (one try timeout), the driver reconnects once and the command
        // succeeds.
        sim.restart().await;
        let start = Instant::now();
        let r = d.act(PowerAction::Off, start + ACT).await.unwrap();
        let took = start.elapsed();
        assert_eq!(r.verified, PowerState::Off, "{r:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        eprintln!("reconnected and fenced in {took:?}");
        let after = d.session_info(Instant::now() + ACT).await.unwrap();
        assert_eq!(after.active, 1, "{after:?}");
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn idle_sessions_are_replaced_and_closed() {
    bounded(async {
        let sim = Sim::start().await;
        let mut c = sim.native_config(PASSWORD);
        c.idle_reconnect = Duration::from_millis(300);
        let d = IpmiDriver::new(c).unwrap();
        let first = d.session_info(Instant::now() + ACT).await.unwrap();
        let again = d.session_info(Instant::now() + ACT).await.unwrap();
        assert_eq!(again.session_id, first.session_id, "reused while fresh");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let later = d.session_info(Instant::now() + ACT).await.unwrap();
        assert_ne!(later.session_id, first.session_id, "replaced when idle");
        assert_eq!(later.active, 1, "the idle session was closed: {later:?}");
    })
    .await
}

#[tokio::test]
#[ignore = "needs ipmi_sim; run make test"]
async fn hundreds_of_sequential_operations_leak_no_session() {
    bounded(async {
        // ipmi_sim has 63 session slots and keeps an idle session ~30 s: any leak
        // below would exhaust them (Open Session refused) and show in its count.
        let sim = Sim::start().await;
        let deadline = || Instant::now() + ACT;

        // 100 drivers, each closed explicitly.
        for i in 0..100 {
            let d = sim.native_driver(PASSWORD);
            let r = d.status(deadline()).await.unwrap();
            assert_eq!(r.state, PowerState::On, "op {i}");
            d.close(deadline()).await.unwrap();
        }
        assert_eq!(sessions_open(&sim).await, 1, "after 100 closed drivers");

        // 100 drivers dropped without close(): Drop closes (best effort).
        for i in 0..100 {
            let d = sim.native_driver(PASSWORD);
            assert_eq!(
                d.status(deadline()).await.unwrap().state,
                PowerState::On,
                "op {i}"
            );
        }
        assert_eq!(sessions_open(&sim).await, 1, "after 100 dropped drivers");

        // One driver, 100 operations (40 verified actions), one session throughout.
        let d = sim.native_driver(PASSWORD);
        let first = d.session_info(deadline()).await.unwrap();
        assert_eq!(first.active, 1, "{first:?}");
        for i in 0..100 {
            if i % 5 < 2 {
                let (action, want) = if i % 5 == 0 {
                    (PowerAction::Off, PowerState::Off)
                } else {
                    (PowerAction::On, PowerState::On)
                };
                let r = d.act(action, deadline()).await.unwrap();
                assert_eq!(r.verified, want, "op {i}: {r:?}");
                assert!(!r.already, "op {i}: {r:?}");
                assert_eq!(sim.power(), want, "op {i}");
            } else {
                d.status(deadline()).await.unwrap();
            }
        }
        let last = d.session_info(deadline()).await.unwrap();
        assert_eq!(last.session_id, first.session_id, "one session reused");
        assert_eq!(last.active, 1, "{last:?}");
        assert_eq!(sim.power_sets().len(), 40, "{:?}", sim.power_sets().len());
        d.close(deadline()).await.unwrap();
        assert_eq!(sessions_open(&sim).await, 1, "after close()");
    })
    .await
}
