//! `/metrics` end to end: what 3 in-process members (real Raft over loopback, the HA
//! runtime, a simulated fleet) expose, judged by Prometheus's own tools.
//!
//! - `every_member_serves_its_metrics` (always runs): the main series are there with
//!   the right values, in both exposition formats;
//! - `promtool_finds_no_problem_in_the_exposition`, `promtool_accepts_the_example_
//!   config_and_alert_rules` and `a_real_prometheus_scrapes_the_cluster_and_sees_a_
//!   fence` need the Debian package `prometheus` (`scripts/peers.sh install`) and run
//!   with `make test` (`--ignored`). The last one starts a real Prometheus on a free
//!   127.0.0.1 port with its own config and storage in a temporary directory, waits
//!   for it to scrape all three members, crashes a simulated host and watches the
//!   fence show up in Prometheus's own query results; it kills Prometheus by PID on
//!   drop. Every wait is bounded.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::net::TcpListener;
use tokio::time::Instant;
use vigil::dev::DevCluster;
use vigil::engine::policy::parse_override;
use vigil::engine::HaState;
use vigil::fleet::{pool, sim_host};
use vigil::server::{start_member, RunningMember};
use vigil::settings::Scope;
use vigil::state::{Command, InventoryChange, Response, Stamp, VigilState};
use vigil::worker::{Providers, WorkerConfig};
use vigil_providers::sim::SimFleet;
use vigil_raft::RaftTimings;

/// Fast profile (as tests/ha.rs): a crashed host is fenced within seconds.
const FAST: &[(&str, &str)] = &[
    ("policy.health.interval", "1s"),
    ("policy.health.timeout", "500ms"),
    ("policy.health.failures", "2"),
    ("policy.activity.interval", "1s"),
    ("policy.activity.backoff", "1"),
    ("policy.activity.max_interval", "1s"),
    ("policy.activity.timeout", "1s"),
    ("policy.activity.rounds", "2"),
    ("policy.activity.failure_ratio", "1"),
    ("policy.recovery.enabled", "false"),
    ("policy.fence.timeout", "5s"),
];

/// What Prometheus 2.42 sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// 3 members with the HA runtime and `n` simulated hosts in pool `p`, all Available.
struct Cluster {
    members: Vec<RunningMember>,
    fleet: SimFleet,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(n: usize) -> Result<Cluster> {
        let fleet = SimFleet::new();
        let hosts: Vec<String> = (0..n).map(|i| format!("h{i:02}")).collect();
        for h in &hosts {
            fleet.add_host(h.clone())?;
        }
        let dir = tempfile::tempdir()?;
        let runtime = (
            Providers {
                sim: Some(fleet.clone()),
                label: String::new(),
            },
            WorkerConfig {
                tick: Duration::from_millis(50),
            },
        );
        let c = DevCluster::start_with(3, dir.path(), RaftTimings::default(), Some(runtime))
            .await
            .context("starting the cluster")?;
        let c = Cluster {
            members: c.members,
            fleet,
            _dir: dir,
        };
        let policy = FAST
            .iter()
            .map(|(k, v)| Ok((k.to_string(), parse_override(k, v, Scope::Pool)?)))
            .collect::<Result<BTreeMap<_, _>, vigil::VigilError>>()?;
        let change = InventoryChange {
            pools: vec![pool("p", true, policy)],
            hosts: hosts.iter().map(|h| sim_host(h, "p", 1)).collect(),
            ..Default::default()
        };
        let stamp = Stamp {
            by: 0,
            at_ms: vigil::api::settings::now_ms(),
        };
        let r = c.members[0]
            .member
            .write(Command::ApplyInventory { change, stamp })
            .await?;
        if let Response::Rejected { reason } = r {
            bail!("inventory rejected: {reason}");
        }
        c.wait("every host Available and every member alive", 30, |s| {
            s.hosts.len() == n
                && s.hosts.values().all(|h| h.ha.state == HaState::Available)
                && s.live_members().len() == 3
        })
        .await?;
        Ok(c)
    }

