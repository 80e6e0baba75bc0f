//! S4 — no committed state lost: acknowledged writes survive, one leader per term,
//! equal state at equal applied index.
//!
//! Three rules:
//!
//! 1. **Acknowledged writes.** Every `Write` with `acked` is present with its value in
//!    `final_settings` of every member listed there. Keys are unique per write in the
//!    workload, so a missing key or a different value is a loss. A key of the
//!    workload held with a value that no write of that key ever sent (acked or not) is
//!    a corruption, reported too. Acked writes with no member's final settings
//!    recorded at all cannot be verified: a violation (the state they should be in is
//!    missing).
//! 2. **One leader per term.** From `samples`: for each term, the members that
//!    reported `is_leader` in that term number at most one. (The `leader` a follower
//!    believes in is not used: it may be read apart from its term.)
//! 3. **Equal digests.** From `members`: members with the same `applied` index
//!    (`Some`) have the same `digest`.

use std::collections::{BTreeMap, BTreeSet};

use super::{judge, nothing, Verdict};
use crate::history::Facts;

/// Judge the facts.
pub fn check(f: &Facts) -> Verdict {
    if f.writes.is_empty() && f.samples.is_empty() && f.members.is_empty() {
        return nothing("S4", "no writes, samples or members");
    }
    let mut violations = Vec::new();

    // 1. Acknowledged writes.
    let acked: Vec<_> = f.writes.iter().filter(|w| w.acked).collect();
    let acked_keys: BTreeSet<&str> = acked.iter().map(|w| w.key.as_str()).collect();
    let mut sent: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for w in &f.writes {
        sent.entry(w.key.as_str())
            .or_default()
            .insert(w.value.as_str());
    }
    if !acked.is_empty() && f.final_settings.is_empty() {
        violations.push(format!(
            "{} acknowledged writes but no member's final settings were recorded",
            acked.len()
        ));
    }
    for (member, settings) in &f.final_settings {
        for w in &acked {
            match settings.get(&w.key) {
                None => violations.push(format!(
                    "member {member}: acknowledged write {}={} (sent at {} ms) is missing",
                    w.key, w.value, w.t_ms
                )),
                Some(v) if *v != w.value => violations.push(format!(
                    "member {member}: acknowledged write {}={} (sent at {} ms) holds {v:?} instead",
                    w.key, w.value, w.t_ms
                )),
                Some(_) => {}
            }
        }
        for (key, v) in settings {
            if let Some(values) = sent.get(key.as_str()) {
                if !values.contains(v.as_str()) && !acked_keys.contains(key.as_str()) {
                    violations.push(format!(
                        "member {member}: key {key} holds {v:?}, a value never written"
                    ));
                }
            }
        }
    }
    let unacked_applied = f
        .writes
        .iter()
        .filter(|w| !w.acked)
        .filter(|w| {
            !f.final_settings.is_empty()
                && f.final_settings
                    .values()
                    .all(|s| s.get(&w.key) == Some(&w.value))
        })
        .count();

    // 2. One leader per term.
    let mut leaders: BTreeMap<u64, BTreeMap<u64, u64>> = BTreeMap::new();
    for s in f.samples.iter().filter(|s| s.is_leader) {
        leaders
            .entry(s.term)
            .or_default()
            .entry(s.member)
            .or_insert(s.t_ms);
    }
    let terms: BTreeSet<u64> = f.samples.iter().map(|s| s.term).collect();
    for (term, who) in &leaders {
        if who.len() > 1 {
            let list = who
                .iter()
                .map(|(m, t)| format!("member {m} (first at {t} ms)"))
                .collect::<Vec<_>>()
                .join(", ");
            violations.push(format!("term {term}: {} leaders: {list}", who.len()));
        }
    }

    // 3. Equal digests at equal applied index.
    let mut at: BTreeMap<u64, Vec<(u64, &str)>> = BTreeMap::new();
    for m in &f.members {
        if let Some(a) = m.applied {
            at.entry(a).or_default().push((m.member, m.digest.as_str()));
        }
    }
    let mut shared = 0;
    for (index, ms) in &at {
        if ms.len() > 1 {
            shared += 1;
        }
        let digests: BTreeSet<&str> = ms.iter().map(|(_, d)| *d).collect();
        if digests.len() > 1 {
            let list = ms
                .iter()
                .map(|(m, d)| format!("member {m} {d}"))
                .collect::<Vec<_>>()
                .join(", ");
            violations.push(format!("applied index {index}: digests differ: {list}"));
        }
    }

    let summary = format!(
        "{} acked writes checked on {} member(s) ({} unacked, {unacked_applied} of them applied everywhere); {} term(s) sampled, {} with a leader seen; {} member(s) at {} applied index(es), {shared} shared",
        acked.len(),
        f.final_settings.len(),
        f.writes.len() - acked.len(),
        terms.len(),
        leaders.len(),
        f.members.len(),
        at.len()
    );
    judge("S4", &summary, violations)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::check::testkit::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn good() -> Facts {
        let mut f = run(10_000);
        f.writes = vec![
            write("meta.chaos-1", "a", 100, true),
            write("meta.chaos-2", "b", 200, true),
            write("meta.chaos-3", "c", 300, false),
        ];
        let s = settings(&[("meta.chaos-1", "a"), ("meta.chaos-2", "b")]);
        f.final_settings = [(1, s.clone()), (2, s)].into_iter().collect();
        f.samples = vec![
            sample(100, 1, 1, true, &[]),
            sample(100, 2, 1, false, &[]),
            sample(200, 2, 2, true, &[]),
            sample(300, 2, 2, true, &[]),
        ];
        f.members = vec![
            member_end(1, Some(10), "x"),
            member_end(2, Some(10), "x"),
            member_end(3, Some(9), "y"),
        ];
        f
    }

    #[test]
    fn intact_history_passes() {
        let v = check(&good());
        assert!(v.pass, "{}", v.detail);
        assert!(v.detail.contains("2 acked writes checked on 2 member(s) (1 unacked, 0 of them applied everywhere); 2 term(s) sampled, 2 with a leader seen; 3 member(s) at 2 applied index(es), 1 shared"), "{}", v.detail);
    }

    #[test]
    fn nothing_to_judge_in_an_empty_run() {
        let v = check(&run(10));
        assert!(v.pass && v.detail.contains("nothing to judge"));
    }

    #[test]
    fn missing_acked_write_fails() {
        let mut f = good();
        f.final_settings.get_mut(&2).unwrap().remove("meta.chaos-2");
        let v = check(&f);
        assert!(!v.pass);
        assert!(
            v.detail.contains(
                "member 2: acknowledged write meta.chaos-2=b (sent at 200 ms) is missing"
            ),
            "{}",
            v.detail
        );
    }

    #[test]
    fn changed_or_invented_values_fail() {
        let mut f = good();
        f.final_settings
            .get_mut(&1)
            .unwrap()
            .insert("meta.chaos-1".into(), "z".into());
        f.final_settings
            .get_mut(&2)
            .unwrap()
            .insert("meta.chaos-3".into(), "q".into());
        let v = check(&f);
        assert!(!v.pass);
        assert!(
            v.detail.contains(
                "member 1: acknowledged write meta.chaos-1=a (sent at 100 ms) holds \"z\" instead"
            ),
            "{}",
            v.detail
        );
        assert!(
            v.detail
                .contains("member 2: key meta.chaos-3 holds \"q\", a value never written"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn acked_writes_without_final_settings_fail() {
        let mut f = good();
        f.final_settings.clear();
        let v = check(&f);
        assert!(
            !v.pass && v.detail.contains("no member's final settings"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn two_leaders_in_one_term_fail() {
        let mut f = good();
        f.samples.push(sample(250, 1, 2, true, &[]));
        let v = check(&f);
        assert!(!v.pass);
        assert!(
            v.detail.contains(
                "term 2: 2 leaders: member 1 (first at 250 ms), member 2 (first at 200 ms)"
            ),
            "{}",
            v.detail
        );
    }

    #[test]
    fn different_digests_at_one_index_fail() {
        let mut f = good();
        f.members[1].digest = "other".into();
        let v = check(&f);
        assert!(!v.pass);
        assert!(
            v.detail
                .contains("applied index 10: digests differ: member 1 x, member 2 other"),
            "{}",
            v.detail
        );
    }

    proptest! {
        /// Any set of acked writes all held by every member passes; dropping any one
        /// of them on any member fails.
        #[test]
        fn held_writes_pass_and_a_dropped_one_fails(
            acks in prop::collection::vec(any::<bool>(), 1..30),
            members in 1u64..4,
            drop in any::<prop::sample::Index>(),
            on in any::<prop::sample::Index>(),
        ) {
            let mut f = run(100_000);
            let mut s = BTreeMap::new();
            for (i, acked) in acks.iter().enumerate() {
                let key = format!("meta.chaos-{i}");
                let value = format!("v{i}");
                f.writes.push(write(&key, &value, i as u64, *acked));
                if *acked || i % 2 == 0 {
                    s.insert(key, value);
                }
            }
            f.final_settings = (1..=members).map(|m| (m, s.clone())).collect();
            prop_assert!(check(&f).pass);
            let acked: Vec<_> = f.writes.iter().filter(|w| w.acked).cloned().collect();
            if !acked.is_empty() {
                let w = drop.get(&acked);
                let m = on.index(members as usize) as u64 + 1;
                f.final_settings.get_mut(&m).unwrap().remove(&w.key);
                let v = check(&f);
                prop_assert!(!v.pass);
                prop_assert!(v.detail.contains(&w.key), "{}", v.detail);
            }
        }
    }
}
