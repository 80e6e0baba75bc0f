//! Test harness: one sushy-emulator 2.2.0 process (OpenStack's Redfish emulator, fake
//! systems driver) on a free TCP port of 127.0.0.1, shared by the Redfish test files
//! and the power-off bench (`#[path = "support/sushy.rs"] mod sushy;`).
//!
//! Needs the venv from `bash scripts/peers.sh install` (under
//! `${VIGIL_PEERS_DIR:-$HOME/.cache/vigil/peers}`), with its htpasswd (admin /
//! password) and test CA. Each [`Sushy`] gets its own config and state directory and
//! is killed by PID and reaped on drop.
//!
//! sushy's fake driver applies a power change 1–11 s after accepting it, and may
//! ignore an action sent before the previous one settled.

#![allow(dead_code)] // Each test file uses its own subset.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;
use vigil_providers::redfish::{RedfishConfig, RedfishDriver};

/// The user in the peers' htpasswd.
pub const USER: &str = "admin";
/// Its password.
pub const PASSWORD: &str = "password";

/// Where `scripts/peers.sh install` put the venv, htpasswd and TLS files.
pub fn peers_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VIGIL_PEERS_DIR") {
        return d.into();
    }
    let home = std::env::var_os("HOME").expect("HOME");
    Path::new(&home).join(".cache/vigil/peers")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One sushy-emulator process, killed (by PID) and reaped on drop.
pub struct Sushy {
    child: Child,
    /// `http(s)://127.0.0.1:PORT`.
    pub url: String,
    /// Its TCP port.
    pub port: u16,
    /// The test CA that signed its certificate (when started with TLS).
    pub ca: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Sushy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sushy {
    /// Starts an emulator with `systems` fake systems (`node1`…), all on, with TLS
    /// (the peers' test certificate for 127.0.0.1) or plain HTTP; returns once the
    /// anonymous service root answers.
    pub async fn start(systems: u32, tls: bool) -> Sushy {
        let peers = peers_dir();
        let exe = peers.join("venv/bin/sushy-emulator");
        assert!(
            exe.exists(),
            "{} missing: run `bash scripts/peers.sh install` (or make deps)",
            exe.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        let mut conf = format!(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\n\
             SUSHY_EMULATOR_LISTEN_PORT = {port}\n\
             SUSHY_EMULATOR_FAKE_DRIVER = True\n\
             SUSHY_EMULATOR_STATE_DIR = {}\n\
             SUSHY_EMULATOR_AUTH_FILE = {}\n",
            q(&dir.path().join("state")),
            q(&peers.join("htpasswd")),
        );
        if tls {
            conf += &format!(
                "SUSHY_EMULATOR_SSL_CERT = {}\nSUSHY_EMULATOR_SSL_KEY = {}\n",
                q(&peers.join("tls/cert.pem")),
                q(&peers.join("tls/key.pem"))
            );
        }
        conf += "SUSHY_EMULATOR_FAKE_SYSTEMS = [\n";
        for n in 1..=systems {
            conf += &format!(
                "  {{'uuid': '{}', 'name': 'node{n}', \
                 'power_state': 'On', 'external_notifier': False, \
                 'nics': [{{'mac': '52:54:00:00:00:{n:02x}', 'ip': '127.0.0.1'}}]}},\n",
                system_uuid(port, n)
            );
        }
        conf += "]\n";
        let conf_path = dir.path().join("sushy.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(&exe)
            .arg("--config")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let scheme = if tls { "https" } else { "http" };
        let s = Sushy {
            child,
            url: format!("{scheme}://127.0.0.1:{port}"),
            port,
            ca: peers.join("tls/ca.pem"),
            dir,
        };
        // Ready when the (anonymous) service root answers.
        let probe = reqwest::Client::builder()
            .no_proxy()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = probe.get(format!("{}/redfish/v1/", s.url)).send().await {
                if r.status().is_success() {
                    return s;
                }
            }
            assert!(
                Instant::now() < until,
                "sushy-emulator not up after 20 s; log:\n{}",
                s.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The emulator's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// The address of system `n` (1-based): `/redfish/v1/Systems/<uuid>`.
    pub fn system_uri(&self, n: u32) -> String {
        format!("/redfish/v1/Systems/{}", system_uuid(self.port, n))
    }

    /// A driver config for the emulator (admin / password, 250 ms polling; TLS not
    /// verified unless the caller sets `ca_file` or `insecure`).
    pub fn config(&self) -> RedfishConfig {
        let mut c = RedfishConfig::new(&self.url, USER, PASSWORD);
        c.poll_interval = Duration::from_millis(250);
        c
    }

    /// A driver built from [`Self::config`].
    pub fn driver(&self) -> RedfishDriver {
        RedfishDriver::new(self.config()).unwrap()
    }
}

/// The uuid of fake system `n` of the emulator on `port`.
fn system_uuid(port: u16, n: u32) -> String {
    format!("00000000-0000-4000-8000-{port:04x}{n:08x}")
}
