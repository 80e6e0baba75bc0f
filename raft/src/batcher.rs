//! The proposal batcher: concurrent proposals share one log entry and one fsync.
//!
//! openraft 0.9 waits for one leader flush per `client_write`, so one command per entry
//! caps throughput at roughly one fsync per write. The batcher queues proposals, and
//! whenever a slot among `max_inflight` entries frees up it drains *everything* queued
//! (up to `max_batch`) into a single entry. Under light load a proposal goes out alone
//! at once (no added latency); under heavy load batches grow by themselves.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::{Error, Result};

/// Submits one batch as one log entry and returns the responses in order.
pub type SubmitFn<C, R> = Arc<dyn Fn(Vec<C>) -> BoxFuture<'static, Result<Vec<R>>> + Send + Sync>;

struct Proposal<C, R> {
    cmd: C,
    reply: oneshot::Sender<Result<R>>,
}

/// Handle to the batching task. Cloning shares the queue.
pub struct Batcher<C, R> {
    tx: mpsc::Sender<Proposal<C, R>>,
    stats: Arc<BatchStats>,
}

impl<C, R> Clone for Batcher<C, R> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl<C, R> fmt::Debug for Batcher<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher")
            .field("stats", &self.stats)
            .finish()
    }
}

/// Counters for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Batches submitted.
    pub batches: std::sync::atomic::AtomicU64,
    /// Commands submitted.
    pub commands: std::sync::atomic::AtomicU64,
}

impl<C: Send + 'static, R: Send + 'static> Batcher<C, R> {
    /// Start the batching task on the current tokio runtime. It stops when every
    /// `Batcher` handle is dropped.
    pub fn spawn(submit: SubmitFn<C, R>, max_batch: usize, max_inflight: usize) -> Self {
        let (tx, rx) = mpsc::channel(max_batch.max(1) * 4);
        let stats = Arc::new(BatchStats::default());
        tokio::spawn(run(
            rx,
            submit,
            max_batch.max(1),
            max_inflight.max(1),
            stats.clone(),
        ));
        Self { tx, stats }
    }

    /// Propose one command and wait for its response.
    pub async fn propose(&self, cmd: C) -> Result<R> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Proposal { cmd, reply })
            .await
            .map_err(|_| Error::Fatal("proposal batcher stopped".into()))?;
        rx.await
            .map_err(|_| Error::Fatal("proposal dropped by the batcher".into()))?
    }

    /// Batches and commands submitted so far.
    pub fn stats(&self) -> &BatchStats {
        &self.stats
    }
}

async fn run<C: Send + 'static, R: Send + 'static>(
    mut rx: mpsc::Receiver<Proposal<C, R>>,
    submit: SubmitFn<C, R>,
    max_batch: usize,
    max_inflight: usize,
    stats: Arc<BatchStats>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let slots = Arc::new(Semaphore::new(max_inflight));
    while let Some(first) = rx.recv().await {
        // Wait for a free slot *before* draining: while all slots are busy, new
        // proposals pile up in the queue and leave together in the next batch.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        stats.batches.fetch_add(1, Relaxed);
        stats.commands.fetch_add(batch.len() as u64, Relaxed);
        let submit = submit.clone();
        tokio::spawn(async move {
            let (cmds, replies): (Vec<C>, Vec<_>) =
                batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
            let n = cmds.len();
            match submit(cmds).await {
                Ok(responses) if responses.len() == n => {
                    for (reply, r) in replies.into_iter().zip(responses) {
                        let _ = reply.send(Ok(r));
                    }
                }
                Ok(responses) => {
                    let e = Error::Fatal(format!(
                        "batch of {n} commands got {} responses",
                        responses.len()
                    ));
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
            drop(permit);
        });
    }
}
