//! Deliberately planted bugs, for the chaos harness's self-test only.
//!
//! # NEVER ENABLE THE `planted-bugs` FEATURE IN A BUILD THAT MANAGES REAL HOSTS
//!
//! Every bug here breaks a safety or liveness rule of the ownership protocol on
//! purpose: a cut-off member keeps power-cycling hosts, a fence budget is ignored, a
//! healthy host is fenced, acknowledged Raft writes are lost on a crash. They exist so
//! that `vigil-chaos selftest` can run the real cluster with one bug at a time and
//! prove that its checkers (S1…S5, L1, L2, see `chaos/src/check/mod.rs`) catch each
//! one: a checker that never fails proves nothing.
//!
//! Without the cargo feature `planted-bugs` (the default, and every release build),
//! [`active`] is a `const fn` that returns `false`: each `if planted::active(..)` in
//! the code is removed by the compiler and production pays nothing. [`plant`] then
//! refuses to plant anything and `VIGIL_PLANTED_BUG` is ignored.
//!
//! With the feature, at most one bug is active per process (the harness runs one bug
//! per run): the one chosen with [`plant`] (in-process clusters), or, if `plant` was
//! never called, the one named by the environment variable `VIGIL_PLANTED_BUG`
//! (read once; real `vigil serve` processes), e.g. `VIGIL_PLANTED_BUG=no-cycle-guard`.
//!
//! Bugs in apply code (`src/state/apply.rs`, the pure engine it runs) stay
//! deterministic: the selection is process-wide, so every member of an in-process
//! cluster shares it, and the harness starts every process of a proc-tier cluster with
//! the same environment.
//!
//! [`Bug::AckBeforeFsync`] lives in `vigil-raft` (its log store), which has its own
//! copy of the switch (`vigil_raft::planted`); [`plant`] sets both, and both read the
//! same environment variable. It can only show with real processes killed by SIGKILL:
//! an in-process "crash" keeps sled's unflushed buffers in the same process, so nothing
//! acknowledged is lost.

use std::fmt;

/// The environment variable that selects a planted bug when [`plant`] was not called.
pub const ENV: &str = "VIGIL_PLANTED_BUG";

/// Whether this build has the planted bugs compiled in (the `planted-bugs` feature).
/// A harness should refuse to run a self-test against a build without them.
pub const ENABLED: bool = cfg!(feature = "planted-bugs");

/// One deliberate bug, and the checker that must catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bug {
    /// A member without a valid lease keeps scheduling and executing actions, without
    /// the begin record it can no longer commit (S1, S5, S2).
    SkipLeaseCheck,
    /// Another executor's power-cycle guard is ignored, by apply's begin and by the
    /// owner's scheduling (S1b, S5).
    NoCycleGuard,
    /// The pool gate reports fence budget left when it is spent, and the pool stays
    /// Active (S3).
    GateIgnoresBudget,
    /// An activity checker's error counts as "no activity" (S2).
    ActivityErrorIsInactive,
    /// A member declared dead keeps its hosts (L1, L2).
    DeadHostsKept,
    /// A failed fence level ends in FenceFailed without trying the next level (L1).
    NoFenceEscalation,
    /// A power cycle begun by an earlier executor is executed again (S1, S1b).
    RepeatTakenOverCycle,
    /// The Raft log store acknowledges an append before it is flushed (S4; real
    /// processes killed by SIGKILL only).
    AckBeforeFsync,
}

impl Bug {
    /// Every planted bug, in a stable order.
    pub const ALL: [Bug; 8] = [
        Bug::SkipLeaseCheck,
        Bug::NoCycleGuard,
        Bug::GateIgnoresBudget,
        Bug::ActivityErrorIsInactive,
        Bug::DeadHostsKept,
        Bug::NoFenceEscalation,
        Bug::RepeatTakenOverCycle,
        Bug::AckBeforeFsync,
    ];

