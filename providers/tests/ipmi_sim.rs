//! The ipmitool driver against a real, independent BMC emulator: OpenIPMI's
//! `ipmi_sim` (IPMI 2.0 / RMCP+, lanplus, cipher suite 3).
//!
//! Needs `ipmi_sim` and `ipmitool` (`bash scripts/peers.sh install` installs the
//! Debian packages openipmi and ipmitool when missing); run with
//! `cargo test -p vigil-providers --test ipmi_sim -- --ignored --test-threads=1`
//! (`make test` does). Each test spawns its own ipmi_sim on a free UDP port on
//! 127.0.0.1, with config generated from `scripts/peers/ipmi/lan.conf.in` into its own
//! temp directory and its own chassis power-state file, and kills it by PID on drop.
//!
//! ipmi_sim models power only through the external chassis-control program
//! (`scripts/peers/ipmi/chassis.sh`), which keeps the state in a file (`1` on, `0`
//! off) and logs every `set` to `<name>.chassis.log`: the tests read both as the
//! ground truth.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;
use vigil_providers::ipmitool::{IpmitoolConfig, IpmitoolDriver};
use vigil_providers::{DriverError, PowerAction, PowerDriver, PowerState};

const ACT: Duration = Duration::from_secs(15);
const TEST_BOUND: Duration = Duration::from_secs(60);

fn peers_ipmi() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/peers/ipmi")
}

/// One ipmi_sim process (one BMC), killed by PID and reaped on drop.
struct Sim {
    child: Child,
    port: u16,
    power: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sim {
    /// A BMC whose host is on, answering as admin / password.
    async fn start() -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let src = peers_ipmi();
        let template = std::fs::read_to_string(src.join("lan.conf.in")).expect("lan.conf.in");
        let chassis = src.join("chassis.sh");
        assert!(chassis.is_file(), "{} missing", chassis.display());
        let power = dir.path().join("bmc.power");
        let log = dir.path().join("bmc.chassis.log");
        std::fs::write(&power, "1\n").unwrap();
        let port = free_udp_port();
        let guid = format!("a123456789abcdefa1234567{:08x}", port);
        // `/bin/sh chassis.sh`: works even if the script lost its exec bit.
        let conf = template
            .replace("@NAME@", &format!("bmc{port}"))
            .replace("@PORT@", &port.to_string())
            .replace("@GUID@", &guid)
            .replace("@CHASSIS@", &format!("/bin/sh {}", chassis.display()))
            .replace("@POWERFILE@", &power.display().to_string());
        let conf_path = dir.path().join("lan.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let out = std::fs::File::create(dir.path().join("ipmi_sim.log")).unwrap();
        let child = Command::new("ipmi_sim")
            // -n is mandatory without a terminal; -p: no persisted state.
            .arg("-n")
            .arg("-p")
            .arg("-c")
            .arg(&conf_path)
            .arg("-f")
            .arg(src.join("bmc.emu"))
            .arg("-s")
            .arg(&state)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("ipmi_sim (run: bash scripts/peers.sh install)");
        let sim = Sim {
            child,
            port,
            power,
            log,
            _dir: dir,
        };
        // Ready when a status read answers.
        let d = sim.driver("password");
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            match d.status(Instant::now() + Duration::from_secs(3)).await {
                Ok(_) => break,
                Err(e) if Instant::now() >= end => panic!("ipmi_sim never answered: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        sim
    }

    fn config(&self, password: &str) -> IpmitoolConfig {
        let mut c = IpmitoolConfig::new("127.0.0.1", "admin", password);
        c.port = self.port;
        c.poll_interval = Duration::from_millis(100);
        c
    }

    fn driver(&self, password: &str) -> IpmitoolDriver {
        IpmitoolDriver::new(self.config(password)).unwrap()
    }

    /// Ground truth: the chassis power file.
    fn power(&self) -> PowerState {
        match std::fs::read_to_string(&self.power).unwrap().trim() {
            "1" => PowerState::On,
            "0" => PowerState::Off,
            other => panic!("power file says {other:?}"),
        }
    }

    fn set_power(&self, s: PowerState) {
        let v = if s == PowerState::On { "1\n" } else { "0\n" };
        std::fs::write(&self.power, v).unwrap();
    }

    /// `set power` lines the chassis program logged.
    fn power_sets(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" set power "))
            .map(|l| l.to_string())
            .collect()
    }
}

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

        // A cycle on an off host powers it on.
        sim.set_power(PowerState::Off);
        let r = d
            .act(PowerAction::Cycle, Instant::now() + ACT)
            .await
            .unwrap();
        assert_eq!(r.verified, PowerState::On, "{r:?}");
        assert_eq!(sim.power(), PowerState::On);
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
