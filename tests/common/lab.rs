//! A lab of "real" hosts for multi-process HA tests and benches: one OpenIPMI
//! `ipmi_sim` process per host as its BMC, and a small host model per host that
//! serves its HTTP health endpoint and touches its heartbeat file, both on
//! 127.0.0.1 and driven by the BMC's chassis power file.
//!
//! Used next to [`crate::common`] (`tests/common/mod.rs`, the `vigil serve` process
//! harness) and [`crate::cli`] (`tests/support/cli.rs`) by `tests/ha_ipmi_proc.rs` and
//! `benches/takeover_proc.rs` (`#[path = "…/common/lab.rs"] mod lab;`).
//!
//! - **BMC** ([`Bmc`]): `ipmi_sim -n -p` with the config generated from
//!   `scripts/peers/ipmi/lan.conf.in` into its own temp dir (lanplus, admin /
//!   password); power is modelled by `scripts/peers/ipmi/chassis.sh`, which keeps it
//!   in a file (`1`/`0`) and logs every `set` with a wall-clock timestamp to
//!   `bmc.chassis.log`: the ground truth of every power change vigil caused. A power
//!   cycle is one `set power 0`, then ipmi_sim's own `set power 1` about a second
//!   later. Killed by PID and reaped on drop. (`providers/tests/support/ipmi_sim.rs`
//!   cannot be reused from the root crate: it finds `scripts/` relative to the
//!   providers crate's manifest dir.)
//! - **Host model** ([`HostModel`]): healthy iff not crashed and its chassis power
//!   file says on. Health: `GET /health` answers 200 when healthy, 503 otherwise.
//!   Activity: while healthy it rewrites its heartbeat file every 200 ms. A crashed
//!   host stays crashed unless it was crashed with `heal_on_reboot`: then it heals
//!   once its power has gone off and on again (a reboot). The power file is polled
//!   every 20 ms. Its tasks are aborted on drop.
//!
//! Every wait is bounded.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use vigil::api::types::{ExplainView, HostView};
use vigil_providers::ipmi::{IpmiConfig, IpmiDriver};
use vigil_providers::PowerDriver;

use crate::common::ProcCluster;

/// The IPMI user every ipmi_sim is configured with.
pub const BMC_USER: &str = "admin";
/// Its password.
pub const BMC_PASSWORD: &str = "password";

/// `scripts/peers/ipmi`: the config template, the chassis program, the emulator file.
pub fn peers_ipmi() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/peers/ipmi")
}

/// Seconds since the Unix epoch, as the chassis log writes them.
pub fn wall_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One `set power` line of a chassis log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerSet {
    /// Wall-clock time (s since the epoch) the chassis program logged it.
    pub at: f64,
    /// `set power 1` (true) or `set power 0` (false).
    pub on: bool,
}

/// One ipmi_sim process (one BMC) on a free UDP port of 127.0.0.1.
#[derive(Debug)]
pub struct Bmc {
    child: Option<Child>,
    /// Its UDP port.
    pub port: u16,
    /// The chassis power file (`1` on, `0` off).
    pub power: PathBuf,
    /// The chassis program's log (one line per `set`).
    pub log: PathBuf,
    dir: PathBuf,
}

