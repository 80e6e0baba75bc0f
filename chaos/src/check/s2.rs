//! S2 — vigil never powers off a healthy host.
//!
//! Judged at each of vigil's power-offs: a ground-truth change with `off == true` by a
//! power driver (cause `Off` or `Cycle`, with or without a member name). The host was
//! **working** when the change's recorded `condition` is `Running` or `Isolated`
//! ([`Condition::working`](crate::history::Condition::working)); ground truth is
//! the authority on that.
//!
//! **Working since.** Rebuilt per host from the run's steps in time order
//! (`check::timeline`): every host works from 0 ms, powered on. An `Injected` of
//! kind `Crash` or `Hang` stops it; `Isolate` keeps (or makes) it working. It works
//! again at the injection's `healed_at`, or at a power-on by anyone while crashed or
//! hung when the latest injection has `reboot_heals`. A power-off stops it and a
//! power-on starts its power again — except an outage vigil itself caused on a
//! working host (its power-off of a working host, up to its own power-on, e.g. the
//! two halves of a cycle): that outage neither counts as the host having been down
//! nor restarts the clock, so a wrong cycle cannot buy a later wrong fence a grace.
//! "Working since" is the later of the time its OS last became working and the time
//! its power last came on. When this rebuilt state
//! disagrees with ground truth (truth says working, the steps say not), the most
//! recent step of that host stands in for "since" — the most lenient reading.
//!
//! **Rule.** A power-off of a working host is a violation when the host never stopped
//! working since the run began (no crash, hang or power-off before it: no heal can
//! have raced the decision, so no grace applies — this is also S1's "outside every
//! incident"), or when `t − since > bounds.healthy_grace_ms`. Power-offs within the
//! grace are counted in the detail (a heal racing a decision). Without bounds, every
//! power-off of a working host is a violation (no grace).

use std::collections::BTreeMap;

use super::{by_driver, describe, judge, nothing, step_host, timeline, Step, Verdict};
use crate::history::{Facts, FailureKind, Ms};

/// What the steps say of one host.
#[derive(Debug, Clone, Copy)]
struct Life {
    os_working: bool,
    os_since: Ms,
    powered: bool,
    power_since: Ms,
    ever_down: bool,
    vigil_outage: bool,
    reboot_heals: bool,
    last_step: Ms,
}

impl Default for Life {
    fn default() -> Self {
        Life {
            os_working: true,
            os_since: 0,
            powered: true,
            power_since: 0,
            ever_down: false,
            vigil_outage: false,
            reboot_heals: true,
            last_step: 0,
        }
    }
}

