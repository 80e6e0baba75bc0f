//! The observer: samples every running member's view a few times a second — term,
//! leader, applied index, and the owner and epoch of every host (as deltas) — for the
//! checkers of one leader per term (S4), one owner per epoch (S5) and reassignment
//! time (L2).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cluster::inproc::Live;
use crate::history::Sample;

/// How often every member is sampled.
pub const EVERY: Duration = Duration::from_millis(250);

/// Sample until `stop` says so; the samples, in time order.
pub fn spawn(live: Live, t0: Instant, mut stop: watch::Receiver<bool>) -> JoinHandle<Vec<Sample>> {
    tokio::spawn(async move {
        let mut out = Vec::new();
        let mut last: BTreeMap<u64, BTreeMap<String, (Option<u64>, u64)>> = BTreeMap::new();
        loop {
            let members: Vec<_> = live
                .lock()
                .expect("live")
                .iter()
                .map(|(id, m)| (*id, m.clone()))
                .collect();
            let t_ms = t0.elapsed().as_millis() as u64;
            for (id, m) in members {
                let st = m.local_status();
                let owners: BTreeMap<String, (Option<u64>, u64)> = m.read_local(|s| {
                    s.hosts
                        .values()
                        .map(|h| (h.spec.name.clone(), (h.owner, h.epoch)))
                        .collect()
                });
                let prev = last.entry(id).or_default();
                let delta: BTreeMap<_, _> = owners
                    .iter()
                    .filter(|(h, v)| prev.get(*h) != Some(v))
                    .map(|(h, v)| (h.clone(), *v))
                    .collect();
                *prev = owners;
                out.push(Sample {
                    t_ms,
                    member: id,
                    term: st.term,
                    leader: st.leader,
                    is_leader: m.is_leader(),
                    applied: st.last_applied,
                    owners: delta,
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = stop.changed() => break,
            }
        }
        out
    })
}
