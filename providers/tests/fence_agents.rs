//! vigil's `script` driver running Debian's real fence agents (fence-agents 4.12, the
//! reference fencing clients of Pacemaker) against real emulators: `fence_ipmilan`
//! against OpenIPMI's `ipmi_sim`, `fence_redfish` against sushy-emulator with TLS.
//!
//! Needs the Debian packages fence-agents, openipmi and ipmitool and the sushy venv
//! (`bash scripts/peers.sh install` installs them when missing); run with
//! `cargo test -p vigil-providers --test fence_agents -- --ignored --test-threads=2`
//! (`make test` does). The emulators come from the shared harnesses in
//! `support/` (free loopback ports, killed by PID on drop).
//!
//! The agents get their options the fence-agents way, as `key=value` lines on stdin
//! (names from their `-o metadata`): `ip`, `ipport`, `username`, `password`, plus
//! `lanplus` and `cipher` for fence_ipmilan and `ssl_insecure` and `systems_uri` for
//! fence_redfish (which speaks HTTPS only). The password never is on the agent's
//! command line. (fence_ipmilan itself then runs `ipmitool -P <password>`: that
//! exposure is the agent's, not vigil's.)
//!
//! Ground truth comes from outside the agent: ipmi_sim's chassis power file and its
//! log of `set power` calls; for sushy, vigil's own Redfish driver reading the
//! system with the test CA.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;
use vigil_providers::redfish::RedfishDriver;
use vigil_providers::script::ScriptDriver;
use vigil_providers::{PowerAction, PowerDriver, PowerState};

#[path = "support/ipmi_sim.rs"]
mod ipmi_sim;
#[path = "support/sushy.rs"]
mod sushy;
use ipmi_sim::Sim;
use sushy::Sushy;

const FENCE_IPMILAN: &str = "/usr/sbin/fence_ipmilan";
const FENCE_REDFISH: &str = "/usr/sbin/fence_redfish";

/// Per call: fence_redfish waits up to its power_timeout (20 s) for sushy's 1–11 s.
const ACT: Duration = Duration::from_secs(40);
const TEST_BOUND: Duration = Duration::from_secs(150);

fn agent(path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.is_file(),
        "{path} missing: run `bash scripts/peers.sh install` (Debian package fence-agents)"
    );
    p
}

fn opts(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// fence_ipmilan for `sim`: lanplus, cipher suite 3 (without `-C 3` ipmitool stalls
/// ~10 s per call against ipmi_sim).
fn ipmilan(program: &Path, sim: &Sim, password: &str) -> ScriptDriver {
    let extra = opts(&[
        ("ipport", sim.port.to_string()),
        ("lanplus", "1".into()),
        ("cipher", "3".into()),
    ]);
    ScriptDriver::for_bmc(program, "127.0.0.1", ipmi_sim::USER, password, extra).unwrap()
}

/// fence_redfish for system `n` of `s`, certificate not verified (the agent's
/// `--ssl-insecure`; it has no CA-file option).
fn redfish(s: &Sushy, n: u32, password: &str) -> ScriptDriver {
    let extra = opts(&[
        ("ipport", s.port.to_string()),
        ("ssl_insecure", "1".into()),
        ("systems_uri", s.system_uri(n)),
    ]);
    ScriptDriver::for_bmc(
        agent(FENCE_REDFISH),
        "127.0.0.1",
        sushy::USER,
        password,
        extra,
    )
    .unwrap()
}

/// vigil's Redfish driver on system `n`, TLS verified with the test CA: ground truth
/// independent of the agent.
fn truth(s: &Sushy, n: u32) -> RedfishDriver {
    let mut c = s.config();
    c.ca_file = Some(s.ca.clone());
    c.system_id = Some(format!("node{n}"));
    RedfishDriver::new(c).unwrap()
}

async fn truth_state(s: &Sushy, n: u32) -> PowerState {
    truth(s, n)
        .status(Instant::now() + Duration::from_secs(10))
        .await
        .unwrap()
        .state
}

fn soon() -> Instant {
    Instant::now() + ACT
}

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_BOUND, f)
        .await
        .expect("test exceeded its bound");
}

