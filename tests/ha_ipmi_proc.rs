//! Multi-process HA tests against real BMC emulators: 3 `vigil serve` processes
//! (tests/common/mod.rs), one OpenIPMI `ipmi_sim` per host and a host model per host
//! (tests/common/lab.rs: HTTP health endpoint and heartbeat file on 127.0.0.1, driven
//! by the BMC's chassis power file). Hosts are registered with `vigil apply -f`
//! (`ipmi` fence level, `http` health, `heartbeat-file` activity) and the pool gets
//! `vigil pool set-policy POOL --profile fast`. The chassis program's log of every
//! power `set` is the ground truth.
//!
//! - A host's owner is SIGKILLed in the middle of the power cycle that heals the host:
//!   the host becomes Available again with no second power-off and no fence.
//! - A host's owner is SIGKILLed at the moment the host crashes (for good): the host is
//!   fenced exactly once, with one power-off and no power-on.
//!
//! In both the victim host's owner is a follower, so that only the owner dies (the
//! leader-kill case is measured by `benches/takeover_proc.rs`).
//!
//! Needs `ipmi_sim` (`bash scripts/peers.sh install`): ignored by default, run by
//! `make test` (`--ignored --test-threads=1`). Every process (members, ipmi_sims) is
//! killed by PID when the test ends, also on failure.

mod common;

#[path = "support/cli.rs"]
mod cli;

#[path = "common/lab.rs"]
mod lab;

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use lab::{wall_secs, Lab, PowerSet};
use tokio::time::Instant;

/// A host of `pool` whose owner is a running member other than the leader; returns
/// (host, owner, leader).
async fn host_owned_by_a_follower(lab: &Lab, pool: &str) -> Result<(String, u64, u64)> {
    let leader = lab.c.wait_leader(None, Duration::from_secs(30)).await?;
    for h in lab.hosts.iter().filter(|h| h.pool == pool) {
        let v = lab.view(&h.name).await?;
        if let Some(o) = v.owner.filter(|&o| o != leader) {
            return Ok((h.name.clone(), o, leader));
        }
    }
    bail!("no host of {pool} is owned by a follower (leader {leader})")
}

fn offs(sets: &[PowerSet]) -> usize {
    sets.iter().filter(|s| !s.on).count()
}

