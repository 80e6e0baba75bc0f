//! The assignment algorithm: which live member owns which host.
//!
//! A pure function of (hosts with their current owners, live members): no clock, no
//! randomness, no I/O, so every member would compute the same plan and it can be
//! tested exhaustively. The leader runs it and commits the changes (`AssignHosts`),
//! which bump the moved hosts' epochs.
//!
//! Properties (each one property-tested in `tests`):
//! - **Complete**: every host that wants an owner gets a live member; hosts that do
//!   not (their pool is disabled) get none.
//! - **Balanced**: no member owns more than `ceil(hosts / members)`.
//! - **Sticky**: a host keeps its owner when that owner is alive and not over the
//!   bound, so a member joining moves only about `1/N` of the hosts to it, and a
//!   member dying moves only its own hosts.
//! - **Deterministic**: the same inputs give the same plan. Ties (which member gets a
//!   free host) are broken by rendezvous hashing of (host, member), so a host's
//!   preferred member does not depend on the order of anything else.

use std::collections::BTreeMap;

use vigil_raft::NodeId;

/// One host as the algorithm sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot<'a> {
    /// Host name.
    pub host: &'a str,
    /// Current owner.
    pub owner: Option<NodeId>,
    /// Should it have an owner (its pool is enabled)?
    pub wanted: bool,
}

