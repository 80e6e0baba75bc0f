//! Scenario tests of [`SimPowerDriver`] against every [`BmcFault`], checked against
//! ground truth. Deadlines run on tokio's paused clock: no real waiting, and times
//! asserted are virtual.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::error::DriverError;
use crate::power::{PowerAction, PowerDriver, PowerState};

const SEC: Duration = Duration::from_secs(1);

fn fleet_with(hosts: &[&str]) -> SimFleet {
    let fleet = SimFleet::new();
    for h in hosts {
        fleet.add_host(*h).unwrap();
    }
    fleet
}

fn power(fleet: &SimFleet, host: &str) -> PowerState {
    fleet.snapshot(host).unwrap().power
}

fn is_timeout<T: std::fmt::Debug>(r: &Result<T, DriverError>) -> bool {
    matches!(r, Err(DriverError::Timeout { .. }))
}

/// Assert the call returned at the deadline, on the virtual clock (the timer wheel
/// rounds up to the millisecond).
fn returned_at_deadline(start: Instant, allowed: Duration) {
    let took = start.elapsed();
    assert!(
        took >= allowed && took <= allowed + Duration::from_millis(1),
        "returned after {took:?}, deadline was {allowed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn healthy_bmc_fences_verifies_and_records_ground_truth() {
    let fleet = fleet_with(&["a"]);
    fleet.crash("a").unwrap();
    let d = fleet.driver("a").with_label("intent-7");
    assert_eq!(d.kind(), "sim");
    assert_eq!(d.host(), "a");
    let deadline = Instant::now() + 5 * SEC;

    let r = d.status(deadline).await.unwrap();
    assert_eq!(r.state, PowerState::On);

    let rep = d.act(PowerAction::Off, deadline).await.unwrap();
    assert_eq!(rep.action, PowerAction::Off);
    assert_eq!(rep.verified, PowerState::Off);
    assert!(!rep.already);
    assert_eq!(power(&fleet, "a"), PowerState::Off);

    let log = fleet.ground_truth();
    assert_eq!(log.len(), 1);
    let c = &log[0];
    assert_eq!((c.seq, c.host.as_str()), (1, "a"));
    assert_eq!((c.from, c.to), (PowerState::On, PowerState::Off));
    assert_eq!(c.cause.action, Some(PowerAction::Off));
    assert_eq!(c.cause.label, "intent-7");
    assert_eq!(c.condition, Condition::Crashed);
    assert_eq!(fleet.power_offs("a"), 1);
}

#[tokio::test(start_paused = true)]
async fn off_is_idempotent_and_on_too() {
    let fleet = fleet_with(&["a"]);
    let d = fleet.driver("a");
    let deadline = Instant::now() + 5 * SEC;
    assert!(!d.act(PowerAction::Off, deadline).await.unwrap().already);
    for _ in 0..3 {
        let rep = d.act(PowerAction::Off, deadline).await.unwrap();
        assert!(rep.already);
        assert_eq!(rep.verified, PowerState::Off);
    }
    assert_eq!(fleet.power_offs("a"), 1);
    assert_eq!(fleet.ground_truth().len(), 1);

    assert!(!d.act(PowerAction::On, deadline).await.unwrap().already);
    assert!(d.act(PowerAction::On, deadline).await.unwrap().already);
    assert_eq!(fleet.ground_truth().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn cycle_is_off_then_on_and_heals_unless_configured_otherwise() {
    let fleet = fleet_with(&["a", "b", "c"]);
    let deadline = Instant::now() + 5 * SEC;

    fleet.crash("a").unwrap();
    let rep = fleet
        .driver("a")
        .act(PowerAction::Cycle, deadline)
        .await
        .unwrap();
    assert_eq!(rep.verified, PowerState::On);
    assert!(!rep.already);
    let log = fleet.ground_truth();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].from, log[0].to), (PowerState::On, PowerState::Off));
    assert_eq!((log[1].from, log[1].to), (PowerState::Off, PowerState::On));
    assert!(log[0].seq < log[1].seq);
    assert!(log
        .iter()
        .all(|c| c.cause.action == Some(PowerAction::Cycle)));
    assert_eq!(fleet.snapshot("a").unwrap().condition, Condition::Running);

    // Broken for good: the cycle happens, the host stays crashed.
    fleet.hang("b").unwrap();
    fleet.set_reboot_heals("b", false).unwrap();
    let mark = fleet.last_seq();
    fleet
        .driver("b")
        .act(PowerAction::Cycle, deadline)
        .await
        .unwrap();
    assert_eq!(fleet.ground_truth_since(mark).len(), 2);
    assert_eq!(fleet.snapshot("b").unwrap().condition, Condition::Hung);
}

