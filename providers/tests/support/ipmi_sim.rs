//! Test harness: one OpenIPMI `ipmi_sim` process (one simulated BMC) on a free UDP
//! port of 127.0.0.1, shared by the IPMI test files (`#[path = "support/ipmi_sim.rs"]
//! mod ipmi_sim;`).
//!
//! Each [`Sim`] gets its config generated from `scripts/peers/ipmi/lan.conf.in` into
//! its own temp directory, with its own chassis power-state file, and is killed by
//! PID and reaped on drop. ipmi_sim models power only through the external
//! chassis-control program (`scripts/peers/ipmi/chassis.sh`), which keeps the state in
//! a file (`1` on, `0` off) and logs every `set` to `<name>.chassis.log`: tests read
//! both as the ground truth. Credentials: admin / password, lanplus, cipher suite 3.
//!
//! [`Sim::start_with_console`] also opens ipmi_sim's fault-injection console (TCP,
//! loopback) and [`Sim::console`] runs commands on it (`mc_disable 0x20` makes every
//! command the BMC routes to its MC answer 0xFF). [`Sim::restart`] replaces the
//! process on the same port, forgetting every session (a rebooted BMC).
//!
//! Needs `ipmi_sim` and `ipmitool` (`bash scripts/peers.sh install`).

#![allow(dead_code)] // Each test file uses its own subset.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use vigil_providers::ipmi::{IpmiConfig, IpmiDriver};
use vigil_providers::ipmitool::{IpmitoolConfig, IpmitoolDriver};
use vigil_providers::{PowerDriver, PowerState};

/// The user ipmi_sim is configured with.
pub const USER: &str = "admin";
/// Its password.
pub const PASSWORD: &str = "password";

/// `scripts/peers/ipmi`: the config template, the chassis program, the emulator
/// script.
pub fn peers_ipmi() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/peers/ipmi")
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One ipmi_sim process (one BMC), killed by PID and reaped on drop.
pub struct Sim {
    /// The ipmi_sim process (a test may kill it early to simulate a dead BMC).
    pub child: Child,
    /// Its UDP port on 127.0.0.1.
    pub port: u16,
    /// The chassis power-state file (`1` on, `0` off).
    pub power: PathBuf,
    /// The chassis program's log (one line per `set`).
    pub log: PathBuf,
    /// The console's TCP port on 127.0.0.1, when started with one.
    pub console_port: Option<u16>,
    _dir: tempfile::TempDir,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sim {
    /// A BMC whose host is on, answering as admin / password; returns once a status
    /// read (ipmitool) answers.
    pub async fn start() -> Sim {
        Sim::start_opts(false).await
    }

    /// [`Sim::start`] with ipmi_sim's console open on a free TCP port of 127.0.0.1.
    pub async fn start_with_console() -> Sim {
        Sim::start_opts(true).await
    }

    async fn start_opts(console: bool) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let src = peers_ipmi();
        let template = std::fs::read_to_string(src.join("lan.conf.in")).expect("lan.conf.in");
        let chassis = src.join("chassis.sh");
        assert!(chassis.is_file(), "{} missing", chassis.display());
        let power = dir.path().join("bmc.power");
        let log = dir.path().join("bmc.chassis.log");
        std::fs::write(&power, "1\n").unwrap();
        let port = free_udp_port();
        let guid = format!("a123456789abcdefa1234567{:08x}", port);
        let console_port = console.then(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let console_line = match console_port {
            Some(p) => format!("console 127.0.0.1 {p}"),
            None => "# no console".to_string(),
        };
        // `/bin/sh chassis.sh`: works even if the script lost its exec bit.
        let conf = template
            .replace("@NAME@", &format!("bmc{port}"))
            .replace("@PORT@", &port.to_string())
            .replace("@GUID@", &guid)
            .replace("@CHASSIS@", &format!("/bin/sh {}", chassis.display()))
            .replace("@POWERFILE@", &power.display().to_string())
            .replace("@CONSOLE@", &console_line);
        std::fs::write(dir.path().join("lan.conf"), conf).unwrap();
        let child = spawn(dir.path());
        let sim = Sim {
            child,
            port,
            power,
            log,
            console_port,
            _dir: dir,
        };
        sim.wait_ready().await;
        sim
    }

    /// Kill ipmi_sim and start a new one with the same config, port and power file:
    /// a BMC that rebooted and forgot every session.
    pub async fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(self._dir.path());
        self.wait_ready().await;
    }

