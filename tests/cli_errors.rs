//! The `vigil` CLI against real member processes: errors are refused with a non-zero
//! exit and one clear line naming the problem, and the happy paths of `cluster status`
//! and `cluster leave` do what they say.

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use common::{free_port, run_vigil, CliOutput, ProcCluster};

/// Bound on any single CLI run (the CLI's own `--timeout` is shorter).
const CLI_LIMIT: Duration = Duration::from_secs(90);

/// Run `vigil --endpoint <member id> --timeout 60s <args…>`.
async fn cli(c: &ProcCluster, id: u64, args: &[&str]) -> Result<CliOutput> {
    let url = c.url(id);
    let mut all = vec!["--endpoint", url.as_str(), "--timeout", "60s"];
    all.extend_from_slice(args);
    run_vigil(&all, CLI_LIMIT).await
}

/// Assert a run failed with a non-zero exit and `needle` on stderr.
fn assert_fails_with(out: &CliOutput, needle: &str) {
    assert!(
        !out.status.success(),
        "expected failure mentioning {needle:?}, got {out:?}"
    );
    assert!(
        out.stderr.contains(needle),
        "stderr does not mention {needle:?}: {out:?}"
    );
    assert!(
        out.stderr.lines().any(|l| l.starts_with("error: ")),
        "no `error:` line: {out:?}"
    );
}

