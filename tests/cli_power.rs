//! `vigil power` against a fence-agents style script: status, dry run, the --yes guard,
//! a verified power-off, and the password travelling on stdin only.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn agent(dir: &Path) -> PathBuf {
    let path = dir.join("fence_fake");
    let state = dir.join("power");
    std::fs::write(&state, "on").unwrap();
    let script = format!(
        r#"#!/bin/sh
# fence-agents convention: options as key=value lines on stdin, no arguments.
echo "argc=$#" >> {dir}/calls
action=""; password=""
while IFS='=' read -r k v; do
  case "$k" in action) action="$v";; password) password="$v";; esac
done
[ "$password" = "s3cret-pw" ] || {{ echo "bad password" >&2; exit 1; }}
case "$action" in
  status) [ "$(cat {state})" = on ] && exit 0 || exit 2;;
  off) echo off > {state};;
  on) echo on > {state};;
  reboot) echo on > {state};;
  *) exit 1;;
esac
exit 0
"#,
        dir = dir.display(),
        state = state.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .env("FAKE_PW", "s3cret-pw")
        .env("WRONG_PW", "nope")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn power_commands_through_a_fence_agent() {
    let dir = tempfile::tempdir().unwrap();
    let a = agent(dir.path());
    let fence = format!(
        "kind=script,address={},username=admin,password-env=FAKE_PW,ip=10.0.0.9",
        a.display()
    );
    let state = || {
        std::fs::read_to_string(dir.path().join("power"))
            .unwrap()
            .trim()
            .to_string()
    };

    let o = vigil(&["power", "status", "--fence", &fence]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("power is on"), "{}", text(&o));

    let o = vigil(&["power", "off", "--fence", &fence]);
    assert!(!o.status.success());
    assert!(text(&o).contains("without --yes"), "{}", text(&o));
    assert_eq!(state(), "on");

    let o = vigil(&["power", "off", "--fence", &fence, "--dry-run", "-o", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["dry_run"], true);
    assert_eq!(state(), "on", "a dry run must not act");

    let o = vigil(&["power", "off", "--fence", &fence, "--yes"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("power off verified: power is off"),
        "{}",
        text(&o)
    );
    assert_eq!(state(), "off");

    let o = vigil(&["power", "off", "--fence", &fence, "--yes", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["already"], true, "{v}");

    let bad = fence.replace("FAKE_PW", "WRONG_PW");
    let o = vigil(&["power", "status", "--fence", &bad]);
    assert!(!o.status.success());
    assert!(text(&o).contains("bad password"), "{}", text(&o));
    assert!(
        !text(&o).contains("nope"),
        "the password leaked: {}",
        text(&o)
    );

    // Options and the password went on stdin; the agent never got arguments.
    let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
    assert!(calls.lines().all(|l| l == "argc=0"), "{calls}");

    let o = vigil(&["power", "status", "--fence", "kind=sim,address=x"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("vigil dev"), "{}", text(&o));
}

#[path = "support/cli.rs"]
mod cli;

/// `vigil power --host`: a member uses the registered host's driver and its replicated
/// password (the operator's machine has none); an action is refused while the host is
/// under HA, and once allowed it is committed as an operator record before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_of_a_registered_host_goes_through_a_member() {
    use vigil::dev::DevCluster;
    use vigil::state::model::EventKind;
    let dir = tempfile::tempdir().unwrap();
    let a = agent(dir.path());
    let c = DevCluster::start(
        1,
        &dir.path().join("cluster"),
        vigil_raft::RaftTimings::default(),
    )
    .await
    .unwrap();
    let url = c.members[0].url();
    let state = || {
        std::fs::read_to_string(dir.path().join("power"))
            .unwrap()
            .trim()
            .to_string()
    };
    let fence = format!(
        "kind=script,address={},username=admin,password-env=BMC_PW,ip=10.0.0.9",
        a.display()
    );
    let pw = [("BMC_PW", "s3cret-pw")];
    let (ok, _, e) = cli::vigil(&url, &[], &["pool", "create", "rack"]).await;
    assert!(ok, "{e}");
    let (ok, _, e) = cli::vigil(
        &url,
        &pw,
        &["host", "add", "n1", "--pool", "rack", "--fence", &fence],
    )
    .await;
    assert!(ok, "{e}");

    // Status: no password in this CLI's environment; the member has it.
    let (ok, o, e) = cli::vigil(&url, &[], &["power", "status", "--host", "n1"]).await;
    assert!(ok, "{e}");
    assert!(
        o.contains("power is on") && o.contains("via member 1"),
        "{o}"
    );

    // Under HA (pool enabled, not in maintenance): refused with what to do.
    let (ok, _, e) = cli::vigil(&url, &[], &["power", "off", "--host", "n1", "--yes"]).await;
    assert!(!ok);
    assert!(e.contains("maintenance"), "{e}");
    assert_eq!(state(), "on");
    // Unknown host and missing level are clear errors.
    let (ok, _, e) = cli::vigil(&url, &[], &["power", "status", "--host", "nope"]).await;
    assert!(!ok && e.contains("unknown host"), "{e}");
    let (ok, _, e) = cli::vigil(
        &url,
        &[],
        &["power", "status", "--host", "n1", "--level", "2"],
    )
    .await;
    assert!(!ok && e.contains("level 2"), "{e}");

    let (ok, _, e) = cli::vigil(&url, &[], &["host", "maintenance", "n1", "on"]).await;
    assert!(ok, "{e}");
    let (ok, o, e) = cli::vigil(&url, &[], &["power", "off", "--host", "n1", "--dry-run"]).await;
    assert!(ok, "{e}");
    assert!(o.contains("would power off"), "{o}");
    assert_eq!(state(), "on");
    let (ok, o, e) = cli::vigil(&url, &[], &["power", "off", "--host", "n1", "--yes"]).await;
    assert!(ok, "{e}");
    assert!(o.contains("power off verified"), "{o}");
    assert_eq!(state(), "off");
    let records: Vec<String> = c.members[0].member.read_local(|s| {
        s.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Config { what } if what.contains("operator power") => Some(what.clone()),
                _ => None,
            })
            .collect()
    });
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(
        records[0].contains("requested") && records[1].contains("verified off"),
        "{records:?}"
    );
    c.stop().await.unwrap();
}
