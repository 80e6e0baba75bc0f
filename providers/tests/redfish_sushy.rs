//! The Redfish driver against a real, independent implementation: DMTF-style
//! sushy-emulator 2.2.0 (OpenStack's, fake systems driver).
//!
//! Needs the venv from `bash scripts/peers.sh install` (under
//! `${VIGIL_PEERS_DIR:-$HOME/.cache/vigil/peers}`); run with
//! `cargo test -p vigil-providers --test redfish_sushy -- --ignored --test-threads=2`
//! (`make test` does). Each test spawns its own emulator through the shared harness
//! (`support/sushy.rs`): a free loopback port, its own config and state directory,
//! killed by PID when done.
//!
//! sushy's fake driver applies a power change 1–11 s after accepting it, so actions
//! get a 30 s deadline and every test is bounded at 90 s.

use std::time::Duration;

use tokio::time::Instant;
use vigil_providers::redfish::RedfishDriver;
use vigil_providers::{DriverError, PowerAction, PowerDriver, PowerState};

#[path = "support/sushy.rs"]
mod sushy;
use sushy::Sushy;

const ACT: Duration = Duration::from_secs(30);
const TEST_BOUND: Duration = Duration::from_secs(90);

fn in_secs(d: Duration) -> Instant {
    Instant::now() + d
}

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_BOUND, f)
        .await
        .expect("test took longer than its bound");
}

#[tokio::test]
#[ignore = "needs sushy-emulator; run make test"]
async fn status_of_the_only_system() {
    bounded(async {
        let s = Sushy::start(1, false).await;
        let d = s.driver();
        let r = d.status(in_secs(Duration::from_secs(10))).await.unwrap();
        assert_eq!(r.state, PowerState::On, "{r:?}");
        assert!(r.detail.contains("PowerState On"), "{r:?}");
        // Offered or not, reading watts must not fail on a healthy BMC.
        let w = d
            .power_watts(in_secs(Duration::from_secs(10)))
            .await
            .unwrap();
        eprintln!("status in {:?}; power_watts: {w:?}", r.took);
    })
    .await;
}

#[tokio::test]
#[ignore = "needs sushy-emulator; run make test"]
async fn off_is_verified_then_repeat_is_already() {
    bounded(async {
        let s = Sushy::start(1, false).await;
        let d = s.driver();
        let r = d.act(PowerAction::Off, in_secs(ACT)).await.unwrap();
        eprintln!("verified off in {:?}: {}", r.took, r.detail);
        assert_eq!(r.verified, PowerState::Off);
        assert!(!r.already, "{r:?}");
        assert!(r.detail.contains("ForceOff"), "{r:?}");
        let st = d.status(in_secs(Duration::from_secs(10))).await.unwrap();
        assert_eq!(st.state, PowerState::Off);

        let again = d.act(PowerAction::Off, in_secs(ACT)).await.unwrap();
        assert!(again.already, "{again:?}");
        assert_eq!(again.verified, PowerState::Off);
        assert!(again.took < Duration::from_secs(2), "{again:?}");
    })
    .await;
}

#[tokio::test]
#[ignore = "needs sushy-emulator; run make test"]
async fn on_after_off_and_on_when_on_is_already() {
    bounded(async {
        let s = Sushy::start(1, false).await;
        let d = s.driver();
        let r = d.act(PowerAction::On, in_secs(ACT)).await.unwrap();
        assert!(r.already, "starts on: {r:?}");
        d.act(PowerAction::Off, in_secs(ACT)).await.unwrap();
        let r = d.act(PowerAction::On, in_secs(ACT)).await.unwrap();
        eprintln!("verified on in {:?}: {}", r.took, r.detail);
        assert_eq!(r.verified, PowerState::On);
        assert!(!r.already, "{r:?}");
        assert_eq!(
            d.status(in_secs(Duration::from_secs(10)))
                .await
                .unwrap()
                .state,
            PowerState::On
        );
    })
    .await;
}

#[tokio::test]
#[ignore = "needs sushy-emulator; run make test"]
async fn cycle_restarts() {
    bounded(async {
        let s = Sushy::start(1, false).await;
        let d = s.driver();
        let r = d.act(PowerAction::Cycle, in_secs(ACT)).await.unwrap();
        eprintln!("cycle in {:?}: {}", r.took, r.detail);
        assert_eq!(r.verified, PowerState::On);
        assert!(r.detail.contains("ForceRestart"), "{r:?}");
    })
    .await;
}

