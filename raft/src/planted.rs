//! The one planted bug of this crate, for the chaos harness's self-test only
//! (the full list is `vigil::planted`).
//!
//! # NEVER ENABLE THE `planted-bugs` FEATURE IN A BUILD THAT MANAGES REAL HOSTS
//!
//! `ack-before-fsync`: [`crate::log_store::LogStore`]'s `append` puts the entries in
//! sled's in-memory IO buffer (plain inserts: a sled batch would also write the
//! buffer out to the file, i.e. the page cache, which survives SIGKILL) and tells
//! openraft at once that they are durable, leaving them to sled's background flusher
//! (every 500 ms). Members SIGKILLed together lose the entries of the last flush
//! interval, which a quorum counted as persisted. The chaos checker S4 ("no
//! acknowledged write lost") must catch it, with real processes only: an in-process
//! crash keeps sled's buffers inside the same process.
//!
//! What shows it: SIGKILL of all members (or of a majority) at once while writes are
//! acknowledged. Measured on loopback with 3 `vigil serve` processes:
//! `tests/crash_durability.rs` run with `--features planted-bugs` and this bug fails
//! both of its kill-all cases (11 to 41 acknowledged writes lost of ~500–700) and
//! passes the leader-only case (the surviving majority still has the entries).
//!
//! Without the feature, [`ack_before_fsync`] is a `const fn` returning `false`. With
//! it, the switch is the one set by [`set_ack_before_fsync`] (vigil's
//! `planted::plant`), or, if never set, whether the environment variable
//! `VIGIL_PLANTED_BUG` is `ack-before-fsync` (read once).

/// Is `ack-before-fsync` planted? Always `false` without the `planted-bugs` feature.
#[cfg(not(feature = "planted-bugs"))]
#[inline(always)]
pub const fn ack_before_fsync() -> bool {
    false
}

/// Set the switch for this process (overrides the environment). Does nothing
/// without the `planted-bugs` feature.
#[cfg(not(feature = "planted-bugs"))]
pub fn set_ack_before_fsync(_on: bool) {}

#[cfg(feature = "planted-bugs")]
mod imp {
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::OnceLock;

    /// 0: never set (use the environment); 1: off; 2: on.
    static SWITCH: AtomicU8 = AtomicU8::new(0);
    static FROM_ENV: OnceLock<bool> = OnceLock::new();

    /// Is `ack-before-fsync` planted in this process?
    pub fn ack_before_fsync() -> bool {
        match SWITCH.load(Ordering::Relaxed) {
            0 => *FROM_ENV.get_or_init(|| {
                let on = std::env::var("VIGIL_PLANTED_BUG")
                    .is_ok_and(|v| v.trim() == "ack-before-fsync");
                if on {
                    eprintln!(
                        "vigil-raft: PLANTED BUG ACTIVE: ack-before-fsync (log appends acknowledged before they are flushed). Chaos self-test only."
                    );
                }
                on
            }),
            n => n == 2,
        }
    }

    /// Set the switch for this process (overrides the environment).
    pub fn set_ack_before_fsync(on: bool) {
        SWITCH.store(if on { 2 } else { 1 }, Ordering::Relaxed);
    }
}

#[cfg(feature = "planted-bugs")]
pub use imp::{ack_before_fsync, set_ack_before_fsync};