/// Judge the facts.
pub fn check(f: &Facts) -> Verdict {
    let grace = f.bounds.as_ref().map(|b| b.healthy_grace_ms);
    let mut life: BTreeMap<&str, Life> = BTreeMap::new();
    let mut violations = Vec::new();
    let (mut offs, mut failed, mut raced) = (0usize, 0usize, 0usize);

    for (t, step) in timeline(f) {
        let Some(host) = step_host(&step) else {
            continue;
        };
        let l = life.entry(host).or_default();
        match step {
            Step::Inject(i) => {
                l.reboot_heals = i.reboot_heals;
                match i.kind {
                    FailureKind::Crash | FailureKind::Hang => {
                        l.os_working = false;
                        l.ever_down = true;
                    }
                    FailureKind::Isolate => {
                        if !l.os_working {
                            l.os_working = true;
                            l.os_since = t;
                        }
                    }
                }
                l.last_step = t;
            }
            Step::Heal(_) => {
                if !l.os_working {
                    l.os_working = true;
                    l.os_since = t;
                }
                l.last_step = t;
            }
            Step::Op(_) => {}
            Step::Truth(p) => {
                if p.off && by_driver(p) {
                    offs += 1;
                    if !p.condition.working() {
                        failed += 1;
                    } else if let Some(grace) = grace {
                        let agrees = l.os_working && l.powered;
                        let since = if agrees {
                            l.os_since.max(l.power_since)
                        } else {
                            l.last_step
                        };
                        let healthy = t.saturating_sub(since);
                        if !l.ever_down {
                            violations.push(format!(
                                "host {host}: {} while {:?}, a host that had been working since the start of the run (never crashed, hung or powered off)",
                                describe(p),
                                p.condition
                            ));
                        } else if healthy > grace {
                            violations.push(format!(
                                "host {host}: {} while {:?}, working continuously since {since} ms ({healthy} ms > grace {grace} ms){}",
                                describe(p),
                                p.condition,
                                if agrees { "" } else { "; the harness's steps disagree with ground truth, \"since\" is the host's last step" }
                            ));
                        } else {
                            raced += 1;
                        }
                    } else {
                        violations.push(format!(
                            "host {host}: {} while {:?} (no bounds recorded: no grace)",
                            describe(p),
                            p.condition
                        ));
                    }
                }
                if p.off {
                    l.powered = false;
                    if by_driver(p) && p.condition.working() {
                        l.vigil_outage = true;
                    } else {
                        l.ever_down = true;
                    }
                } else {
                    l.powered = true;
                    if !(l.vigil_outage && by_driver(p)) {
                        l.power_since = t;
                    }
                    l.vigil_outage = false;
                    if !l.os_working && l.reboot_heals {
                        l.os_working = true;
                        l.os_since = t;
                    }
                }
                l.last_step = t;
            }
        }
    }

    if offs == 0 {
        return nothing("S2", "no power-offs by vigil");
    }
    let summary = match grace {
        Some(g) => format!(
            "{offs} power-offs by vigil: {failed} of failed hosts, {raced} of hosts healthy for ≤ the {g} ms grace"
        ),
        None => format!("{offs} power-offs by vigil: {failed} of failed hosts (no bounds: no grace)"),
    };
    judge("S2", &summary, violations)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::check::testkit::*;
    use crate::history::{Condition, PowerCause};

    fn off(seq: u64, t: u64, host: &str, cause: PowerCause, c: Condition) -> crate::history::Truth {
        truth(seq, t, host, true, cause, Some(1), c)
    }

    #[test]
    fn fences_of_failed_hosts_pass() {
        let mut f = run(200_000);
        f.injected = vec![
            crash("h1", 1_000),
            inj("h2", FailureKind::Hang, 2_000, None),
        ];
        f.truth = vec![
            fence(1, 20_000, "h1", 1),
            off(2, 25_000, "h2", PowerCause::Cycle, Condition::Hung),
        ];
        let v = check(&f);
        assert!(v.pass, "{}", v.detail);
        assert!(
            v.detail
                .contains("2 power-offs by vigil: 2 of failed hosts, 0 of hosts healthy"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn nothing_to_judge_without_power_offs() {
        let v = check(&run(1_000));
        assert!(v.pass && v.detail.contains("nothing to judge"));
    }

    #[test]
    fn fence_racing_a_heal_within_the_grace_passes() {
        let mut f = run(200_000);
        f.injected = vec![inj("h1", FailureKind::Crash, 1_000, Some(50_000))];
        f.truth = vec![off(1, 55_000, "h1", PowerCause::Off, Condition::Running)];
        let v = check(&f);
        assert!(v.pass, "{}", v.detail);
        assert!(v
            .detail
            .contains("1 of hosts healthy for ≤ the 30000 ms grace"));
    }

    #[test]
    fn fence_of_a_host_healthy_for_long_fails() {
        let mut f = run(200_000);
        f.injected = vec![inj("h1", FailureKind::Crash, 1_000, Some(50_000))];
        f.truth = vec![off(1, 90_000, "h1", PowerCause::Off, Condition::Running)];
        let v = check(&f);
        assert!(!v.pass);
        assert!(
            v.detail.contains("host h1: Off power-off seq 1 at 90000 ms by member 1 while Running, working continuously since 50000 ms (40000 ms > grace 30000 ms)"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn cycle_of_an_isolated_host_fails_even_early() {
        // Isolated at 10 s, never down: no grace.
        let mut f = run(200_000);
        f.injected = vec![inj("h1", FailureKind::Isolate, 10_000, None)];
        f.truth = vec![off(1, 12_000, "h1", PowerCause::Cycle, Condition::Isolated)];
        let v = check(&f);
        assert!(!v.pass);
        assert!(
            v.detail
                .contains("while Isolated, a host that had been working since the start"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn reboot_heals_starts_the_clock_again() {
        // Crashed, cycled at 20 s (healed by the reboot), fenced at 40 s: 20 s healthy.
        let mut f = run(200_000);
        f.injected = vec![crash("h1", 1_000)];
        let mut t = cycle(1, 20_000, "h1", 1, Condition::Crashed).to_vec();
        t.push(off(3, 40_000, "h1", PowerCause::Off, Condition::Running));
        f.truth = t.clone();
        assert!(check(&f).pass);
        // Fenced 60 s after the healing reboot: more than the grace.
        t[2].t_ms = 80_000;
        f.truth = t.clone();
        let v = check(&f);
        assert!(!v.pass);
        assert!(v.detail.contains("since 20001 ms"), "{}", v.detail);
    }

    #[test]
    fn a_wrong_cycle_buys_no_grace_for_the_fence_after_it() {
        // An isolated host cycled by vigil, then fenced 5 s after the cycle's power-on.
        let mut f = run(200_000);
        f.injected = vec![inj("h1", FailureKind::Isolate, 10_000, None)];
        let mut t = cycle(1, 20_000, "h1", 1, Condition::Isolated).to_vec();
        t.push(off(3, 25_001, "h1", PowerCause::Off, Condition::Isolated));
        f.truth = t;
        let v = check(&f);
        assert!(!v.pass);
        assert!(
            v.detail.starts_with("S2 FAIL: 2 violation(s)"),
            "{}",
            v.detail
        );
        assert!(v.detail.contains("Off power-off seq 3 at 25001 ms by member 1 while Isolated, a host that had been working since the start"), "{}", v.detail);

        // A harness power-cycle in between does restart the clock (and counts as down).
        let mut f = run(200_000);
        f.injected = vec![inj("h1", FailureKind::Isolate, 10_000, None)];
        f.truth = vec![
            harness(1, 20_000, "h1", true, Condition::Isolated),
            harness(2, 21_000, "h1", false, Condition::Isolated),
            off(3, 25_000, "h1", PowerCause::Off, Condition::Isolated),
        ];
        let v = check(&f);
        assert!(v.pass, "{}", v.detail);
        assert!(
            v.detail
                .contains("1 of hosts healthy for ≤ the 30000 ms grace"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn steps_disagreeing_with_truth_count_from_the_last_step() {
        // Crashed at 1 s and never healed in the record, yet truth says Running.
        let mut f = run(200_000);
        f.injected = vec![crash("h1", 1_000)];
        f.truth = vec![off(1, 20_000, "h1", PowerCause::Off, Condition::Running)];
        assert!(check(&f).pass);
        f.truth[0].t_ms = 40_000;
        let v = check(&f);
        assert!(!v.pass);
        assert!(
            v.detail.contains(
                "since 1000 ms (39000 ms > grace 30000 ms); the harness's steps disagree"
            ),
            "{}",
            v.detail
        );
    }

    #[test]
    fn without_bounds_any_working_host_counts() {
        let mut f = run(200_000);
        f.bounds = None;
        f.injected = vec![inj("h1", FailureKind::Crash, 1_000, Some(50_000))];
        f.truth = vec![off(1, 50_001, "h1", PowerCause::Off, Condition::Running)];
        let v = check(&f);
        assert!(!v.pass);
        assert!(v.detail.contains("no grace"), "{}", v.detail);
    }

    proptest! {
        /// Power-offs of hosts whose ground truth says crashed or hung always pass.
        #[test]
        fn power_offs_of_failed_hosts_pass(
            plan in prop::collection::vec((0u8..4, any::<bool>(), any::<bool>(), 0u64..100_000), 0..30)
        ) {
            let mut f = run(10_000_000);
            for (seq, (host, hung, cyc, t)) in plan.into_iter().enumerate() {
                let c = if hung { Condition::Hung } else { Condition::Crashed };
                let cause = if cyc { PowerCause::Cycle } else { PowerCause::Off };
                f.truth.push(off(seq as u64 + 1, t, &format!("h{host}"), cause, c));
            }
            let v = check(&f);
            prop_assert!(v.pass, "{}", v.detail);
        }
    }
}
