//! A multi-process cluster harness: real `vigil serve` processes on loopback.
//!
//! Used by the integration tests (`mod common;`) and by the failover bench
//! (`#[path = "../tests/common/mod.rs"] mod common;`). Each member is the built
//! binary (`CARGO_BIN_EXE_vigil`) run as `vigil serve --id N --listen 127.0.0.1:PORT
//! --data-dir DIR`, with its data dir and its log file (`member-N.log`, stdout and
//! stderr, appended across restarts) under one [`tempfile::TempDir`]. Everything talks
//! to 127.0.0.1 only. Every wait is bounded; when one fails, the tail of the relevant
//! member logs is printed so that the failure can be understood from the test output.
//!
//! A member counts as started once its own log says `member started` (printed after
//! it bound its port) and `/healthz` answers: a reply from some other process that
//! grabbed the same port can never be mistaken for it. Children run without
//! `RUST_LOG` (the binary's default filter, `info`) unless `VIGIL_TEST_LOG` is set,
//! and without proxy variables.
//!
//! `Drop` kills every child still running (SIGKILL) and reaps it; if the thread is
//! panicking, it prints the tail of every member log first.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use tempfile::TempDir;
use vigil::api::types::SettingView;
use vigil_raft::{ClusterStatus, MemberRole};

/// The `vigil` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_vigil");

/// How long a spawned member may take to bind and start serving.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long forming the cluster (init, joins, promotion) may take.
const FORM_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a SIGTERMed member may take to stop.
const TERM_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of log shown when a wait fails.
const TAIL_LINES: usize = 40;

