//! The checkers: pure functions from a run's [`Facts`] to a [`Verdict`] each.
//!
//! | id | invariant |
//! |---|---|
//! | S1 | at most one effective fence (driver power-off) per injected failure; power cycles within the recovery attempts |
//! | S1b | HA never powers a host on after fencing it (until the harness or an operator does) |
//! | S2 | never a power-off or cycle by vigil of a host that was healthy (working) for longer than the grace |
//! | S3 | the fence budget is never exceeded in any window, in the ledger and in ground truth |
//! | S4 | no acknowledged write lost; at most one leader per term; equal digests at equal applied index |
//! | S5 | one owner per (host, epoch); a BMC is touched only by a member that began an intent on that host |
//! | L1 | every failure injected and not healed ends handled (fenced, recovered, or FenceFailed with an alarm) within the bound |
//! | L2 | a dead member's hosts are reassigned within lease + election bounds |
//!
//! A checker that finds nothing to judge says so in its detail (and passes): a run
//! without failures cannot violate S1, but the report must not pretend it tested it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::history::{Facts, Injected, Ms, Op, PowerCause, Truth};

pub mod l1;
pub mod l2;
pub mod s1;
pub mod s1b;
pub mod s2;
pub mod s3;
pub mod s4;
pub mod s5;
#[cfg(test)]
mod testkit;

/// One checker's judgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// No violation found.
    pub pass: bool,
    /// What was checked and, on failure, the witness (first violation, with times).
    pub detail: String,
}

impl Verdict {
    /// A pass with what was checked.
    pub fn pass(detail: impl Into<String>) -> Self {
        Verdict {
            pass: true,
            detail: detail.into(),
        }
    }

    /// A violation with its witness.
    pub fn fail(detail: impl Into<String>) -> Self {
        Verdict {
            pass: false,
            detail: detail.into(),
        }
    }
}

/// Checker ids in report order.
pub const CHECKS: [&str; 8] = ["S1", "S1b", "S2", "S3", "S4", "S5", "L1", "L2"];

/// Run one checker by id.
pub fn run(id: &str, f: &Facts) -> Option<Verdict> {
    Some(match id {
        "S1" => s1::check(f),
        "S1b" => s1b::check(f),
        "S2" => s2::check(f),
        "S3" => s3::check(f),
        "S4" => s4::check(f),
        "S5" => s5::check(f),
        "L1" => l1::check(f),
        "L2" => l2::check(f),
        _ => return None,
    })
}

/// Run every checker.
pub fn run_all(f: &Facts) -> BTreeMap<String, Verdict> {
    CHECKS
        .iter()
        .filter_map(|id| run(id, f).map(|v| (id.to_string(), v)))
        .collect()
}

/// How many witnesses a failing detail lists before "… and N more".
const WITNESSES: usize = 5;

/// The verdict of checker `id` from its violations (empty: pass) and a summary of what
/// was counted: `ID PASS: summary`, or `ID FAIL: n violation(s) [summary]: w1; w2; …`.
pub(crate) fn judge(id: &str, summary: &str, violations: Vec<String>) -> Verdict {
    if violations.is_empty() {
        return Verdict::pass(format!("{id} PASS: {summary}"));
    }
    let n = violations.len();
    let mut shown: Vec<String> = violations.into_iter().take(WITNESSES).collect();
    if n > WITNESSES {
        shown.push(format!("… and {} more", n - WITNESSES));
    }
    Verdict::fail(format!(
        "{id} FAIL: {n} violation(s) [{summary}]: {}",
        shown.join("; ")
    ))
}

/// A pass for a run that held nothing this checker could judge.
pub(crate) fn nothing(id: &str, what: &str) -> Verdict {
    Verdict::pass(format!("{id} PASS: nothing to judge ({what})"))
}

/// Whether a power change was made by a power driver (so by vigil), whatever member
/// the fleet could name: causes `Off`, `On` and `Cycle`. Changes made through the sim
/// Redfish server carry no member but are still a driver's.
pub(crate) fn by_driver(t: &Truth) -> bool {
    t.cause != PowerCause::Harness
}

/// `member 2`, or `an unnamed driver` when the fleet could not name the member.
pub(crate) fn who(member: Option<u64>) -> String {
    match member {
        Some(m) => format!("member {m}"),
        None => "an unnamed driver".to_string(),
    }
}

