//! The script power driver against a fake fence agent (a shell script) that follows
//! the fence-agents convention: options as `key=value` lines on stdin.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;
use vigil_providers::script::ScriptDriver;
use vigil_providers::{DriverError, PowerAction, PowerDriver, PowerState};

const PASSWORD: &str = "s3cr3t-pw";

/// The fake agent. It keeps the power state in `power` (ON/OFF), appends each action
/// to `actions.log`, its arguments and its command line to `argv.log`, and its whole
/// stdin to `stdin.log`. A `stuck` file makes `off` succeed without changing the
/// state. A wrong password fails the way fence agents do (exit 1), echoing it.
const AGENT: &str = r#"#!/bin/sh
dir=$(dirname "$0")
echo "argc=$# argv=[$*] cmdline=[$(tr '\0' ' ' < /proc/$$/cmdline)]" >> "$dir/argv.log"
action=; password=
while IFS= read -r line || [ -n "$line" ]; do
    printf '%s\n' "$line" >> "$dir/stdin.log"
    key=${line%%=*}; val=${line#*=}
    case "$key" in
        action) action=$val ;;
        password) password=$val ;;
    esac
done
echo "---" >> "$dir/stdin.log"
echo "$action" >> "$dir/actions.log"
if [ "$password" != "s3cr3t-pw" ]; then
    echo "Failed: Unable to obtain correct plug status or plug is not available" >&2
    echo "login failed for password $password" >&2
    exit 1
fi
state=$(cat "$dir/power")
case "$action" in
    status)
        echo "Status: $state"
        if [ "$state" = ON ]; then exit 0; else exit 2; fi ;;
    off)
        [ -e "$dir/stuck" ] || echo OFF > "$dir/power"
        echo "Success: Powered OFF"; exit 0 ;;
    on) echo ON > "$dir/power"; echo "Success: Powered ON"; exit 0 ;;
    reboot) echo ON > "$dir/power"; echo "Success: Rebooted"; exit 0 ;;
    *) echo "Failed: unknown action $action" >&2; exit 1 ;;
esac
"#;

/// An agent that records its PID and its child's, then hangs.
const HANGING: &str = r#"#!/bin/sh
dir=$(dirname "$0")
cat > /dev/null
sleep 1000 &
echo $! > "$dir/child.pid"
echo $$ > "$dir/agent.pid"
wait
"#;

struct Agent {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Agent {
    fn new(script: &str, power: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fence_fake");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("power"), format!("{power}\n")).unwrap();
        Agent { dir, path }
    }

