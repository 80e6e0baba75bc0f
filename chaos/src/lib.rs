//! vigil-chaos: the chaos-testing harness of vigil.
//!
//! A run starts a real cluster (members in this process: tier `inproc`), a simulated
//! fleet whose ground truth records every real power change, then drives a seeded
//! schedule of faults ([`nemesis`]) and a write workload ([`workload`]) through
//! warm-up → chaos → heal → quiet phases ([`plan`]) while an observer samples every
//! member ([`observe`]). At the end the facts ([`history::Facts`]) are saved and
//! judged by pure checkers ([`check`]); [`report`] writes and prints them.
//!
//! The seed decides everything the harness decides ([`seed`]): the same seed gives
//! the same options and the same schedule; replaying a saved schedule re-runs the
//! same faults at the same offsets (the interleaving inside the cluster is real, not
//! replayed: that is the deterministic tier's job).

pub mod check;
pub mod cluster;
pub mod error;
pub mod history;
pub mod nemesis;
pub mod observe;
pub mod plan;
pub mod report;
pub mod run;
pub mod seed;
pub mod selftest;
pub mod workload;