#[tokio::test(start_paused = true)]
async fn cycle_of_an_off_host_sends_nothing_and_stays_off() {
    let fleet = fleet_with(&["c"]);
    fleet.crash("c").unwrap();
    fleet.set_power("c", PowerState::Off, "test").unwrap();
    let mark = fleet.last_seq();
    let rep = fleet
        .driver("c")
        .act(PowerAction::Cycle, Instant::now() + 5 * SEC)
        .await
        .unwrap();
    assert_eq!(rep.action, PowerAction::Cycle);
    assert_eq!((rep.verified, rep.already), (PowerState::Off, true));
    assert!(
        rep.detail.starts_with(
            "off: a cycle powers on only a host it powered off itself; nothing sent (sim BMC of c"
        ),
        "{}",
        rep.detail
    );
    assert_eq!(power(&fleet, "c"), PowerState::Off);
    assert!(fleet.ground_truth_since(mark).is_empty());
    assert_eq!(fleet.snapshot("c").unwrap().condition, Condition::Crashed);
}

#[tokio::test(start_paused = true)]
async fn cycle_is_not_sent_when_the_bmc_errs() {
    let fleet = fleet_with(&["a"]);
    fleet.set_power("a", PowerState::Off, "test").unwrap();
    fleet.set_fault("a", BmcFault::Error).unwrap();
    let mark = fleet.last_seq();
    let r = fleet
        .driver("a")
        .act(PowerAction::Cycle, Instant::now() + 5 * SEC)
        .await;
    assert!(matches!(r, Err(DriverError::Retryable(_))), "{r:?}");
    assert!(fleet.ground_truth_since(mark).is_empty());
}

#[tokio::test(start_paused = true)]
async fn cycle_does_not_power_on_a_host_someone_else_powered_off() {
    // Off by another hand while the cycle waits out the action latency: this
    // cycle's off changes nothing, so its on does not follow.
    let fleet = fleet_with(&["a"]);
    fleet.set_action_latency(Duration::from_millis(500));
    let d = fleet.driver("a").with_label("cycle");
    let cycle =
        tokio::spawn(async move { d.act(PowerAction::Cycle, Instant::now() + 5 * SEC).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    fleet.set_power("a", PowerState::Off, "fence").unwrap();
    let r = cycle.await.unwrap();
    assert!(
        matches!(&r, Err(DriverError::Retryable(m)) if m.contains("power reads off")),
        "{r:?}"
    );
    assert_eq!(power(&fleet, "a"), PowerState::Off);
    let log = fleet.ground_truth();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].cause.label, "fence");
}

#[tokio::test(start_paused = true)]
async fn timeout_fault_returns_at_the_deadline_and_does_nothing() {
    let fleet = fleet_with(&["a"]);
    fleet.set_fault("a", BmcFault::Timeout).unwrap();
    let d = fleet.driver("a");

    let start = Instant::now();
    let r = d.status(start + 5 * SEC).await;
    assert!(is_timeout(&r), "{r:?}");
    returned_at_deadline(start, 5 * SEC);

    let start = Instant::now();
    let r = d.act(PowerAction::Off, start + 3 * SEC).await;
    assert!(is_timeout(&r), "{r:?}");
    returned_at_deadline(start, 3 * SEC);
    assert_eq!(power(&fleet, "a"), PowerState::On);
    assert!(fleet.ground_truth().is_empty());
}

