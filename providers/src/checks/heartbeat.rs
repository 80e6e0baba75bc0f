//! Heartbeat-file activity check: a file on shared storage that the host touches
//! regularly; its mtime must change between rounds.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::time::Instant;

use super::error_chain;
use crate::check::{ActivityCheck, ActivityResult};

/// Activity: the mtime of `path` changed since the previous round.
///
/// - First round: `Error` ("baseline taken"), see the [module docs](super).
/// - mtime changed (either way: a host with a clock behind ours still moves it):
///   `Active`; unchanged: `Inactive`. Only the two readings are compared, both
///   taken from the file, so no clock sync is needed.
/// - File missing or unreadable, or no answer from the storage by the deadline (a
///   hung NFS mount): `Error`; the baseline is kept for the next round.
///
/// The file is opened and its metadata read from the open handle: on NFS, opening
/// revalidates cached attributes (close-to-open consistency), so a plain attribute
/// cache (`actimeo`) does not hide a change. A stat stuck in the kernel cannot be
/// cancelled: its blocking thread stays behind, but the check returns at the deadline.
#[derive(Debug)]
pub struct HeartbeatFile {
    path: PathBuf,
    last: Mutex<Option<SystemTime>>,
}

impl HeartbeatFile {
    /// A check of `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        HeartbeatFile {
            path: path.into(),
            last: Mutex::new(None),
        }
    }

    async fn mtime(&self) -> std::io::Result<SystemTime> {
        let f = tokio::fs::File::open(&self.path).await?;
        f.metadata().await?.modified()
    }
}

/// `+1.5s` or `-2.0s`: how far `now` moved from `before`.
fn moved(before: SystemTime, now: SystemTime) -> String {
    match now.duration_since(before) {
        Ok(d) => format!("+{:.3}s", d.as_secs_f64()),
        Err(e) => format!("-{:.3}s", e.duration().as_secs_f64()),
    }
}

#[async_trait]
impl ActivityCheck for HeartbeatFile {
    async fn check(&self, deadline: Instant) -> ActivityResult {
        let path = self.path.display();
        let allowed = deadline.saturating_duration_since(Instant::now());
        let mtime = match tokio::time::timeout_at(deadline, self.mtime()).await {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                return ActivityResult::Error {
                    reason: format!("{path}: {}", error_chain(&e)),
                }
            }
            Err(_) => {
                return ActivityResult::Error {
                    reason: format!(
                        "{path}: no answer from the storage within {:.1}s",
                        allowed.as_secs_f64()
                    ),
                }
            }
        };
        let prev = self
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(mtime);
        match prev {
            None => ActivityResult::Error {
                reason: format!("{path}: baseline taken; activity is judged from the next round"),
            },
            Some(p) if p != mtime => ActivityResult::Active {
                detail: format!(
                    "{path}: mtime moved {} since the last round",
                    moved(p, mtime)
                ),
            },
            Some(_) => ActivityResult::Inactive {
                detail: format!("{path}: mtime unchanged since the last round"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn moved_is_signed() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(moved(t, t + Duration::from_millis(1500)), "+1.500s");
        assert_eq!(moved(t, t - Duration::from_secs(2)), "-2.000s");
    }
}
