//! `vigil dev` end to end, as a newcomer would use it: the dev process with its
//! simulated fleet (Redfish BMCs on loopback), `vigil sim` to break a host, `vigil
//! events --follow` to see it fenced, then a member killed and the fleet still covered.

#[path = "support/cli.rs"]
mod cli;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_vigil");

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>, secs: u64, what: &str) -> String {
    tokio::time::timeout(Duration::from_secs(secs), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {secs} s"))
        .unwrap()
        .unwrap_or_else(|| panic!("stream ended before {what}"))
}

/// The CLI against the dev cluster (`support/cli.rs`), which must succeed.
async fn vigil(env: &[(&str, &str)], args: &[&str]) -> String {
    let endpoint = env
        .iter()
        .find(|(k, _)| *k == "VIGIL_ENDPOINT")
        .map(|(_, v)| *v)
        .expect("VIGIL_ENDPOINT");
    let (ok, out, err) = cli::vigil(endpoint, env, args).await;
    assert!(ok, "vigil {args:?}: {out}{err}");
    out
}

fn follow(endpoint: &str) -> Child {
    Command::new(BIN)
        .args([
            "--endpoint",
            endpoint,
            "-o",
            "json",
            "events",
            "--follow",
            "--last",
            "1",
            "--type",
            "host.fenced",
        ])
        .env_remove("VIGIL_ENDPOINT")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_crash_is_fenced_and_a_killed_member_leaves_the_fleet_covered() {
    let data = tempfile::tempdir().unwrap();
    let mut dev = Command::new(BIN)
        .args(["dev", "--hosts", "8", "--data-dir"])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(dev.stdout.take().unwrap()).lines();
    let (mut endpoint, mut sim) = (String::new(), String::new());
    loop {
        let l = next_line(&mut out, 90, "the dev banner").await;
        if let Some(v) = l.trim().strip_prefix("export VIGIL_ENDPOINT=") {
            endpoint = v.to_string();
        }
        if let Some(v) = l.trim().strip_prefix("export VIGIL_SIM_ENDPOINT=") {
            sim = v.to_string();
        }
        if l.starts_with("Ctrl-C stops") {
            break;
        }
    }
    assert!(!endpoint.is_empty() && !sim.is_empty());
    let env = [
        ("VIGIL_ENDPOINT", endpoint.as_str()),
        ("VIGIL_SIM_ENDPOINT", sim.as_str()),
    ];
    let hosts = vigil(&env, &["host", "list"]).await;
    assert_eq!(hosts.matches("available").count(), 8, "{hosts}");

    let mut f = follow(&endpoint);
    let mut events = BufReader::new(f.stdout.take().unwrap()).lines();
    tokio::time::sleep(Duration::from_millis(500)).await;
    vigil(&env, &["sim", "crash", "host-002"]).await;
    let e = next_line(&mut events, 30, "the host.fenced event of host-002").await;
    assert!(
        e.contains("\"host\":\"host-002\"") && e.contains("host.fenced"),
        "{e}"
    );
    assert!(
        e.contains("redfish"),
        "the real Redfish driver fenced it: {e}"
    );

    // Kill a member that is not the one we talk to: its hosts move, the next crash is
    // still handled.
    vigil(&env, &["sim", "kill-member", "2"]).await;
    vigil(&env, &["sim", "crash", "host-006"]).await;
    let e = next_line(&mut events, 60, "the host.fenced event of host-006").await;
    assert!(e.contains("\"host\":\"host-006\""), "{e}");
    let truth = vigil(&env, &["sim", "truth"]).await;
    assert_eq!(
        truth.lines().count(),
        2,
        "exactly two real power-offs: {truth}"
    );
    let list = vigil(&env, &["host", "list"]).await;
    assert_eq!(list.matches("fenced").count(), 2, "{list}");
    f.kill().await.unwrap();

    // Ctrl-C (SIGTERM) stops it cleanly.
    let pid = dev.id().expect("dev pid").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(30), dev.wait())
        .await
        .expect("vigil dev did not stop within 30 s after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}