#[tokio::test(start_paused = true)]
async fn error_fault_answers_at_once_with_a_retryable_error() {
    let fleet = fleet_with(&["a"]);
    fleet.set_fault("a", BmcFault::Error).unwrap();
    let d = fleet.driver("a");
    let start = Instant::now();
    let deadline = start + 5 * SEC;
    let r = d.status(deadline).await;
    assert!(matches!(r, Err(DriverError::Retryable(_))), "{r:?}");
    let r = d.act(PowerAction::Off, deadline).await;
    assert!(matches!(&r, Err(e) if e.is_retryable() && !matches!(e, DriverError::Timeout { .. })));
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(fleet.ground_truth().is_empty());

    fleet.set_fault("a", BmcFault::None).unwrap();
    assert!(d.act(PowerAction::Off, deadline).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn lying_bmc_misreports_and_ground_truth_tells() {
    let fleet = fleet_with(&["a", "b"]);
    let deadline = Instant::now() + 5 * SEC;

    // Host truly on, BMC says off: the fence "succeeds" as already done, with
    // verified evidence, yet nothing happened. Only ground truth shows it.
    fleet.set_fault("a", BmcFault::LiesAboutPower).unwrap();
    let d = fleet.driver("a");
    assert_eq!(d.status(deadline).await.unwrap().state, PowerState::Off);
    let rep = d.act(PowerAction::Off, deadline).await.unwrap();
    assert!(rep.already);
    assert_eq!(rep.verified, PowerState::Off);
    assert_eq!(power(&fleet, "a"), PowerState::On);
    assert_eq!(fleet.power_offs("a"), 0);

    // Host truly on, asked on: the BMC thinks it is off, "powers it on" (no real
    // change), reads back "off" and the verification fails.
    let r = d.act(PowerAction::On, deadline).await;
    assert!(matches!(r, Err(DriverError::Retryable(_))), "{r:?}");
    assert!(fleet.ground_truth().is_empty());

    // Host truly on, BMC says off: a cycle is not sent (it could power on an off
    // host); it "succeeds" as left off, yet the host runs on.
    let rep = d.act(PowerAction::Cycle, deadline).await.unwrap();
    assert_eq!((rep.verified, rep.already), (PowerState::Off, true));
    assert_eq!(power(&fleet, "a"), PowerState::On);
    assert!(fleet.ground_truth().is_empty());

    // Host truly off (b), asked off: the BMC reports on, executes the off (nothing
    // to do), reads back "on": not verified although the host is off.
    fleet.set_power("b", PowerState::Off, "test").unwrap();
    fleet.set_fault("b", BmcFault::LiesAboutPower).unwrap();
    let r = fleet.driver("b").act(PowerAction::Off, deadline).await;
    assert!(matches!(r, Err(DriverError::Retryable(_))), "{r:?}");
    assert_eq!(power(&fleet, "b"), PowerState::Off);
    assert_eq!(fleet.power_offs("b"), 1);

    // Host truly off (b), BMC says on, asked to cycle: the BMC leaves the off host
    // off (no power change), then reads back "on": the cycle "succeeds", and only
    // ground truth shows that nothing happened.
    let mark = fleet.last_seq();
    let rep = fleet
        .driver("b")
        .act(PowerAction::Cycle, deadline)
        .await
        .unwrap();
    assert_eq!((rep.verified, rep.already), (PowerState::On, false));
    assert_eq!(power(&fleet, "b"), PowerState::Off);
    assert!(fleet.ground_truth_since(mark).is_empty());
}

#[tokio::test(start_paused = true)]
async fn bmc_that_dies_with_the_host_comes_back_when_healed() {
    let fleet = fleet_with(&["a"]);
    fleet.set_fault("a", BmcFault::DiesWithHost).unwrap();
    let d = fleet.driver("a");

    // Reachable while the host runs, or merely hangs.
    assert!(d.status(Instant::now() + SEC).await.is_ok());
    fleet.hang("a").unwrap();
    assert!(d.status(Instant::now() + SEC).await.is_ok());

    fleet.crash("a").unwrap();
    let start = Instant::now();
    let r = d.act(PowerAction::Off, start + 2 * SEC).await;
    assert!(is_timeout(&r), "{r:?}");
    returned_at_deadline(start, 2 * SEC);
    assert!(is_timeout(&d.status(Instant::now() + SEC).await));
    assert_eq!(power(&fleet, "a"), PowerState::On);
    assert!(fleet.ground_truth().is_empty());

    fleet.heal("a").unwrap();
    let rep = d.act(PowerAction::Off, Instant::now() + SEC).await.unwrap();
    assert_eq!(rep.verified, PowerState::Off);
    assert_eq!(fleet.power_offs("a"), 1);
}

#[tokio::test(start_paused = true)]
async fn lost_reply_changes_power_but_caller_times_out() {
    let fleet = fleet_with(&["a"]);
    fleet.crash("a").unwrap();
    fleet.set_fault("a", BmcFault::ReplyLost).unwrap();
    let d = fleet.driver("a").with_label("fence-1");

    let start = Instant::now();
    let r = d.act(PowerAction::Off, start + 4 * SEC).await;
    assert!(is_timeout(&r), "{r:?}");
    returned_at_deadline(start, 4 * SEC);
    // The fence happened: once, at the start, not at the deadline.
    assert_eq!(power(&fleet, "a"), PowerState::Off);
    let log = fleet.ground_truth();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].cause.label, "fence-1");
    assert_eq!(log[0].at, start);

    // Retrying also times out (already off, reply lost again) and fences nothing more.
    let r = d.act(PowerAction::Off, Instant::now() + SEC).await;
    assert!(is_timeout(&r), "{r:?}");
    assert!(is_timeout(&d.status(Instant::now() + SEC).await));
    assert_eq!(fleet.power_offs("a"), 1);

    // Another path (a second fence level) sees the truth.
    fleet.set_fault("a", BmcFault::None).unwrap();
    let rep = d.act(PowerAction::Off, Instant::now() + SEC).await.unwrap();
    assert!(rep.already);
}