impl Drop for Bmc {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Bmc {
    /// A BMC whose host is on, with its files under `dir` (created); returns once a
    /// native IPMI status read answers. Retries on another port if ipmi_sim exits
    /// (its port was taken meanwhile).
    pub async fn start(dir: &Path) -> Result<Bmc> {
        std::fs::create_dir_all(dir.join("state"))?;
        let src = peers_ipmi();
        let template = std::fs::read_to_string(src.join("lan.conf.in"))
            .with_context(|| format!("reading {}/lan.conf.in", src.display()))?;
        let chassis = src.join("chassis.sh");
        if !chassis.is_file() {
            bail!("{} missing", chassis.display());
        }
        let power = dir.join("bmc.power");
        let log = dir.join("bmc.chassis.log");
        std::fs::write(&power, "1\n")?;
        let mut last = anyhow!("no attempt");
        for _attempt in 0..5 {
            let port = std::net::UdpSocket::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let conf = template
                .replace("@NAME@", &format!("bmc{port}"))
                .replace("@PORT@", &port.to_string())
                .replace("@GUID@", &format!("a123456789abcdefa1234567{port:08x}"))
                .replace("@CHASSIS@", &format!("/bin/sh {}", chassis.display()))
                .replace("@POWERFILE@", &power.display().to_string())
                .replace("@CONSOLE@", "# no console");
            std::fs::write(dir.join("lan.conf"), conf)?;
            let out = std::fs::File::create(dir.join("ipmi_sim.log"))?;
            let child = Command::new("ipmi_sim")
                // -n: no terminal; -p: no persisted state.
                .arg("-n")
                .arg("-p")
                .arg("-c")
                .arg(dir.join("lan.conf"))
                .arg("-f")
                .arg(src.join("bmc.emu"))
                .arg("-s")
                .arg(dir.join("state"))
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .context("spawning ipmi_sim (run: bash scripts/peers.sh install)")?;
            let mut bmc = Bmc {
                child: Some(child),
                port,
                power: power.clone(),
                log: log.clone(),
                dir: dir.to_path_buf(),
            };
            match bmc.wait_ready().await {
                Ok(()) => return Ok(bmc),
                Err(e) => {
                    bmc.kill();
                    last = e;
                }
            }
        }
        Err(last.context(format!("ipmi_sim in {}", dir.display())))
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let mut cfg = IpmiConfig::new("127.0.0.1", BMC_USER, BMC_PASSWORD);
        cfg.port = self.port;
        let d = IpmiDriver::new(cfg).map_err(|e| anyhow!("{e}"))?;
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Some(st) = c.try_wait()? {
                    self.child = None;
                    bail!(
                        "ipmi_sim exited ({st}): {}",
                        std::fs::read_to_string(self.dir.join("ipmi_sim.log")).unwrap_or_default()
                    );
                }
            }
            match d.status(Instant::now() + Duration::from_secs(2)).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= end => bail!("ipmi_sim never answered: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Kill ipmi_sim (SIGKILL by PID) and reap it. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Ground truth: the chassis power file says on.
    pub fn is_on(&self) -> bool {
        read_power(&self.power)
    }

    /// Change the power behind the BMC's back (not logged): an operator at the rack.
    pub fn set_power(&self, on: bool) -> Result<()> {
        std::fs::write(&self.power, if on { "1\n" } else { "0\n" })?;
        Ok(())
    }

    /// Every `set power` the chassis program logged, oldest first.
    pub fn power_sets(&self) -> Vec<PowerSet> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let at = w.next()?.parse::<f64>().ok()?;
                (w.next()? == "set" && w.next()? == "power").then_some(())?;
                let on = w.next()? == "1";
                Some(PowerSet { at, on })
            })
            .collect()
    }

    /// The chassis log as it is (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn read_power(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.trim() == "1")
}

