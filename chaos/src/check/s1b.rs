//! S1b — HA never powers a fenced host back on (until the harness or an operator does).
//!
//! Two rules, the second covering what ground truth cannot show:
//!
//! 1. **Ground truth.** After a fence of host `h` (a `Truth` with `off == true`,
//!    cause `Off`: a power driver's, with or without a member name), no later
//!    power-on of `h` by a power driver (cause `On` or `Cycle`, `off == false`) unless
//!    in between the harness powered `h` on itself (cause `Harness`, `off == false`)
//!    or an `unfence` op of `h` came (steps at the same millisecond as a power change
//!    count as before it). The witness names both changes with their seq and times.
//!
//! 2. **Replicated events.** Ground truth records real transitions only: a fence of a
//!    host that a power cycle had just left off (another member's cycle racing it)
//!    leaves no record, and that cycle's power-on then looks like the cycle's own
//!    second half. Vigil's own history shows it: a host leaves `fenced` for
//!    `initializing` only when it is seen powered on again or an operator un-fences
//!    it (engine `Host::power` / `Admin::Unfence`). So for each host, the number of
//!    `transition` events `fenced -> initializing` must not exceed the harness's
//!    power-ons of that host plus its `unfence` ops. Counting needs no clock shared by
//!    events (`at_wall`) and ground truth (`t_ms`); a truncated event history only
//!    undercounts. Hosts whose BMC may lie about power (fault `lies` / `LiesAboutPower`
//!    at an injection or as a `bmc-fault` op's detail) are left out of this rule: a lie can
//!    take a fenced host to `initializing` with nothing powered on. A host already
//!    reported by rule 1 is not reported again.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    by_driver, describe, is_unfence, judge, nothing, step_host, timeline, transition_from,
    transition_to, Step, Verdict,
};
use crate::history::{Facts, PowerCause, Truth};

/// Judge the facts.
pub fn check(f: &Facts) -> Verdict {
    let mut fenced: BTreeMap<&str, &Truth> = BTreeMap::new();
    let mut violations = Vec::new();
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    let mut fences = 0usize;
    let mut returns = 0usize;
    // Per host: harness power-ons plus unfence ops.
    let mut allowed: BTreeMap<&str, usize> = BTreeMap::new();

    for (t, step) in timeline(f) {
        let Some(host) = step_host(&step) else {
            continue;
        };
        match step {
            Step::Op(o) if is_unfence(o) => {
                *allowed.entry(host).or_default() += 1;
                if fenced.remove(host).is_some() {
                    returns += 1;
                }
            }
            Step::Truth(p) if p.cause == PowerCause::Harness && !p.off => {
                *allowed.entry(host).or_default() += 1;
                if fenced.remove(host).is_some() {
                    returns += 1;
                }
            }
            Step::Truth(p) if p.off && p.cause == PowerCause::Off => {
                fences += 1;
                fenced.insert(host, p);
            }
            Step::Truth(p) if !p.off && by_driver(p) => {
                if let Some(fence) = fenced.remove(host) {
                    reported.insert(host);
                    violations.push(format!(
                        "host {host}: {} after its fence ({}) with no harness power-on or unfence in between ({} ms fenced)",
                        describe(p),
                        describe(fence),
                        t.saturating_sub(fence.t_ms)
                    ));
                }
            }
            _ => {}
        }
    }

    // Rule 2: vigil's own count of fenced hosts seen powered on again.
    let liars: BTreeSet<&str> = f
        .injected
        .iter()
        .filter(|i| lies(&i.bmc_fault))
        .map(|i| i.host.as_str())
        .chain(
            f.ops
                .iter()
                .filter(|o| o.kind == "bmc-fault" && lies(&o.detail))
                .filter_map(|o| o.host.as_deref()),
        )
        .collect();
    let mut back_on: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for e in &f.events {
        let Some(host) = e.host.as_deref() else {
            continue;
        };
        if e.kind == "transition"
            && transition_from(&e.detail).as_deref() == Some("fenced")
            && transition_to(&e.detail).as_deref() == Some("initializing")
        {
            back_on.entry(host).or_default().push(e.seq);
        }
    }
    let mut skipped_liars = 0usize;
    for (host, seqs) in &back_on {
        if liars.contains(host) {
            skipped_liars += 1;
            continue;
        }
        let ok = allowed.get(host).copied().unwrap_or(0);
        if seqs.len() > ok && !reported.contains(host) {
            violations.push(format!(
                "host {host}: vigil's events show {} return(s) from fenced to initializing (event seq {}) but the harness powered it on or un-fenced it only {ok} time(s): a fenced host was powered on by HA",
                seqs.len(),
                seqs.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            ));
        }
    }

    let event_returns: usize = back_on.values().map(Vec::len).sum();
    if fences == 0 && event_returns == 0 && violations.is_empty() {
        return nothing("S1b", "no fences");
    }
    let mut summary = format!(
        "{fences} fences in ground truth, {returns} returned to service by the harness or an operator; {event_returns} fenced -> initializing event(s) on {} host(s)",
        back_on.len()
    );
    if skipped_liars > 0 {
        summary.push_str(&format!(
            " ({skipped_liars} host(s) with a lying BMC not counted)"
        ));
    }
    judge("S1b", &summary, violations)
}