    /// Poll member 1's state until `f` holds, at most `secs` seconds.
    async fn wait(&self, what: &str, secs: u64, f: impl Fn(&VigilState) -> bool) -> Result<()> {
        let end = Instant::now() + Duration::from_secs(secs);
        while !self.members[0].member.read_local(&f) {
            if Instant::now() > end {
                bail!("timed out after {secs}s waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    async fn stop(self) -> Result<()> {
        for m in self.members {
            m.stop().await?;
        }
        Ok(())
    }
}

/// GET `url/metrics` with `accept`: (content type, body).
async fn scrape(base: &str, accept: Option<&str>) -> Result<(String, String)> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let mut req = client
        .get(format!("{base}/metrics"))
        .timeout(Duration::from_secs(5));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req.send().await?.error_for_status()?;
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok((ct, resp.text().await?))
}

/// The value of the sample `series` (name and labels exactly as exposed).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_member_serves_its_metrics() -> Result<()> {
    let c = Cluster::start(4).await?;
    // Checks have run, and each member has sent heartbeats.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (checks, beats): (u64, u64) = c
            .members
            .iter()
            .map(|m| {
                let rt = &m.worker.as_ref().expect("runtime").shared.metrics;
                (
                    rt.checks_run(vigil::metrics::runtime::CheckKind::Health),
                    rt.heartbeats(vigil::metrics::runtime::HeartbeatResult::Accepted),
                )
            })
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        if checks > 0 && beats >= 3 {
            break;
        }
        if Instant::now() > end {
            bail!("no checks ({checks}) or heartbeats ({beats}) counted in 20 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut leaders = 0.0;
    for m in &c.members {
        let (ct, body) = scrape(&m.url(), None).await?;
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        assert!(!body.contains("# EOF"), "text format has no EOF marker");
        assert!(
            body.contains("# TYPE vigil_checks_total counter\n"),
            "{body}"
        );
        leaders += sample(&body, "vigil_raft_is_leader").context("is_leader")?;
        assert!(sample(&body, "vigil_raft_term").context("term")? >= 1.0);
        let applied = sample(&body, "vigil_raft_applied_index").context("applied")?;
        let commit = sample(&body, "vigil_raft_commit_index").context("commit")?;
        // Read in this order, and both only grow: applied <= commit.
        assert!(applied <= commit, "applied {applied} > commit {commit}");
        sample(&body, "vigil_raft_last_log_index").context("last log index")?;
        assert_eq!(sample(&body, "vigil_raft_members"), Some(3.0));
        assert_eq!(sample(&body, "vigil_members_alive"), Some(3.0));
        assert_eq!(
            sample(&body, "vigil_hosts{pool=\"p\",state=\"available\"}"),
            Some(4.0)
        );
        for st in HaState::ALL {
            let series = format!("vigil_hosts{{pool=\"p\",state=\"{st}\"}}");
            assert!(sample(&body, &series).is_some(), "{series} missing");
        }
        let owned: f64 = (1..=3)
            .filter_map(|id| sample(&body, &format!("vigil_owned_hosts{{member=\"{id}\"}}")))
            .sum();
        assert_eq!(owned, 4.0);
        assert_eq!(
            sample(&body, "vigil_pool_breaker_open{pool=\"p\"}"),
            Some(0.0)
        );
        assert_eq!(
            sample(&body, "vigil_pool_fence_budget_remaining{pool=\"p\"}"),
            Some(3.0)
        );
        assert_eq!(
            sample(&body, "vigil_intents_in_flight{kind=\"fence\"}"),
            Some(0.0)
        );
        assert_eq!(sample(&body, "vigil_lease_valid"), Some(1.0));
        assert_eq!(
            sample(
                &body,
                "vigil_actions_total{kind=\"fence\",driver=\"sim\",result=\"ok\"}"
            ),
            Some(0.0)
        );
        assert!(body.contains("vigil_check_duration_seconds_bucket{"));
        if m.member.is_leader() {
            for peer in c.members.iter().filter(|p| p.member.id() != m.member.id()) {
                let series = format!(
                    "vigil_raft_replication_lag_entries{{peer=\"{}\"}}",
                    peer.member.id()
                );
                assert!(sample(&body, &series).is_some(), "{series} missing");
            }
        } else {
            assert!(!body.contains("vigil_raft_replication_lag_entries{"));
        }
        let (ct, om) = scrape(&m.url(), Some(PROMETHEUS_ACCEPT)).await?;
        assert!(
            ct.starts_with("application/openmetrics-text; version=1.0.0"),
            "{ct}"
        );
        assert!(om.ends_with("# EOF\n"));
        assert!(om.contains("# TYPE vigil_checks counter\n"));
        assert!(om.contains("# UNIT vigil_check_duration_seconds seconds\n"));
    }
    assert_eq!(leaders, 1.0, "exactly one member says it leads");
    c.stop().await
}

/// `name` on PATH, else in /usr/bin or /usr/sbin.
fn tool(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!("{name} not found: install the Debian package prometheus (scripts/peers.sh install)")
        })
}

/// Run `promtool ARGS` with `stdin`: (exit code, stdout + stderr).
fn promtool(args: &[&str], stdin: Option<&str>) -> Result<(i32, String)> {
    let mut child = Process::new(tool("promtool")?)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning promtool")?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().context("promtool stdin")?;
        pipe.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text))
}