/// The changes that make the assignment complete and balanced: `(host, new owner)`,
/// in host-name order of the input. Empty when nothing needs to move.
pub fn plan(slots: &[Slot<'_>], live: &[NodeId]) -> Vec<(String, Option<NodeId>)> {
    let mut members: Vec<NodeId> = live.to_vec();
    members.sort_unstable();
    members.dedup();
    let wanted = slots.iter().filter(|s| s.wanted).count();
    let mut changes = Vec::new();
    if members.is_empty() {
        for s in slots {
            if s.owner.is_some() {
                changes.push((s.host.to_string(), None));
            }
        }
        return changes;
    }
    let cap = wanted.div_ceil(members.len()).max(1);
    let mut load: BTreeMap<NodeId, usize> = members.iter().map(|m| (*m, 0)).collect();

    // Pass 1: keep what may be kept. Hosts are visited in a stable order that does
    // not favour any member (by their rendezvous score with their owner), so when a
    // member is over the bound the hosts it sheds are the ones it is least attached to.
    let mut keep_order: Vec<usize> = (0..slots.len()).collect();
    keep_order.sort_by_key(|&i| {
        let s = &slots[i];
        std::cmp::Reverse(s.owner.map_or(0, |o| score(s.host, o)))
    });
    let mut decided: Vec<Option<Option<NodeId>>> = vec![None; slots.len()];
    for i in keep_order {
        let s = &slots[i];
        if !s.wanted {
            decided[i] = Some(None);
            continue;
        }
        if let Some(o) = s.owner {
            if let Some(l) = load.get_mut(&o) {
                if *l < cap {
                    *l += 1;
                    decided[i] = Some(Some(o));
                }
            }
        }
    }
    // Pass 2: place the rest on the member with the best score among those under the
    // bound (there is always one: cap * members >= wanted).
    for (i, s) in slots.iter().enumerate() {
        let owner = match decided[i] {
            Some(o) => o,
            None => {
                let best = members
                    .iter()
                    .filter(|m| load[m] < cap)
                    .max_by_key(|m| (score(s.host, **m), std::cmp::Reverse(**m)))
                    .copied();
                if let Some(m) = best {
                    *load.get_mut(&m).expect("member has a load") += 1;
                }
                best
            }
        };
        if owner != s.owner {
            changes.push((s.host.to_string(), owner));
        }
    }
    changes
}

/// Rendezvous (highest random weight) score of a (host, member) pair: FNV-1a 64 of
/// the host name, mixed with the member id. Stable across versions and platforms —
/// it decides placements that are replicated, so it must never change silently. The
/// runtime also uses it as a well-spread per-host hash (check jitter).
pub(crate) fn score(host: &str, member: NodeId) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for b in host.as_bytes().iter().chain(member.to_le_bytes().iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(PRIME);
    }
    // Final avalanche (splitmix64) so that nearby member ids spread well.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("host-{i:05}")).collect()
    }

    /// Apply a plan to owners.
    fn apply(owners: &mut [Option<NodeId>], names: &[String], plan: &[(String, Option<NodeId>)]) {
        let idx: BTreeMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        for (h, o) in plan {
            owners[idx[h.as_str()]] = *o;
        }
    }

    fn slots<'a>(names: &'a [String], owners: &[Option<NodeId>], wanted: &[bool]) -> Vec<Slot<'a>> {
        names
            .iter()
            .zip(owners)
            .zip(wanted)
            .map(|((n, o), w)| Slot {
                host: n,
                owner: *o,
                wanted: *w,
            })
            .collect()
    }

    fn loads(owners: &[Option<NodeId>]) -> BTreeMap<NodeId, usize> {
        let mut m = BTreeMap::new();
        for o in owners.iter().flatten() {
            *m.entry(*o).or_default() += 1;
        }
        m
    }

    #[test]
    fn fresh_assignment_is_balanced_and_join_moves_about_one_nth() {
        let n = names(300);
        let wanted = vec![true; 300];
        let mut owners = vec![None; 300];
        let p = plan(&slots(&n, &owners, &wanted), &[1, 2, 3]);
        assert_eq!(p.len(), 300);
        apply(&mut owners, &n, &p);
        assert!(
            loads(&owners).values().all(|l| *l == 100),
            "{:?}",
            loads(&owners)
        );
        // Stable: nothing to do the second time.
        assert!(plan(&slots(&n, &owners, &wanted), &[1, 2, 3]).is_empty());
        // Member 4 joins: exactly its share moves, all of it to member 4.
        let p = plan(&slots(&n, &owners, &wanted), &[1, 2, 3, 4]);
        assert_eq!(p.len(), 75, "{p:?}");
        assert!(p.iter().all(|(_, o)| *o == Some(4)));
        apply(&mut owners, &n, &p);
        assert!(loads(&owners).values().all(|l| *l == 75));
        // Member 2 dies: only its hosts move.
        let before = owners.clone();
        let p = plan(&slots(&n, &owners, &wanted), &[1, 3, 4]);
        assert_eq!(p.len(), 75);
        for (h, _) in &p {
            let i = n.iter().position(|x| x == h).unwrap();
            assert_eq!(before[i], Some(2));
        }
    }

    #[test]
    fn no_members_unassigns_and_unwanted_hosts_have_no_owner() {
        let n = names(4);
        let owners = vec![Some(1), None, Some(2), Some(1)];
        let p = plan(&slots(&n, &owners, &[true; 4]), &[]);
        assert_eq!(p.len(), 3);
        assert!(p.iter().all(|(_, o)| o.is_none()));
        let p = plan(&slots(&n, &owners, &[false, true, true, true]), &[1]);
        assert!(p.contains(&("host-00000".to_string(), None)));
        assert!(p.contains(&("host-00001".to_string(), Some(1))));
        assert!(p.contains(&("host-00002".to_string(), Some(1))));
    }

    #[test]
    fn scores_are_stable() {
        // Replicated placements depend on these values: changing the function is a
        // breaking change of the cluster protocol.
        assert_eq!(score("host-1", 1), score("host-1", 1));
        assert_ne!(score("host-1", 1), score("host-1", 2));
        assert_eq!(score("a", 1), 0xee02_fd6b_1ca7_67d1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn complete_balanced_sticky_deterministic(
            n_hosts in 0usize..120,
            members in proptest::collection::btree_set(1u64..9, 0..6),
            owner_seed in proptest::collection::vec(0u64..10, 120),
            wanted_seed in proptest::collection::vec(any::<bool>(), 120),
        ) {
            let n = names(n_hosts);
            let live: Vec<NodeId> = members.iter().copied().collect();
            let owners: Vec<Option<NodeId>> = (0..n_hosts)
                .map(|i| match owner_seed[i] { 0 => None, o => Some(o) })
                .collect();
            let wanted: Vec<bool> = (0..n_hosts).map(|i| wanted_seed[i] || i % 3 == 0).collect();
            let s = slots(&n, &owners, &wanted);
            let p = plan(&s, &live);
            prop_assert_eq!(&p, &plan(&s, &live), "deterministic");
            let mut after = owners.clone();
            apply(&mut after, &n, &p);
            let n_wanted = wanted.iter().filter(|w| **w).count();
            for i in 0..n_hosts {
                if !wanted[i] || live.is_empty() {
                    prop_assert_eq!(after[i], None);
                } else {
                    let o = after[i];
                    prop_assert!(o.is_some_and(|o| live.contains(&o)), "host {} owner {:?}", i, o);
                }
            }
            if !live.is_empty() {
                let cap = n_wanted.div_ceil(live.len()).max(1);
                for (m, l) in loads(&after) {
                    prop_assert!(l <= cap, "member {} has {} > {}", m, l, cap);
                }
                // Sticky: a wanted host whose owner is live keeps it unless that
                // owner had more than `cap` such hosts.
                let mut kept_candidates: BTreeMap<NodeId, usize> = BTreeMap::new();
                for i in 0..n_hosts {
                    if let Some(o) = owners[i] {
                        if wanted[i] && live.contains(&o) {
                            *kept_candidates.entry(o).or_default() += 1;
                        }
                    }
                }
                for i in 0..n_hosts {
                    if let Some(o) = owners[i] {
                        if wanted[i] && live.contains(&o) && kept_candidates[&o] <= cap {
                            prop_assert_eq!(after[i], Some(o), "host {} moved needlessly", i);
                        }
                    }
                }
                // The result is a fixed point.
                prop_assert!(plan(&slots(&n, &after, &wanted), &live).is_empty());
            }
        }
    }
}