/// One ground-truth change in words: `Cycle power-off seq 7 at 12000 ms by member 2`.
pub(crate) fn describe(t: &Truth) -> String {
    format!(
        "{:?} power-{} seq {} at {} ms by {}",
        t.cause,
        if t.off { "off" } else { "on" },
        t.seq,
        t.t_ms,
        who(t.member)
    )
}

/// One step of a run's merged timeline (see [`timeline`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step<'a> {
    /// The harness healed an injected failure (at its `healed_at`).
    Heal(&'a Injected),
    /// The harness injected a failure (at its `at`).
    Inject(&'a Injected),
    /// A harness step.
    Op(&'a Op),
    /// A real power change.
    Truth(&'a Truth),
}

/// Injections, heals, ops and ground truth merged in time order. At equal times the
/// harness's own steps come first (heals, then injections, then ops), then the power
/// changes in `seq` order: a power change at the same millisecond as a harness step
/// is judged as happening after it (ground truth carries the host's condition just
/// before the change, which settles any real doubt).
pub(crate) fn timeline(f: &Facts) -> Vec<(Ms, Step<'_>)> {
    let mut steps: Vec<(Ms, u8, u64, Step<'_>)> = Vec::new();
    for (i, inj) in f.injected.iter().enumerate() {
        steps.push((inj.at, 1, i as u64, Step::Inject(inj)));
        if let Some(h) = inj.healed_at {
            steps.push((h, 0, i as u64, Step::Heal(inj)));
        }
    }
    for (i, op) in f.ops.iter().enumerate() {
        steps.push((op.t_ms, 2, i as u64, Step::Op(op)));
    }
    for t in &f.truth {
        steps.push((t.t_ms, 3, t.seq, Step::Truth(t)));
    }
    steps.sort_by_key(|(t, rank, n, _)| (*t, *rank, *n));
    steps.into_iter().map(|(t, _, _, s)| (t, s)).collect()
}

/// The host an injection, heal, op or power change concerns.
pub(crate) fn step_host<'a>(s: &Step<'a>) -> Option<&'a str> {
    match s {
        Step::Heal(i) | Step::Inject(i) => Some(i.host.as_str()),
        Step::Op(o) => o.host.as_deref(),
        Step::Truth(t) => Some(t.host.as_str()),
    }
}

/// Whether an op returns a fenced host to service by an operator's hand.
pub(crate) fn is_unfence(op: &Op) -> bool {
    op.kind == "unfence"
}

/// The target of a `from -> to` detail (first word after the last `->`, lowercase).
pub(crate) fn transition_to(detail: &str) -> Option<String> {
    let (_, to) = detail.rsplit_once("->")?;
    let word = to.split_whitespace().next()?;
    Some(
        word.trim_matches(|c: char| !(c.is_alphanumeric() || c == '-'))
            .to_ascii_lowercase(),
    )
}

/// The source of a `from -> to` detail (last word before the first `->`, lowercase).
pub(crate) fn transition_from(detail: &str) -> Option<String> {
    let (from, _) = detail.split_once("->")?;
    let word = from.split_whitespace().last()?;
    Some(
        word.trim_matches(|c: char| !(c.is_alphanumeric() || c == '-'))
            .to_ascii_lowercase(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_details_parse() {
        assert_eq!(
            transition_from("fenced -> initializing").as_deref(),
            Some("fenced")
        );
        assert_eq!(
            transition_to("fenced -> initializing: powered on").as_deref(),
            Some("initializing")
        );
        assert_eq!(
            transition_to("checking -> fence-failed").as_deref(),
            Some("fence-failed")
        );
        assert_eq!(transition_to("no arrow"), None);
    }

    #[test]
    fn judge_lists_witnesses_and_counts() {
        let v = judge("X", "3 things", vec![]);
        assert!(v.pass);
        assert_eq!(v.detail, "X PASS: 3 things");
        let many: Vec<String> = (0..7).map(|i| format!("w{i}")).collect();
        let v = judge("X", "7 things", many);
        assert!(!v.pass);
        assert!(v
            .detail
            .starts_with("X FAIL: 7 violation(s) [7 things]: w0; w1"));
        assert!(v.detail.ends_with("… and 2 more"), "{}", v.detail);
    }

    #[test]
    fn every_checker_passes_an_empty_run_and_says_so() {
        let f = Facts::default();
        for (id, v) in run_all(&f) {
            assert!(v.pass, "{id}: {}", v.detail);
            assert!(v.detail.contains("nothing to judge"), "{id}: {}", v.detail);
        }
    }
}