/// The behaviour of one host: see the module docs.
#[derive(Debug)]
pub struct HostModel {
    crashed: AtomicBool,
    heal_on_reboot: AtomicBool,
    saw_off: AtomicBool,
    healthy: AtomicBool,
    /// Port of its HTTP health endpoint on 127.0.0.1 (`/health`).
    pub health_port: u16,
    /// Its heartbeat file.
    pub heartbeat: PathBuf,
    power: PathBuf,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for HostModel {
    fn drop(&mut self) {
        self.stop();
    }
}

impl HostModel {
    /// A healthy host whose power is `power` (a chassis power file), heartbeating into
    /// `heartbeat`.
    pub async fn start(power: &Path, heartbeat: &Path) -> Result<Arc<HostModel>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let m = Arc::new(HostModel {
            crashed: AtomicBool::new(false),
            heal_on_reboot: AtomicBool::new(false),
            saw_off: AtomicBool::new(false),
            healthy: AtomicBool::new(read_power(power)),
            health_port: listener.local_addr()?.port(),
            heartbeat: heartbeat.to_path_buf(),
            power: power.to_path_buf(),
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        std::fs::write(heartbeat, "0\n")?;
        // Weak references: the tasks must not keep the model alive after its owner
        // dropped it (drop aborts them).
        let weak = Arc::downgrade(&m);
        let serve = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    continue;
                };
                let Some(m) = weak.upgrade() else { return };
                let healthy = m.healthy.load(Ordering::SeqCst);
                drop(m);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    let read = async {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
                    let (status, body) = if healthy {
                        ("200 OK", "ok\n")
                    } else {
                        ("503 Service Unavailable", "down\n")
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        let weak = Arc::downgrade(&m);
        let life = tokio::spawn(async move {
            let mut beats = 0u64;
            let mut last_beat = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let Some(m) = weak.upgrade() else { return };
                let on = read_power(&m.power);
                if m.crashed.load(Ordering::SeqCst) {
                    if !on {
                        m.saw_off.store(true, Ordering::SeqCst);
                    } else if m.saw_off.load(Ordering::SeqCst)
                        && m.heal_on_reboot.load(Ordering::SeqCst)
                    {
                        m.crashed.store(false, Ordering::SeqCst);
                    }
                }
                let healthy = on && !m.crashed.load(Ordering::SeqCst);
                m.healthy.store(healthy, Ordering::SeqCst);
                if healthy && last_beat.elapsed() >= Duration::from_millis(200) {
                    beats += 1;
                    let _ = std::fs::write(&m.heartbeat, format!("{beats}\n"));
                    last_beat = Instant::now();
                }
            }
        });
        m.tasks.lock().expect("tasks lock").extend([serve, life]);
        Ok(m)
    }

    /// The host dies: its health endpoint fails and its heartbeat stops at once. With
    /// `heal_on_reboot`, a power-off followed by a power-on brings it back.
    pub fn crash(&self, heal_on_reboot: bool) {
        self.heal_on_reboot.store(heal_on_reboot, Ordering::SeqCst);
        self.saw_off.store(false, Ordering::SeqCst);
        self.crashed.store(true, Ordering::SeqCst);
        self.healthy.store(false, Ordering::SeqCst);
    }

    /// The host is repaired (healthy again as soon as its power is on).
    pub fn repair(&self) {
        self.crashed.store(false, Ordering::SeqCst);
        self.saw_off.store(false, Ordering::SeqCst);
    }

    /// Crashed right now.
    pub fn is_crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Healthy right now.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    /// `http://127.0.0.1:PORT/health`.
    pub fn health_url(&self) -> String {
        format!("http://127.0.0.1:{}/health", self.health_port)
    }

    /// Abort its tasks (health endpoint and heartbeat). Idempotent.
    pub fn stop(&self) {
        for t in self.tasks.lock().expect("tasks lock").drain(..) {
            t.abort();
        }
    }
}

/// One host of the lab: its BMC and its model.
#[derive(Debug)]
pub struct LabHost {
    /// Host name in vigil.
    pub name: String,
    /// Pool.
    pub pool: String,
    /// Its ipmi_sim.
    pub bmc: Bmc,
    /// Its behaviour.
    pub model: Arc<HostModel>,
}

/// A `vigil serve` cluster plus lab hosts registered in it.
#[derive(Debug)]
pub struct Lab {
    /// The members.
    pub c: ProcCluster,
    /// Every host, in creation order.
    pub hosts: Vec<LabHost>,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Members first (ProcCluster's own drop prints their logs on a panic), then
        // the BMCs and host models through their own drops.
        for h in &mut self.hosts {
            h.model.stop();
        }
    }
}

impl Lab {
    /// A cluster of `members` `vigil serve` processes, formed, with no host yet.
    pub async fn start(members: u64) -> Result<Lab> {
        let c = ProcCluster::start(members).await?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(3))
            .build()?;
        let dir = tempfile::Builder::new().prefix("vigil-lab-").tempdir()?;
        Ok(Lab {
            c,
            hosts: Vec::new(),
            http,
            dir,
        })
    }

    /// Add pool `pool` with `n` hosts (`<pool>-<i>`), each with its ipmi_sim, through
    /// `vigil apply -f inventory.yaml` (an `ipmi` fence level, an `http` health check,
    /// a `heartbeat-file` activity check), then `vigil pool set-policy <pool>
    /// --profile fast <extra…>`, and wait until every host is Available.
    pub async fn add_pool(&mut self, pool: &str, n: usize, extra: &[&str]) -> Result<()> {
        let mut yaml = format!("pools:\n  - name: {pool}\n    enabled: true\nhosts:\n");
        let first = self.hosts.len();
        for i in 0..n {
            let name = format!("{pool}-{i}");
            let hdir = self.dir.path().join(&name);
            let bmc = Bmc::start(&hdir).await?;
            let model = HostModel::start(&bmc.power, &hdir.join("heartbeat")).await?;
            yaml.push_str(&format!(
                "  - name: {name}\n    pool: {pool}\n    health: {{ kind: http, target: \"{}\" }}\n    activity: {{ kind: heartbeat-file, target: \"{}\" }}\n    fence:\n      - {{ driver: ipmi, address: \"{}\", username: {BMC_USER}, password_env: BMC_PW }}\n",
                model.health_url(),
                model.heartbeat.display(),
                bmc.address(),
            ));
            self.hosts.push(LabHost {
                name,
                pool: pool.to_string(),
                bmc,
                model,
            });
        }
        let file = self.dir.path().join(format!("{pool}.yaml"));
        std::fs::write(&file, &yaml)?;
        let f = file.display().to_string();
        self.cli(&["apply", "-f", &f]).await?;
        let mut args = vec!["pool", "set-policy", pool, "--profile", "fast"];
        args.extend_from_slice(extra);
        self.cli(&args).await?;
        for h in &self.hosts[first..] {
            self.wait_state(&h.name, "available", Duration::from_secs(60))
                .await?;
        }
        Ok(())
    }

