//! L1 — every host failure injected and not healed is handled within a bound, once
//! quorum and BMC are reachable.
//!
//! **Cases.** For each host, its latest `Injected` (earlier ones of the same host are
//! superseded: the end state can only answer for the latest), when it was not healed
//! by the harness before the quiet phase: `healed_at == None` or
//! `healed_at > f.healed_at`. Failures healed earlier are counted, not judged.
//!
//! **Bound.** Counted from `start = max(injection.at, f.healed_at)` (faults are undone
//! from `f.healed_at` on):
//! `bound = detect_ms + verify_ms + recover_ms + fence_ms + 3 × lease_ms + 10 000`
//! — noticing the death, verifying it, every recovery attempt, every fence level, up
//! to three leases for an owner to be declared dead, its hosts reassigned and the new
//! owner's takeover wait, and 10 s for elections and scheduling. A case is judged only
//! when `f.end_ms ≥ start + bound`; otherwise it is "not judged (run too short)",
//! counted in the detail, and does not fail the run. Without bounds, cases to judge
//! are a violation (nothing to measure them against).
//!
//! **Handled** (`HostEnd.state`, the names of `HaState::name`), for `Crash` / `Hang`:
//! * `fenced` with the host truly powered off;
//! * `available` with the host truly powered on and working (a failed host that
//!   nobody checks any more also stays `available`: ground truth tells them apart);
//! * `fence-failed` with `alarm` (whatever the BMC fault: DiesWithHost, Timeout…);
//! * `ineligible` (maintenance, BMC unreachable, no fence level);
//! * `suspect` when the action is **held** by the pool: its last `pool` event says
//!   `-> inactive` (breaker open, too few hosts), or its fence budget is spent — at
//!   least `fence_budget` fence ledger entries of the pool (the pool as in S3) within
//!   `budget_window_ms` of the latest wall time seen in the ledger and events (the
//!   run's end on the members' clocks). Counted apart in the detail.
//!
//! Anything else (`suspect` not held, `checking`, `degraded`, `recovering`,
//! `recovered`, `fencing`, `initializing`, `fence-failed` without alarm, `fenced`
//! but powered, `available` but failed or off, or no end state at all) is a violation.
//! A host whose HA ends `disabled` is counted as not judged (HA was turned off).
//!
//! **Isolate** (a working host that health checks cannot reach) is judged whatever the
//! bound: it is handled by anything but `fenced`, `fencing` or `fence-failed` (vigil
//! must not decide to fence a working host; powering it off is S2's to judge).

use std::collections::BTreeMap;

use super::s3::{host_pools, pool_of};
use super::{judge, nothing, transition_to, Verdict};
use crate::history::{Facts, FailureKind, HostEnd, Injected};

