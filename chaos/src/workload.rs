//! The acknowledged-writes workload (S4): unique keys written through random running
//! members; a write counts as acknowledged only when the member answered that it was
//! committed and applied. At the end every acknowledged write must be in every
//! member's state.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use vigil::settings::SettingValue;
use vigil::state::{Command, Response, Stamp};

use crate::cluster::inproc::Live;
use crate::history::Write;
use crate::seed::Stream;

/// Prefix of the workload's setting keys.
pub const PREFIX: &str = "meta.chaos-";

/// Write every `every` until `stop`; the writes, in order.
pub fn spawn(
    live: Live,
    seed: u64,
    every: Duration,
    t0: Instant,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<Vec<Write>> {
    tokio::spawn(async move {
        let mut s = Stream::new(seed, "workload");
        let mut out = Vec::new();
        let mut n = 0u64;
        loop {
            let members: Vec<_> = live.lock().expect("live").values().cloned().collect();
            if !members.is_empty() {
                let m = s.pick(&members).clone();
                n += 1;
                let key = format!("{PREFIX}{n}");
                let value = format!("v{n}-{}", s.next_u64() % 1000);
                let t_ms = t0.elapsed().as_millis() as u64;
                let cmd = Command::SetSetting {
                    key: key.clone(),
                    value: SettingValue::Text(value.clone()),
                    stamp: Stamp {
                        by: m.id(),
                        at_ms: vigil::api::settings::now_ms(),
                    },
                };
                let r = tokio::time::timeout(Duration::from_secs(3), m.write(cmd)).await;
                let acked = matches!(r, Ok(Ok(Response::Applied { .. })));
                out.push(Write {
                    key,
                    value,
                    t_ms,
                    acked,
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => break,
            }
        }
        out
    })
}
