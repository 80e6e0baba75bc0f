//! L2 — a dead member's hosts are reassigned within lease and election bounds.
//!
//! **Cases.** Each op `kill`, `links-cut` or `pause` of member `m` at time `t`.
//!
//! **What `m` owned.** From the samples of the *other* members (deltas: each
//! member's running map is kept), their views as of their latest sample at or before
//! `t`; per host the view with the highest epoch stands. `m` owned the hosts whose
//! owner there is `Some(m)`, at epoch `e`.
//!
//! **Bound.** `deadline = t + 2 × bounds.lease_ms + 5 000`: a lease for `m` to be
//! declared dead (which releases its hosts), a lease for a new leader to know who is
//! alive when the dead member was the leader, and 5 s for an election, the
//! assignment round and the observer's sampling.
//!
//! **Rule.** Every such host is seen owned by some other member — `Some(x)`, `x ≠ m`,
//! at an epoch above `e` — in a sample of a member other than `m` taken in
//! `(t, deadline]`. A case is **skipped** (counted) when `m` came back (`restart`,
//! `links-heal` or `resume` of `m`) at or before the deadline, or when at some point
//! in `[t, deadline]` fewer than a majority of the cluster was up (members: every one
//! named by samples, `members`, `final_settings` or ops; down from a `kill`,
//! `links-cut` or `pause` until its `restart`, `links-heal` or `resume`): no quorum,
//! no reassignment. It is **not judged** (counted) when no other member's sample
//! precedes `t` (what `m` owned is unknown), or when a host was not seen reassigned
//! and no other member's sample was taken at or after the deadline. Without bounds,
//! cases are a violation (nothing to measure them against).

use std::collections::{BTreeMap, BTreeSet};

use super::{judge, nothing, Verdict};
use crate::history::{Facts, Ms, Sample};

const DOWN: [&str; 3] = ["kill", "links-cut", "pause"];
const UP: [&str; 3] = ["restart", "links-heal", "resume"];