/// Judge the facts.
pub fn check(f: &Facts) -> Verdict {
    let mut latest: BTreeMap<&str, &Injected> = BTreeMap::new();
    for i in &f.injected {
        let e = latest.entry(i.host.as_str()).or_insert(i);
        if i.at >= e.at {
            *e = i;
        }
    }
    let superseded = f.injected.len() - latest.len();
    let cases: Vec<&Injected> = latest
        .values()
        .copied()
        .filter(|i| i.healed_at.is_none_or(|h| h > f.healed_at))
        .collect();
    let healed = latest.len() - cases.len();
    if cases.is_empty() {
        if f.injected.is_empty() {
            return nothing("L1", "no injected failures");
        }
        return nothing(
            "L1",
            &format!(
                "all {} injected failures were healed by the harness before the quiet phase",
                f.injected.len()
            ),
        );
    }
    let ends: BTreeMap<&str, &HostEnd> = f.hosts.iter().map(|h| (h.host.as_str(), h)).collect();
    let mut violations = Vec::new();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    let (mut too_short, mut disabled, mut isolated) = (0usize, 0usize, 0usize);

    let bound = f
        .bounds
        .as_ref()
        .map(|b| b.detect_ms + b.verify_ms + b.recover_ms + b.fence_ms + 3 * b.lease_ms + 10_000);
    let held = held_pools(f);
    let pools = host_pools(f);
    let mut held_used: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();

    for i in cases {
        let host = i.host.as_str();
        let Some(end) = ends.get(host) else {
            violations.push(format!(
                "host {host}: {:?} injected at {} ms, no end state recorded",
                i.kind, i.at
            ));
            continue;
        };
        let what = format!(
            "host {host} ({:?} injected at {} ms, BMC fault {})",
            i.kind, i.at, i.bmc_fault
        );
        if i.kind == FailureKind::Isolate {
            isolated += 1;
            if matches!(end.state.as_str(), "fenced" | "fencing" | "fence-failed") {
                violations.push(format!(
                    "{what}: a working isolated host ends {} (powered {})",
                    end.state, end.powered
                ));
            }
            continue;
        }
        let Some(bound) = bound else {
            violations.push(format!(
                "{what}: cannot be judged, the run recorded no bounds"
            ));
            continue;
        };
        let start = i.at.max(f.healed_at);
        if f.end_ms < start + bound {
            too_short += 1;
            continue;
        }
        let late = f.end_ms - start;
        let pool = pool_of(&pools, host);
        let verdict: Result<&str, String> = match end.state.as_str() {
            "fenced" if !end.powered => Ok("fenced"),
            "fenced" => Err("fenced, but truly powered on".into()),
            "available" if end.powered && end.condition.working() => Ok("recovered"),
            "available" => Err(format!(
                "available, but truly {} and {:?}",
                if end.powered { "on" } else { "off" },
                end.condition
            )),
            "fence-failed" if end.alarm => Ok("fence-failed with alarm"),
            "fence-failed" => Err("fence-failed without an alarm".into()),
            "ineligible" => Ok("ineligible"),
            "disabled" => {
                disabled += 1;
                continue;
            }
            "suspect" if held.contains_key(pool) => {
                held_used.insert(pool);
                Ok("held by its pool")
            }
            other => Err(other.to_string()),
        };
        match verdict {
            Ok(how) => *tally.entry(how.to_string()).or_default() += 1,
            Err(state) => violations.push(format!(
                "{what}: still {state} at the end, {late} ms after {start} ms (bound {bound} ms; owner {:?}, pool {pool})",
                end.owner
            )),
        }
    }

    let judged: usize = tally.values().sum();
    let mut summary = format!(
        "{judged} failed host(s) handled ({})",
        if tally.is_empty() {
            "none".to_string()
        } else {
            tally
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    if let Some(b) = bound {
        summary.push_str(&format!(" within {b} ms"));
    }
    if !held_used.is_empty() {
        let why = held_used
            .iter()
            .map(|p| format!("{p}: {}", held[*p]))
            .collect::<Vec<_>>()
            .join(", ");
        summary.push_str(&format!(" [held pools: {why}]"));
    }
    summary.push_str(&format!(
        "; {isolated} isolated host(s) left alone; {too_short} not judged (run too short); {disabled} with HA disabled; {healed} healed by the harness; {superseded} superseded by a later injection"
    ));
    judge("L1", &summary, violations)
}

/// Pools whose actions were held at the end (value: why): the last `pool` event says
/// `-> inactive`, or the fence budget is spent near the end.
fn held_pools(f: &Facts) -> BTreeMap<String, String> {
    let mut held = BTreeMap::new();
    let mut last: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
    for e in f.events.iter().filter(|e| e.kind == "pool") {
        if let Some(p) = e.pool.as_deref() {
            let slot = last.entry(p).or_insert((e.seq, e.detail.as_str()));
            if e.seq >= slot.0 {
                *slot = (e.seq, e.detail.as_str());
            }
        }
    }
    for (pool, (seq, detail)) in last {
        if transition_to(detail).as_deref() == Some("inactive") {
            held.insert(pool.to_string(), format!("pool event {seq}: {detail}"));
        }
    }
    if let Some(b) = &f.bounds {
        let now = f
            .ledger
            .iter()
            .map(|l| l.at_wall)
            .chain(f.events.iter().map(|e| e.at_wall))
            .max()
            .unwrap_or(0);
        let mut used: BTreeMap<&str, u32> = BTreeMap::new();
        for l in f.ledger.iter().filter(|l| l.fence) {
            if l.at_wall + b.budget_window_ms > now {
                *used.entry(l.pool.as_str()).or_default() += 1;
            }
        }
        for (pool, n) in used {
            if n >= b.fence_budget {
                held.entry(pool.to_string())
                    .or_insert_with(|| format!("{n} fences in the window"));
            }
        }
    }
    held
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::check::testkit::*;
    use crate::history::Condition;

    // Test bounds: 3 000 + 6 000 + 10 000 + 4 000 + 3 × 5 000 + 10 000 = 48 000 ms.
    const BOUND: u64 = 48_000;

    fn good() -> Facts {
        let mut f = run(200_000);
        f.healed_at = 100_000;
        f.injected = vec![
            crash("h1", 10_000),
            inj("h2", FailureKind::Hang, 20_000, None),
            crash("h3", 30_000),
            inj("h4", FailureKind::Isolate, 40_000, None),
            inj("h5", FailureKind::Crash, 50_000, Some(60_000)),
        ];
        f.injected[2].bmc_fault = "DiesWithHost".into();
        f.hosts = vec![
            host_end("h1", "fenced", false, Some(1), false, Condition::Crashed),
            host_end("h2", "available", false, Some(2), true, Condition::Running),
            host_end(
                "h3",
                "fence-failed",
                true,
                Some(1),
                true,
                Condition::Crashed,
            ),
            host_end("h4", "degraded", false, Some(2), true, Condition::Isolated),
            host_end("h5", "available", false, Some(2), true, Condition::Running),
        ];
        f
    }

    #[test]
    fn handled_failures_pass() {
        let v = check(&good());
        assert!(v.pass, "{}", v.detail);
        assert!(v.detail.contains("3 failed host(s) handled (1 fence-failed with alarm, 1 fenced, 1 recovered) within 48000 ms; 1 isolated host(s) left alone; 0 not judged (run too short); 0 with HA disabled; 1 healed by the harness"), "{}", v.detail);
    }

    #[test]
    fn nothing_to_judge_without_failures() {
        let v = check(&run(10));
        assert!(v.pass && v.detail.contains("nothing to judge (no injected failures)"));
    }

    #[test]
    fn host_still_suspect_long_after_the_bound_fails() {
        let mut f = good();
        f.hosts[0].state = "suspect".into();
        let v = check(&f);
        assert!(!v.pass);
        assert!(v.detail.contains("host h1 (Crash injected at 10000 ms, BMC fault None): still suspect at the end, 100000 ms after 100000 ms (bound 48000 ms; owner Some(1), pool ?)"), "{}", v.detail);
    }

    #[test]
    fn suspect_held_by_its_pool_passes() {
        let mut f = good();
        f.hosts[0].state = "suspect".into();
        f.events = vec![
            event(
                1,
                5,
                Some("h1"),
                Some("p"),
                "transition",
                "available -> suspect",
            ),
            event(2, 6, None, Some("p"), "pool", "active -> inactive"),
        ];
        let v = check(&f);
        assert!(v.pass, "{}", v.detail);
        assert!(v.detail.contains("1 held by its pool"), "{}", v.detail);
        assert!(
            v.detail
                .contains("[held pools: p: pool event 2: active -> inactive]"),
            "{}",
            v.detail
        );
        // The breaker closed again: no longer held.
        f.events
            .push(event(3, 7, None, Some("p"), "pool", "inactive -> active"));
        assert!(!check(&f).pass);
        // Budget spent in the window: held.
        f.ledger = (1..=3)
            .map(|i| ledger(i, &format!("x{i}"), "p", true, 1_000))
            .collect();
        assert!(check(&f).pass);
    }

    #[test]
    fn stale_available_of_a_dead_host_fails() {
        let mut f = good();
        f.hosts[0] = host_end("h1", "available", false, Some(3), true, Condition::Crashed);
        let v = check(&f);
        assert!(!v.pass);
        assert!(
            v.detail
                .contains("still available, but truly on and Crashed"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn fence_failed_without_alarm_and_fenced_but_on_fail() {
        let mut f = good();
        f.hosts[2].alarm = false;
        f.hosts[0].powered = true;
        let v = check(&f);
        assert!(!v.pass);
        assert!(v.detail.contains("2 violation(s)"), "{}", v.detail);
        assert!(v.detail.contains("fence-failed without an alarm"));
        assert!(v.detail.contains("fenced, but truly powered on"));
    }

    #[test]
    fn fenced_isolated_host_fails() {
        let mut f = good();
        f.hosts[3].state = "fenced".into();
        let v = check(&f);
        assert!(!v.pass);
        assert!(v.detail.contains("host h4 (Isolate injected at 40000 ms, BMC fault None): a working isolated host ends fenced"), "{}", v.detail);
    }

    #[test]
    fn too_short_runs_are_counted_not_failed() {
        let mut f = good();
        f.end_ms = 100_000 + BOUND - 1;
        f.hosts[0].state = "checking".into();
        let v = check(&f);
        assert!(v.pass, "{}", v.detail);
        assert!(
            v.detail.contains("3 not judged (run too short)"),
            "{}",
            v.detail
        );
        f.end_ms += 1;
        assert!(!check(&f).pass);
    }

    #[test]
    fn missing_end_state_or_bounds_fail() {
        let mut f = good();
        f.hosts.remove(0);
        assert!(check(&f)
            .detail
            .contains("host h1: Crash injected at 10000 ms, no end state recorded"));
        let mut f = good();
        f.bounds = None;
        let v = check(&f);
        assert!(
            !v.pass && v.detail.contains("the run recorded no bounds"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn only_the_latest_injection_of_a_host_counts() {
        let mut f = good();
        // h1 crashed again later and healed by the harness before the quiet phase.
        f.injected
            .push(inj("h1", FailureKind::Hang, 70_000, Some(80_000)));
        f.hosts[0] = host_end(
            "h1",
            "initializing",
            false,
            Some(1),
            true,
            Condition::Running,
        );
        let v = check(&f);
        assert!(v.pass, "{}", v.detail);
        assert!(
            v.detail.contains("2 healed by the harness; 1 superseded"),
            "{}",
            v.detail
        );
    }

    proptest! {
        /// Failed hosts that all end fenced and off pass, whatever their number and
        /// injection times.
        #[test]
        fn fenced_hosts_pass(ats in prop::collection::vec(0u64..100_000, 0..20)) {
            let mut f = run(400_000);
            f.healed_at = 100_000;
            for (i, at) in ats.iter().enumerate() {
                let h = format!("h{i}");
                f.injected.push(crash(&h, *at));
                f.hosts.push(host_end(&h, "fenced", false, Some(1), false, Condition::Crashed));
            }
            let v = check(&f);
            prop_assert!(v.pass, "{}", v.detail);
        }
    }
}
