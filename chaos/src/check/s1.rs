//! S1 — at most one effective fence per host failure, and no more power cycles per
//! failure than the recovery attempts allow.
//!
//! **Vigil's power-offs** are the ground-truth changes with `off == true` made by a
//! power driver: cause `Off` (a fence) or `Cycle` (the first half of a recovery),
//! with or without a member name (changes made through the sim Redfish server carry
//! none). Ground truth records only real transitions, so an `Off` on a host already
//! off leaves nothing to count: "effective" fences.
//!
//! **Incidents.** For each host `h`, an incident opens at every `Injected` of `h`
//! (at its `at`) and, once `h` has been injected at least once, at every harness
//! power-on of `h` (a `Truth` with cause `Harness`, `off == false`) and every
//! `unfence` op of `h`: a host the harness or an operator returned to service and
//! that vigil fences again is a new decision, not a second fence of the same one. An
//! incident lasts until the next one of the same host opens, or the end of the run.
//! Steps at the same millisecond as a power change count as before it (see
//! `check::timeline`).
//!
//! **Rule.** In every incident: fences (cause `Off`) ≤ 1, and cycle power-offs
//! (cause `Cycle`) ≤ `bounds.recovery_attempts` (not judged when the run recorded no
//! bounds; the detail says so). Any vigil power-off of a host before its first
//! injection, or of a host never injected, is a violation too ("outside every
//! incident"; S2 reports it as the fence of a healthy host).

use std::collections::BTreeMap;

use super::{by_driver, describe, is_unfence, judge, nothing, step_host, timeline, Step, Verdict};
use crate::history::{Facts, PowerCause, Truth};

/// One incident of one host and the power-offs vigil made during it.
struct Incident<'a> {
    host: &'a str,
    opened_by: String,
    fences: Vec<&'a Truth>,
    cycles: Vec<&'a Truth>,
}

/// Judge the facts.
pub fn check(f: &Facts) -> Verdict {
    let mut incidents: Vec<Incident<'_>> = Vec::new();
    // Host -> index of its open incident (present once the host was injected).
    let mut open: BTreeMap<&str, usize> = BTreeMap::new();
    let mut outside: Vec<String> = Vec::new();
    let mut vigil_offs = 0usize;

    for (t, step) in timeline(f) {
        let Some(host) = step_host(&step) else {
            continue;
        };
        let opened_by = match step {
            Step::Inject(i) => Some(format!("{:?} injected at {t} ms", i.kind)),
            Step::Op(o) if is_unfence(o) && open.contains_key(host) => {
                Some(format!("unfence op at {t} ms"))
            }
            Step::Truth(p)
                if p.cause == PowerCause::Harness && !p.off && open.contains_key(host) =>
            {
                Some(format!("harness power-on seq {} at {t} ms", p.seq))
            }
            _ => None,
        };
        if let Some(opened_by) = opened_by {
            open.insert(host, incidents.len());
            incidents.push(Incident {
                host,
                opened_by,
                fences: Vec::new(),
                cycles: Vec::new(),
            });
            continue;
        }
        let Step::Truth(p) = step else {
            continue;
        };
        if !(p.off && by_driver(p)) {
            continue;
        }
        vigil_offs += 1;
        match open.get(host) {
            Some(&i) => match p.cause {
                PowerCause::Off => incidents[i].fences.push(p),
                _ => incidents[i].cycles.push(p),
            },
            None => {
                let when = match f
                    .injected
                    .iter()
                    .filter(|i| i.host == host)
                    .map(|i| i.at)
                    .min()
                {
                    Some(first) => format!("before its first injection at {first} ms"),
                    None => "never injected".to_string(),
                };
                outside.push(format!(
                    "host {host}: {} outside every incident ({when})",
                    describe(p)
                ));
            }
        }
    }

    if f.injected.is_empty() && vigil_offs == 0 {
        return nothing("S1", "no injected failures");
    }

    let attempts = f.bounds.as_ref().map(|b| b.recovery_attempts);
    let mut violations = Vec::new();
    for inc in &incidents {
        if inc.fences.len() > 1 {
            violations.push(format!(
                "host {}: {} fences in one incident (opened by {}): {}",
                inc.host,
                inc.fences.len(),
                inc.opened_by,
                list(&inc.fences)
            ));
        }
        if let Some(a) = attempts {
            if inc.cycles.len() > a as usize {
                violations.push(format!(
                    "host {}: {} power cycles in one incident (opened by {}), {a} recovery attempt(s) allowed: {}",
                    inc.host,
                    inc.cycles.len(),
                    inc.opened_by,
                    list(&inc.cycles)
                ));
            }
        }
    }
    violations.extend(outside.iter().cloned());

    let hosts: std::collections::BTreeSet<&str> =
        f.injected.iter().map(|i| i.host.as_str()).collect();
    let fences: usize = incidents.iter().map(|i| i.fences.len()).sum();
    let cycles: usize = incidents.iter().map(|i| i.cycles.len()).sum();
    let mut summary = format!(
        "{} failures on {} hosts, {} incidents, {fences} fences, {cycles} cycles",
        f.injected.len(),
        hosts.len(),
        incidents.len()
    );
    if !outside.is_empty() {
        summary.push_str(&format!(", {} power-offs outside incidents", outside.len()));
    }
    match attempts {
        Some(a) => summary.push_str(&format!(" (≤ 1 fence and ≤ {a} cycles per incident)")),
        None => summary.push_str(" (cycle count not judged: the run recorded no bounds)"),
    }
    judge("S1", &summary, violations)
}

