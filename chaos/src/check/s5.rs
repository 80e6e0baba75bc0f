//! S5 — one owner per host at a time; a BMC is touched only by a member cleared to.
//!
//! Two rules:
//!
//! 1. **One owner per (host, epoch).** Vigil bumps a host's epoch at every change of
//!    owner, releases included, so an epoch names exactly one owner (or none). From
//!    `samples` (deltas per member: each member's running map is kept, and every pair
//!    a sample carries is one report): all reports of a (host, epoch) pair, by any
//!    member at any time, name the same owner (`None` included). The witness names
//!    both reports with member and time.
//! 2. **Begin records.** Every power change by a named member `m` of host `h` (a
//!    ground-truth change with cause `Off`, `On` or `Cycle` and `member == Some(m)`)
//!    is covered by an `IntentFact` of host `h` whose `begun_by` contains `m`, of the
//!    matching kind: a `fence` intent for cause `Off`, a `recover` intent for cause
//!    `Cycle`, any intent for cause `On`. If the run recorded no intents at all while
//!    members changed power, that fails with its own message (a run that did not
//!    record intents cannot be told from a vigil that wrote none). Changes by a
//!    driver the fleet could not name (`member == None`) cannot be attributed: they
//!    are counted in the detail, not judged.

use std::collections::{BTreeMap, BTreeSet};

use super::{by_driver, describe, judge, nothing, Verdict};
use crate::history::{Facts, PowerCause};