    /// Run one command on the console (see [`Sim::start_with_console`]); returns
    /// what the console printed back.
    pub async fn console(&self, command: &str) -> String {
        let port = self.console_port.expect("started without a console");
        let talk = async {
            let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let mut out = Vec::new();
            // Telnet negotiation, then the "> " prompt.
            read_to_prompt(&mut c, &mut out).await;
            out.clear();
            c.write_all(format!("{command}\n").as_bytes())
                .await
                .unwrap();
            read_to_prompt(&mut c, &mut out).await;
            String::from_utf8_lossy(&out).into_owned()
        };
        tokio::time::timeout(Duration::from_secs(5), talk)
            .await
            .expect("ipmi_sim console did not answer")
    }

    async fn wait_ready(&self) {
        // Ready when a status read answers.
        let d = self.driver(PASSWORD);
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            match d.status(Instant::now() + Duration::from_secs(3)).await {
                Ok(_) => break,
                Err(e) if Instant::now() >= end => panic!("ipmi_sim never answered: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// An ipmitool driver config for this BMC (fast polling).
    pub fn config(&self, password: &str) -> IpmitoolConfig {
        let mut c = IpmitoolConfig::new("127.0.0.1", USER, password);
        c.port = self.port;
        c.poll_interval = Duration::from_millis(100);
        c
    }

    /// An ipmitool driver for this BMC.
    pub fn driver(&self, password: &str) -> IpmitoolDriver {
        IpmitoolDriver::new(self.config(password)).unwrap()
    }

    /// A native IPMI driver config for this BMC (fast polling).
    pub fn native_config(&self, password: &str) -> IpmiConfig {
        let mut c = IpmiConfig::new("127.0.0.1", USER, password);
        c.port = self.port;
        c.poll_interval = Duration::from_millis(100);
        c
    }

    /// A native IPMI driver for this BMC.
    pub fn native_driver(&self, password: &str) -> IpmiDriver {
        IpmiDriver::new(self.native_config(password)).unwrap()
    }

    /// Ground truth: the chassis power file.
    pub fn power(&self) -> PowerState {
        match std::fs::read_to_string(&self.power).unwrap().trim() {
            "1" => PowerState::On,
            "0" => PowerState::Off,
            other => panic!("power file says {other:?}"),
        }
    }

    /// Change the host's power behind the BMC's back.
    pub fn set_power(&self, s: PowerState) {
        let v = if s == PowerState::On { "1\n" } else { "0\n" };
        std::fs::write(&self.power, v).unwrap();
    }

    /// `set power` lines the chassis program logged.
    pub fn power_sets(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" set power "))
            .map(|l| l.to_string())
            .collect()
    }
}

/// Start ipmi_sim on the config in `dir` (`lan.conf`), with its state and log there.
fn spawn(dir: &Path) -> Child {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let out = std::fs::File::create(dir.join("ipmi_sim.log")).unwrap();
    Command::new("ipmi_sim")
        // -n is mandatory without a terminal; -p: no persisted state.
        .arg("-n")
        .arg("-p")
        .arg("-c")
        .arg(dir.join("lan.conf"))
        .arg("-f")
        .arg(peers_ipmi().join("bmc.emu"))
        .arg("-s")
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("ipmi_sim (run: bash scripts/peers.sh install)")
}

/// Read from the console until its "> " prompt.
async fn read_to_prompt(c: &mut tokio::net::TcpStream, out: &mut Vec<u8>) {
    let mut buf = [0u8; 512];
    while !out.ends_with(b"> ") {
        let n = c.read(&mut buf).await.unwrap();
        assert!(n > 0, "ipmi_sim console closed");
        out.extend_from_slice(&buf[..n]);
    }
}