/// Assert a run succeeded.
fn assert_ok(out: &CliOutput) {
    assert!(out.status.success(), "expected success, got {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_is_a_one_line_error() -> Result<()> {
    // A port nobody listens on (probed free a moment ago).
    let url = format!("http://127.0.0.1:{}", free_port()?);
    for args in [
        vec!["cluster", "status"],
        vec!["settings", "list"],
        vec!["settings", "set", "meta.x", "y"],
    ] {
        let mut all = vec!["--endpoint", url.as_str(), "--timeout", "10s"];
        all.extend(args);
        let out = run_vigil(&all, CLI_LIMIT).await?;
        assert_fails_with(&out, "cannot reach");
        assert_eq!(
            out.stderr.trim_end().lines().count(),
            1,
            "expected one line on stderr: {out:?}"
        );
        assert!(out.stdout.is_empty(), "nothing on stdout: {out:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_cluster_refuses_bad_requests() -> Result<()> {
    let c = ProcCluster::spawn(1, &[]).await?;
    assert_ok(&cli(&c, 1, &["cluster", "init"]).await?);
    c.wait_leader(None, Duration::from_secs(60)).await?;

    let out = cli(&c, 1, &["cluster", "init"]).await?;
    assert_fails_with(&out, "already initialized");

    let addr = c.addr(1);
    let out = cli(&c, 1, &["cluster", "join", "--id", "1", "--addr", &addr]).await?;
    assert_fails_with(&out, "already a voter");

    let out = cli(&c, 1, &["cluster", "leave", "--id", "99"]).await?;
    assert_fails_with(&out, "99");
    assert!(out.stderr.contains("unknown member 99"), "{out:?}");

    let out = cli(&c, 1, &["cluster", "leave", "--id", "1"]).await?;
    assert_fails_with(&out, "last voter");
    let s = c.status(1).await?;
    assert_eq!(s.members.len(), 1, "membership changed: {s:?}");

    assert_ok(&cli(&c, 1, &["settings", "set", "member.lease", "7s"]).await?);
    let before = cli(&c, 1, &["settings", "get", "member.lease"]).await?;
    assert_ok(&before);
    assert_eq!(before.stdout.trim(), "7s");
    let out = cli(&c, 1, &["settings", "set", "member.lease", "3ms"]).await?;
    assert_fails_with(&out, "member.lease");
    let after = cli(&c, 1, &["settings", "get", "member.lease"]).await?;
    assert_ok(&after);
    assert_eq!(after.stdout, before.stdout, "the refused value was applied");
    Ok(())
}

/// `cluster status -o json` on member `id`, parsed.
async fn status_json(c: &ProcCluster, id: u64) -> Result<serde_json::Value> {
    let out = cli(c, id, &["cluster", "status", "-o", "json"]).await?;
    if !out.status.success() {
        bail!("cluster status failed: {out:?}");
    }
    Ok(serde_json::from_str(&out.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_status_json_join_and_leave() -> Result<()> {
    let mut c = ProcCluster::start(3).await?;
    let leader = c.wait_leader(None, Duration::from_secs(60)).await?;

    // Any member answers with the leader's view.
    for id in c.ids() {
        let s = status_json(&c, id).await?;
        assert_eq!(s["leader"].as_u64(), Some(leader), "{s}");
        assert!(s["term"].as_u64().is_some_and(|t| t >= 1), "{s}");
        let members = s["members"].as_array().expect("members array");
        assert_eq!(members.len(), 3, "{s}");
        for (m, want) in members.iter().zip(1u64..) {
            assert_eq!(m["id"].as_u64(), Some(want), "{s}");
            assert_eq!(m["addr"].as_str(), Some(c.addr(want).as_str()), "{s}");
            let role = m["role"].as_str().expect("role");
            let expected = if want == leader { "leader" } else { "follower" };
            assert_eq!(role, expected, "{s}");
        }
    }

    // Joining a member that is already a voter is refused, from any member.
    let follower = c.ids().into_iter().find(|&i| i != leader).unwrap();
    let other = c
        .ids()
        .into_iter()
        .find(|&i| i != leader && i != follower)
        .unwrap();
    let addr = c.addr(follower);
    let out = cli(
        &c,
        other,
        &[
            "cluster",
            "join",
            "--id",
            &follower.to_string(),
            "--addr",
            &addr,
        ],
    )
    .await?;
    assert_fails_with(&out, "already a voter");

    // Joining an address where nobody listens, asked of a follower (forwarded to the
    // leader): the leader's answer comes back as is, not as "no leader".
    let nobody = format!("127.0.0.1:{}", free_port()?);
    let out = cli(
        &c,
        other,
        &["cluster", "join", "--id", "9", "--addr", &nobody],
    )
    .await?;
    assert_fails_with(&out, "cannot reach");
    assert_eq!(c.status(leader).await?.members.len(), 3);

    // Removing a follower, asked of the other follower (forwarded to the leader).
    let out = cli(
        &c,
        other,
        &["cluster", "leave", "--id", &follower.to_string()],
    )
    .await?;
    assert_ok(&out);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status_json(&c, leader).await?;
        let ids: Vec<u64> = s["members"]
            .as_array()
            .expect("members array")
            .iter()
            .filter_map(|m| m["id"].as_u64())
            .collect();
        if ids.len() == 2 && !ids.contains(&follower) {
            break;
        }
        if Instant::now() >= deadline {
            c.print_logs();
            bail!("member {follower} still listed after leave: {s}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The removed process is no longer part of the cluster; the rest still works.
    c.kill9(follower);
    let s = status_json(&c, other).await?;
    assert_eq!(s["members"].as_array().map(|m| m.len()), Some(2), "{s}");
    c.put_setting(other, "meta.after-leave", "ok").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_data_dir_of_another_member() -> Result<()> {
    let mut c = ProcCluster::spawn(1, &[]).await?;
    let status = c.terminate(1).await?;
    assert!(status.success(), "SIGTERM should stop cleanly: {status}");
    let dir = c.data_dir(1).to_string_lossy().into_owned();
    let listen = format!("127.0.0.1:{}", free_port()?);
    let out = run_vigil(
        &[
            "serve",
            "--id",
            "2",
            "--listen",
            &listen,
            "--data-dir",
            &dir,
        ],
        CLI_LIMIT,
    )
    .await?;
    assert_fails_with(&out, "belongs to member 1");
    // The rightful owner can still use it.
    c.restart(1).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_a_taken_port_is_a_one_line_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let listen = taken.local_addr()?.to_string();
    let data = dir.path().join("m1").to_string_lossy().into_owned();
    let out = run_vigil(
        &[
            "serve",
            "--id",
            "1",
            "--listen",
            &listen,
            "--data-dir",
            &data,
        ],
        CLI_LIMIT,
    )
    .await?;
    assert_fails_with(&out, &format!("binding {listen}"));
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{out:?}");
    assert_eq!(
        out.stderr.matches("in use").count(),
        1,
        "the OS error is repeated: {out:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_into_a_closed_pipe_is_not_a_panic() -> Result<()> {
    let c = ProcCluster::start(1).await?;
    let url = c.url(1);
    let dir = tempfile::tempdir()?;
    let err_path = dir.path().join("stderr");
    for args in [
        vec!["cluster", "status"],
        vec!["settings", "list"],
        vec!["settings", "list", "-o", "json"],
    ] {
        // Like `vigil … | head -0`: the reader is gone before anything is written.
        let mut child = std::process::Command::new(common::BIN)
            .args(["--endpoint", url.as_str()])
            .args(&args)
            .env_remove("VIGIL_ENDPOINT")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&err_path)?)
            .spawn()?;
        drop(child.stdout.take());
        let deadline = Instant::now() + CLI_LIMIT;
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("`vigil {}` did not exit", args.join(" "));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let stderr = std::fs::read_to_string(&err_path)?;
        assert!(
            !stderr.contains("panicked"),
            "`vigil {}` panicked on a closed pipe: {stderr}",
            args.join(" ")
        );
        assert!(status.success(), "{status}: {stderr}");
    }
    Ok(())
}

/// Where the CLI finds its member: several endpoints are tried in turn (a dead one is
/// skipped with a note), the CLI config file gives the endpoint when no flag or
/// variable does, and `-o yaml` gives YAML.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_fail_over_come_from_the_config_file_and_yaml_output() -> Result<()> {
    let c = ProcCluster::spawn(1, &[]).await?;
    assert_ok(&cli(&c, 1, &["cluster", "init"]).await?);
    c.wait_leader(None, Duration::from_secs(60)).await?;
    let dead = format!("http://127.0.0.1:{}", free_port()?);
    let both = format!("{dead},{}", c.url(1));
    let out = run_vigil(
        &["--endpoint", &both, "settings", "get", "member.lease"],
        CLI_LIMIT,
    )
    .await?;
    assert_ok(&out);
    assert_eq!(out.stdout.trim(), "2s");
    assert!(out.stderr.contains("cannot be reached; trying"), "{out:?}");

    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("cli.toml");
    std::fs::write(&cfg, format!("endpoint = \"{}\"\n", c.url(1)))?;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["-o", "yaml", "cluster", "status"])
        .env_remove("VIGIL_ENDPOINT")
        .env("VIGIL_CLI_CONFIG", &cfg)
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)?;
    assert_eq!(v["leader"].as_u64(), Some(1), "{text}");

    std::fs::write(&cfg, "endpont = \"typo\"\n")?;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["cluster", "status"])
        .env_remove("VIGIL_ENDPOINT")
        .env("VIGIL_CLI_CONFIG", &cfg)
        .output()
        .await?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cli.toml"));
    Ok(())
}

/// Shell completions cover every subcommand; an unknown shell is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_completions() -> Result<()> {
    for shell in ["bash", "zsh", "fish"] {
        let out = run_vigil(&["completions", shell], CLI_LIMIT).await?;
        assert_ok(&out);
        for sub in ["cluster", "host", "events", "webhook", "sim", "power"] {
            assert!(out.stdout.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let out = run_vigil(&["completions", "cmd.exe"], CLI_LIMIT).await?;
    assert!(!out.status.success());
    assert!(out.stderr.contains("bash"), "{out:?}");
    Ok(())
}

/// `vigil serve --api-token-file`: the admin API and /metrics refuse requests without
/// the token (with a hint), the CLI passes it with --token-file or VIGIL_TOKEN, health
/// checks stay open and the members still talk to each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_token_is_required_when_configured() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tf = dir.path().join("token");
    let token = "0123456789abcdef0123456789abcdef";
    std::fs::write(&tf, format!("{token}\n"))?;
    let tfs = tf.to_str().unwrap();
    let c = ProcCluster::spawn(2, &["--api-token-file", tfs]).await?;
    let out = cli(&c, 1, &["cluster", "init"]).await?;
    assert_fails_with(&out, "requires an API token");
    assert!(out.stderr.contains("--token-file"), "{out:?}");
    assert_ok(&cli(&c, 1, &["--token-file", tfs, "cluster", "init"]).await?);
    // Wait for the leader through the CLI (the test harness has no token).
    let end = Instant::now() + Duration::from_secs(30);
    while !cli(&c, 1, &["--token-file", tfs, "cluster", "status"])
        .await?
        .stdout
        .contains("leader: 1")
    {
        if Instant::now() > end {
            bail!("no leader within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let addr2 = c.addr(2);
    assert_ok(
        &cli(
            &c,
            1,
            &[
                "--token-file",
                tfs,
                "cluster",
                "join",
                "--id",
                "2",
                "--addr",
                &addr2,
            ],
        )
        .await?,
    );
    // Through member 2 with the token in the environment.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["--endpoint", &c.url(2), "-o", "json", "cluster", "status"])
        .env("VIGIL_TOKEN", token)
        .output()
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(s["members"].as_array().map(Vec::len), Some(2));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["--endpoint", &c.url(2), "cluster", "status"])
        .env("VIGIL_TOKEN", "0123456789abcdef0123456789abcdeX")
        .output()
        .await?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong"));
    let http = reqwest::Client::builder().no_proxy().build()?;
    let r = http.get(format!("{}/healthz", c.url(1))).send().await?;
    assert!(r.status().is_success());
    let r = http.get(format!("{}/metrics", c.url(1))).send().await?;
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
    let r = http
        .get(format!("{}/metrics", c.url(1)))
        .bearer_auth(token)
        .send()
        .await?;
    assert!(r.status().is_success());
    Ok(())
}