/// Judge the facts.
pub fn check(f: &Facts) -> Verdict {
    let changes: Vec<_> = f.truth.iter().filter(|p| by_driver(p)).collect();
    if f.samples.is_empty() && changes.is_empty() {
        return nothing("S5", "no samples and no power changes by vigil");
    }
    let mut violations = Vec::new();

    // 1. One owner per (host, epoch).
    let mut order: Vec<usize> = (0..f.samples.len()).collect();
    order.sort_by_key(|&i| (f.samples[i].t_ms, i));
    let mut views: BTreeMap<u64, BTreeMap<&str, (Option<u64>, u64)>> = BTreeMap::new();
    // (host, epoch) -> (owner, first reporter, at).
    let mut named: BTreeMap<(&str, u64), (Option<u64>, u64, u64)> = BTreeMap::new();
    let mut reports = 0usize;
    let mut conflicting: BTreeSet<(&str, u64)> = BTreeSet::new();
    for i in order {
        let s = &f.samples[i];
        let view = views.entry(s.member).or_default();
        for (host, &(owner, epoch)) in &s.owners {
            view.insert(host.as_str(), (owner, epoch));
            reports += 1;
            let first = *named
                .entry((host.as_str(), epoch))
                .or_insert((owner, s.member, s.t_ms));
            if first.0 != owner && conflicting.insert((host.as_str(), epoch)) {
                violations.push(format!(
                    "host {host} epoch {epoch}: member {} saw owner {:?} at {} ms, member {} saw owner {owner:?} at {} ms",
                    first.1, first.0, first.2, s.member, s.t_ms
                ));
            }
        }
    }

    // 2. Begin records.
    let mut intents: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for i in &f.intents {
        intents.entry(i.host.as_str()).or_default().push(i);
    }
    let (mut covered, mut unnamed) = (0usize, 0usize);
    let named_changes = changes.iter().filter(|p| p.member.is_some()).count();
    if f.intents.is_empty() && named_changes > 0 {
        violations.push(format!(
            "{named_changes} power change(s) by members but no intents recorded at all (first: host {}: {})",
            changes.iter().find(|p| p.member.is_some()).map_or("?", |p| p.host.as_str()),
            changes
                .iter()
                .find(|p| p.member.is_some())
                .map_or(String::new(), |p| describe(p))
        ));
    } else {
        for p in &changes {
            let Some(m) = p.member else {
                unnamed += 1;
                continue;
            };
            let want = match p.cause {
                PowerCause::Off => Some("fence"),
                PowerCause::Cycle => Some("recover"),
                _ => None,
            };
            let on_host = intents.get(p.host.as_str()).map_or(&[][..], Vec::as_slice);
            let ok = on_host
                .iter()
                .any(|i| i.begun_by.contains(&m) && want.is_none_or(|k| i.kind.starts_with(k)));
            if ok {
                covered += 1;
            } else {
                let known = if on_host.is_empty() {
                    "no intent on that host".to_string()
                } else {
                    on_host
                        .iter()
                        .map(|i| format!("#{} {} begun by {:?}", i.id, i.kind, i.begun_by))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                violations.push(format!(
                    "host {}: {} without a begin record of member {m} on a {} intent ({known})",
                    p.host,
                    describe(p),
                    want.unwrap_or("any")
                ));
            }
        }
    }

    let summary = format!(
        "{reports} owner reports from {} member(s) over {} (host, epoch) pairs; {covered} of {} power changes by vigil covered by a begin record, {unnamed} by an unnamed driver not attributable",
        views.len(),
        named.len(),
        changes.len()
    );
    judge("S5", &summary, violations)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::check::testkit::*;
    use crate::history::Condition;

    fn good() -> Facts {
        let mut f = run(100_000);
        f.samples = vec![
            sample(1_000, 1, 1, true, &[("h1", Some(1), 1), ("h2", Some(2), 1)]),
            sample(
                1_000,
                2,
                1,
                false,
                &[("h1", Some(1), 1), ("h2", Some(2), 1)],
            ),
            // Member 2 dies: h2 released (epoch 2), then given to 1 (epoch 3).
            sample(9_000, 1, 1, true, &[("h2", None, 2)]),
            sample(10_000, 1, 1, true, &[("h2", Some(1), 3)]),
        ];
        let [a, b] = cycle(1, 20_000, "h2", 1, Condition::Crashed);
        f.truth = vec![a, b, fence(3, 30_000, "h2", 1)];
        f.intents = vec![
            intent(7, "h2", "recover", &[2, 1]),
            intent(8, "h2", "fence", &[1]),
        ];
        f
    }

    #[test]
    fn agreeing_owners_and_covered_changes_pass() {
        let v = check(&good());
        assert!(v.pass, "{}", v.detail);
        assert!(v.detail.contains("6 owner reports from 2 member(s) over 4 (host, epoch) pairs; 3 of 3 power changes by vigil covered"), "{}", v.detail);
    }

    #[test]
    fn nothing_to_judge_in_an_empty_run() {
        let v = check(&run(10));
        assert!(v.pass && v.detail.contains("nothing to judge"));
    }

    #[test]
    fn two_owners_for_one_epoch_fail() {
        let mut f = good();
        f.samples
            .push(sample(11_000, 2, 1, false, &[("h2", Some(2), 3)]));
        let v = check(&f);
        assert!(!v.pass);
        assert!(v.detail.contains("host h2 epoch 3: member 1 saw owner Some(1) at 10000 ms, member 2 saw owner Some(2) at 11000 ms"), "{}", v.detail);
    }

    #[test]
    fn power_change_without_begin_record_fails() {
        let mut f = good();
        f.truth.push(fence(4, 40_000, "h2", 3));
        f.truth.push(fence(5, 41_000, "h9", 1));
        let v = check(&f);
        assert!(!v.pass);
        assert!(v.detail.contains("host h2: Off power-off seq 4 at 40000 ms by member 3 without a begin record of member 3 on a fence intent (#7 recover begun by [2, 1], #8 fence begun by [1])"), "{}", v.detail);
        assert!(v.detail.contains("host h9: Off power-off seq 5 at 41000 ms by member 1 without a begin record of member 1 on a fence intent (no intent on that host)"), "{}", v.detail);
    }

    #[test]
    fn a_fence_under_a_recover_begin_fails() {
        let mut f = good();
        f.intents.pop();
        let v = check(&f);
        assert!(!v.pass);
        assert!(v.detail.contains("seq 3 at 30000 ms by member 1 without a begin record of member 1 on a fence intent"), "{}", v.detail);
    }

    #[test]
    fn no_intents_recorded_fails() {
        let mut f = good();
        f.intents.clear();
        let v = check(&f);
        assert!(!v.pass);
        assert!(v.detail.contains("3 power change(s) by members but no intents recorded at all (first: host h2: Cycle power-off seq 1"), "{}", v.detail);
    }

    #[test]
    fn unnamed_drivers_are_counted_not_judged() {
        let mut f = good();
        f.truth.push(truth(
            4,
            50_000,
            "h1",
            true,
            PowerCause::Off,
            None,
            Condition::Crashed,
        ));
        let v = check(&f);
        assert!(v.pass, "{}", v.detail);
        assert!(v.detail.contains("1 by an unnamed driver"), "{}", v.detail);
    }

    proptest! {
        /// Samples whose owner is a function of (host, epoch) always pass, whatever
        /// members report them and in whatever order.
        #[test]
        fn owners_as_a_function_of_the_epoch_pass(
            reports in prop::collection::vec((0u64..4, 0u8..5, 0u64..6, 0u64..1_000), 0..60)
        ) {
            let mut f = run(10_000);
            let owner = |h: u8, e: u64| if (h as u64 + e) % 4 == 0 { None } else { Some((h as u64 * 7 + e) % 3) };
            for (member, host, epoch, t) in reports {
                let h = format!("h{host}");
                f.samples.push(sample(t, member, 1, false, &[(&h, owner(host, epoch), epoch)]));
            }
            let v = check(&f);
            prop_assert!(v.pass, "{}", v.detail);
        }
    }
}