/// Types and one-line texts of a host's events (for assertions and messages).
fn summary(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{}: {} [evidence: {}]",
                e["type"].as_str().unwrap_or("?"),
                e["text"].as_str().unwrap_or(""),
                e["evidence"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

/// Wait (bounded) for the first `set power 0` in `host`'s chassis log.
async fn wait_power_off(lab: &Lab, host: &str, timeout: Duration) -> Result<PowerSet> {
    let h = lab.host(host);
    let end = Instant::now() + timeout;
    loop {
        if let Some(s) = h.bmc.power_sets().into_iter().find(|s| !s.on) {
            return Ok(s);
        }
        if Instant::now() >= end {
            let explain = lab.explain(host).await.map(|x| format!("{x:#?}"));
            bail!("no power-off of {host} within {timeout:?}; explain: {explain:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ipmi_sim; run make test"]
async fn owner_killed_mid_recovery_cycle_host_heals_with_one_power_off_and_no_fence() -> Result<()>
{
    let mut lab = Lab::start(3).await?;
    lab.add_pool("rack", 3, &["policy.recovery.enabled=true"])
        .await?;
    lab.wait_settled("rack", Duration::from_secs(60)).await?;
    let (name, owner, leader) = host_owned_by_a_follower(&lab, "rack").await?;
    eprintln!("victim {name}: owner {owner}, leader {leader}");

    let crashed_wall = wall_secs();
    lab.host(&name).model.crash(true);
    // The owner decides the host is dead and power-cycles it: kill it as soon as the
    // BMC has switched the power off (ipmi_sim switches it on again by itself).
    let off = wait_power_off(&lab, &name, Duration::from_secs(60)).await?;
    lab.c.kill9(owner);
    let killed = wall_secs();
    eprintln!(
        "power off {:.0} ms after the crash; owner {owner} killed {:.0} ms after the power-off",
        (off.at - crashed_wall) * 1e3,
        (killed - off.at) * 1e3
    );

    // recovery.wait is 5 min: within 60 s only a passing health check can make it
    // Available (a fence would end in Fenced, never Available).
    lab.wait_state(&name, "available", Duration::from_secs(60))
        .await
        .context("the healed host did not become available after its owner died")?;
    let available = wall_secs();
    let h = lab.host(&name);
    let sets = h.bmc.power_sets();
    let on = sets
        .iter()
        .find(|s| s.on && s.at >= off.at)
        .copied()
        .with_context(|| {
            format!(
                "no power-on after the cycle's power-off:\n{}",
                h.bmc.log_text()
            )
        })?;
    eprintln!(
        "RESULT healed cycle -> available, owner killed mid-cycle: {:.0} ms from the power coming back on ({:.0} ms from the kill)",
        (available - on.at) * 1e3,
        (available - killed) * 1e3
    );

    // Nothing else happens afterwards.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let v = lab.view(&name).await?;
    ensure!(v.state == "available", "{name} left available: {v:?}");
    ensure!(v.owner.is_some_and(|o| o != owner), "{v:?}");
    let sets = h.bmc.power_sets();
    ensure!(
        offs(&sets) == 1,
        "expected exactly one power-off of {name} in the whole test:\n{}",
        h.bmc.log_text()
    );
    ensure!(h.bmc.is_on(), "{name} is off");
    for other in lab.hosts.iter().filter(|o| o.name != name) {
        ensure!(
            other.bmc.power_sets().is_empty(),
            "{}'s BMC was acted on:\n{}",
            other.name,
            other.bmc.log_text()
        );
    }
    let events = lab.events(&name).await?;
    let texts = summary(&events);
    ensure!(
        !events.iter().any(|e| e["type"] == "host.fenced"),
        "host.fenced event: {texts:#?}"
    );
    ensure!(
        !texts
            .iter()
            .any(|t| t.contains("-> fencing") || t.contains("-> fenced")),
        "a fencing transition: {texts:#?}"
    );
    let cycles = events
        .iter()
        .filter(|e| e["type"] == "intent.started")
        .count();
    ensure!(cycles == 1, "expected one intent (the cycle): {texts:#?}");
    let x = lab.explain(&name).await?;
    ensure!(
        !x.transitions
            .iter()
            .any(|t| t.to == "fencing" || t.to == "fenced"),
        "explain shows fencing: {x:#?}"
    );
    ensure!(x.intent.is_none() && x.alarm.is_none(), "{x:#?}");
    let explain_cli = lab.cli(&["host", "explain", &name]).await?;
    eprintln!("{explain_cli}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ipmi_sim; run make test"]
async fn owner_killed_when_its_host_crashes_host_is_fenced_exactly_once() -> Result<()> {
    let mut lab = Lab::start(3).await?;
    lab.add_pool("rack", 3, &[]).await?;
    lab.wait_settled("rack", Duration::from_secs(60)).await?;
    let (name, owner, leader) = host_owned_by_a_follower(&lab, "rack").await?;
    eprintln!("victim {name}: owner {owner}, leader {leader}");

    let crashed_at = Instant::now();
    let crashed_wall = wall_secs();
    lab.host(&name).model.crash(false);
    lab.c.kill9(owner);

    lab.wait_state(&name, "fenced", Duration::from_secs(90))
        .await
        .context("the crashed host was not fenced after its owner died")?;
    let h = lab.host(&name);
    let sets = h.bmc.power_sets();
    let off = sets.iter().find(|s| !s.on).copied();
    eprintln!(
        "RESULT crash -> fenced (API), owner killed at the crash: {:.0} ms; power-off {:?} ms after the crash",
        crashed_at.elapsed().as_secs_f64() * 1e3,
        off.map(|o| ((o.at - crashed_wall) * 1e3).round())
    );

    // Nothing else happens afterwards.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sets = h.bmc.power_sets();
    ensure!(
        offs(&sets) == 1 && !sets.iter().any(|s| s.on),
        "expected one power-off and no power-on of {name}:\n{}",
        h.bmc.log_text()
    );
    ensure!(!h.bmc.is_on(), "{name} is on");
    let v = lab.view(&name).await?;
    ensure!(v.state == "fenced", "{v:?}");
    for other in lab.hosts.iter().filter(|o| o.name != name) {
        ensure!(
            other.bmc.power_sets().is_empty(),
            "{}'s BMC was acted on:\n{}",
            other.name,
            other.bmc.log_text()
        );
    }
    let events = lab.events(&name).await?;
    let fenced = events.iter().filter(|e| e["type"] == "host.fenced").count();
    ensure!(
        fenced == 1,
        "expected exactly one host.fenced event: {:#?}",
        summary(&events)
    );
    eprintln!("{:#?}", summary(&events));
    Ok(())
}