/// Judge the facts.
pub fn check(f: &Facts) -> Verdict {
    let cases: Vec<(Ms, u64, &str)> = f
        .ops
        .iter()
        .filter(|o| DOWN.contains(&o.kind.as_str()))
        .filter_map(|o| Some((o.t_ms, o.member?, o.kind.as_str())))
        .collect();
    if cases.is_empty() {
        return nothing("L2", "no member killed or cut off");
    }
    let Some(b) = &f.bounds else {
        return judge(
            "L2",
            "no bounds recorded",
            vec![format!(
                "cannot judge {} member kill(s)/cut(s): the run recorded no bounds",
                cases.len()
            )],
        );
    };
    let bound = 2 * b.lease_ms + 5_000;

    let mut samples: Vec<&Sample> = f.samples.iter().collect();
    samples.sort_by_key(|s| s.t_ms);
    let members: BTreeSet<u64> = f
        .samples
        .iter()
        .map(|s| s.member)
        .chain(f.members.iter().map(|m| m.member))
        .chain(f.final_settings.keys().copied())
        .chain(f.ops.iter().filter_map(|o| o.member))
        .collect();
    let majority = members.len() / 2 + 1;

    let mut violations = Vec::new();
    let (mut ok, mut hosts_moved, mut came_back, mut no_quorum, mut unknown, mut unjudged) =
        (0usize, 0usize, 0usize, 0usize, 0usize, 0usize);

    for (t, m, kind) in cases {
        let deadline = t + bound;
        let back = f.ops.iter().any(|o| {
            o.member == Some(m) && UP.contains(&o.kind.as_str()) && o.t_ms > t && o.t_ms <= deadline
        });
        if back {
            came_back += 1;
            continue;
        }
        if !quorum_throughout(f, &members, majority, t, deadline) {
            no_quorum += 1;
            continue;
        }

        // Views of the other members as of t; per host, the highest epoch.
        let mut views: BTreeMap<u64, BTreeMap<&str, (Option<u64>, u64)>> = BTreeMap::new();
        let mut i = 0;
        while i < samples.len() && samples[i].t_ms <= t {
            let s = samples[i];
            if s.member != m {
                let v = views.entry(s.member).or_default();
                for (h, &pair) in &s.owners {
                    v.insert(h.as_str(), pair);
                }
            }
            i += 1;
        }
        if views.is_empty() {
            unknown += 1;
            continue;
        }
        let mut best: BTreeMap<&str, (Option<u64>, u64)> = BTreeMap::new();
        for v in views.values() {
            for (&h, &(o, e)) in v {
                let slot = best.entry(h).or_insert((o, e));
                if e > slot.1 {
                    *slot = (o, e);
                }
            }
        }
        let owned: BTreeMap<&str, u64> = best
            .iter()
            .filter(|(_, (o, _))| *o == Some(m))
            .map(|(h, (_, e))| (*h, *e))
            .collect();

        // Samples after t up to the deadline.
        let mut moved: BTreeMap<&str, (u64, u64, Ms)> = BTreeMap::new();
        let mut later_sample = false;
        for s in &samples[i..] {
            if s.member == m {
                continue;
            }
            if s.t_ms >= deadline {
                later_sample = true;
            }
            if s.t_ms > deadline {
                break;
            }
            let v = views.entry(s.member).or_default();
            for (h, &pair) in &s.owners {
                v.insert(h.as_str(), pair);
            }
            for (h, &e0) in &owned {
                if moved.contains_key(h) {
                    continue;
                }
                if let Some(&(Some(x), e)) = v.get(h) {
                    if x != m && e > e0 {
                        moved.insert(h, (x, e, s.t_ms));
                    }
                }
            }
        }
        let missing: Vec<_> = owned.keys().filter(|h| !moved.contains_key(*h)).collect();
        if missing.is_empty() {
            ok += 1;
            hosts_moved += owned.len();
        } else if !later_sample {
            unjudged += 1;
        } else {
            let list = missing
                .iter()
                .take(5)
                .map(|h| {
                    let now = views
                        .iter()
                        .filter(|(o, _)| **o != m)
                        .filter_map(|(o, v)| v.get(**h).map(|p| (o, p)))
                        .max_by_key(|(_, (_, e))| *e);
                    match now {
                        Some((o, (owner, e))) => format!(
                            "{h} (owned at epoch {}; member {o} sees owner {owner:?} epoch {e})",
                            owned[**h]
                        ),
                        None => format!("{h} (owned at epoch {})", owned[**h]),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            violations.push(format!(
                "member {m} ({kind} at {t} ms): {} of its {} host(s) not reassigned by {deadline} ms (bound {bound} ms): {list}",
                missing.len(),
                owned.len()
            ));
        }
    }

    let summary = format!(
        "{ok} kill(s)/cut(s) with {hosts_moved} host(s) reassigned within {bound} ms; skipped: {came_back} came back in time, {no_quorum} without quorum; not judged: {unknown} with no earlier view, {unjudged} with no sample after the bound"
    );
    judge("L2", &summary, violations)
}

/// Whether at least `majority` of `members` were up all through `[from, to]`.
fn quorum_throughout(
    f: &Facts,
    members: &BTreeSet<u64>,
    majority: usize,
    from: Ms,
    to: Ms,
) -> bool {
    let mut ops: Vec<_> = f
        .ops
        .iter()
        .filter(|o| o.member.is_some() && o.t_ms <= to)
        .filter(|o| DOWN.contains(&o.kind.as_str()) || UP.contains(&o.kind.as_str()))
        .collect();
    ops.sort_by_key(|o| o.t_ms);
    let mut down: BTreeSet<u64> = BTreeSet::new();
    let up = |down: &BTreeSet<u64>| members.len() - down.len() >= majority;
    let mut i = 0;
    while i < ops.len() && ops[i].t_ms <= from {
        apply(&mut down, ops[i]);
        i += 1;
    }
    if !up(&down) {
        return false;
    }
    for o in &ops[i..] {
        apply(&mut down, o);
        if !up(&down) {
            return false;
        }
    }
    true
}

fn apply(down: &mut BTreeSet<u64>, o: &crate::history::Op) {
    let Some(m) = o.member else {
        return;
    };
    if DOWN.contains(&o.kind.as_str()) {
        down.insert(m);
    } else {
        down.remove(&m);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::check::testkit::*;

    // Test bounds: 2 × 5 000 + 5 000 = 15 000 ms.

    fn good() -> Facts {
        let mut f = run(100_000);
        f.ops = vec![op(10_000, "kill", Some(3), None)];
        f.samples = vec![
            sample(
                1_000,
                1,
                1,
                true,
                &[
                    ("h1", Some(1), 1),
                    ("h2", Some(2), 1),
                    ("h3", Some(3), 1),
                    ("h4", Some(3), 1),
                ],
            ),
            sample(
                1_000,
                2,
                1,
                false,
                &[
                    ("h1", Some(1), 1),
                    ("h2", Some(2), 1),
                    ("h3", Some(3), 1),
                    ("h4", Some(3), 1),
                ],
            ),
            sample(
                1_000,
                3,
                1,
                false,
                &[
                    ("h1", Some(1), 1),
                    ("h2", Some(2), 1),
                    ("h3", Some(3), 1),
                    ("h4", Some(3), 1),
                ],
            ),
            sample(16_000, 1, 1, true, &[("h3", None, 2), ("h4", None, 2)]),
            sample(18_000, 1, 1, true, &[("h3", Some(1), 3)]),
            sample(
                19_000,
                2,
                1,
                false,
                &[("h3", Some(1), 3), ("h4", Some(2), 3)],
            ),
            sample(40_000, 1, 1, true, &[("h4", Some(2), 3)]),
        ];
        f
    }

    #[test]
    fn reassigned_hosts_pass() {
        let v = check(&good());
        assert!(v.pass, "{}", v.detail);
        assert!(
            v.detail
                .contains("1 kill(s)/cut(s) with 2 host(s) reassigned within 15000 ms"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn nothing_to_judge_without_kills() {
        let v = check(&run(10));
        assert!(v.pass && v.detail.contains("nothing to judge"));
    }

    #[test]
    fn dead_member_still_owning_hosts_after_the_bound_fails() {
        let mut f = good();
        f.samples.truncate(3);
        f.samples.push(sample(30_000, 1, 1, true, &[]));
        let v = check(&f);
        assert!(!v.pass);
        assert!(v.detail.contains("member 3 (kill at 10000 ms): 2 of its 2 host(s) not reassigned by 25000 ms (bound 15000 ms): h3 (owned at epoch 1; member 2 sees owner Some(3) epoch 1)"), "{}", v.detail);
    }

    #[test]
    fn reassignment_after_the_bound_fails() {
        let mut f = good();
        f.samples[5].t_ms = 26_000;
        let v = check(&f);
        assert!(!v.pass);
        assert!(
            v.detail.contains("1 of its 2 host(s) not reassigned"),
            "{}",
            v.detail
        );
        assert!(
            v.detail
                .contains("h4 (owned at epoch 1; member 1 sees owner None epoch 2)"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn restart_in_time_or_lost_quorum_skips() {
        let mut f = good();
        f.samples.truncate(3);
        f.samples.push(sample(30_000, 1, 1, true, &[]));
        f.ops.push(op(20_000, "restart", Some(3), None));
        let v = check(&f);
        assert!(v.pass, "{}", v.detail);
        assert!(v.detail.contains("1 came back in time"), "{}", v.detail);
        f.ops[1] = op(12_000, "links-cut", Some(2), None);
        let v = check(&f);
        assert!(v.pass, "{}", v.detail);
        assert!(v.detail.contains("2 without quorum"), "{}", v.detail);
    }

    #[test]
    fn no_view_or_no_later_sample_is_not_judged() {
        let mut f = good();
        f.samples.retain(|s| s.t_ms > 1_000);
        let v = check(&f);
        assert!(
            v.pass && v.detail.contains("1 with no earlier view"),
            "{}",
            v.detail
        );
        let mut f = good();
        f.samples.truncate(4);
        let v = check(&f);
        assert!(
            v.pass && v.detail.contains("1 with no sample after the bound"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn without_bounds_kills_are_not_judged_and_fail() {
        let mut f = good();
        f.bounds = None;
        assert!(!check(&f).pass);
    }

    proptest! {
        /// A killed member whose hosts all move to another member right away passes,
        /// whoever it was and however many hosts it had.
        #[test]
        fn prompt_reassignment_passes(victim in 1u64..=5, hosts in 0usize..8, delay in 1u64..15_000) {
            let mut f = run(100_000);
            f.ops = vec![op(10_000, "kill", Some(victim), None)];
            let owners: Vec<(String, u64)> = (0..hosts).map(|i| (format!("h{i}"), (i as u64 % 5) + 1)).collect();
            for m in 1..=5u64 {
                let pairs: Vec<_> = owners.iter().map(|(h, o)| (h.as_str(), Some(*o), 1)).collect();
                f.samples.push(sample(1_000, m, 1, m == 1, &pairs));
            }
            let heir = if victim == 1 { 2 } else { 1 };
            let moved: Vec<_> = owners
                .iter()
                .filter(|(_, o)| *o == victim)
                .map(|(h, _)| (h.as_str(), Some(heir), 2))
                .collect();
            f.samples.push(sample(10_000 + delay, heir, 1, true, &moved));
            f.samples.push(sample(50_000, heir, 1, true, &[]));
            let v = check(&f);
            prop_assert!(v.pass, "{}", v.detail);
            prop_assert!(v.detail.contains("1 kill(s)/cut(s)"), "{}", v.detail);
        }
    }
}