    /// The lab host named `name`.
    pub fn host(&self, name: &str) -> &LabHost {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no lab host {name}"))
    }

    /// Run the CLI against a running member (`BMC_PW` set for `apply`); its stdout, or
    /// an error with both streams.
    pub async fn cli(&self, args: &[&str]) -> Result<String> {
        let id = *self
            .c
            .running_ids()
            .first()
            .ok_or_else(|| anyhow!("no member running"))?;
        let (ok, out, err) =
            crate::cli::vigil(&self.c.url(id), &[("BMC_PW", BMC_PASSWORD)], args).await;
        if !ok {
            bail!("`vigil {}` failed:\n{out}\n{err}", args.join(" "));
        }
        Ok(out)
    }

    /// GET `path` as JSON from the first running member (in id order, skipping
    /// `avoid`) that answers within 2 s.
    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let mut last = anyhow!("no member running");
        for id in self.c.running_ids() {
            let url = format!("{}{path}", self.c.url(id));
            let r = self
                .http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => match r.json::<T>().await {
                    Ok(v) => return Ok(v),
                    Err(e) => last = anyhow!("{url}: {e}"),
                },
                Ok(r) => {
                    let st = r.status();
                    last = anyhow!("{url}: HTTP {st}: {}", r.text().await.unwrap_or_default());
                }
                Err(e) => last = anyhow!("{url}: {e}"),
            }
        }
        Err(last)
    }

    /// `GET /api/v1/hosts/{name}`.
    pub async fn view(&self, name: &str) -> Result<HostView> {
        self.get(&format!("/api/v1/hosts/{name}")).await
    }

    /// `GET /api/v1/hosts/{name}/explain`.
    pub async fn explain(&self, name: &str) -> Result<ExplainView> {
        self.get(&format!("/api/v1/hosts/{name}/explain")).await
    }

    /// Every event of host `name` still kept (JSON, oldest first).
    pub async fn events(&self, name: &str) -> Result<Vec<serde_json::Value>> {
        let mut from = 0u64;
        let mut out = Vec::new();
        loop {
            let page: serde_json::Value = self
                .get(&format!(
                    "/api/v1/events?host={name}&from={from}&limit=1000"
                ))
                .await?;
            let evs = page["events"].as_array().cloned().unwrap_or_default();
            let next = page["next"].as_u64().unwrap_or(from);
            let done = evs.is_empty() || next == from;
            out.extend(evs);
            if done {
                return Ok(out);
            }
            from = next;
        }
    }

    /// Poll (every 50 ms, any running member) until host `name` is in `state`;
    /// returns when it was first seen so. On timeout: the error says what the host
    /// was and what `explain` says.
    pub async fn wait_state(&self, name: &str, state: &str, timeout: Duration) -> Result<Instant> {
        let end = Instant::now() + timeout;
        let mut last: String;
        loop {
            match self.view(name).await {
                Ok(v) if v.state == state => return Ok(Instant::now()),
                Ok(v) => last = format!("{} (owner {:?}, power {})", v.state, v.owner, v.power),
                Err(e) => last = format!("{e:#}"),
            }
            if Instant::now() >= end {
                let explain = match self.explain(name).await {
                    Ok(x) => format!("{x:#?}"),
                    Err(e) => format!("{e:#}"),
                };
                bail!(
                    "host {name} not {state} within {timeout:?} (last: {last}); explain: {explain}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until every lab host is `available` and owned by a running member, and
    /// every running member owns at least one host of `pool` (the leader counts them
    /// all alive again after a restart).
    pub async fn wait_settled(&self, pool: &str, timeout: Duration) -> Result<()> {
        let end = Instant::now() + timeout;
        let mut last: String;
        loop {
            match self.get::<Vec<HostView>>("/api/v1/hosts").await {
                Ok(all) => {
                    let running = self.c.running_ids();
                    let bad: Vec<String> = all
                        .iter()
                        .filter(|h| {
                            h.state != "available" || !h.owner.is_some_and(|o| running.contains(&o))
                        })
                        .map(|h| format!("{}={} owner {:?}", h.name, h.state, h.owner))
                        .collect();
                    let unowned: Vec<u64> = running
                        .iter()
                        .copied()
                        .filter(|m| !all.iter().any(|h| h.pool == pool && h.owner == Some(*m)))
                        .collect();
                    if bad.is_empty() && unowned.is_empty() {
                        return Ok(());
                    }
                    last = format!(
                        "not settled: {bad:?}; members owning nothing in {pool}: {unowned:?}"
                    );
                }
                Err(e) => last = format!("{e:#}"),
            }
            if Instant::now() >= end {
                bail!("lab not settled within {timeout:?}: {last}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