#[tokio::test]
#[ignore = "needs sushy-emulator; run make test"]
async fn cycle_of_an_off_host_sends_nothing_and_stays_off() {
    bounded(async {
        let s = Sushy::start(1, false).await;
        let d = s.driver();
        d.act(PowerAction::Off, in_secs(ACT)).await.unwrap();
        // sushy logs each request; the ForceOff above is one POST.
        let posts_before = s.log().matches("POST").count();
        assert!(posts_before >= 1, "{}", s.log());
        let r = d.act(PowerAction::Cycle, in_secs(ACT)).await.unwrap();
        assert_eq!((r.verified, r.already), (PowerState::Off, true), "{r:?}");
        assert!(r.detail.contains("nothing sent"), "{r:?}");
        assert!(r.detail.contains("PowerState Off"), "{r:?}");
        assert!(r.took < Duration::from_secs(2), "{r:?}");
        // No reset was posted, and the system reads off.
        assert_eq!(s.log().matches("POST").count(), posts_before, "{}", s.log());
        let st = d.status(in_secs(Duration::from_secs(10))).await.unwrap();
        assert_eq!(st.state, PowerState::Off, "{st:?}");
    })
    .await;
}

#[tokio::test]
#[ignore = "needs sushy-emulator; run make test"]
async fn wrong_password_is_permanent() {
    bounded(async {
        let s = Sushy::start(1, false).await;
        let mut c = s.config();
        c.password = "wrong-secret".into();
        let d = RedfishDriver::new(c).unwrap();
        let err = d
            .status(in_secs(Duration::from_secs(10)))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DriverError::Permanent(m) if m.contains("401") && m.contains("bad credentials")),
            "{err:?}"
        );
        assert!(!err.to_string().contains("wrong-secret"));
        assert!(!format!("{d:?}").contains("wrong-secret"));
    })
    .await;
}

#[tokio::test]
#[ignore = "needs sushy-emulator; run make test"]
async fn system_selection_errors_are_clear() {
    bounded(async {
        let s = Sushy::start(3, false).await;
        let dl = || in_secs(Duration::from_secs(10));

        // Several systems and no id: the error lists them.
        let err = s.driver().status(dl()).await.unwrap_err();
        assert!(
            matches!(&err, DriverError::Permanent(m) if m.contains("3 systems") && m.contains("00000001")),
            "{err:?}"
        );

        // Unknown id: named.
        let mut c = s.config();
        c.system_id = Some("no-such-node".into());
        let err = RedfishDriver::new(c).unwrap().status(dl()).await.unwrap_err();
        assert!(
            matches!(&err, DriverError::Permanent(m) if m.contains("\"no-such-node\"") && m.contains("node2")),
            "{err:?}"
        );

        // By Name and by id (last segment of the address).
        let mut c = s.config();
        c.system_id = Some("node2".into());
        let r = RedfishDriver::new(c).unwrap().status(dl()).await.unwrap();
        assert!(r.detail.contains("00000002"), "{r:?}");
        let uuid = r.detail.rsplit('/').next().unwrap().to_string();
        let mut c = s.config();
        c.system_id = Some(uuid.clone());
        let r = RedfishDriver::new(c).unwrap().status(dl()).await.unwrap();
        assert!(r.detail.ends_with(&uuid), "{r:?}");
    })
    .await;
}

#[tokio::test]
#[ignore = "needs sushy-emulator; run make test"]
async fn tls_with_custom_ca_insecure_and_untrusted() {
    bounded(async {
        let s = Sushy::start(1, true).await;
        let dl = || in_secs(Duration::from_secs(10));

        // Verified against the test CA.
        let mut c = s.config();
        c.ca_file = Some(s.ca.clone());
        let r = RedfishDriver::new(c).unwrap().status(dl()).await.unwrap();
        assert_eq!(r.state, PowerState::On);

        // Without it: not trusted, and that will not fix itself.
        let err = s.driver().status(dl()).await.unwrap_err();
        assert!(
            matches!(&err, DriverError::Permanent(m) if m.contains("certificate")),
            "{err:?}"
        );

        // Explicit opt-in.
        let mut c = s.config();
        c.insecure = true;
        let r = RedfishDriver::new(c).unwrap().status(dl()).await.unwrap();
        assert_eq!(r.state, PowerState::On);
    })
    .await;
}
