//! In-process 3-member cluster on loopback (real HTTP between members, sled on disk):
//! init, join ×2, replicate, leader crash and re-election, restart and catch-up,
//! catch-up by snapshot, leave, and a join that fails without leaving anything behind.

use std::time::Duration;

use tokio::net::TcpListener;
use vigil::dev::DevCluster;
use vigil::server::{start_member, RunningMember};
use vigil::settings::SettingValue;
use vigil::state::{Command, Response, Stamp, VigilState};
use vigil_raft::{Member, MemberRole, RaftTimings};

fn timings() -> RaftTimings {
    RaftTimings {
        snapshot_every: 100,
        keep_behind_snapshot: 10,
        ..RaftTimings::default()
    }
}

fn put(i: u64, tag: &str) -> Command {
    Command::SetSetting {
        key: format!("meta.{tag}{i}"),
        value: SettingValue::Text(format!("value-{i}")),
        stamp: Stamp { by: 0, at_ms: i },
    }
}

async fn write_n(m: &Member<VigilState>, n: u64, tag: &str) {
    for i in 0..n {
        let r = m.write(put(i, tag)).await.expect("write");
        assert!(matches!(r, Response::Applied { .. }), "{r:?}");
    }
}

/// Create a pool with 5 simulated hosts and take one of them from Available to a
/// committed fence intent, proposing through every member in turn.
async fn ha_story(members: &[RunningMember]) {
    use vigil::engine::health::HealthTracker;
    use vigil::engine::{Activity, HaState, Input, PowerState};
    use vigil::state::HostInput;
    let mut i = 0;
    let mut at = 10_000_000u64;
    let mut next = |cmd_at: &mut u64| {
        i += 1;
        *cmd_at += 20_000;
        (
            &members[i % members.len()].member,
            Stamp {
                by: 0,
                at_ms: *cmd_at,
            },
        )
    };
    let mut policy = std::collections::BTreeMap::new();
    policy.insert(
        "policy.recovery.enabled".to_string(),
        SettingValue::Bool(false),
    );
    policy.insert(
        "policy.activity.rounds".to_string(),
        SettingValue::Integer(1),
    );
    let (m, stamp) = next(&mut at);
    let r = m
        .write(Command::CreatePool {
            spec: vigil::fleet::pool("rack", true, policy),
            stamp,
        })
        .await
        .unwrap();
    assert!(matches!(r, Response::Applied { .. }), "{r:?}");
    let mut trackers: Vec<HealthTracker> = vec![HealthTracker::default(); 5];
    for (h, tracker) in trackers.iter_mut().enumerate() {
        let name = format!("rack-{h}");
        let (m, stamp) = next(&mut at);
        m.write(Command::AddHost {
            spec: vigil::fleet::sim_host(&name, "rack", 1),
            stamp,
        })
        .await
        .unwrap();
        let ok = tracker.observe(true, "ok", 0);
        let (m, stamp) = next(&mut at);
        m.write(Command::HostInputs {
            inputs: vec![
                HostInput {
                    host: name.clone(),
                    epoch: None,
                    input: Input::Power {
                        state: PowerState::On,
                        detail: String::new(),
                    },
                },
                HostInput {
                    host: name,
                    epoch: None,
                    input: Input::Health(ok),
                },
            ],
            stamp,
        })
        .await
        .unwrap();
    }
    for _ in 0..3 {
        let obs = trackers[0].observe(false, "down", 0);
        let (m, stamp) = next(&mut at);
        m.write(Command::HostInputs {
            inputs: vec![HostInput {
                host: "rack-0".into(),
                epoch: None,
                input: Input::Health(obs),
            }],
            stamp,
        })
        .await
        .unwrap();
    }
    let (m, stamp) = next(&mut at);
    m.write(Command::TickAll { stamp }).await.unwrap();
    let (m, stamp) = next(&mut at);
    m.write(Command::HostInputs {
        inputs: vec![HostInput {
            host: "rack-0".into(),
            epoch: None,
            input: Input::Activity {
                result: Activity::Inactive,
                detail: String::new(),
            },
        }],
        stamp,
    })
    .await
    .unwrap();
    let state = members[0]
        .member
        .read(|s| s.hosts["rack-0"].ha.state)
        .await
        .unwrap();
    assert_eq!(state, HaState::Fencing);
}

