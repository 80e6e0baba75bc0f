//! Running an external program (fence agent, check script) under a deadline.
//!
//! The program runs with no inherited stdin: what it is given arrives on a pipe that
//! is closed after writing. It gets its own process group, so that at the deadline the
//! whole group (the agent and anything it started: `ipmitool`, `curl`, `sleep`) is
//! killed with SIGKILL, and the agent itself is killed by PID and reaped before
//! [`run`] returns. `kill_on_drop` covers a caller that drops the future early.

use std::io;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Most bytes of stdout or stderr kept (the rest is read and discarded, so that the
/// program never blocks on a full pipe).
const KEEP: usize = 64 * 1024;

/// How long, once the program has exited, its output pipes may stay open (held by
/// something it left running) before we stop reading them.
const PIPE_GRACE: Duration = Duration::from_millis(500);

/// A program that ran to completion.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output (first [`KEEP`] bytes).
    pub stdout: Vec<u8>,
    /// Standard error (first [`KEEP`] bytes).
    pub stderr: Vec<u8>,
}

/// Why a program did not run to completion.
#[derive(Debug)]
pub(crate) enum RunError {
    /// It could not be started (missing, not executable, …).
    Spawn(io::Error),
    /// Waiting for it failed.
    Wait(io::Error),
    /// The deadline passed; it was killed and reaped.
    Timeout,
}

/// Run `program args…` with `input` on its stdin, until `deadline`.
pub(crate) async fn run(
    program: &Path,
    args: &[String],
    input: &[u8],
    deadline: Instant,
) -> Result<Finished, RunError> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let mut child = spawn(&mut cmd).await.map_err(RunError::Spawn)?;
    let stdin = child.stdin.take();
    let out = tokio::spawn(read_bounded(child.stdout.take()));
    let err = tokio::spawn(read_bounded(child.stderr.take()));

    let waited = tokio::time::timeout_at(deadline, async {
        if let Some(mut stdin) = stdin {
            // A program that exits without reading its input closes the pipe: not an
            // error of ours, its exit status tells.
            let _ = stdin.write_all(input).await;
            let _ = stdin.shutdown().await;
            drop(stdin);
        }
        child.wait().await
    })
    .await;

    let status = match waited {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            kill(&mut child).await;
            out.abort();
            err.abort();
            return Err(RunError::Wait(e));
        }
        Err(_) => {
            kill(&mut child).await;
            out.abort();
            err.abort();
            return Err(RunError::Timeout);
        }
    };
    let grace = deadline.min(Instant::now() + PIPE_GRACE);
    let stdout = collect(out, grace).await;
    let stderr = collect(err, grace).await;
    Ok(Finished {
        status,
        stdout,
        stderr,
    })
}

/// Spawn, retrying briefly on ETXTBSY (a script just written while another thread
/// forked still has it open for writing in the fork's window before exec).
async fn spawn(cmd: &mut Command) -> io::Result<Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy && tries < 10 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            r => return r,
        }
    }
}

/// Kill the program's process group and the program, and reap it.
async fn kill(child: &mut Child) {
    // Only while the leader is not yet reaped: its PID (the group's ID) cannot have
    // been reused then.
    if let (Ok(None), Some(pid)) = (child.try_wait(), child.id()) {
        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
    // SIGKILL by PID, then wait: the child is reaped when this returns.
    let _ = child.kill().await;
}

async fn read_bounded<R: AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else {
        return kept;
    };
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = KEEP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

async fn collect(task: tokio::task::JoinHandle<Vec<u8>>, until: Instant) -> Vec<u8> {
    let abort = task.abort_handle();
    match tokio::time::timeout_at(until, task).await {
        Ok(Ok(v)) => v,
        _ => {
            abort.abort();
            Vec::new()
        }
    }
}

/// A short, single-line excerpt of program output: lossy UTF-8, `secret` replaced by
/// `****` wherever it appears, whitespace runs collapsed, at most `max` characters.
pub(crate) fn excerpt(bytes: &[u8], secret: Option<&str>, max: usize) -> String {
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    if let Some(s) = secret.filter(|s| !s.is_empty()) {
        text = text.replace(s, "****");
    }
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= max {
        return joined;
    }
    let mut cut: String = joined.chars().take(max).collect();
    cut.push('…');
    cut
}

/// `exit N` or `killed by signal N`.
pub(crate) fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        (None, None) => "unknown exit".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_redacts_collapses_and_bounds() {
        let s = excerpt(
            b"  login failed\n for admin/s3cret  \n",
            Some("s3cret"),
            100,
        );
        assert_eq!(s, "login failed for admin/****");
        let long = "x".repeat(50);
        let s = excerpt(long.as_bytes(), None, 10);
        assert_eq!(s, format!("{}…", "x".repeat(10)));
        assert_eq!(excerpt(b"abc", Some(""), 10), "abc");
    }
}