    /// Its kebab-case name (the value of `VIGIL_PLANTED_BUG`).
    pub const fn name(self) -> &'static str {
        match self {
            Bug::SkipLeaseCheck => "skip-lease-check",
            Bug::NoCycleGuard => "no-cycle-guard",
            Bug::GateIgnoresBudget => "gate-ignores-budget",
            Bug::ActivityErrorIsInactive => "activity-error-is-inactive",
            Bug::DeadHostsKept => "dead-hosts-kept",
            Bug::NoFenceEscalation => "no-fence-escalation",
            Bug::RepeatTakenOverCycle => "repeat-taken-over-cycle",
            Bug::AckBeforeFsync => "ack-before-fsync",
        }
    }

    /// The bug named `name` (as [`Bug::name`] spells it).
    pub fn parse(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name.trim())
    }

    /// One line: what goes wrong.
    pub const fn description(self) -> &'static str {
        match self {
            Bug::SkipLeaseCheck => {
                "a member whose lease expired keeps acting on its last view, without a committed begin record"
            }
            Bug::NoCycleGuard => {
                "begin and scheduling ignore another executor's power-cycle guard"
            }
            Bug::GateIgnoresBudget => {
                "the pool gate reports fence budget left when it is spent; the pool stays Active"
            }
            Bug::ActivityErrorIsInactive => {
                "an activity checker error counts as no activity, so an isolated healthy host looks dead"
            }
            Bug::DeadHostsKept => {
                "a member declared dead keeps its hosts: not released, not reassigned"
            }
            Bug::NoFenceEscalation => {
                "a failed fence level goes to FenceFailed without trying the next level"
            }
            Bug::RepeatTakenOverCycle => {
                "a power cycle begun by an earlier executor is executed again instead of read"
            }
            Bug::AckBeforeFsync => {
                "the Raft log acknowledges appends before flushing them (lost on SIGKILL)"
            }
        }
    }

    /// The checkers that must catch it (ids of `chaos/src/check`).
    pub const fn caught_by(self) -> &'static [&'static str] {
        match self {
            Bug::SkipLeaseCheck => &["S1", "S5", "S2"],
            Bug::NoCycleGuard => &["S1b", "S5"],
            Bug::GateIgnoresBudget => &["S3"],
            Bug::ActivityErrorIsInactive => &["S2"],
            Bug::DeadHostsKept => &["L1", "L2"],
            Bug::NoFenceEscalation => &["L1"],
            Bug::RepeatTakenOverCycle => &["S1", "S1b"],
            Bug::AckBeforeFsync => &["S4"],
        }
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Bug {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bug::parse(s).ok_or_else(|| {
            let known: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
            format!("unknown planted bug {s:?} (known: {})", known.join(", "))
        })
    }
}

/// Is `bug` planted in this process? Always `false` without the `planted-bugs`
/// feature (a `const fn`: the guarded code is compiled out).
#[cfg(not(feature = "planted-bugs"))]
#[inline(always)]
pub const fn active(_bug: Bug) -> bool {
    false
}

/// Is `bug` planted in this process? The bug chosen by [`plant`], or if `plant` was
/// never called, the one named by `VIGIL_PLANTED_BUG` (read once).
#[cfg(feature = "planted-bugs")]
#[inline]
pub fn active(bug: Bug) -> bool {
    selected() == Some(bug)
}

/// The bug planted in this process, if any (always `None` without the feature).
pub fn selected() -> Option<Bug> {
    imp::selected()
}

/// Plant `bug` (or none) in this whole process, overriding `VIGIL_PLANTED_BUG`: for
/// the harness's in-process clusters, one bug per run. Also sets `vigil-raft`'s switch
/// for [`Bug::AckBeforeFsync`]. Without the `planted-bugs` feature, planting a bug is
/// an error (planting none is fine and does nothing).
pub fn plant(bug: Option<Bug>) -> Result<(), String> {
    imp::plant(bug)
}

#[cfg(not(feature = "planted-bugs"))]
mod imp {
    use super::Bug;

    pub(super) fn selected() -> Option<Bug> {
        None
    }

    pub(super) fn plant(bug: Option<Bug>) -> Result<(), String> {
        match bug {
            None => Ok(()),
            Some(b) => Err(format!(
                "cannot plant {b}: vigil was built without the planted-bugs feature"
            )),
        }
    }
}

#[cfg(feature = "planted-bugs")]
mod imp {
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::OnceLock;

    use super::{Bug, ENV};

    /// 0: never planted (use the environment); 1: planted none; 2 + i: `Bug::ALL[i]`.
    static PLANTED: AtomicU8 = AtomicU8::new(0);
    static FROM_ENV: OnceLock<Option<Bug>> = OnceLock::new();

    fn from_env() -> Option<Bug> {
        *FROM_ENV.get_or_init(|| {
            let v = std::env::var(ENV).ok()?;
            if v.trim().is_empty() {
                return None;
            }
            // A misspelt name must not quietly run the cluster without its bug (the
            // self-test would then blame the checker).
            let bug: Bug = v.parse().unwrap_or_else(|e| panic!("{ENV}: {e}"));
            eprintln!(
                "vigil: PLANTED BUG ACTIVE: {bug} ({}). This build is for the chaos harness's self-test only.",
                bug.description()
            );
            Some(bug)
        })
    }

