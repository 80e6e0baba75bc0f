//! S3 — the fence budget of a pool is never exceeded in any window, in the replicated
//! ledger and in ground truth, across leader changes.
//!
//! Budget `B = bounds.fence_budget`, window `W = bounds.budget_window_ms` (the same for
//! every pool: `Bounds` carries one budget).
//!
//! **Ledger.** Per pool, the fence entries (`LedgerFact.fence`) sorted by `at_wall`:
//! in every window `(t − W, t]` — the window vigil's budget uses
//! (`engine::pool::budget`) — at most `B` entries. The ledger holds every fence that
//! still counts against a budget, whatever leader wrote it, so a leader change that
//! forgot the budget shows here.
//!
//! **Ground truth.** Per pool, the fence power-offs (`off == true`, cause `Off`, by a
//! power driver) sorted by `t_ms`: at most `B` in every window `(t − W_t, t]` with
//! `W_t = W − D`, `D = 2 × bounds.lease_ms + 2 × bounds.fence_ms + 5 000`. A power-off
//! lands some time after its ledger entry: at most the fence time, or, when the
//! executor dies mid-fence, the lease that declares it dead, the new owner's wait
//! (lease + longest action) and its own fence time; 5 s allow for scheduling and the
//! offset between the members' wall clocks and the harness's clock. Two power-offs
//! whose ledger entries were more than `W` apart can thus be as little as `W − D`
//! apart: a window of `W` would blame vigil for a budget it kept. When `W ≤ D` the
//! ground-truth count is not judged (the detail says so).
//!
//! **Pools of hosts** (for ground truth): the pool of the host's latest ledger entry;
//! else of the latest replicated event naming both the host and a pool; else the
//! single pool `?`.
//!
//! Windows slide over the sorted times in O(n) per pool.

use std::collections::BTreeMap;

use super::{by_driver, judge, nothing, Verdict};
use crate::history::{Facts, PowerCause};

/// The largest number of `times` (sorted ascending) inside one window `(t − w, t]`,
/// with the index range `[first, last]` of a window that holds it (`None` if empty).
pub(crate) fn max_in_window(times: &[u64], w: u64) -> Option<(usize, usize, usize)> {
    let mut best: Option<(usize, usize, usize)> = None;
    let mut first = 0;
    for (last, &t) in times.iter().enumerate() {
        while times[first] + w <= t {
            first += 1;
        }
        let n = last - first + 1;
        if best.is_none_or(|(b, _, _)| n > b) {
            best = Some((n, first, last));
        }
    }
    best
}

/// Host → pool: the host's latest ledger entry, else the latest event naming both.
pub(crate) fn host_pools(f: &Facts) -> BTreeMap<String, String> {
    let mut pools = BTreeMap::new();
    let mut events: Vec<_> = f
        .events
        .iter()
        .filter_map(|e| Some((e.seq, e.host.clone()?, e.pool.clone()?)))
        .collect();
    events.sort();
    for (_, host, pool) in events {
        pools.insert(host, pool);
    }
    for l in &f.ledger {
        pools.insert(l.host.clone(), l.pool.clone());
    }
    pools
}

/// The pool of `host` in `pools`, or `?`.
pub(crate) fn pool_of<'a>(pools: &'a BTreeMap<String, String>, host: &str) -> &'a str {
    pools.get(host).map_or("?", String::as_str)
}

