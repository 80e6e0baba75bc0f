//! The real Redfish driver against the simulated fleet served as Redfish over HTTP
//! ([`SimRedfishServer`]), judged by the fleet's ground truth. In-process, loopback
//! only, a few seconds in all. Also: session auth against the server's
//! `SessionService` (logins, re-login, logout, leaks), and the `redfish-power`
//! activity check reading the server's watts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use vigil_providers::check::{ActivityCheck, ActivityResult};
use vigil_providers::checks::RedfishPowerActivity;
use vigil_providers::redfish::{RedfishAuth, RedfishConfig, RedfishDriver};
use vigil_providers::sim::{
    BmcFault, PowerChange, SimCredentials, SimFleet, SimRedfishServer, IDLE_WATTS, RESET_TYPES,
    WORKING_WATTS,
};
use vigil_providers::{DriverError, PowerAction, PowerDriver, PowerState};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret-pw";

/// Generous for a healthy BMC on loopback.
const OK: Duration = Duration::from_secs(5);

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn serve(hosts: &[&str]) -> (SimFleet, SimRedfishServer) {
    let fleet = SimFleet::new();
    for h in hosts {
        fleet.add_host(*h).unwrap();
    }
    let server = SimRedfishServer::start(
        fleet.clone(),
        any_port(),
        SimCredentials::new(USER, PASSWORD),
    )
    .await
    .unwrap();
    (fleet, server)
}

fn config(server: &SimRedfishServer, host: &str) -> RedfishConfig {
    let mut c = RedfishConfig::new(server.url(), USER, PASSWORD);
    c.system_id = Some(host.to_string());
    c.poll_interval = Duration::from_millis(20);
    c
}

fn driver(server: &SimRedfishServer, host: &str) -> RedfishDriver {
    RedfishDriver::new(config(server, host)).unwrap()
}

fn driver_with(server: &SimRedfishServer, host: &str, auth: RedfishAuth) -> RedfishDriver {
    let mut c = config(server, host);
    c.auth = auth;
    RedfishDriver::new(c).unwrap()
}

fn within(d: Duration) -> Instant {
    Instant::now() + d
}

/// Ground truth as `(host, from, to, label)`.
fn changes(log: &[PowerChange]) -> Vec<(String, PowerState, PowerState, String)> {
    log.iter()
        .map(|c| (c.host.clone(), c.from, c.to, c.cause.label.clone()))
        .collect()
}

fn change(
    host: &str,
    from: PowerState,
    to: PowerState,
    label: &str,
) -> (String, PowerState, PowerState, String) {
    (host.to_string(), from, to, label.to_string())
}

fn power(fleet: &SimFleet, host: &str) -> PowerState {
    fleet.snapshot(host).unwrap().power
}

/// Asserts the call came back by its deadline (plus scheduling slack) and not
/// much earlier.
fn returned_at(start: Instant, budget: Duration) {
    let took = start.elapsed();
    assert!(
        took >= budget - Duration::from_millis(50) && took <= budget + Duration::from_millis(500),
        "returned after {took:?}, deadline {budget:?}"
    );
}

#[tokio::test]
async fn status_off_on_verified_and_ground_truth_has_exactly_the_changes() {
    use PowerState::{Off, On};
    let (fleet, server) = serve(&["a", "b"]).await;
    let d = driver(&server, "a");

    let r = d.status(within(OK)).await.unwrap();
    assert_eq!(r.state, On, "{r:?}");
    assert!(r.detail.contains("/redfish/v1/Systems/a"), "{r:?}");

    let r = d.act(PowerAction::Off, within(OK)).await.unwrap();
    assert_eq!(r.verified, Off, "{r:?}");
    assert!(!r.already && r.detail.contains("ForceOff"), "{r:?}");
    assert_eq!(power(&fleet, "a"), Off);
    assert_eq!(power(&fleet, "b"), On, "only the chosen system");

    let again = d.act(PowerAction::Off, within(OK)).await.unwrap();
    assert!(again.already, "{again:?}");

    let r = d.act(PowerAction::On, within(OK)).await.unwrap();
    assert_eq!(r.verified, On, "{r:?}");
    assert!(!r.already, "{r:?}");
    let r = d.act(PowerAction::On, within(OK)).await.unwrap();
    assert!(r.already, "{r:?}");

    let log = fleet.ground_truth();
    assert_eq!(
        changes(&log),
        vec![
            change("a", On, Off, "redfish ForceOff"),
            change("a", Off, On, "redfish On"),
        ]
    );
    assert_eq!(log[0].cause.action, Some(PowerAction::Off));
    assert_eq!(log[1].cause.action, Some(PowerAction::On));
    server.shutdown().await;
}