    pub(super) fn selected() -> Option<Bug> {
        match PLANTED.load(Ordering::Relaxed) {
            0 => from_env(),
            1 => None,
            n => Bug::ALL.get(usize::from(n - 2)).copied(),
        }
    }

    pub(super) fn plant(bug: Option<Bug>) -> Result<(), String> {
        let code = match bug {
            None => 1,
            Some(b) => {
                let i = Bug::ALL
                    .iter()
                    .position(|x| *x == b)
                    .expect("every bug is in Bug::ALL");
                tracing::warn!(bug = %b, "planted bug active: {}", b.description());
                2 + i as u8
            }
        };
        vigil_raft::planted::set_ack_before_fsync(bug == Some(Bug::AckBeforeFsync));
        PLANTED.store(code, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(all(test, feature = "planted-bugs"))]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct() {
        let mut names = std::collections::BTreeSet::new();
        for b in Bug::ALL {
            assert_eq!(Bug::parse(b.name()), Some(b));
            assert_eq!(b.to_string().parse::<Bug>(), Ok(b));
            assert!(names.insert(b.name()), "duplicate name {}", b.name());
            assert!(!b.description().is_empty());
            assert!(!b.caught_by().is_empty());
            assert!(b.name().chars().all(|c| c.is_ascii_lowercase() || c == '-'));
        }
        assert_eq!(Bug::parse("no-such-bug"), None);
        assert!("NoCycleGuard".parse::<Bug>().is_err());
    }

    /// Marks a child process started by [`plant_and_env_in_a_fresh_process`]: the
    /// bug it expects the environment to select ("none" for none).
    const CHILD: &str = "VIGIL_PLANTED_TEST_CHILD";

    // Planting is process-wide and the environment is read once per process, so these
    // run in child processes (this test binary, filtered to `child`): no other test of
    // the crate ever runs with a bug planted.
    #[test]
    fn plant_and_env_in_a_fresh_process() {
        let exe = std::env::current_exe().unwrap();
        let run = |env: &str, expect: &str| {
            std::process::Command::new(&exe)
                .args(["--exact", "planted::tests::child", "--test-threads=1"])
                .env(ENV, env)
                .env(CHILD, expect)
                .output()
                .unwrap()
        };
        for (env, expect) in [
            ("", "none"),
            ("no-cycle-guard", "no-cycle-guard"),
            ("ack-before-fsync", "ack-before-fsync"),
        ] {
            let out = run(env, expect);
            assert!(
                out.status.success(),
                "{ENV}={env}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("1 passed"),
                "the child test did not run"
            );
        }
        // A misspelt name fails loudly instead of running without the bug.
        let out = run("no-such-bug", "none");
        assert!(!out.status.success());
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("unknown planted bug"), "{text}");
    }

    #[test]
    fn child() {
        let Ok(expect) = std::env::var(CHILD) else {
            return; // not started by plant_and_env_in_a_fresh_process
        };
        const { assert!(ENABLED) };
        // The environment, read once.
        let from_env = Bug::parse(&expect);
        assert_eq!(selected(), from_env);
        assert_eq!(
            vigil_raft::planted::ack_before_fsync(),
            from_env == Some(Bug::AckBeforeFsync)
        );
        // plant() overrides it: exactly one bug at a time, None clears it.
        for b in Bug::ALL {
            plant(Some(b)).unwrap();
            assert_eq!(selected(), Some(b));
            for other in Bug::ALL {
                assert_eq!(active(other), other == b, "{b} planted, {other} asked");
            }
            assert_eq!(
                vigil_raft::planted::ack_before_fsync(),
                b == Bug::AckBeforeFsync
            );
        }
        plant(None).unwrap();
        assert_eq!(selected(), None);
        assert!(Bug::ALL.iter().all(|b| !active(*b)));
        assert!(!vigil_raft::planted::ack_before_fsync());
    }
}

#[cfg(all(test, not(feature = "planted-bugs")))]
mod tests_without_the_feature {
    use super::*;

    #[test]
    fn nothing_can_be_planted() {
        const { assert!(!ENABLED) };
        assert!(plant(Some(Bug::NoCycleGuard)).is_err());
        assert!(plant(None).is_ok());
        assert_eq!(selected(), None);
        assert!(Bug::ALL.iter().all(|b| !active(*b)));
        assert_eq!(Bug::parse("dead-hosts-kept"), Some(Bug::DeadHostsKept));
    }
}