#[tokio::test(start_paused = true)]
async fn slow_bmc_answers_late_or_times_out_by_the_deadline() {
    let fleet = fleet_with(&["a"]);
    fleet
        .set_fault("a", BmcFault::Slow(Duration::from_secs(2)))
        .unwrap();
    let d = fleet.driver("a");

    // Within the deadline: answers, after the delay.
    let start = Instant::now();
    let r = d.status(start + 5 * SEC).await.unwrap();
    assert_eq!(r.state, PowerState::On);
    assert_eq!(r.took, 2 * SEC);
    assert_eq!(start.elapsed(), 2 * SEC);

    // Beyond the deadline: timeout at the deadline, not after the delay, and the
    // action never reached the host.
    fleet
        .set_fault("a", BmcFault::Slow(Duration::from_secs(60)))
        .unwrap();
    let start = Instant::now();
    let r = d.act(PowerAction::Off, start + 5 * SEC).await;
    assert!(is_timeout(&r), "{r:?}");
    returned_at_deadline(start, 5 * SEC);
    assert_eq!(power(&fleet, "a"), PowerState::On);
    assert!(fleet.ground_truth().is_empty());
}

#[tokio::test(start_paused = true)]
async fn action_latency_counts_against_the_deadline() {
    let fleet = fleet_with(&["a", "b"]);
    fleet.set_action_latency(Duration::from_millis(500));

    let start = Instant::now();
    let rep = fleet
        .driver("a")
        .act(PowerAction::Cycle, start + 5 * SEC)
        .await
        .unwrap();
    assert_eq!(rep.took, SEC); // two transitions
    let log = fleet.ground_truth();
    assert_eq!(log[0].at, start + Duration::from_millis(500));
    assert_eq!(log[1].at, start + SEC);

    // A cycle cut short by the deadline during its on step leaves the host off,
    // and says so: ground truth shows exactly what happened.
    let start = Instant::now();
    let r = fleet
        .driver("b")
        .act(PowerAction::Cycle, start + Duration::from_millis(700))
        .await;
    assert!(
        matches!(&r, Err(DriverError::Timeout { what, .. }) if what.contains("host was left off")),
        "{r:?}"
    );
    returned_at_deadline(start, Duration::from_millis(700));
    assert_eq!(power(&fleet, "b"), PowerState::Off);
    assert_eq!(fleet.power_offs("b"), 1);
    assert_eq!(fleet.ground_truth().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn cycle_sends_no_on_once_the_deadline_has_passed() {
    // The off step lands exactly at the deadline: the on step is not sent.
    let fleet = fleet_with(&["a"]);
    fleet.set_action_latency(Duration::from_millis(500));
    let start = Instant::now();
    let r = fleet
        .driver("a")
        .act(PowerAction::Cycle, start + Duration::from_millis(500))
        .await;
    assert!(
        matches!(&r, Err(DriverError::Timeout { what, .. })
            if what.contains("sim BMC of a: power cycle") && what.contains("deadline passed before the on step")),
        "{r:?}"
    );
    assert_eq!(power(&fleet, "a"), PowerState::Off);
    let log = fleet.ground_truth();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].from, log[0].to), (PowerState::On, PowerState::Off));
}