/// Whether a BMC fault, as the harness names it (`lies`, or the sim's
/// `LiesAboutPower`), makes the BMC lie about power.
fn lies(fault: &str) -> bool {
    fault.trim() == "lies" || fault.contains("LiesAboutPower")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::check::testkit::*;
    use crate::history::{Condition, FailureKind};

    fn on(seq: u64, t: u64, host: &str, cause: PowerCause, member: u64) -> Truth {
        truth(seq, t, host, false, cause, Some(member), Condition::Crashed)
    }

    #[test]
    fn fence_then_harness_power_on_then_vigil_cycle_passes() {
        let mut f = run(100_000);
        f.injected = vec![crash("h1", 1_000)];
        let [a, b] = cycle(3, 30_000, "h1", 2, Condition::Crashed);
        f.truth = vec![
            fence(1, 10_000, "h1", 1),
            harness(2, 20_000, "h1", false, Condition::Crashed),
            a,
            b,
        ];
        f.events = vec![event(
            7,
            0,
            Some("h1"),
            None,
            "transition",
            "fenced -> initializing",
        )];
        let v = check(&f);
        assert!(v.pass, "{}", v.detail);
        assert!(
            v.detail.contains("1 fences in ground truth, 1 returned"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn nothing_to_judge_without_fences() {
        let v = check(&run(1_000));
        assert!(v.pass);
        assert!(v.detail.contains("nothing to judge (no fences)"));
    }

    #[test]
    fn power_on_after_fence_fails() {
        let mut f = run(100_000);
        f.truth = vec![
            fence(1, 10_000, "h1", 1),
            on(2, 12_500, "h1", PowerCause::Cycle, 2),
        ];
        let v = check(&f);
        assert!(!v.pass);
        assert!(
            v.detail.contains("host h1: Cycle power-on seq 2 at 12500 ms by member 2 after its fence (Off power-off seq 1 at 10000 ms by member 1)"),
            "{}",
            v.detail
        );
        assert!(v.detail.contains("2500 ms fenced"), "{}", v.detail);
    }

    #[test]
    fn unfence_op_between_allows_the_power_on() {
        let mut f = run(100_000);
        f.truth = vec![
            fence(1, 10_000, "h1", 1),
            on(2, 12_000, "h1", PowerCause::On, 1),
        ];
        f.ops = vec![op(11_000, "unfence", None, Some("h1"))];
        assert!(check(&f).pass);
        // An unfence of another host does not.
        f.ops[0].host = Some("h2".into());
        assert!(!check(&f).pass);
    }

    #[test]
    fn racing_cycle_undoing_an_unrecorded_fence_fails_from_events() {
        // Member 1's cycle powers off, member 2's fence finds the host off (no record),
        // member 1's cycle powers it back on: vigil saw its fenced host come back.
        let mut f = run(100_000);
        f.truth = cycle(1, 10_000, "h1", 1, Condition::Crashed).to_vec();
        f.events = vec![
            event(5, 0, Some("h1"), None, "transition", "fencing -> fenced"),
            event(
                6,
                0,
                Some("h1"),
                None,
                "transition",
                "fenced -> initializing",
            ),
        ];
        let v = check(&f);
        assert!(!v.pass, "{}", v.detail);
        assert!(v.detail.contains("host h1: vigil's events show 1 return(s) from fenced to initializing (event seq 6)"), "{}", v.detail);

        // A lying BMC explains it: not counted.
        let mut i = inj("h1", FailureKind::Crash, 1_000, None);
        i.bmc_fault = "LiesAboutPower".into();
        f.injected = vec![i];
        let v = check(&f);
        assert!(v.pass, "{}", v.detail);
        assert!(v.detail.contains("1 host(s) with a lying BMC not counted"));
        // As the nemesis names it, in a bmc-fault op.
        f.injected.clear();
        let mut o = op(500, "bmc-fault", None, Some("h1"));
        o.detail = "lies".into();
        f.ops = vec![o];
        assert!(check(&f).pass);
    }

    proptest! {
        /// Any history where each vigil power-on of a fenced host follows a harness
        /// power-on passes.
        #[test]
        fn power_ons_after_a_harness_power_on_pass(
            plan in prop::collection::vec((0u8..3, any::<bool>()), 1..20)
        ) {
            let mut f = run(10_000_000);
            let mut seq = 0;
            let mut t = 1_000;
            for (host, harness_first) in plan {
                let host = format!("h{host}");
                seq += 1;
                f.truth.push(fence(seq, t, &host, 1));
                seq += 1;
                t += 100;
                if harness_first {
                    f.truth.push(harness(seq, t, &host, false, Condition::Crashed));
                } else {
                    f.ops.push(op(t, "unfence", None, Some(&host)));
                    f.truth.push(on(seq, t + 1, &host, PowerCause::On, 2));
                }
                t += 100;
                let [a, b] = cycle(seq + 1, t, &host, 2, Condition::Crashed);
                seq += 2;
                f.truth.push(a);
                f.truth.push(b);
                t += 100;
            }
            let v = check(&f);
            prop_assert!(v.pass, "{}", v.detail);
        }
    }
}