/// A wrapper that logs its own argument count and command line, then execs the real
/// agent (stdin passes through untouched).
fn logging_wrapper(dir: &Path, real: &Path) -> (PathBuf, PathBuf) {
    let log = dir.join("argv.log");
    let path = dir.join("fence_ipmilan_wrapper");
    let script = format!(
        "#!/bin/sh\necho \"argc=$# cmdline=[$(tr '\\0' ' ' < /proc/$$/cmdline)]\" >> '{}'\nexec '{}'\n",
        log.display(),
        real.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (path, log)
}

#[tokio::test]
#[ignore = "needs fence-agents and the emulators; run make test"]
async fn ipmilan_status_reads_on_and_off_without_password_on_the_command_line() {
    bounded(async {
        let sim = Sim::start().await;
        let dir = tempfile::tempdir().unwrap();
        let (wrapper, argv_log) = logging_wrapper(dir.path(), &agent(FENCE_IPMILAN));
        let d = ipmilan(&wrapper, &sim, ipmi_sim::PASSWORD);
        let r = d.status(soon()).await.unwrap();
        assert_eq!(r.state, PowerState::On, "{r:?}");
        eprintln!("fence_ipmilan status in {:?}: {}", r.took, r.detail);
        sim.set_power(PowerState::Off);
        let r = d.status(soon()).await.unwrap();
        assert_eq!(r.state, PowerState::Off, "{r:?}");
        assert!(sim.power_sets().is_empty(), "{:?}", sim.power_sets());

        let argv = std::fs::read_to_string(&argv_log).unwrap();
        assert_eq!(argv.lines().count(), 2, "{argv}");
        for line in argv.lines() {
            assert!(line.starts_with("argc=0 "), "{line}");
            assert!(!line.contains(ipmi_sim::PASSWORD), "{line}");
        }
    })
    .await
}

#[tokio::test]
#[ignore = "needs fence-agents and the emulators; run make test"]
async fn ipmilan_off_is_verified_then_already_off() {
    bounded(async {
        let sim = Sim::start().await;
        let d = ipmilan(&agent(FENCE_IPMILAN), &sim, ipmi_sim::PASSWORD);
        let r = d.act(PowerAction::Off, soon()).await.unwrap();
        eprintln!("fence_ipmilan verified off in {:?}: {}", r.took, r.detail);
        assert_eq!(r.verified, PowerState::Off, "{r:?}");
        assert!(!r.already, "{r:?}");
        assert_eq!(sim.power(), PowerState::Off);
        assert_eq!(sim.power_sets().len(), 1, "{:?}", sim.power_sets());

        // Already off: the status read says so and the agent is not asked to act.
        let r = d.act(PowerAction::Off, soon()).await.unwrap();
        assert!(r.already, "{r:?}");
        assert_eq!(r.verified, PowerState::Off);
        assert_eq!(sim.power_sets().len(), 1, "{:?}", sim.power_sets());
    })
    .await
}

#[tokio::test]
#[ignore = "needs fence-agents and the emulators; run make test"]
async fn ipmilan_on_and_reboot_are_verified() {
    bounded(async {
        let sim = Sim::start().await;
        sim.set_power(PowerState::Off);
        let d = ipmilan(&agent(FENCE_IPMILAN), &sim, ipmi_sim::PASSWORD);
        let r = d.act(PowerAction::On, soon()).await.unwrap();
        assert_eq!(r.verified, PowerState::On, "{r:?}");
        assert!(!r.already, "{r:?}");
        assert_eq!(sim.power(), PowerState::On);
        let r = d.act(PowerAction::On, soon()).await.unwrap();
        assert!(r.already, "{r:?}");
        assert_eq!(sim.power_sets().len(), 1, "{:?}", sim.power_sets());

        // reboot = off, then on (fence_ipmilan's default method is onoff).
        let r = d.act(PowerAction::Cycle, soon()).await.unwrap();
        eprintln!("fence_ipmilan reboot in {:?}: {}", r.took, r.detail);
        assert_eq!(r.verified, PowerState::On, "{r:?}");
        assert_eq!(sim.power(), PowerState::On);
        let sets = sim.power_sets();
        assert!(sets.iter().any(|l| l.ends_with("set power 0")), "{sets:?}");
        assert!(sets.last().unwrap().ends_with("set power 1"), "{sets:?}");

        // A cycle of an off host: the driver's status read says off and the agent's
        // reboot (which would power it on) is not run.
        sim.set_power(PowerState::Off);
        let sets_before = sim.power_sets().len();
        let r = d.act(PowerAction::Cycle, soon()).await.unwrap();
        assert_eq!((r.verified, r.already), (PowerState::Off, true), "{r:?}");
        assert!(r.detail.contains("nothing sent"), "{r:?}");
        assert_eq!(sim.power(), PowerState::Off);
        assert_eq!(
            sim.power_sets().len(),
            sets_before,
            "{:?}",
            sim.power_sets()
        );
    })
    .await
}

#[tokio::test]
#[ignore = "needs fence-agents and the emulators; run make test"]
async fn ipmilan_wrong_password_fails_and_changes_nothing() {
    bounded(async {
        let sim = Sim::start().await;
        let secret = "not-the-password";
        let d = ipmilan(&agent(FENCE_IPMILAN), &sim, secret);
        let e = d.status(soon()).await.unwrap_err();
        assert!(!e.to_string().contains(secret), "{e}");
        let e = d.act(PowerAction::Off, soon()).await.unwrap_err();
        eprintln!("fence_ipmilan, wrong password: {e}");
        assert!(!e.to_string().contains(secret), "{e}");
        assert_eq!(sim.power(), PowerState::On);
        assert!(sim.power_sets().is_empty(), "{:?}", sim.power_sets());
    })
    .await
}

#[tokio::test]
#[ignore = "needs fence-agents and the emulators; run make test"]
async fn redfish_over_tls_status_off_already_on_of_the_right_system() {
    bounded(async {
        let s = Sushy::start(2, true).await;
        let d = redfish(&s, 2, sushy::PASSWORD);
        let r = d.status(soon()).await.unwrap();
        eprintln!("fence_redfish status in {:?}: {}", r.took, r.detail);
        assert_eq!(r.state, PowerState::On, "{r:?}");

        let r = d.act(PowerAction::Off, soon()).await.unwrap();
        eprintln!("fence_redfish verified off in {:?}: {}", r.took, r.detail);
        assert_eq!(r.verified, PowerState::Off, "{r:?}");
        assert!(!r.already, "{r:?}");
        assert_eq!(truth_state(&s, 2).await, PowerState::Off);
        assert_eq!(truth_state(&s, 1).await, PowerState::On, "wrong system");

        let r = d.act(PowerAction::Off, soon()).await.unwrap();
        assert!(r.already, "{r:?}");
        let r = d.status(soon()).await.unwrap();
        assert_eq!(r.state, PowerState::Off, "{r:?}");

        let r = d.act(PowerAction::On, soon()).await.unwrap();
        eprintln!("fence_redfish verified on in {:?}: {}", r.took, r.detail);
        assert_eq!(r.verified, PowerState::On, "{r:?}");
        assert!(!r.already, "{r:?}");
        assert_eq!(truth_state(&s, 2).await, PowerState::On);
    })
    .await
}

#[tokio::test]
#[ignore = "needs fence-agents and the emulators; run make test"]
async fn redfish_wrong_password_fails_and_changes_nothing() {
    bounded(async {
        let s = Sushy::start(1, true).await;
        let secret = "wrong-secret";
        let d = redfish(&s, 1, secret);
        let e = d.status(soon()).await.unwrap_err();
        assert!(!e.to_string().contains(secret), "{e}");
        let e = d.act(PowerAction::Off, soon()).await.unwrap_err();
        eprintln!("fence_redfish, wrong password: {e}");
        assert!(!e.to_string().contains(secret), "{e}");
        // The agent gave up at its own status read: no reset was ever sent.
        let log = s.log();
        assert!(log.contains("GET /redfish/v1/Systems/"), "{log}");
        assert!(!log.contains("POST "), "{log}");
        assert_eq!(truth_state(&s, 1).await, PowerState::On);
    })
    .await
}
