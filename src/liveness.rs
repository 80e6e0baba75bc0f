//! Member liveness: the leader's view of who is alive, and each member's own lease.
//!
//! Two sides of one protocol (DESIGN.md §5, points 2 and 3), both pure (time is an
//! argument, in milliseconds of a monotonic clock the runtime owns):
//!
//! - [`LivenessTracker`] runs on the leader. Members heartbeat it; one silent for
//!   longer than the member lease is declared dead by a committed command, and alive
//!   again when it is heard from. A new leader has heard from nobody yet, so it gives
//!   every member one full lease from the moment it took office before judging: a
//!   leader change alone never kills a member. Only members it did hear from (the
//!   previous leader, whose appends it received) are judged from when it last did.
//! - [`Lease`] runs on every member. It is renewed only by a heartbeat that the
//!   leader accepted *while it had heard from a quorum recently*, and it counts from
//!   when the heartbeat was **sent** (never from when the answer arrived), so it
//!   always expires before the leader could have declared the member dead. A member
//!   whose lease has expired starts no new check or action: cut off from the
//!   majority, it cannot act on an ownership that may already have moved.

use std::collections::BTreeMap;

use vigil_raft::NodeId;

use crate::engine::policy::Millis;
use crate::state::model::MemberRecord;

/// The leader's record of when it last heard from each member.
#[derive(Debug, Clone, Default)]
pub struct LivenessTracker {
    leader_since: Option<Millis>,
    last_seen: BTreeMap<NodeId, Millis>,
}

/// A liveness change to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivenessChange {
    /// Member.
    pub id: NodeId,
    /// Its address.
    pub addr: String,
    /// New liveness.
    pub alive: bool,
}

impl LivenessTracker {
    /// This member became leader at `now`: start judging from here. `heard` are the
    /// members it has actually heard from recently, with when (typically the previous
    /// leader, whose appends it received as a follower): they are judged from that
    /// time, everyone else from `now`.
    pub fn became_leader(&mut self, now: Millis, heard: &[(NodeId, Millis)]) {
        self.leader_since = Some(now);
        self.last_seen.clear();
        for (id, at) in heard {
            self.last_seen.insert(*id, (*at).min(now));
        }
    }

    /// This member is no longer leader: forget everything (a later term starts over).
    pub fn stepped_down(&mut self) {
        self.leader_since = None;
        self.last_seen.clear();
    }

    /// Is this tracker judging (its member is leader)?
    pub fn is_leading(&self) -> bool {
        self.leader_since.is_some()
    }

    /// A heartbeat from `id` arrived at `now`.
    pub fn seen(&mut self, id: NodeId, now: Millis) {
        let t = self.last_seen.entry(id).or_insert(now);
        *t = (*t).max(now);
    }

    /// Is `id` alive at `now` under `lease`? Members never heard from in this term
    /// count from when the term started.
    pub fn alive(&self, id: NodeId, now: Millis, lease: Millis) -> bool {
        let Some(since) = self.leader_since else {
            return false;
        };
        let last = self.last_seen.get(&id).copied().unwrap_or(since);
        now.saturating_sub(last) <= lease
    }

    /// The changes to commit so that the replicated records match what this leader
    /// sees: `members` are the cluster's current members (id, address); records of
    /// members no longer in the cluster are declared dead. Nothing while not leading.
    pub fn changes(
        &self,
        members: &[(NodeId, String)],
        records: &BTreeMap<NodeId, MemberRecord>,
        now: Millis,
        lease: Millis,
    ) -> Vec<LivenessChange> {
        if !self.is_leading() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (id, addr) in members {
            let alive = self.alive(*id, now, lease);
            let differs = records
                .get(id)
                .is_none_or(|r| r.alive != alive || &r.addr != addr);
            if differs {
                out.push(LivenessChange {
                    id: *id,
                    addr: addr.clone(),
                    alive,
                });
            }
        }
        for r in records.values() {
            if r.alive && !members.iter().any(|(id, _)| *id == r.id) {
                out.push(LivenessChange {
                    id: r.id,
                    addr: r.addr.clone(),
                    alive: false,
                });
            }
        }
        out
    }
}

/// A member's own lease: may it start checks and actions?
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lease {
    valid_until: Option<Millis>,
}

