//! vigil-chaos: the chaos-testing harness of vigil.
//!
//! A run starts a real cluster (members in this process, tier `inproc`), a simulated
//! fleet whose ground truth records every real power change, then drives a seeded
//! schedule of faults (nemeses) and a write workload through warm-up → chaos → heal →
//! quiet phases while an observer samples every member. At the end the facts
//! ([`history::Facts`]) are saved and judged by pure checkers ([`check`]).
//!
//! The seed decides everything the harness decides ([`seed`]): the same seed gives the
//! same options and the same schedule; replaying a saved schedule re-runs the same
//! faults at the same offsets (the interleaving inside the cluster is real, not
//! replayed: that is the deterministic tier's job).

pub mod check;
pub mod history;