/// Environment variables removed from every child (proxies must not see loopback
/// traffic; the log filter is fixed so that readiness can be read from the log).
const SCRUBBED_ENV: &[&str] = &[
    "RUST_LOG",
    "VIGIL_ENDPOINT",
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

/// A port that was free a moment ago on 127.0.0.1 (bind port 0, read it, drop the
/// socket). Racy by nature: callers retry when the child then fails to bind it.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// One member process (running or not).
#[derive(Debug)]
struct Proc {
    port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Why a spawn attempt did not give a serving member.
enum SpawnFailure {
    /// The child exited because its port was taken: pick another port or retry later.
    PortInUse,
    /// Anything else (already reported with the log tail).
    Other(anyhow::Error),
}

/// A cluster of `vigil serve` processes with ids 1..=n. See the module docs.
#[derive(Debug)]
pub struct ProcCluster {
    dir: TempDir,
    procs: BTreeMap<u64, Proc>,
    serve_args: Vec<String>,
    http: reqwest::Client,
}

impl ProcCluster {
    /// Spawn `n` members with default timings and form one cluster: `init` on member 1,
    /// join the others, wait until all `n` are voters.
    pub async fn start(n: u64) -> Result<Self> {
        Self::start_with(n, &[]).await
    }

    /// Like [`ProcCluster::start`], passing `serve_args` (e.g. `--heartbeat-ms 50`) to
    /// every `vigil serve`.
    pub async fn start_with(n: u64, serve_args: &[&str]) -> Result<Self> {
        let c = Self::spawn(n, serve_args).await?;
        c.form().await?;
        Ok(c)
    }

    /// Spawn `n` members that are not part of any cluster yet (no `init`, no joins).
    pub async fn spawn(n: u64, serve_args: &[&str]) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("vigil-proc-")
            .tempdir()
            .context("creating the cluster temp dir")?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(15))
            .build()?;
        let mut c = Self {
            dir,
            procs: BTreeMap::new(),
            serve_args: serve_args.iter().map(|s| s.to_string()).collect(),
            http,
        };
        for id in 1..=n {
            c.spawn_new(id).await?;
        }
        Ok(c)
    }

    /// Add a member with a new id that is not part of the cluster yet: spawn it on a
    /// fresh port and data dir and wait until it serves. Join it with [`Self::join`].
    pub async fn spawn_new(&mut self, id: u64) -> Result<()> {
        if self.procs.contains_key(&id) {
            bail!("member {id} already exists");
        }
        let data_dir = self.dir.path().join(format!("member-{id}"));
        let log = self.dir.path().join(format!("member-{id}.log"));
        // A port can be taken between probing it and the child binding it: retry with
        // another one.
        for _attempt in 0..8 {
            let port = free_port()?;
            self.procs.insert(
                id,
                Proc {
                    port,
                    data_dir: data_dir.clone(),
                    log: log.clone(),
                    child: None,
                },
            );
            match self.launch(id).await {
                Ok(()) => return Ok(()),
                Err(SpawnFailure::PortInUse) => continue,
                Err(SpawnFailure::Other(e)) => return Err(e),
            }
        }
        bail!("member {id}: no free port found after 8 attempts")
    }

    /// `init` on member 1, join every other member, wait until all are voters.
    pub async fn form(&self) -> Result<()> {
        self.post_json(1, "/api/v1/cluster/init", &serde_json::json!({}))
            .await
            .context("cluster init on member 1")?;
        let ids: Vec<u64> = self.procs.keys().copied().filter(|&i| i != 1).collect();
        for id in ids {
            self.join(id).await?;
        }
        self.wait_voters(self.procs.len(), FORM_TIMEOUT).await
    }

    /// Join member `id` (already spawned) through member 1's API, retrying transient
    /// failures (no leader yet) for a bounded time.
    pub async fn join(&self, id: u64) -> Result<()> {
        let body = serde_json::json!({ "id": id, "addr": self.addr(id) });
        let deadline = Instant::now() + FORM_TIMEOUT;
        let mut last = None;
        for _attempt in 0..20 {
            let via = self
                .running_ids()
                .into_iter()
                .find(|&i| i != id)
                .unwrap_or(1);
            match self.post_json(via, "/api/v1/cluster/members", &body).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    // A retried join after a lost answer says "already a voter".
                    if let Ok(s) = self.status(via).await {
                        if s.members
                            .iter()
                            .any(|m| m.id == id && m.role != MemberRole::Learner)
                        {
                            return Ok(());
                        }
                    }
                    last = Some(e);
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.print_logs();
        Err(last
            .unwrap_or_else(|| anyhow!("timed out"))
            .context(format!("joining member {id}")))
    }

    /// Wait until the leader reports exactly `n` voters (leader + followers), no learner.
    pub async fn wait_voters(&self, n: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no status yet");
        loop {
            if let Some(l) = self.leader().await {
                match self.status(l).await {
                    Ok(s) => {
                        let voters = s
                            .members
                            .iter()
                            .filter(|m| m.role != MemberRole::Learner)
                            .count();
                        if voters == n && s.members.len() == n {
                            return Ok(());
                        }
                        last = format!("{} voters of {} members", voters, s.members.len());
                    }
                    Err(e) => last = format!("{e:#}"),
                }
            }
            if Instant::now() >= deadline {
                self.print_logs();
                bail!("timed out after {timeout:?} waiting for {n} voters (last: {last})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Base URL of member `id`'s API.
    pub fn url(&self, id: u64) -> String {
        format!("http://{}", self.addr(id))
    }

    /// `127.0.0.1:PORT` of member `id` (its listen and advertise address).
    pub fn addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.proc(id).port)
    }

    /// Data dir of member `id`.
    pub fn data_dir(&self, id: u64) -> &Path {
        &self.proc(id).data_dir
    }

    /// Log file of member `id`.
    pub fn log_path(&self, id: u64) -> &Path {
        &self.proc(id).log
    }

    /// The cluster's temp dir (data dirs and logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every member id, running or not.
    pub fn ids(&self) -> Vec<u64> {
        self.procs.keys().copied().collect()
    }

    /// Ids of members whose process is running.
    pub fn running_ids(&self) -> Vec<u64> {
        self.procs
            .iter()
            .filter(|(_, p)| p.child.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// True while member `id`'s process is running (as far as the harness knows).
    pub fn is_running(&self, id: u64) -> bool {
        self.proc(id).child.is_some()
    }

    /// The shared HTTP client (no proxy, 15 s request timeout).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn proc(&self, id: u64) -> &Proc {
        self.procs
            .get(&id)
            .unwrap_or_else(|| panic!("no member {id} in this cluster"))
    }

    fn proc_mut(&mut self, id: u64) -> &mut Proc {
        self.procs
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no member {id} in this cluster"))
    }

    /// SIGKILL member `id` and reap it. No-op if it is not running.
    pub fn kill9(&mut self, id: u64) {
        if let Some(mut child) = self.proc_mut(id).child.take() {
            // std's Child::kill sends SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILL every running member at once (all signals first, then reap them all).
    pub fn kill9_all(&mut self) {
        let mut killed = Vec::new();
        for p in self.procs.values_mut() {
            if let Some(mut child) = p.child.take() {
                let _ = child.kill();
                killed.push(child);
            }
        }
        for mut child in killed {
            let _ = child.wait();
        }
    }

    /// SIGTERM member `id` and wait (bounded) for it to exit; returns its exit status.
    /// Falls back to SIGKILL, and fails, if it does not stop in time.
    pub async fn terminate(&mut self, id: u64) -> Result<ExitStatus> {
        let Some(mut child) = self.proc_mut(id).child.take() else {
            bail!("member {id} is not running");
        };
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("running kill -TERM")?;
        if !sent.success() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("kill -TERM {pid} failed: {sent}");
        }
        let deadline = Instant::now() + TERM_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.print_log(id);
                bail!("member {id} did not exit within {TERM_TIMEOUT:?} of SIGTERM (killed)");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Start member `id` again with the same id, port and data dir, and wait until it
    /// serves. Retries (bounded) while its old port is still taken.
    pub async fn restart(&mut self, id: u64) -> Result<()> {
        if self.is_running(id) {
            bail!("member {id} is still running");
        }
        for _attempt in 0..40 {
            match self.launch(id).await {
                Ok(()) => return Ok(()),
                Err(SpawnFailure::PortInUse) => {
                    tokio::time::sleep(Duration::from_millis(250)).await
                }
                Err(SpawnFailure::Other(e)) => return Err(e),
            }
        }
        self.print_log(id);
        bail!("member {id}: port {} stayed in use", self.proc(id).port)
    }

    /// Spawn member `id` with its recorded port and data dir; wait until it serves.
    async fn launch(&mut self, id: u64) -> Result<(), SpawnFailure> {
        let other = SpawnFailure::Other;
        let (port, data_dir, log_path) = {
            let p = self.proc(id);
            (p.port, p.data_dir.clone(), p.log.clone())
        };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| other(anyhow!("opening {}: {e}", log_path.display())))?;
        let offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let stdout = log.try_clone().map_err(|e| other(e.into()))?;
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--id")
            .arg(id.to_string())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&self.serve_args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log);
        for var in SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        if let Ok(filter) = std::env::var("VIGIL_TEST_LOG") {
            cmd.env("RUST_LOG", filter);
        }
        let child = cmd
            .spawn()
            .map_err(|e| other(anyhow!("spawning {BIN}: {e}")))?;
        self.proc_mut(id).child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let exited = self
                .proc_mut(id)
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.proc_mut(id).child = None;
                let text = read_from(&log_path, offset);
                if text.contains("Address already in use")
                    || text.contains(&format!("binding 127.0.0.1:{port}"))
                {
                    return Err(SpawnFailure::PortInUse);
                }
                eprintln!("--- member {id} log since this start ---\n{text}");
                return Err(other(anyhow!(
                    "member {id} exited during startup ({status})"
                )));
            }
            if read_from(&log_path, offset).contains("member started") && self.healthy(id).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill9(id);
                self.print_log(id);
                return Err(other(anyhow!(
                    "member {id} did not start serving within {READY_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn healthy(&self, id: u64) -> bool {
        let url = format!("{}/healthz", self.url(id));
        matches!(
            self.http.get(url).timeout(Duration::from_secs(2)).send().await,
            Ok(r) if r.status().is_success()
        )
    }

    /// The leader, as confirmed by the leader itself (a member's status whose
    /// `answered_by` is its `leader`), asked of each running member in id order with a
    /// short timeout. `None` when no running member can name a confirmed leader.
    pub async fn leader(&self) -> Option<u64> {
        for id in self.running_ids() {
            let Ok(s) = self
                .get_json_timeout::<ClusterStatus>(
                    id,
                    "/api/v1/cluster/status",
                    Duration::from_secs(2),
                )
                .await
            else {
                continue;
            };
            if let Some(l) = s.leader {
                if l == s.answered_by && self.procs.get(&l).is_some_and(|p| p.child.is_some()) {
                    return Some(l);
                }
            }
        }
        None
    }

    /// Wait (polling every 50 ms, bounded) for a confirmed leader other than `exclude`.
    pub async fn wait_leader(&self, exclude: Option<u64>, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader().await {
                if Some(l) != exclude {
                    return Ok(l);
                }
            }
            if Instant::now() >= deadline {
                self.print_logs();
                bail!("no leader (other than {exclude:?}) within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until the leader reports member `id` as a voter with zero lag (it has every
    /// entry the leader has).
    pub async fn wait_caught_up(&self, id: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no leader");
        loop {
            if let Some(l) = self.leader().await {
                match self.status(l).await {
                    Ok(s) => match s.members.iter().find(|m| m.id == id) {
                        Some(m) if m.role != MemberRole::Learner && m.lag == Some(0) => {
                            return Ok(())
                        }
                        Some(m) => last = format!("{m:?}"),
                        None => last = format!("member {id} not in the membership"),
                    },
                    Err(e) => last = format!("{e:#}"),
                }
            }
            if Instant::now() >= deadline {
                self.print_logs();
                bail!("member {id} did not catch up within {timeout:?} (last: {last})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /api/v1/cluster/status` on member `id` (the leader's view when reachable).
    pub async fn status(&self, id: u64) -> Result<ClusterStatus> {
        self.get_json(id, "/api/v1/cluster/status").await
    }

    /// `GET /api/v1/settings` on member `id` (linearizable).
    pub async fn settings(&self, id: u64) -> Result<Vec<SettingView>> {
        self.get_json(id, "/api/v1/settings").await
    }

    /// `PUT /api/v1/settings/{key}` with `{"value": value}` on member `id`; `Ok` only for
    /// a 2xx answer.
    pub async fn put_setting(&self, id: u64, key: &str, value: &str) -> Result<()> {
        put_setting(&self.http, &self.url(id), key, value).await
    }

    /// GET `path` on member `id`, decode JSON; non-2xx is an error with the body.
    pub async fn get_json<T: DeserializeOwned>(&self, id: u64, path: &str) -> Result<T> {
        self.get_json_timeout(id, path, Duration::from_secs(15))
            .await
    }

    /// [`Self::get_json`] with an explicit timeout.
    pub async fn get_json_timeout<T: DeserializeOwned>(
        &self,
        id: u64,
        path: &str,
        timeout: Duration,
    ) -> Result<T> {
        let url = format!("{}{path}", self.url(id));
        let resp = self.http.get(&url).timeout(timeout).send().await?;
        decode(&url, resp).await
    }

    /// POST JSON to `path` on member `id`, decode the JSON answer.
    pub async fn post_json(
        &self,
        id: u64,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let url = format!("{}{path}", self.url(id));
        let resp = self
            .http
            .post(&url)
            .json(body)
            .timeout(FORM_TIMEOUT)
            .send()
            .await?;
        decode(&url, resp).await
    }

    /// The last `lines` lines of member `id`'s log.
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        let text = read_from(&self.proc(id).log, 0);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Print the tail of member `id`'s log to stderr.
    pub fn print_log(&self, id: u64) {
        eprintln!(
            "--- member {id} ({}) log tail: {} ---\n{}\n--- end of member {id} log ---",
            if self.is_running(id) {
                "running"
            } else {
                "stopped"
            },
            self.proc(id).log.display(),
            self.log_tail(id, TAIL_LINES)
        );
    }

    /// Print the tail of every member's log to stderr.
    pub fn print_logs(&self) {
        for id in self.ids() {
            self.print_log(id);
        }
    }
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        for p in self.procs.values_mut() {
            if let Some(mut child) = p.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `PUT {base}/api/v1/settings/{key}` with `{"value": value}`; `Ok` only for 2xx. Free
/// function so that writer tasks need only a client and a URL.
pub async fn put_setting(http: &reqwest::Client, base: &str, key: &str, value: &str) -> Result<()> {
    let url = format!("{base}/api/v1/settings/{key}");
    let resp = http
        .put(&url)
        .json(&serde_json::json!({ "value": value }))
        .send()
        .await?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        let body = resp.text().await.unwrap_or_default();
        bail!("PUT {url}: HTTP {status}: {body}")
    }
}

async fn decode<T: DeserializeOwned>(url: &str, resp: reqwest::Response) -> Result<T> {
    let status = resp.status();
    let bytes = resp.bytes().await?;
    if !status.is_success() {
        bail!(
            "{url}: HTTP {status}: {}",
            String::from_utf8_lossy(&bytes).trim()
        );
    }
    serde_json::from_slice(&bytes).with_context(|| format!("decoding the answer of {url}"))
}

/// The content of `path` from byte `offset` on (lossy UTF-8; empty if unreadable).
fn read_from(path: &Path, offset: u64) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = f.read_to_end(&mut buf);
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// What a finished CLI run printed.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

/// Run the `vigil` binary with `args` (no proxy, no `VIGIL_ENDPOINT`), killing it if it
/// has not exited within `timeout`. Output goes through temp files, so a chatty child
/// can never block on a full pipe.
pub async fn run_vigil(args: &[&str], timeout: Duration) -> Result<CliOutput> {
    let dir = tempfile::tempdir()?;
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?);
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    let mut child = cmd.spawn().with_context(|| format!("spawning {BIN}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "`vigil {}` did not exit within {timeout:?}; stderr so far:\n{}",
                args.join(" "),
                read_from(&err_path, 0)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    Ok(CliOutput {
        status,
        stdout: read_from(&out_path, 0),
        stderr: read_from(&err_path, 0),
    })
}