impl Lease {
    /// A heartbeat sent at `sent_at` was accepted: valid until `sent_at + lease`.
    pub fn renew(&mut self, sent_at: Millis, lease: Millis) {
        let until = sent_at + lease;
        self.valid_until = Some(self.valid_until.map_or(until, |u| u.max(until)));
    }

    /// Valid at `now`?
    pub fn valid(&self, now: Millis) -> bool {
        self.valid_until.is_some_and(|u| now < u)
    }

    /// Give it up (e.g. the member is shutting down or was removed).
    pub fn revoke(&mut self) {
        self.valid_until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: NodeId, alive: bool) -> (NodeId, MemberRecord) {
        (
            id,
            MemberRecord {
                id,
                addr: format!("m{id}"),
                alive,
                since: 0,
            },
        )
    }

    fn members(ids: &[NodeId]) -> Vec<(NodeId, String)> {
        ids.iter().map(|i| (*i, format!("m{i}"))).collect()
    }

    #[test]
    fn new_leader_gives_a_full_lease_then_declares_the_silent_dead() {
        let mut t = LivenessTracker::default();
        let records: BTreeMap<_, _> = [rec(1, true), rec(2, true), rec(3, true)].into();
        assert!(t
            .changes(&members(&[1, 2, 3]), &records, 0, 2000)
            .is_empty());
        t.became_leader(10_000, &[]);
        t.seen(1, 10_500);
        t.seen(2, 11_900);
        assert!(t
            .changes(&members(&[1, 2, 3]), &records, 12_000, 2000)
            .is_empty());
        let c = t.changes(&members(&[1, 2, 3]), &records, 12_600, 2000);
        assert_eq!(
            c,
            vec![
                LivenessChange {
                    id: 1,
                    addr: "m1".into(),
                    alive: false
                },
                LivenessChange {
                    id: 3,
                    addr: "m3".into(),
                    alive: false
                },
            ]
        );
        // Heard from again: alive.
        t.seen(3, 12_700);
        let records: BTreeMap<_, _> = [rec(1, false), rec(2, true), rec(3, false)].into();
        let c = t.changes(&members(&[1, 2, 3]), &records, 12_800, 2000);
        assert_eq!(
            c,
            vec![LivenessChange {
                id: 3,
                addr: "m3".into(),
                alive: true
            }]
        );
        // Stepping down stops all judging.
        t.stepped_down();
        assert!(t
            .changes(&members(&[1, 2, 3]), &records, 99_999, 2000)
            .is_empty());
    }

    #[test]
    fn a_new_leader_judges_the_members_it_heard_from_from_when_it_did() {
        let mut t = LivenessTracker::default();
        // Heard the previous leader (1) last at 9 200, nobody else.
        t.became_leader(10_000, &[(1, 9_200)]);
        assert!(t.alive(1, 11_200, 2000) && !t.alive(1, 11_201, 2000));
        assert!(t.alive(2, 11_999, 2000), "unheard members get a full lease");
        // A hint from the future is clamped to now.
        t.became_leader(10_000, &[(3, 99_000)]);
        assert!(!t.alive(3, 12_001, 2000));
    }

    #[test]
    fn removed_members_are_declared_dead_and_new_ones_recorded() {
        let mut t = LivenessTracker::default();
        t.became_leader(0, &[]);
        let records: BTreeMap<_, _> = [rec(1, true), rec(9, true)].into();
        let c = t.changes(&members(&[1, 2]), &records, 100, 2000);
        assert_eq!(
            c,
            vec![
                LivenessChange {
                    id: 2,
                    addr: "m2".into(),
                    alive: true
                },
                LivenessChange {
                    id: 9,
                    addr: "m9".into(),
                    alive: false
                },
            ]
        );
    }

    #[test]
    fn lease_counts_from_send_time_and_only_grows() {
        let mut l = Lease::default();
        assert!(!l.valid(0));
        l.renew(1000, 2000);
        assert!(l.valid(2999) && !l.valid(3000));
        l.renew(500, 2000); // a late answer to an older heartbeat does not shorten it
        assert!(l.valid(2999));
        l.revoke();
        assert!(!l.valid(1001));
    }
}