#[tokio::test]
async fn cycle_restarts_and_cycle_of_an_off_host_sends_nothing_and_stays_off() {
    use PowerState::{Off, On};
    let (fleet, server) = serve(&["a"]).await;
    fleet.crash("a").unwrap();
    let d = driver(&server, "a");
    let r = d.act(PowerAction::Cycle, within(OK)).await.unwrap();
    assert_eq!(r.verified, On, "{r:?}");
    assert!(r.detail.contains("ForceRestart"), "{r:?}");
    // The restart healed the crash (reboot_heals is the default).
    assert_eq!(
        fleet.snapshot("a").unwrap().condition,
        vigil_providers::sim::Condition::Running
    );

    // A cycle never powers on a host that is off: nothing is sent, it stays off.
    fleet.set_power("a", Off, "pulled").unwrap();
    let r = d.act(PowerAction::Cycle, within(OK)).await.unwrap();
    assert_eq!((r.verified, r.already), (Off, true), "{r:?}");
    assert!(r.detail.contains("nothing sent"), "{r:?}");
    assert_eq!(power(&fleet, "a"), Off);

    let log = fleet.ground_truth();
    assert_eq!(
        changes(&log),
        vec![
            change("a", On, Off, "redfish ForceRestart"),
            change("a", Off, On, "redfish ForceRestart"),
            change("a", On, Off, "pulled"),
        ]
    );
    assert_eq!(log[0].cause.action, Some(PowerAction::Cycle));
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_system_are_permanent() {
    let (fleet, server) = serve(&["a", "b"]).await;
    let mut c = config(&server, "a");
    c.password = "wrong-secret".into();
    let d = RedfishDriver::new(c).unwrap();
    let err = d.status(within(OK)).await.unwrap_err();
    assert!(
        matches!(&err, DriverError::Permanent(m) if m.contains("401") && m.contains("bad credentials")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("wrong-secret"), "{err}");
    let err = d.act(PowerAction::Off, within(OK)).await.unwrap_err();
    assert!(matches!(err, DriverError::Permanent(_)), "{err:?}");

    let err = driver(&server, "ghost")
        .act(PowerAction::Off, within(OK))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DriverError::Permanent(m) if m.contains("\"ghost\"") && m.contains("a") && m.contains("b")),
        "{err:?}"
    );
    assert!(fleet.ground_truth().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn bmc_timeout_runs_into_the_deadline_and_nothing_happens() {
    let (fleet, server) = serve(&["a"]).await;
    fleet.set_fault("a", BmcFault::Timeout).unwrap();
    let d = driver(&server, "a");
    let budget = Duration::from_millis(400);

    let start = Instant::now();
    let err = d.status(start + budget).await.unwrap_err();
    assert!(matches!(err, DriverError::Timeout { .. }), "{err:?}");
    returned_at(start, budget);

    let start = Instant::now();
    let err = d.act(PowerAction::Off, start + budget).await.unwrap_err();
    assert!(matches!(err, DriverError::Timeout { .. }), "{err:?}");
    returned_at(start, budget);
    assert!(fleet.ground_truth().is_empty());

    // Requests still hanging do not keep the server from stopping.
    let start = std::time::Instant::now();
    server.shutdown().await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn bmc_error_is_a_retryable_500() {
    let (fleet, server) = serve(&["a"]).await;
    fleet.set_fault("a", BmcFault::Error).unwrap();
    let d = driver(&server, "a");
    let err = d.status(within(OK)).await.unwrap_err();
    assert!(
        matches!(&err, DriverError::Retryable(m) if m.contains("500") && m.contains("injected")),
        "{err:?}"
    );
    let err = d.act(PowerAction::Off, within(OK)).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(fleet.ground_truth().is_empty());

    fleet.set_fault("a", BmcFault::None).unwrap();
    let r = d.act(PowerAction::Off, within(OK)).await.unwrap();
    assert_eq!(r.verified, PowerState::Off);
    assert_eq!(fleet.power_offs("a"), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn lying_bmc_is_believed_as_reported_and_ground_truth_tells() {
    let (fleet, server) = serve(&["a", "b"]).await;

    // On, reported off: the driver sees "Off", sends nothing, and says what it saw.
    fleet.set_fault("a", BmcFault::LiesAboutPower).unwrap();
    let d = driver(&server, "a");
    assert_eq!(d.status(within(OK)).await.unwrap().state, PowerState::Off);
    let r = d.act(PowerAction::Off, within(OK)).await.unwrap();
    assert!(r.already && r.detail.contains("PowerState Off"), "{r:?}");
    assert_eq!(power(&fleet, "a"), PowerState::On, "the lie");

    // Off, reported on: the ForceOff changes nothing, the read-back keeps saying On,
    // and the driver never claims an off it did not read: timeout at the deadline.
    fleet.set_power("b", PowerState::Off, "pulled").unwrap();
    fleet.set_fault("b", BmcFault::LiesAboutPower).unwrap();
    let budget = Duration::from_millis(500);
    let start = Instant::now();
    let err = driver(&server, "b")
        .act(PowerAction::Off, start + budget)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DriverError::Timeout { what, .. } if what.contains("last read: On")),
        "{err:?}"
    );
    returned_at(start, budget);

    // Nothing but the pulled plug really happened.
    assert_eq!(
        changes(&fleet.ground_truth()),
        vec![change("b", PowerState::On, PowerState::Off, "pulled")]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bmc_dies_with_its_host_and_comes_back_when_healed() {
    let (fleet, server) = serve(&["a"]).await;
    fleet.set_fault("a", BmcFault::DiesWithHost).unwrap();
    let d = driver(&server, "a");
    assert_eq!(d.status(within(OK)).await.unwrap().state, PowerState::On);

    fleet.crash("a").unwrap();
    let budget = Duration::from_millis(400);
    let start = Instant::now();
    let err = d.act(PowerAction::Off, start + budget).await.unwrap_err();
    assert!(matches!(err, DriverError::Timeout { .. }), "{err:?}");
    returned_at(start, budget);
    assert_eq!(
        power(&fleet, "a"),
        PowerState::On,
        "a dead BMC cannot fence"
    );

    fleet.heal("a").unwrap();
    let r = d.act(PowerAction::Off, within(OK)).await.unwrap();
    assert_eq!(r.verified, PowerState::Off);
    assert_eq!(fleet.power_offs("a"), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn lost_reply_still_powers_off_while_the_caller_times_out() {
    let (fleet, server) = serve(&["a"]).await;
    fleet.set_fault("a", BmcFault::ReplyLost).unwrap();
    let budget = Duration::from_millis(400);
    let start = Instant::now();
    let err = driver(&server, "a")
        .status(start + budget)
        .await
        .unwrap_err();
    assert!(matches!(err, DriverError::Timeout { .. }), "{err:?}");
    returned_at(start, budget);
    assert!(fleet.ground_truth().is_empty());

    // The reset is carried out before its reply is lost. (The driver's status read
    // before it is lost too, so use a plain POST.)
    let client = reqwest::Client::new();
    let r = client
        .post(format!(
            "{}/redfish/v1/Systems/a/Actions/ComputerSystem.Reset",
            server.url()
        ))
        .basic_auth(USER, Some(PASSWORD))
        .json(&serde_json::json!({"ResetType": "ForceOff"}))
        .timeout(budget)
        .send()
        .await;
    assert!(r.is_err_and(|e| e.is_timeout()));
    assert_eq!(
        changes(&fleet.ground_truth()),
        vec![change(
            "a",
            PowerState::On,
            PowerState::Off,
            "redfish ForceOff"
        )]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn slow_bmc_answers_late_or_times_out() {
    let (fleet, server) = serve(&["a"]).await;
    fleet
        .set_fault("a", BmcFault::Slow(Duration::from_millis(300)))
        .unwrap();
    let d = driver(&server, "a");
    let r = d.status(within(OK)).await.unwrap();
    assert!(r.took >= Duration::from_millis(300), "{r:?}");

    let budget = Duration::from_millis(150);
    let start = Instant::now();
    let err = d.status(start + budget).await.unwrap_err();
    assert!(matches!(err, DriverError::Timeout { .. }), "{err:?}");
    returned_at(start, budget);

    // A reset whose caller gave up before the slow BMC got to it is not carried out
    // (the server drops a request whose client has gone, as the sim driver does).
    let r = reqwest::Client::new()
        .post(format!(
            "{}/redfish/v1/Systems/a/Actions/ComputerSystem.Reset",
            server.url()
        ))
        .basic_auth(USER, Some(PASSWORD))
        .json(&serde_json::json!({"ResetType": "ForceOff"}))
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(r.is_err_and(|e| e.is_timeout()));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        fleet.ground_truth().is_empty(),
        "{:?}",
        fleet.ground_truth()
    );

    // Slow but in time: off verified, one real change.
    let r = d.act(PowerAction::Off, within(OK)).await.unwrap();
    assert_eq!(r.verified, PowerState::Off);
    assert_eq!(fleet.power_offs("a"), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn power_reading_follows_what_the_host_does() {
    let (fleet, server) = serve(&["a"]).await;
    let d = driver(&server, "a");
    let watts = || async { d.power_watts(within(OK)).await.unwrap() };
    assert_eq!(watts().await, Some(WORKING_WATTS));
    fleet.hang("a").unwrap();
    assert_eq!(watts().await, Some(IDLE_WATTS));
    fleet.heal("a").unwrap();
    fleet.set_working("a", false).unwrap();
    assert_eq!(watts().await, Some(IDLE_WATTS));
    fleet.set_power("a", PowerState::Off, "pulled").unwrap();
    assert_eq!(watts().await, Some(0.0));
    server.shutdown().await;
}

#[tokio::test]
async fn protocol_details_root_auth_allowable_values_and_bad_requests() {
    let (fleet, server) = serve(&["a"]).await;
    fleet.hang("a").unwrap();
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.url());

    // Anonymous service root; everything else needs credentials (401, JSON body).
    let root: serde_json::Value = client
        .get(url("/redfish/v1/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(root["Systems"]["@odata.id"], "/redfish/v1/Systems");
    let r = client.get(url("/redfish/v1/Systems")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");

    let get = |p: &str| client.get(url(p)).basic_auth(USER, Some(PASSWORD)).send();
    let sys: serde_json::Value = get("/redfish/v1/Systems/a")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reset = &sys["Actions"]["#ComputerSystem.Reset"];
    assert_eq!(
        reset["ResetType@Redfish.AllowableValues"],
        serde_json::json!(RESET_TYPES)
    );
    assert_eq!(
        RESET_TYPES,
        [
            "On",
            "ForceOff",
            "ForceRestart",
            "GracefulShutdown",
            "PowerCycle"
        ]
    );
    assert_eq!(get("/redfish/v1/Systems/zz").await.unwrap().status(), 404);
    assert_eq!(get("/redfish/v1/Nope").await.unwrap().status(), 404);

    let post = |body: serde_json::Value| {
        client
            .post(url("/redfish/v1/Systems/a/Actions/ComputerSystem.Reset"))
            .basic_auth(USER, Some(PASSWORD))
            .json(&body)
            .send()
    };
    let bad = post(serde_json::json!({"ResetType": "Nmi"})).await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(post(serde_json::json!({})).await.unwrap().status(), 400);

    // A graceful shutdown needs a cooperating OS: the hung host stays on.
    let r = post(serde_json::json!({"ResetType": "GracefulShutdown"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(power(&fleet, "a"), PowerState::On);
    fleet.heal("a").unwrap();
    post(serde_json::json!({"ResetType": "GracefulShutdown"}))
        .await
        .unwrap();
    assert_eq!(power(&fleet, "a"), PowerState::Off);
    // A restart of a system that is off is refused (409) and leaves it off.
    for reset_type in ["PowerCycle", "ForceRestart"] {
        let r = post(serde_json::json!({ "ResetType": reset_type }))
            .await
            .unwrap();
        assert_eq!(r.status(), 409, "{reset_type}");
        let body: serde_json::Value = r.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("powered off"), "{body}");
        assert_eq!(power(&fleet, "a"), PowerState::Off);
    }
    let r = post(serde_json::json!({"ResetType": "On"})).await.unwrap();
    assert_eq!(r.status(), 204);
    let r = post(serde_json::json!({"ResetType": "PowerCycle"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(power(&fleet, "a"), PowerState::On);
    assert_eq!(
        changes(&fleet.ground_truth()),
        vec![
            change(
                "a",
                PowerState::On,
                PowerState::Off,
                "redfish GracefulShutdown"
            ),
            change("a", PowerState::Off, PowerState::On, "redfish On"),
            change("a", PowerState::On, PowerState::Off, "redfish PowerCycle"),
            change("a", PowerState::Off, PowerState::On, "redfish PowerCycle"),
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn fifty_systems_on_one_listener_each_fenced_once() {
    let names: Vec<String> = (0..50).map(|i| format!("node{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (fleet, server) = serve(&refs).await;
    fleet.set_action_latency(Duration::from_millis(5));
    let server = Arc::new(server);

    let tasks: Vec<_> = names
        .iter()
        .map(|n| {
            let d = driver(&server, n);
            tokio::spawn(async move {
                let deadline = within(Duration::from_secs(10));
                assert_eq!(d.status(deadline).await.unwrap().state, PowerState::On);
                let r = d.act(PowerAction::Off, deadline).await.unwrap();
                assert_eq!(r.verified, PowerState::Off);
                assert!(!r.already);
                // Repeats change nothing.
                assert!(d.act(PowerAction::Off, deadline).await.unwrap().already);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let log = fleet.ground_truth();
    assert_eq!(log.len(), 50);
    let offs = fleet.power_offs_by_host();
    assert_eq!(offs.len(), 50);
    assert!(offs.values().all(|n| *n == 1), "{offs:?}");
    assert!(log.iter().all(|c| c.cause.label == "redfish ForceOff"));
    Arc::into_inner(server).unwrap().shutdown().await;
}

#[tokio::test]
async fn session_login_once_then_status_off_on_with_the_token() {
    let (fleet, server) = serve(&["a"]).await;
    let d = driver_with(&server, "a", RedfishAuth::Session);
    assert_eq!(d.status(within(OK)).await.unwrap().state, PowerState::On);
    let r = d.act(PowerAction::Off, within(OK)).await.unwrap();
    assert_eq!(r.verified, PowerState::Off);
    assert_eq!(power(&fleet, "a"), PowerState::Off);
    let r = d.act(PowerAction::On, within(OK)).await.unwrap();
    assert_eq!(r.verified, PowerState::On);
    // The password travelled once, in the login; everything else carried the token.
    assert_eq!(server.logins(), 1);
    assert_eq!(server.basic_auth_requests(), 0);
    assert_eq!(server.live_sessions(), 1);
    assert!(!format!("{d:?}").contains(PASSWORD));

    d.close(within(OK)).await.unwrap();
    assert_eq!(server.live_sessions(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn auto_uses_a_session_when_offered_and_basic_auth_when_not() {
    let (_fleet, server) = serve(&["a"]).await;
    let d = driver(&server, "a");
    assert_eq!(d.status(within(OK)).await.unwrap().state, PowerState::On);
    assert_eq!((server.logins(), server.basic_auth_requests()), (1, 0));
    assert_eq!(server.live_sessions(), 1);
    d.close(within(OK)).await.unwrap();

    // A BMC without a SessionService (like sushy-emulator): Auto falls back to basic.
    server.set_session_service(false);
    let d = driver(&server, "a");
    assert_eq!(d.status(within(OK)).await.unwrap().state, PowerState::On);
    d.act(PowerAction::Off, within(OK)).await.unwrap();
    assert_eq!(server.logins(), 1, "no new login");
    assert!(
        server.basic_auth_requests() >= 3,
        "{}",
        server.basic_auth_requests()
    );
    assert_eq!(server.live_sessions(), 0);
    d.close(within(OK)).await.unwrap();

    // Explicit session auth there is a clear, permanent error.
    let err = driver_with(&server, "a", RedfishAuth::Session)
        .status(within(OK))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DriverError::Permanent(m) if m.contains("404") && m.contains("session login") && m.contains("auth basic")),
        "{err:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn explicit_basic_auth_never_logs_in() {
    let (fleet, server) = serve(&["a"]).await;
    let d = driver_with(&server, "a", RedfishAuth::Basic);
    d.status(within(OK)).await.unwrap();
    d.act(PowerAction::Off, within(OK)).await.unwrap();
    assert_eq!(power(&fleet, "a"), PowerState::Off);
    assert_eq!(server.logins(), 0);
    assert_eq!(server.live_sessions(), 0);
    assert!(server.basic_auth_requests() >= 3);
    d.close(within(OK)).await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn expired_session_logs_in_again_transparently() {
    let (fleet, server) = serve(&["a"]).await;
    let d = driver(&server, "a");
    d.status(within(OK)).await.unwrap();
    // The BMC reboots: every session is gone.
    server.expire_sessions();
    assert_eq!(server.live_sessions(), 0);
    assert_eq!(d.status(within(OK)).await.unwrap().state, PowerState::On);
    assert_eq!(server.logins(), 2);
    assert_eq!(server.live_sessions(), 1);

    // In the middle of an action too.
    server.expire_sessions();
    let r = d.act(PowerAction::Off, within(OK)).await.unwrap();
    assert_eq!(r.verified, PowerState::Off);
    assert_eq!(fleet.power_offs("a"), 1);
    assert_eq!(server.logins(), 3);
    assert_eq!(server.basic_auth_requests(), 0);
    d.close(within(OK)).await.unwrap();
    assert_eq!(server.live_sessions(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_password_is_permanent_at_login_and_never_shown() {
    let (fleet, server) = serve(&["a"]).await;
    for auth in [RedfishAuth::Auto, RedfishAuth::Session] {
        let mut c = config(&server, "a");
        c.password = "wrong-secret".into();
        c.auth = auth;
        let d = RedfishDriver::new(c).unwrap();
        let err = d.act(PowerAction::Off, within(OK)).await.unwrap_err();
        assert!(
            matches!(&err, DriverError::Permanent(m)
                if m.contains("login") && m.contains("401") && m.contains("bad credentials")),
            "{auth}: {err:?}"
        );
        assert!(!err.to_string().contains("wrong-secret"), "{err}");
    }
    assert_eq!(server.logins(), 2, "one login attempt per call, no retry");
    assert_eq!(server.live_sessions(), 0);
    assert!(fleet.ground_truth().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn one_session_per_driver_and_close_leaves_none() {
    let (_fleet, server) = serve(&["a"]).await;
    let d = Arc::new(driver(&server, "a"));
    // Concurrent first calls share one login.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let d = d.clone();
            tokio::spawn(async move { d.status(within(OK)).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(server.logins(), 1);
    for i in 0..50 {
        match i % 3 {
            0 => {
                d.status(within(OK)).await.unwrap();
            }
            1 => {
                d.act(PowerAction::Off, within(OK)).await.unwrap();
            }
            _ => {
                d.act(PowerAction::On, within(OK)).await.unwrap();
            }
        }
    }
    assert_eq!(server.live_sessions(), 1);
    assert_eq!(server.logins(), 1);
    d.close(within(OK)).await.unwrap();
    assert_eq!(server.live_sessions(), 0);
    d.close(within(OK)).await.unwrap();

    // Used again after close: a new session, which close ends again.
    d.status(within(OK)).await.unwrap();
    assert_eq!((server.logins(), server.live_sessions()), (2, 1));
    d.close(within(OK)).await.unwrap();
    assert_eq!(server.live_sessions(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn dropping_a_driver_logs_its_session_out() {
    let (_fleet, server) = serve(&["a"]).await;
    for _ in 0..5 {
        let d = driver(&server, "a");
        d.status(within(OK)).await.unwrap();
    }
    assert_eq!(server.logins(), 5);
    let start = Instant::now();
    while server.live_sessions() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{} sessions still live",
            server.live_sessions()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn redfish_power_activity_tells_work_from_idle_hung_crashed_and_off() {
    let (fleet, server) = serve(&["a"]).await;
    // The idle floor draws power too: only above it is work.
    let check = RedfishPowerActivity::new(driver(&server, "a")).threshold(IDLE_WATTS);
    let active = |r: &ActivityResult| matches!(r, ActivityResult::Active { .. });
    let inactive = |r: &ActivityResult| matches!(r, ActivityResult::Inactive { .. });

    let r = check.check(within(OK)).await;
    assert!(
        active(&r) && format!("{r:?}").contains(&format!("{WORKING_WATTS} W")),
        "{r:?}"
    );

    fleet.set_working("a", false).unwrap();
    let r = check.check(within(OK)).await;
    assert!(inactive(&r), "idle: {r:?}");
    fleet.set_working("a", true).unwrap();

    fleet.hang("a").unwrap();
    let r = check.check(within(OK)).await;
    assert!(
        inactive(&r) && format!("{r:?}").contains(&format!("{IDLE_WATTS} W")),
        "hung: {r:?}"
    );
    fleet.crash("a").unwrap();
    let r = check.check(within(OK)).await;
    assert!(inactive(&r), "crashed: {r:?}");
    fleet.heal("a").unwrap();
    assert!(active(&check.check(within(OK)).await));

    fleet.set_power("a", PowerState::Off, "pulled").unwrap();
    let r = check.check(within(OK)).await;
    assert!(
        inactive(&r) && format!("{r:?}").contains("0 W"),
        "off: {r:?}"
    );
    fleet.set_power("a", PowerState::On, "plugged").unwrap();

    // Without a threshold, a hung host's idle draw reads as activity.
    fleet.hang("a").unwrap();
    let r = RedfishPowerActivity::new(driver(&server, "a"))
        .check(within(OK))
        .await;
    assert!(active(&r), "threshold 0: {r:?}");
    fleet.heal("a").unwrap();

    // A BMC that never answers: an error (it says nothing about the host), by the
    // deadline.
    fleet.set_fault("a", BmcFault::Timeout).unwrap();
    let budget = Duration::from_millis(400);
    let start = Instant::now();
    let r = check.check(start + budget).await;
    assert!(
        matches!(&r, ActivityResult::Error { reason } if reason.contains("no answer")),
        "{r:?}"
    );
    returned_at(start, budget);
    server.shutdown().await;
}

#[tokio::test]
async fn session_service_protocol_login_token_logout() {
    let (_fleet, server) = serve(&["a"]).await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.url());
    let sessions = "/redfish/v1/SessionService/Sessions";

    let root: serde_json::Value = client
        .get(url("/redfish/v1/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(root["Links"]["Sessions"]["@odata.id"], sessions);
    assert_eq!(
        root["SessionService"]["@odata.id"],
        "/redfish/v1/SessionService"
    );

    let login = |user: &str, pw: &str| {
        client
            .post(url(sessions))
            .json(&serde_json::json!({"UserName": user, "Password": pw}))
            .send()
    };
    assert_eq!(login(USER, "nope").await.unwrap().status(), 401);
    let bad = client.post(url(sessions)).body("{}").send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let r = login(USER, PASSWORD).await.unwrap();
    assert_eq!(r.status(), 201);
    let token = r.headers()["x-auth-token"].to_str().unwrap().to_string();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(sessions), "{location}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["@odata.id"], location.as_str());
    assert!(!body.to_string().contains(PASSWORD), "{body}");

    let with_token = |m: reqwest::Method, p: &str| {
        client
            .request(m, url(p))
            .header("X-Auth-Token", &token)
            .send()
    };
    let sys = with_token(reqwest::Method::GET, "/redfish/v1/Systems/a")
        .await
        .unwrap();
    assert_eq!(sys.status(), 200);
    let list: serde_json::Value = with_token(reqwest::Method::GET, sessions)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["Members"][0]["@odata.id"], location.as_str());
    let bogus = client
        .get(url("/redfish/v1/Systems/a"))
        .header("X-Auth-Token", "bogus")
        .send()
        .await
        .unwrap();
    assert_eq!(bogus.status(), 401);

    let del = with_token(reqwest::Method::DELETE, &location)
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(server.live_sessions(), 0);
    let after = with_token(reqwest::Method::GET, "/redfish/v1/Systems/a")
        .await
        .unwrap();
    assert_eq!(after.status(), 401, "the token stops working");
    assert_eq!(server.basic_auth_requests(), 0);

    // Switched off: not advertised, not served; basic auth still works.
    server.set_session_service(false);
    let root: serde_json::Value = client
        .get(url("/redfish/v1/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(root.get("Links").is_none() && root.get("SessionService").is_none());
    assert_eq!(login(USER, PASSWORD).await.unwrap().status(), 404);
    let r = client
        .get(url("/redfish/v1/Systems/a"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(server.basic_auth_requests(), 1);
    server.shutdown().await;
}