/// Judge the facts.
pub fn check(f: &Facts) -> Verdict {
    let ledger_fences = f.ledger.iter().filter(|l| l.fence).count();
    let truth_fences: Vec<_> = f
        .truth
        .iter()
        .filter(|p| p.off && p.cause == PowerCause::Off && by_driver(p))
        .collect();
    if ledger_fences == 0 && truth_fences.is_empty() {
        return nothing("S3", "no fences");
    }
    let Some(b) = &f.bounds else {
        return judge(
            "S3",
            "no bounds recorded",
            vec![format!(
                "cannot judge {ledger_fences} ledger fences and {} fence power-offs: the run recorded no budget",
                truth_fences.len()
            )],
        );
    };
    let budget = b.fence_budget as usize;
    let w = b.budget_window_ms;
    let mut violations = Vec::new();

    // The ledger, per pool.
    let mut by_pool: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for l in f.ledger.iter().filter(|l| l.fence) {
        by_pool.entry(l.pool.as_str()).or_default().push(l);
    }
    let mut ledger_max = 0;
    for (pool, entries) in &mut by_pool {
        entries.sort_by_key(|l| (l.at_wall, l.intent));
        let times: Vec<u64> = entries.iter().map(|l| l.at_wall).collect();
        if let Some((n, first, last)) = max_in_window(&times, w) {
            ledger_max = ledger_max.max(n);
            if n > budget {
                let inside = entries[first..=last]
                    .iter()
                    .map(|l| format!("intent {} host {} at_wall {}", l.intent, l.host, l.at_wall))
                    .collect::<Vec<_>>()
                    .join(", ");
                violations.push(format!(
                    "pool {pool}: {n} fences in the ledger within {} ms (window {w} ms, budget {budget}): {inside}",
                    times[last] - times[first]
                ));
            }
        }
    }

    // Ground truth, per pool.
    let d = 2 * b.lease_ms + 2 * b.fence_ms + 5_000;
    let pools = host_pools(f);
    let mut truth_max = 0;
    let truth_note = if w > d {
        let wt = w - d;
        let mut by_pool: BTreeMap<&str, Vec<_>> = BTreeMap::new();
        for p in &truth_fences {
            by_pool
                .entry(pool_of(&pools, &p.host))
                .or_default()
                .push(*p);
        }
        for (pool, offs) in &mut by_pool {
            offs.sort_by_key(|p| (p.t_ms, p.seq));
            let times: Vec<u64> = offs.iter().map(|p| p.t_ms).collect();
            if let Some((n, first, last)) = max_in_window(&times, wt) {
                truth_max = truth_max.max(n);
                if n > budget {
                    let inside = offs[first..=last]
                        .iter()
                        .map(|p| {
                            format!(
                                "host {} seq {} at {} ms by {}",
                                p.host,
                                p.seq,
                                p.t_ms,
                                super::who(p.member)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    violations.push(format!(
                        "pool {pool}: {n} fence power-offs in ground truth within {} ms (window {wt} ms = {w} − {d}, budget {budget}): {inside}",
                        times[last] - times[first]
                    ));
                }
            }
        }
        format!(
            "{} fence power-offs in ground truth, at most {truth_max} in a window of {wt} ms",
            truth_fences.len()
        )
    } else {
        format!(
            "{} fence power-offs in ground truth not judged (window {w} ms ≤ slack {d} ms)",
            truth_fences.len()
        )
    };

    let summary = format!(
        "ledger: {ledger_fences} fences in {} pool(s), at most {ledger_max} in a window of {w} ms (budget {budget}); {truth_note}",
        by_pool.len()
    );
    judge("S3", &summary, violations)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::check::testkit::*;

    const HOUR: u64 = 3_600_000;

    #[test]
    fn three_fences_an_hour_pass() {
        let mut f = run(10 * HOUR);
        f.ledger = vec![
            ledger(1, "h1", "p", true, 1_000),
            ledger(2, "h2", "p", true, 2_000),
            ledger(3, "h3", "p", false, 2_500),
            ledger(4, "h3", "p", true, 3_000),
            ledger(5, "h4", "p", true, 3_000 + HOUR),
            ledger(6, "h5", "q", true, 3_000),
        ];
        f.truth = vec![
            fence(1, 10_000, "h1", 1),
            fence(2, 11_000, "h2", 1),
            fence(3, 12_000, "h3", 2),
        ];
        let v = check(&f);
        assert!(v.pass, "{}", v.detail);
        assert!(
            v.detail.contains(
                "ledger: 5 fences in 2 pool(s), at most 3 in a window of 3600000 ms (budget 3)"
            ),
            "{}",
            v.detail
        );
        assert!(
            v.detail
                .contains("3 fence power-offs in ground truth, at most 3"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn nothing_to_judge_without_fences() {
        let v = check(&run(1_000));
        assert!(v.pass && v.detail.contains("nothing to judge (no fences)"));
    }

    #[test]
    fn four_fences_in_an_hour_fail_in_the_ledger() {
        let mut f = run(10 * HOUR);
        f.ledger = vec![
            ledger(1, "h1", "p", true, 1_000),
            ledger(2, "h2", "p", true, 2_000),
            ledger(4, "h3", "p", true, 3_000),
            // The first left the window only at 1_000 + HOUR (window (t − W, t]).
            ledger(7, "h4", "p", true, 1_000 + HOUR - 1),
        ];
        let v = check(&f);
        assert!(!v.pass);
        assert!(
            v.detail
                .contains("pool p: 4 fences in the ledger within 3599999 ms"),
            "{}",
            v.detail
        );
        assert!(
            v.detail.contains("intent 7 host h4 at_wall 3600999"),
            "{}",
            v.detail
        );
        // At exactly W later the first no longer counts.
        f.ledger[3].at_wall = 1_000 + HOUR;
        assert!(check(&f).pass);
    }

    #[test]
    fn four_fence_power_offs_in_a_pool_fail_in_ground_truth() {
        let mut f = run(10 * HOUR);
        f.ledger = vec![
            ledger(1, "h1", "p", true, 1_000),
            ledger(2, "h2", "p", true, 2_000),
            ledger(3, "h3", "p", true, 3_000),
        ];
        f.events = vec![event(
            1,
            0,
            Some("h4"),
            Some("p"),
            "transition",
            "checking -> fencing",
        )];
        f.truth = (1..=4)
            .map(|i| fence(i, i * 10_000, &format!("h{i}"), 1))
            .collect();
        let v = check(&f);
        assert!(!v.pass);
        assert!(
            v.detail
                .contains("pool p: 4 fence power-offs in ground truth within 30000 ms"),
            "{}",
            v.detail
        );
        assert!(
            v.detail.contains("host h4 seq 4 at 40000 ms by member 1"),
            "{}",
            v.detail
        );
        // h4 unknown to ledger and events: pool `?`, alone there.
        f.events.clear();
        assert!(check(&f).pass);
    }

    #[test]
    fn without_bounds_fences_cannot_be_judged() {
        let mut f = run(HOUR);
        f.bounds = None;
        f.ledger = vec![ledger(1, "h1", "p", true, 1_000)];
        let v = check(&f);
        assert!(!v.pass && v.detail.contains("no budget"), "{}", v.detail);
    }

    proptest! {
        /// The sliding window finds the same maximum as trying every window.
        #[test]
        fn sliding_window_matches_brute_force(
            mut times in prop::collection::vec(0u64..1_000, 0..40),
            w in 1u64..300
        ) {
            times.sort();
            let brute = times
                .iter()
                .map(|&t| times.iter().filter(|&&s| s + w > t && s <= t).count())
                .max();
            let got = max_in_window(&times, w);
            prop_assert_eq!(got.map(|(n, _, _)| n), brute);
            if let Some((n, first, last)) = got {
                prop_assert_eq!(last - first + 1, n);
                prop_assert!(times[last] - times[first] < w);
            }
        }

        /// Fences spaced at least W/B apart never break a budget of B.
        #[test]
        fn evenly_spaced_fences_pass(n in 0u64..30, extra in 0u64..1_000) {
            let mut f = run(100 * HOUR);
            let gap = HOUR / 3 + extra;
            f.ledger = (0..n).map(|i| ledger(i, &format!("h{i}"), "p", true, i * gap)).collect();
            let v = check(&f);
            prop_assert!(v.pass, "{}", v.detail);
        }
    }
}