fn list(offs: &[&Truth]) -> String {
    offs.iter()
        .map(|p| describe(p))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::check::testkit::*;
    use crate::history::{Condition, FailureKind};

    #[test]
    fn one_fence_per_failure_passes_and_counts() {
        let mut f = run(100_000);
        f.injected = vec![crash("h1", 1_000), crash("h2", 2_000)];
        let [c1, c2] = cycle(1, 10_000, "h1", 1, Condition::Crashed);
        f.truth = vec![c1, c2, fence(3, 20_000, "h1", 1), fence(4, 21_000, "h2", 2)];
        let v = check(&f);
        assert!(v.pass, "{}", v.detail);
        assert!(
            v.detail
                .contains("2 failures on 2 hosts, 2 incidents, 2 fences, 1 cycles"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn nothing_to_judge_without_failures() {
        let v = check(&run(10_000));
        assert!(v.pass);
        assert!(v.detail.contains("nothing to judge (no injected failures)"));
    }

    #[test]
    fn planted_double_fence_fails_with_both_witnesses() {
        let mut f = run(100_000);
        f.injected = vec![crash("h1", 1_000)];
        // Fenced by 1, powered back on by vigil (S1b's business), fenced again by 2.
        f.truth = vec![
            fence(1, 10_000, "h1", 1),
            truth(
                2,
                11_000,
                "h1",
                false,
                PowerCause::On,
                Some(1),
                Condition::Crashed,
            ),
            fence(3, 12_000, "h1", 2),
        ];
        let v = check(&f);
        assert!(!v.pass, "{}", v.detail);
        assert!(
            v.detail.contains("host h1: 2 fences in one incident"),
            "{}",
            v.detail
        );
        assert!(
            v.detail.contains("seq 1 at 10000 ms by member 1"),
            "{}",
            v.detail
        );
        assert!(
            v.detail.contains("seq 3 at 12000 ms by member 2"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn too_many_cycles_fail() {
        let mut f = run(100_000);
        f.injected = vec![inj("h1", FailureKind::Hang, 1_000, None)];
        let [a, b] = cycle(1, 10_000, "h1", 1, Condition::Hung);
        let [c, d] = cycle(3, 20_000, "h1", 2, Condition::Hung);
        f.truth = vec![a, b, c, d];
        let v = check(&f);
        assert!(!v.pass);
        assert!(
            v.detail.contains("2 power cycles in one incident")
                && v.detail.contains("1 recovery attempt(s) allowed"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn fence_of_a_never_injected_host_fails() {
        let mut f = run(100_000);
        f.injected = vec![crash("h1", 1_000)];
        f.truth = vec![
            fence(1, 5_000, "h1", 1),
            truth(
                2,
                6_000,
                "h2",
                true,
                PowerCause::Off,
                Some(3),
                Condition::Running,
            ),
            fence(3, 500, "h1", 1),
        ];
        // seq 3 at 500 ms comes before h1's injection.
        let v = check(&f);
        assert!(!v.pass);
        assert!(v.detail.contains("host h2: Off power-off seq 2 at 6000 ms by member 3 outside every incident (never injected)"), "{}", v.detail);
        assert!(
            v.detail.contains("before its first injection at 1000 ms"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn a_harness_power_on_or_unfence_opens_a_new_incident() {
        let mut f = run(100_000);
        f.injected = vec![inj("h1", FailureKind::Crash, 1_000, None)];
        f.truth = vec![
            fence(1, 10_000, "h1", 1),
            harness(2, 20_000, "h1", false, Condition::Crashed),
            fence(3, 30_000, "h1", 2),
        ];
        let v = check(&f);
        assert!(v.pass, "{}", v.detail);
        assert!(v.detail.contains("2 incidents, 2 fences"), "{}", v.detail);

        // An unfence op without a power-on by the harness: vigil's later power-on is
        // S1b's business; here the second fence is a new incident.
        f.truth[1] = truth(
            2,
            20_000,
            "h1",
            false,
            PowerCause::On,
            Some(1),
            Condition::Crashed,
        );
        f.ops = vec![op(19_000, "unfence", None, Some("h1"))];
        assert!(check(&f).pass);
        f.ops.clear();
        assert!(!check(&f).pass);
    }

    #[test]
    fn a_new_injection_opens_a_new_incident() {
        let mut f = run(100_000);
        f.injected = vec![crash("h1", 1_000), crash("h1", 40_000)];
        f.truth = vec![
            fence(1, 10_000, "h1", 1),
            harness(2, 20_000, "h1", false, Condition::Running),
            fence(3, 50_000, "h1", 2),
        ];
        assert!(check(&f).pass);
    }

    #[test]
    fn without_bounds_cycles_are_not_judged_but_fences_are() {
        let mut f = run(100_000);
        f.bounds = None;
        f.injected = vec![crash("h1", 1_000)];
        let [a, b] = cycle(1, 10_000, "h1", 1, Condition::Crashed);
        let [c, d] = cycle(3, 20_000, "h1", 1, Condition::Crashed);
        f.truth = vec![a, b, c, d];
        let v = check(&f);
        assert!(v.pass, "{}", v.detail);
        assert!(v.detail.contains("cycle count not judged"), "{}", v.detail);
    }

    proptest! {
        /// Any history with at most one fence and at most `recovery_attempts` cycles
        /// per injection passes; adding one more fence to an incident fails.
        #[test]
        fn at_most_one_fence_per_injection_passes(
            plan in prop::collection::vec((0u8..3, 0usize..2, any::<bool>()), 1..12)
        ) {
            let mut f = run(10_000_000);
            let mut seq = 0;
            for (i, (host, fences, cycles)) in plan.iter().enumerate() {
                let host = format!("h{host}");
                let at = 1_000 + i as u64 * 100_000;
                f.injected.push(crash(&host, at));
                let mut t = at + 1_000;
                if *cycles {
                    seq += 2;
                    f.truth.extend(cycle(seq - 1, t, &host, 1, Condition::Crashed));
                    t += 1_000;
                }
                for _ in 0..*fences {
                    seq += 1;
                    f.truth.push(fence(seq, t, &host, 2));
                    t += 1_000;
                }
            }
            let v = check(&f);
            prop_assert!(v.pass, "{}", v.detail);

            // One more fence right after the last one, with a vigil power-on between.
            let last = f.injected.last().unwrap().clone();
            let t = last.at + 50_000;
            f.truth.push(truth(seq + 1, t, &last.host, false, PowerCause::On, Some(1), Condition::Crashed));
            f.truth.push(fence(seq + 2, t + 1, &last.host, 1));
            f.truth.push(truth(seq + 3, t + 2, &last.host, false, PowerCause::On, Some(1), Condition::Crashed));
            f.truth.push(fence(seq + 4, t + 3, &last.host, 1));
            prop_assert!(!check(&f).pass);
        }
    }
}