fn docs(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/prometheus")
        .join(file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs promtool; run make test"]
async fn promtool_finds_no_problem_in_the_exposition() -> Result<()> {
    let c = Cluster::start(3).await?;
    // Let every kind of runtime series get samples: checks, heartbeats, and a fence.
    c.fleet.crash("h01")?;
    c.wait("h01 Fenced", 30, |s| {
        s.hosts["h01"].ha.state == HaState::Fenced
    })
    .await?;
    for m in &c.members {
        let (_, body) = scrape(&m.url(), None).await?;
        let (code, out) = promtool(&["check", "metrics"], Some(&body))?;
        assert_eq!(
            (code, out.trim()),
            (0, ""),
            "promtool check metrics on member {}:\n{body}",
            m.member.id()
        );
    }
    // A member without the HA runtime (Raft and the API only) too.
    let dir = tempfile::tempdir()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let bare = start_member(9, listener, None, dir.path(), RaftTimings::default()).await?;
    bare.member.initialize().await?;
    bare.member.wait_for_leader(Duration::from_secs(10)).await?;
    let (_, body) = scrape(&bare.url(), None).await?;
    assert!(!body.contains("vigil_lease_valid"), "no runtime, no lease");
    let (code, out) = promtool(&["check", "metrics"], Some(&body))?;
    assert_eq!((code, out.trim()), (0, ""), "without runtime:\n{body}");
    bare.stop().await?;
    c.stop().await
}

#[test]
#[ignore = "needs promtool; run make test"]
fn promtool_accepts_the_example_config_and_alert_rules() -> Result<()> {
    let rules = docs("alerts.yml");
    let (code, out) = promtool(&["check", "rules", &rules.to_string_lossy()], None)?;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    let config = docs("prometheus.yml");
    let (code, out) = promtool(&["check", "config", &config.to_string_lossy()], None)?;
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("FAILED"), "{out}");
    Ok(())
}

/// A Prometheus server of this test's own, killed (by PID) and reaped on drop.
struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- prometheus log ---\n{}", self.log_tail());
        }
    }
}

