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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    use super::*;

    /// A submit function that "commits" slowly (like an fsync) and answers `2 * cmd`.
    fn slow_double() -> SubmitFn<u64, u64> {
        Arc::new(|cmds: Vec<u64>| {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(cmds.into_iter().map(|c| c * 2).collect())
            })
        })
    }

    #[tokio::test]
    async fn every_proposer_gets_its_own_answer_and_batches_form() {
        let b = Batcher::spawn(slow_double(), 64, 2);
        let tasks: Vec<_> = (0..1000u64)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { (i, b.propose(i).await) })
            })
            .collect();
        for t in tasks {
            let (i, r) = t.await.unwrap();
            assert_eq!(r.unwrap(), 2 * i);
        }
        let batches = b.stats().batches.load(Relaxed);
        let commands = b.stats().commands.load(Relaxed);
        assert_eq!(commands, 1000);
        // 1000 concurrent proposals behind 2 slots cannot need more than a fraction
        // of 1000 batches; each batch is capped at 64.
        assert!(batches >= 1000 / 64, "{batches}");
        assert!(batches < 200, "batching did not happen: {batches} batches");
    }

    #[tokio::test]
    async fn a_lone_proposal_goes_out_alone() {
        let b = Batcher::spawn(slow_double(), 64, 2);
        assert_eq!(b.propose(21).await.unwrap(), 42);
        assert_eq!(b.stats().batches.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn errors_reach_every_proposer_of_the_batch() {
        let failing: SubmitFn<u64, u64> = Arc::new(|_| Box::pin(async { Err(Error::NoLeader) }));
        let b = Batcher::spawn(failing, 64, 1);
        let tasks: Vec<_> = (0..10u64)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { b.propose(i).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap_err(), Error::NoLeader);
        }
    }

    #[tokio::test]
    async fn short_answer_is_an_error_not_a_misdelivery() {
        let short: SubmitFn<u64, u64> = Arc::new(|_| Box::pin(async { Ok(vec![]) }));
        let b = Batcher::spawn(short, 64, 1);
        assert!(matches!(b.propose(1).await, Err(Error::Fatal(_))));
    }
}
