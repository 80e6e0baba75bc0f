//! The runtime of a member: the thin async shell around the pure engine, assignment
//! and liveness logic (DESIGN.md §5 end to end).
//!
//! Four loops run on every member:
//! - **heartbeat** ([`heartbeat`]): proves this member's liveness to the leader and
//!   renews its own [`Lease`]; without a valid lease the member starts nothing.
//! - **leader duties** ([`leader`]), active only on the leader: commits liveness
//!   changes, assigns hosts (the pure [`crate::assign`]), and ticks the engine when a
//!   deadline or schedule is due.
//! - **owner** ([`owner`]): runs the checks of the hosts this member owns, proposes
//!   only observations that change something (batched, many hosts per Raft entry),
//!   and executes committed intents ([`action`]) under the ownership rules.
//! - **webhooks** ([`webhooks`]), active only on the leader: delivers events to the
//!   registered receivers, at least once, committing its cursor.
//!
//! Nothing here decides an HA question: apply (the engine) does, at commit.

pub mod action;
pub mod heartbeat;
pub mod leader;
pub mod owner;
pub mod probes;
pub mod webhooks;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use vigil_raft::Member;

use crate::engine::policy::Millis;
use crate::liveness::{Lease, LivenessTracker};
use crate::metrics::RuntimeMetrics;
use crate::state::{Stamp, VigilState};
pub use probes::Providers;

/// Knobs of the runtime that are not replicated policy.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How often the owner loop looks at its hosts and the leader at the cluster.
    pub tick: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(100),
        }
    }
}

/// State shared by the loops and the heartbeat route.
#[derive(Debug)]
pub struct Shared {
    /// The member this worker runs for.
    pub member: Member<VigilState>,
    /// The leader's view of member liveness (used only while leader).
    pub tracker: Mutex<LivenessTracker>,
    /// This member's own lease.
    pub lease: Mutex<Lease>,
    /// Base of the monotonic clock in milliseconds.
    base: Instant,
    /// This process's incarnation: random per start, so that the begin records of an
    /// earlier process of this member are told apart from this one's (a restarted
    /// owner treats what its predecessor began as taken over, never repeats it).
    pub incarnation: u64,
    /// What the runtime did, cumulatively: checks, actions, heartbeats, proposals
    /// (exported on `/metrics`; tests and benchmarks read the same counters).
    pub metrics: RuntimeMetrics,
    /// Fault injection for tests and the chaos harness (all off in production).
    pub faults: Faults,
}

/// Faults the runtime can be told to suffer, for tests and the chaos harness. Each is
/// off (zero) unless set; none changes what apply decides, only what this member
/// manages to do.
#[derive(Debug, Default)]
pub struct Faults {
    /// The next N begin records of actions fail as if no leader answered (a
    /// transient failure before the BMC is reached).
    pub begin_failures: std::sync::atomic::AtomicU32,
    /// The next N action outcomes are lost before they are proposed (as if the
    /// member died right after the BMC answered).
    pub lost_outcomes: std::sync::atomic::AtomicU32,
}

impl Faults {
    /// Consume one injected begin failure, if any is pending.
    pub(crate) fn take_begin_failure(&self) -> bool {
        take(&self.begin_failures)
    }

    /// Consume one injected outcome loss, if any is pending.
    pub(crate) fn take_lost_outcome(&self) -> bool {
        take(&self.lost_outcomes)
    }
}

fn take(n: &std::sync::atomic::AtomicU32) -> bool {
    use std::sync::atomic::Ordering;
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl Shared {
    /// Milliseconds on this process's monotonic clock.
    pub fn mono_ms(&self) -> Millis {
        self.base.elapsed().as_millis() as Millis
    }

    /// Is this member's lease valid now?
    pub fn lease_valid(&self) -> bool {
        let now = self.mono_ms();
        self.lease.lock().expect("lease lock").valid(now)
    }

    /// The member lease currently configured.
    pub fn lease_ms(&self) -> Millis {
        self.member.read_local(VigilState::member_lease)
    }

    /// A stamp for a proposal from this member, now.
    pub fn stamp(&self) -> Stamp {
        Stamp {
            by: self.member.id(),
            at_ms: crate::api::settings::now_ms(),
        }
    }
}

/// The running loops of one member.
#[derive(Debug)]
pub struct Worker {
    /// Shared state (also served by the heartbeat route).
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Worker {
    /// Start the loops for `member`.
    pub fn start(member: Member<VigilState>, providers: Providers, cfg: WorkerConfig) -> Worker {
        let shared = Arc::new(Shared {
            member,
            tracker: Mutex::new(LivenessTracker::default()),
            lease: Mutex::new(Lease::default()),
            base: Instant::now(),
            incarnation: new_incarnation(),
            metrics: RuntimeMetrics::new(),
            faults: Faults::default(),
        });
        let (stop, rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(heartbeat::run(shared.clone(), cfg.clone(), rx.clone())),
            tokio::spawn(leader::run(shared.clone(), cfg.clone(), rx.clone())),
            tokio::spawn(webhooks::run(shared.clone(), cfg.clone(), rx.clone())),
            tokio::spawn(owner::run(shared.clone(), providers, cfg, rx)),
        ];
        Worker {
            shared,
            stop,
            tasks,
        }
    }

    /// Stop every loop and wait for them (in-flight actions are abandoned: their
    /// intents stay in flight for the next owner, as after a crash).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.shared.lease.lock().expect("lease lock").revoke();
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

/// A random 64-bit number for this process (std's per-process random hash keys).
fn new_incarnation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Wait `d` or until told to stop; true when stopping.
pub(crate) async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        r = stop.changed() => r.is_err() || *stop.borrow(),
    }
}
