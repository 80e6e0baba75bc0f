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

use crate::history::Facts;

pub mod l1;
pub mod l2;
pub mod s1;
pub mod s1b;
pub mod s2;
pub mod s3;
pub mod s4;
pub mod s5;

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