    fn driver(&self, password: &str) -> ScriptDriver {
        let mut extra = BTreeMap::new();
        extra.insert("lanplus".to_string(), "1".to_string());
        ScriptDriver::for_bmc(&self.path, "127.0.0.1", "admin", password, extra).unwrap()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    fn power(&self) -> String {
        self.read("power").trim().to_string()
    }

    fn actions(&self) -> Vec<String> {
        self.read("actions.log")
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

#[tokio::test]
async fn options_arrive_on_stdin_and_never_in_argv() {
    let a = Agent::new(AGENT, "ON");
    let r = a.driver(PASSWORD).status(soon()).await.unwrap();
    assert_eq!(r.state, PowerState::On);
    assert_eq!(
        a.read("stdin.log"),
        "action=status\nip=127.0.0.1\nlanplus=1\nusername=admin\npassword=s3cr3t-pw\n---\n"
    );
    let argv = a.read("argv.log");
    assert!(argv.starts_with("argc=0 argv=[]"), "{argv}");
    assert!(!argv.contains(PASSWORD), "{argv}");
}

#[tokio::test]
async fn status_reads_on_and_off() {
    let a = Agent::new(AGENT, "ON");
    let d = a.driver(PASSWORD);
    let r = d.status(soon()).await.unwrap();
    assert_eq!(r.state, PowerState::On);
    assert!(r.detail.contains("Status: ON"), "{}", r.detail);
    std::fs::write(a.dir.path().join("power"), "OFF\n").unwrap();
    let r = d.status(soon()).await.unwrap();
    assert_eq!(r.state, PowerState::Off);
    assert!(r.detail.contains("exit 2"), "{}", r.detail);
    assert_eq!(d.kind(), "script");
}

#[tokio::test]
async fn off_is_verified() {
    let a = Agent::new(AGENT, "ON");
    let r = a
        .driver(PASSWORD)
        .act(PowerAction::Off, soon())
        .await
        .unwrap();
    assert_eq!(r.action, PowerAction::Off);
    assert_eq!(r.verified, PowerState::Off);
    assert!(!r.already);
    assert!(r.detail.contains("was on"), "{}", r.detail);
    assert_eq!(a.power(), "OFF");
    assert_eq!(a.actions(), ["status", "off", "status"]);
}

#[tokio::test]
async fn off_when_already_off_is_a_success_without_acting() {
    let a = Agent::new(AGENT, "OFF");
    let r = a
        .driver(PASSWORD)
        .act(PowerAction::Off, soon())
        .await
        .unwrap();
    assert_eq!(r.verified, PowerState::Off);
    assert!(r.already);
    assert_eq!(a.actions(), ["status"]);
}

#[tokio::test]
async fn on_is_verified_and_idempotent() {
    let a = Agent::new(AGENT, "OFF");
    let d = a.driver(PASSWORD);
    let r = d.act(PowerAction::On, soon()).await.unwrap();
    assert_eq!((r.verified, r.already), (PowerState::On, false));
    assert_eq!(a.power(), "ON");
    let r = d.act(PowerAction::On, soon()).await.unwrap();
    assert_eq!((r.verified, r.already), (PowerState::On, true));
    assert_eq!(a.actions(), ["status", "on", "status", "status"]);
}

#[tokio::test]
async fn cycle_maps_to_reboot_and_reads_on() {
    let a = Agent::new(AGENT, "ON");
    let r = a
        .driver(PASSWORD)
        .act(PowerAction::Cycle, soon())
        .await
        .unwrap();
    assert_eq!(r.action, PowerAction::Cycle);
    assert_eq!((r.verified, r.already), (PowerState::On, false));
    assert_eq!(a.actions(), ["status", "reboot", "status"]);
    assert!(r.detail.contains("was on; reboot: exit 0"), "{}", r.detail);
}

#[tokio::test]
async fn cycle_of_an_off_host_sends_nothing_and_stays_off() {
    // The fake agent's `reboot` powers an off host on, as most agents' does: only
    // the driver's status read keeps it off.
    let a = Agent::new(AGENT, "OFF");
    let r = a
        .driver(PASSWORD)
        .act(PowerAction::Cycle, soon())
        .await
        .unwrap();
    assert_eq!(r.action, PowerAction::Cycle);
    assert_eq!((r.verified, r.already), (PowerState::Off, true));
    assert!(
        r.detail
            .starts_with("off: a cycle powers on only a host it powered off itself; nothing sent"),
        "{}",
        r.detail
    );
    assert_eq!(a.actions(), ["status"]);
    assert_eq!(a.power(), "OFF");
}

#[tokio::test]
async fn cycle_is_not_run_when_status_fails() {
    let a = Agent::new(AGENT, "OFF");
    let e = a
        .driver("wrong-pw-123")
        .act(PowerAction::Cycle, soon())
        .await
        .unwrap_err();
    let DriverError::Retryable(m) = &e else {
        panic!("{e:?}")
    };
    assert!(m.contains("reboot not run"), "{m}");
    assert_eq!(a.actions(), ["status"]);
    assert_eq!(a.power(), "OFF");
}

#[tokio::test]
async fn off_that_does_not_take_is_an_error() {
    let a = Agent::new(AGENT, "ON");
    std::fs::write(a.dir.path().join("stuck"), "").unwrap();
    let e = a
        .driver(PASSWORD)
        .act(PowerAction::Off, soon())
        .await
        .unwrap_err();
    match e {
        DriverError::Retryable(m) => {
            assert!(m.contains("reported success but power reads on"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(a.actions(), ["status", "off", "status", "status", "status"]);
}

#[tokio::test]
async fn bad_password_is_retryable_with_the_agents_words_redacted() {
    let a = Agent::new(AGENT, "ON");
    let wrong = "wrong-pw-123";
    let d = a.driver(wrong);
    for e in [
        d.status(soon()).await.unwrap_err(),
        d.act(PowerAction::Off, soon()).await.unwrap_err(),
    ] {
        let DriverError::Retryable(m) = &e else {
            panic!("{e:?}")
        };
        assert!(e.is_retryable());
        assert!(m.contains("exit 1"), "{m}");
        assert!(m.contains("Unable to obtain correct plug status"), "{m}");
        assert!(m.contains("login failed for password ****"), "{m}");
        assert!(!m.contains(wrong), "{m}");
    }
    // A failed status before `off` does not stop the fence from trying.
    assert_eq!(a.actions(), ["status", "status", "off"]);
    assert_eq!(a.power(), "ON");
}

fn gone(pid: &str) -> bool {
    // Gone, or a zombie waiting for a reaper that is not ours.
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

async fn wait_gone(pid: &str) -> bool {
    for _ in 0..100 {
        if gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn hanging_agent_is_killed_at_the_deadline() {
    let a = Agent::new(HANGING, "ON");
    let d = a.driver(PASSWORD);
    let start = Instant::now();
    let e = d
        .act(PowerAction::Off, start + Duration::from_millis(800))
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let DriverError::Timeout { what, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(what.contains("action=status"), "{what}");
    assert!(e.is_retryable());
    let agent = a.read("agent.pid");
    let child = a.read("child.pid");
    assert!(!agent.is_empty() && !child.is_empty());
    // The agent was reaped before the call returned; its `sleep` was killed with
    // its process group.
    assert!(gone(&agent), "agent {agent} still there");
    assert!(wait_gone(&child).await, "agent's child {child} still there");
}

#[tokio::test]
async fn missing_or_non_executable_agent_is_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("fence_nothing");
    let plain = dir.path().join("fence_plain");
    std::fs::write(&plain, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    for p in [&missing, &plain] {
        let d = ScriptDriver::new(p, BTreeMap::new(), PASSWORD).unwrap();
        for e in [
            d.status(soon()).await.unwrap_err(),
            d.act(PowerAction::Off, soon()).await.unwrap_err(),
        ] {
            let DriverError::Permanent(m) = &e else {
                panic!("{e:?}")
            };
            assert!(m.contains(&*p.to_string_lossy()), "{m}");
            assert!(!e.is_retryable());
        }
    }
}

#[tokio::test]
async fn unknown_exit_codes_are_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let p: &Path = &dir.path().join("fence_odd");
    std::fs::write(p, "#!/bin/sh\ncat >/dev/null\necho odd >&2\nexit 7\n").unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = ScriptDriver::new(p, BTreeMap::new(), "").unwrap();
    match d.status(soon()).await.unwrap_err() {
        DriverError::Retryable(m) => assert!(m.ends_with("exit 7: odd"), "{m}"),
        e => panic!("{e:?}"),
    }
}