impl Prometheus {
    /// Start one scraping `targets` every second, with vigil's alert rules loaded.
    async fn start(targets: &[String]) -> Result<Prometheus> {
        let bin = tool("prometheus")?;
        let mut last_error = String::new();
        // A free port can be taken between our probe and Prometheus's bind: retry.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let dir = tempfile::tempdir()?;
            let config = dir.path().join("prometheus.yml");
            let list = targets
                .iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(", ");
            std::fs::write(
                &config,
                format!(
                    "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
                     rule_files: ['{}']\n\
                     scrape_configs:\n  - job_name: vigil\n    static_configs: [{{targets: [{list}]}}]\n",
                    docs("alerts.yml").display()
                ),
            )?;
            let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
            let child = Process::new(&bin)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .env_remove("http_proxy")
                .env_remove("HTTP_PROXY")
                .spawn()
                .context("spawning prometheus")?;
            let mut p = Prometheus { child, port, dir };
            match p.ready().await {
                Ok(()) => return Ok(p),
                Err(e) => last_error = format!("{e:#}\n{}", p.log_tail()),
            }
        }
        bail!("prometheus did not start: {last_error}")
    }

    async fn ready(&mut self) -> Result<()> {
        let client = reqwest::Client::builder().no_proxy().build()?;
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("prometheus exited: {status}");
            }
            let url = format!("http://127.0.0.1:{}/-/ready", self.port);
            if let Ok(r) = client.get(url).timeout(Duration::from_secs(1)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > end {
                bail!("prometheus not ready after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// An instant query: each result's labels and value.
    async fn query(&self, q: &str) -> Result<Vec<(BTreeMap<String, String>, f64)>> {
        let client = reqwest::Client::builder().no_proxy().build()?;
        let v: serde_json::Value = client
            .get(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query(&[("query", q)])
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if v["status"] != "success" {
            bail!("query {q}: {v}");
        }
        let results = v["data"]["result"]
            .as_array()
            .ok_or_else(|| anyhow!("query {q}: not a vector: {v}"))?;
        results
            .iter()
            .map(|r| {
                let labels = serde_json::from_value(r["metric"].clone())?;
                let value: f64 = r["value"][1]
                    .as_str()
                    .ok_or_else(|| anyhow!("no value in {r}"))?
                    .parse()?;
                Ok((labels, value))
            })
            .collect()
    }

    /// Query `q` until `ok` holds for its results, at most `secs` seconds.
    async fn until(
        &self,
        q: &str,
        secs: u64,
        ok: impl Fn(&[(BTreeMap<String, String>, f64)]) -> bool,
    ) -> Result<Vec<(BTreeMap<String, String>, f64)>> {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let r = self.query(q).await?;
            if ok(&r) {
                return Ok(r);
            }
            if Instant::now() > end {
                bail!("after {secs} s, {q} = {r:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Every loaded rule, once evaluated: (name, health, last error).
    async fn rules(&self) -> Result<Vec<(String, String, String)>> {
        let client = reqwest::Client::builder().no_proxy().build()?;
        let v: serde_json::Value = client
            .get(format!("http://127.0.0.1:{}/api/v1/rules", self.port))
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut out = Vec::new();
        for g in v["data"]["groups"].as_array().into_iter().flatten() {
            for r in g["rules"].as_array().into_iter().flatten() {
                out.push((
                    r["name"].as_str().unwrap_or_default().to_string(),
                    r["health"].as_str().unwrap_or_default().to_string(),
                    r["lastError"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        Ok(out)
    }
}

/// One value, or the sum of several.
fn total(r: &[(BTreeMap<String, String>, f64)]) -> f64 {
    r.iter().map(|(_, v)| v).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs promtool; run make test"]
async fn a_real_prometheus_scrapes_the_cluster_and_sees_a_fence() -> Result<()> {
    let c = Cluster::start(5).await?;
    let targets: Vec<String> = c.members.iter().map(|m| m.addr.to_string()).collect();
    let prom = Prometheus::start(&targets).await?;
    // A real scrape of all three members.
    let up = prom
        .until("up{job=\"vigil\"}", 30, |r| {
            r.len() == 3 && r.iter().all(|(_, v)| *v == 1.0)
        })
        .await?;
    let instances: Vec<&str> = up
        .iter()
        .filter_map(|(l, _)| l.get("instance").map(String::as_str))
        .collect();
    for t in &targets {
        assert!(instances.contains(&t.as_str()), "{t} not in {instances:?}");
    }
    // vigil's own series, as Prometheus stored them.
    let leaders = prom
        .until("vigil_raft_is_leader", 15, |r| r.len() == 3)
        .await?;
    assert_eq!(total(&leaders), 1.0, "one leader: {leaders:?}");
    prom.until("sum(vigil_lease_valid)", 15, |r| total(r) == 3.0)
        .await?;
    let available = prom
        .until(
            "max(vigil_hosts{job=\"vigil\",pool=\"p\",state=\"available\"})",
            15,
            |r| total(r) == 5.0,
        )
        .await?;
    assert_eq!(total(&available), 5.0);
    let fences = "sum(vigil_actions_total{kind=\"fence\",result=\"ok\"})";
    assert_eq!(
        total(&prom.until(fences, 15, |r| !r.is_empty()).await?),
        0.0
    );
    assert_eq!(
        total(&prom.query("max(vigil_hosts{state=\"fenced\"})").await?),
        0.0
    );

    // A host dies: vigil fences it, and Prometheus sees both the state and the action.
    c.fleet.crash("h03")?;
    c.wait("h03 Fenced", 30, |s| {
        s.hosts["h03"].ha.state == HaState::Fenced
    })
    .await?;
    prom.until("max(vigil_hosts{state=\"fenced\"})", 20, |r| {
        total(r) == 1.0
    })
    .await?;
    prom.until(
        "max(vigil_hosts{pool=\"p\",state=\"available\"})",
        20,
        |r| total(r) == 4.0,
    )
    .await?;
    prom.until(fences, 20, |r| total(r) >= 1.0).await?;
    let latency = prom
        .until(
            "sum(vigil_action_duration_seconds_count{kind=\"fence\"})",
            20,
            |r| total(r) >= 1.0,
        )
        .await?;
    assert!(total(&latency) >= 1.0);

    // The shipped alert rules evaluate cleanly against the real series, and none of
    // them fires for a cluster that is fine.
    let end = Instant::now() + Duration::from_secs(20);
    let rules = loop {
        let rules = prom.rules().await?;
        if !rules.is_empty() && rules.iter().all(|(_, h, _)| h != "unknown") {
            break rules;
        }
        if Instant::now() > end {
            bail!("rules not evaluated after 20 s: {rules:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(rules.len() >= 7, "{rules:?}");
    for (name, health, error) in &rules {
        assert_eq!(health, "ok", "rule {name}: {error}");
    }
    let firing = prom.query("ALERTS{alertstate=\"firing\"}").await?;
    assert!(firing.is_empty(), "{firing:?}");
    drop(prom);
    c.stop().await
}