/// Wait (bounded) until every member agrees on one leader and term, has applied the
/// leader's last index, and has the same state digest.
async fn assert_converged(members: &[&RunningMember]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let views: Vec<_> = members.iter().map(|m| m.member.local_status()).collect();
        let digests: Vec<String> = members.iter().map(|m| m.member.digest()).collect();
        let same_leader = views
            .windows(2)
            .all(|w| w[0].leader == w[1].leader && w[0].term == w[1].term)
            && views[0].leader.is_some();
        let same_applied = views
            .windows(2)
            .all(|w| w[0].last_applied == w[1].last_applied);
        if same_leader && same_applied && digests.windows(2).all(|w| w[0] == w[1]) {
            return;
        }
        if std::time::Instant::now() > deadline {
            for m in members {
                let (rev, n) = m
                    .member
                    .with_applied(|a| (a.app.revision, a.app.settings.len()));
                eprintln!(
                    "member {}: revision {rev}, {n} settings, digest {}, status {:?}",
                    m.member.id(),
                    m.member.digest(),
                    m.member.local_status()
                );
            }
            panic!("members did not converge within 30s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Start member `id` again on its old address and data dir. The crashed instance's
/// last handles (connection tasks, sled's flusher) may take a moment to let go of the
/// data dir lock, so retry for a bounded time.
async fn restart(id: u64, addr: std::net::SocketAddr, dir: &std::path::Path) -> RunningMember {
    let mut last_err = None;
    for _ in 0..100 {
        let listener = TcpListener::bind(addr).await.unwrap();
        match start_member(id, listener, None, dir, timings()).await {
            Ok(m) => return m,
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("member {id} did not restart: {last_err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_replicate_fail_over_catch_up_and_leave() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = DevCluster::start(3, dir.path(), timings()).await.unwrap();

    // Replicate, writing through the leader and through a follower.
    let m1 = cluster.members[0].member.clone();
    let status = m1.status().await.unwrap();
    assert_eq!(status.members.len(), 3);
    assert_eq!(status.leader, Some(1));
    assert!(status.members.iter().all(|m| m.role != MemberRole::Learner));
    write_n(&m1, 20, "a").await;
    write_n(&cluster.members[2].member, 20, "b").await;
    let v = cluster.members[1]
        .member
        .read(|s| s.setting("meta.b19"))
        .await
        .unwrap();
    assert_eq!(v, Some(SettingValue::Text("value-19".into())));
    assert_converged(&cluster.members.iter().collect::<Vec<_>>()).await;

    drop(m1); // the test must not keep the crashed member's storage open
              // Crash the leader: a new one is elected among the others and writes continue.
    let old = cluster.members.remove(0);
    let old_addr = old.addr;
    old.crash().await;
    let survivor = cluster.members[0].member.clone();
    let new_leader = survivor
        .raft()
        .wait(Some(Duration::from_secs(15)))
        .metrics(
            |m| m.current_leader.is_some() && m.current_leader != Some(1),
            "new leader",
        )
        .await
        .expect("a new leader within 15s")
        .current_leader
        .unwrap();
    assert_ne!(new_leader, 1);
    write_n(&survivor, 150, "c").await; // crosses snapshot_every: the log gets purged

    // Restart the old leader from its data dir on its old address: it catches up.
    let restarted = restart(1, old_addr, &dir.path().join("member-1")).await;
    cluster.members.insert(0, restarted);
    assert_converged(&cluster.members.iter().collect::<Vec<_>>()).await;
    let v = cluster.members[0]
        .member
        .read(|s| s.setting("meta.c149"))
        .await
        .unwrap();
    assert_eq!(v, Some(SettingValue::Text("value-149".into())));

    // A new learner far behind (log purged past its start) catches up by snapshot.
    // The leader purges only what no follower still needs, so with everyone caught up
    // write past the next snapshot point and wait for the purge.
    write_n(&survivor, 120, "e").await;
    let leader_status = survivor
        .raft()
        .wait(Some(Duration::from_secs(15)))
        .metrics(|m| m.purged.is_some(), "log purge")
        .await
        .expect("the log should be purged behind a snapshot");
    assert!(leader_status.snapshot.is_some());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let m4 = start_member(4, listener, None, &dir.path().join("member-4"), timings())
        .await
        .unwrap();
    let after = survivor.join(4, m4.member.addr()).await.unwrap();
    assert_eq!(after.members.len(), 4);
    assert!(after
        .members
        .iter()
        .any(|m| m.id == 4 && m.role == MemberRole::Follower));
    let snap4 = m4.member.local_status().snapshot_index;
    assert!(
        snap4.unwrap_or(0) > 0,
        "member 4 should have installed a snapshot, status: {:?}",
        m4.member.local_status()
    );
    cluster.members.push(m4);
    assert_converged(&cluster.members.iter().collect::<Vec<_>>()).await;

    // A join that cannot succeed changes nothing.
    let err = survivor.join(9, "127.0.0.1:1").await.unwrap_err();
    assert!(err.to_string().contains("cannot reach"), "{err}");
    assert_eq!(survivor.status().await.unwrap().members.len(), 4);

    // Leave removes a member.
    let after = survivor.leave(4).await.unwrap();
    assert_eq!(after.members.len(), 3);
    assert!(after.members.iter().all(|m| m.id != 4));
    // The removed member was told to stop its Raft (no elections with rising terms).
    let m4 = cluster.members.pop().unwrap();
    assert_eq!(m4.member.id(), 4);
    assert!(m4.member.is_retired());
    let e = m4.member.write(put(1, "z")).await.unwrap_err();
    assert!(matches!(e, vigil_raft::Error::Retired(4)), "{e}");
    let _ = m4.stop().await;
    write_n(&survivor, 5, "d").await;

    // The HA domain replicates like everything else: a pool, hosts and an incident
    // driven through different members end in the same state digest everywhere.
    ha_story(&cluster.members).await;
    assert_converged(&cluster.members.iter().collect::<Vec<_>>()).await;

    cluster.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_replays_log_and_snapshot_to_the_same_digest() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let m = start_member(1, listener, None, dir.path(), timings())
        .await
        .unwrap();
    m.member.initialize().await.unwrap();
    m.member
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    // 250 entries with snapshot_every = 100: restart restores a snapshot and replays
    // the log after it.
    write_n(&m.member, 250, "r").await;
    let digest = m.member.digest();
    let applied = m.member.last_applied().unwrap();
    m.stop().await.unwrap();

    let listener = TcpListener::bind(addr).await.unwrap();
    let m = start_member(1, listener, None, dir.path(), timings())
        .await
        .unwrap();
    m.member
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    m.member
        .wait_applied(applied, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(m.member.local_status().snapshot_index.unwrap_or(0) > 0);
    let r = m.member.read(|s| s.revision).await.unwrap();
    assert_eq!(r, 250);
    assert_eq!(m.member.digest(), digest, "restart changed the state");
    let e = m.member.initialize().await.unwrap_err();
    assert!(e.to_string().contains("already initialized"), "{e}");
    m.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninitialized_member_fails_fast_with_a_useful_error() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let m = start_member(7, listener, None, dir.path(), timings())
        .await
        .unwrap();
    // NotInitialized (not NoLeader after waiting leader_wait_ms for a leader that
    // never comes).
    let e = m.member.write(put(1, "x")).await.unwrap_err();
    assert!(matches!(e, vigil_raft::Error::NotInitialized(7)), "{e}");
    assert!(e.to_string().contains("cluster init"), "{e}");
    let e = m.member.read(|s| s.revision).await.unwrap_err();
    assert!(matches!(e, vigil_raft::Error::NotInitialized(7)), "{e}");
    let e = m.member.join(8, "127.0.0.1:1").await.unwrap_err();
    assert!(matches!(e, vigil_raft::Error::NotInitialized(7)), "{e}");
    let ready = reqwest::get(format!("{}/readyz", m.url())).await.unwrap();
    assert_eq!(ready.status(), 503);
    let healthy = reqwest::get(format!("{}/healthz", m.url())).await.unwrap();
    assert_eq!(healthy.status(), 200);
    m.stop().await.unwrap();
}

/// A leader cut off from its majority (partitioned, deposed without knowing it yet)
/// answers a write with a timeout — outcome unknown — instead of holding the caller
/// until the partition heals (issue 10, item 8: the owner loop's proposals must not
/// block on such a leader).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_off_leader_does_not_hold_a_write_until_the_partition_heals() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = DevCluster::start(3, dir.path(), timings()).await.unwrap();
    let leader = cluster
        .members
        .iter()
        .find(|m| m.member.is_leader())
        .expect("a leader");
    leader.member.set_links_cut(true);
    let bound = RaftTimings::default().leader_wait() * 2;
    let r = tokio::time::timeout(bound * 3, leader.member.write(put(1, "cut"))).await;
    let r = r.expect("the write was still blocked long after its bound");
    assert!(
        r.is_err(),
        "a write without a majority cannot succeed: {r:?}"
    );
    leader.member.set_links_cut(false);
    cluster.stop().await.unwrap();
}
