//! Running a member: bind, start Raft, serve HTTP, stop cleanly.
//!
//! Used by `vigil serve` (one member per process), `vigil dev` and the in-process
//! cluster tests (several members in one process).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vigil_raft::{Member, NodeId, RaftTimings};

use crate::config::ServeConfig;
use crate::error::VigilError;
use crate::state::VigilState;
use crate::worker::{Providers, Worker, WorkerConfig};

/// A member serving HTTP in this process.
#[derive(Debug)]
pub struct RunningMember {
    /// The member (writes, reads, cluster operations).
    pub member: Member<VigilState>,
    /// The bound address.
    pub addr: SocketAddr,
    /// Its runtime loops (heartbeats, leader duties, owned hosts).
    pub worker: Option<Worker>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

impl RunningMember {
    /// Base URL of its HTTP API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop serving (in-flight requests finish), stop Raft, flush storage.
    pub async fn stop(mut self) -> Result<(), VigilError> {
        if let Some(w) = self.worker.take() {
            w.stop().await;
        }
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        // Long-lived requests (e.g. a join waiting for catch-up) must not hold
        // shutdown forever.
        if tokio::time::timeout(Duration::from_secs(10), &mut self.server)
            .await
            .is_err()
        {
            tracing::warn!("HTTP server did not drain in 10s; aborting it");
            self.server.abort();
        }
        self.member.shutdown().await?;
        Ok(())
    }

    /// Stop abruptly: close the HTTP server and stop Raft, without the final storage
    /// flush of [`RunningMember::stop`]. Only the in-process tests use this (real crash
    /// tests use SIGKILL on a `vigil serve` process). Returns once the server is down.
    pub async fn crash(mut self) {
        if let Some(w) = self.worker.take() {
            w.stop().await;
        }
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = self.member.raft().shutdown().await;
        if tokio::time::timeout(Duration::from_secs(10), &mut self.server)
            .await
            .is_err()
        {
            self.server.abort();
        }
    }
}

/// The HA runtime a member runs: which providers build its probes (e.g. with a
/// simulated fleet) and its loop knobs.
pub type Runtime = (Providers, WorkerConfig);

/// Start member `id` on an already bound listener: Raft and the API only, **without**
/// the HA runtime (no heartbeats, assignment, checks or actions). For tests of the
/// replicated core and tools that drive the state by hand.
pub async fn start_member(
    id: NodeId,
    listener: TcpListener,
    advertise: Option<String>,
    data_dir: &Path,
    timings: RaftTimings,
) -> Result<RunningMember, VigilError> {
    start_member_with(id, listener, advertise, data_dir, timings, None, None).await
}

/// Start member `id`, with the HA runtime when `runtime` is given (`vigil serve`
/// always gives it).
pub async fn start_member_with(
    id: NodeId,
    listener: TcpListener,
    advertise: Option<String>,
    data_dir: &Path,
    timings: RaftTimings,
    runtime: Option<Runtime>,
    api_token: Option<crate::api::auth::ApiToken>,
) -> Result<RunningMember, VigilError> {
    let addr = listener
        .local_addr()
        .map_err(|e| VigilError::io("reading bound address", e))?;
    let advertise = advertise.unwrap_or_else(|| addr.to_string());
    let member = Member::<VigilState>::start(id, &advertise, data_dir, timings).await?;
    let worker = runtime.map(|(providers, cfg)| Worker::start(member.clone(), providers, cfg));
    let mut app = crate::api::router(member.clone());
    if let Some(w) = &worker {
        app = app.merge(crate::worker::heartbeat::routes(w.shared.clone()));
    }
    app = app.merge(crate::metrics::routes(
        member.clone(),
        worker.as_ref().map(|w| w.shared.clone()),
    ));
    // Last, so that it covers every route merged above (it lets through all but
    // /api/* and /metrics).
    if let Some(t) = api_token {
        app = app.layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(t),
            crate::api::auth::require,
        ));
    }
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let res = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(id, %addr, %advertise, data_dir = %data_dir.display(), "member started");
    Ok(RunningMember {
        member,
        addr,
        worker,
        stop: Some(stop_tx),
        server,
    })
}

/// Start member `id` again on its old address and data dir after a crash (tests and
/// the chaos harness). The crashed instance's last handles may hold the data dir lock
/// for a moment, so this retries for a bounded time (100 × 50 ms).
pub async fn restart_member(
    id: NodeId,
    addr: SocketAddr,
    data_dir: &Path,
    timings: RaftTimings,
    runtime: Option<Runtime>,
) -> Result<RunningMember, VigilError> {
    let mut last = None;
    for _ in 0..100 {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| VigilError::io(format!("rebinding {addr}"), e))?;
        match start_member_with(
            id,
            listener,
            None,
            data_dir,
            timings.clone(),
            runtime.clone(),
            None,
        )
        .await
        {
            Ok(m) => return Ok(m),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last.unwrap_or_else(|| VigilError::Config(format!("member {id} did not restart"))))
}

/// `vigil serve`: run one member until SIGTERM or Ctrl-C, then shut down cleanly.
pub async fn serve(cfg: ServeConfig) -> Result<(), VigilError> {
    let api_token = match &cfg.api_token_file {
        Some(p) => Some(crate::api::auth::ApiToken::load(p)?),
        None => None,
    };
    let open_api = api_token.is_none();
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| VigilError::io(format!("binding {}", cfg.listen), e))?;
    let running = start_member_with(
        cfg.id,
        listener,
        Some(cfg.advertise_addr()),
        &cfg.data_dir,
        cfg.raft.clone(),
        Some((Providers::default(), WorkerConfig::default())),
        api_token,
    )
    .await?;
    if open_api {
        tracing::warn!(
            "no --api-token-file: the admin API and /metrics accept anyone who can reach this port"
        );
    }
    shutdown_signal().await;
    tracing::info!("shutting down: draining requests, stopping raft, flushing storage");
    running.stop().await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