#[tokio::test(start_paused = true)]
async fn unknown_host_is_a_permanent_error() {
    let fleet = SimFleet::new();
    let d = fleet.driver("ghost");
    let deadline = Instant::now() + SEC;
    assert!(matches!(
        d.status(deadline).await,
        Err(DriverError::Permanent(_))
    ));
    assert!(matches!(
        d.act(PowerAction::Off, deadline).await,
        Err(DriverError::Permanent(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_on_many_hosts_each_fence_once() {
    let names: Vec<String> = (0..64).map(|i| format!("h{i:02}")).collect();
    let fleet = SimFleet::new();
    for n in &names {
        fleet.add_host(n.as_str()).unwrap();
        fleet.crash(n).unwrap();
    }
    fleet.set_action_latency(Duration::from_millis(1));
    let drivers: Vec<Arc<dyn PowerDriver>> = names
        .iter()
        .map(|n| Arc::new(fleet.driver(n).with_label(format!("fence-{n}"))) as Arc<_>)
        .collect();

    // Four racing fencers per host: the host goes off exactly once.
    let mut tasks = Vec::new();
    for d in &drivers {
        for _ in 0..4 {
            let d = Arc::clone(d);
            tasks.push(tokio::spawn(async move {
                d.act(PowerAction::Off, Instant::now() + Duration::from_secs(30))
                    .await
            }));
        }
    }
    for t in tasks {
        let rep = t.await.unwrap().unwrap();
        assert_eq!(rep.verified, PowerState::Off);
    }
    let offs = fleet.power_offs_by_host();
    assert_eq!(offs.len(), names.len());
    assert!(offs.values().all(|&n| n == 1), "{offs:?}");

    let log = fleet.ground_truth();
    assert_eq!(log.len(), names.len());
    // Sequence numbers are dense and in order, times never go backwards.
    for (i, c) in log.iter().enumerate() {
        assert_eq!(c.seq, i as u64 + 1);
        assert_eq!(c.cause.label, format!("fence-{}", c.host));
    }
    assert!(log.windows(2).all(|w| w[0].at <= w[1].at));
}
