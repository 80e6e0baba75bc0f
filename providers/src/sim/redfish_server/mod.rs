//! [`SimRedfishServer`]: the simulated fleet's BMCs served as Redfish over HTTP, so
//! that the real [`RedfishDriver`](crate::redfish::RedfishDriver) (and any other
//! Redfish client) can be run against simulated hosts with injected faults, and be
//! judged by the fleet's ground truth.
//!
//! One listener serves every host of a [`SimFleet`] (hosts added later included):
//!
//! | resource | |
//! |---|---|
//! | `GET /redfish/v1` | service root, anonymous |
//! | `GET /redfish/v1/Systems` | every host; a system's id is its host name |
//! | `GET /redfish/v1/Systems/{host}` | `PowerState` as the BMC reports it, `Actions.#ComputerSystem.Reset` offering [`RESET_TYPES`] |
//! | `POST /redfish/v1/Systems/{host}/Actions/ComputerSystem.Reset` | performs the reset on the sim (204) |
//! | `GET /redfish/v1/Chassis/{host}/Power` | `PowerControl[0].PowerConsumedWatts` ([`WORKING_WATTS`], [`IDLE_WATTS`], 0 when off) |
//! | `GET /redfish/v1/SessionService` | the session service (advertised by the root as `SessionService` and `Links.Sessions`) |
//! | `POST /redfish/v1/SessionService/Sessions` | login `{"UserName", "Password"}`: 201 with `X-Auth-Token` and `Location`; 401 for wrong credentials |
//! | `GET`, `DELETE /redfish/v1/SessionService/Sessions/{id}` | a session; logout (204, its token stops working) |
//!
//! Everything but the service root and the login needs basic auth
//! ([`SimCredentials`]) or the `X-Auth-Token` of a live session (401 with a Redfish
//! error body otherwise); an unknown system is 404. Tests can end every session at
//! once ([`SimRedfishServer::expire_sessions`], a BMC reboot), switch the
//! `SessionService` off ([`SimRedfishServer::set_session_service`], a BMC with basic
//! auth only, like sushy-emulator), and count live sessions, logins and basic-auth
//! requests (leaks, and how often the password was sent). Requests for a system
//! honour its BMC's [`BmcFault`](crate::sim::BmcFault) through the same code as
//! [`SimPowerDriver`](crate::sim::SimPowerDriver), and resets go through the same
//! power path, so ground truth records them (labelled `redfish <ResetType>`). Unlike
//! sushy-emulator, a reset has taken effect when it is answered.
//!
//! Plain HTTP, meant for loopback.

mod auth;
mod handlers;
mod resources;
mod sessions;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::sim::SimFleet;
pub use auth::SimCredentials;
pub use resources::{IDLE_WATTS, RESET_TYPES, WORKING_WATTS};
use sessions::SessionStore;

/// How long [`SimRedfishServer::shutdown`] waits for open connections to close
/// before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running sim Redfish server. Stops on [`Self::shutdown`], or in the background
/// when dropped.
#[derive(Debug)]
pub struct SimRedfishServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<io::Result<()>>>,
    sessions: Arc<SessionStore>,
}

impl SimRedfishServer {
    /// Serves `fleet` on `bind` (port 0: any free port) for `creds`, with the
    /// `SessionService` on. Must be called within a tokio runtime; serving runs on a
    /// spawned task.
    pub async fn start(
        fleet: SimFleet,
        bind: SocketAddr,
        creds: SimCredentials,
    ) -> io::Result<SimRedfishServer> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let sessions = Arc::new(SessionStore::default());
        let shared = Arc::new(handlers::Shared::new(
            fleet,
            &creds,
            sessions.clone(),
            stopped.clone(),
        ));
        let app = handlers::router(shared);
        let mut signal = stopped;
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = signal.wait_for(|s| *s).await;
        });
        let task = tokio::spawn(async move { serve.await });
        Ok(SimRedfishServer {
            addr,
            stop,
            task: Some(task),
            sessions,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`: the endpoint to give a Redfish client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Ends every session at once, as a BMC reboot does: their tokens get 401 from
    /// now on.
    pub fn expire_sessions(&self) {
        self.sessions.expire_all();
    }

    /// Switches the `SessionService` on (the default) or off. Off, the service root
    /// advertises no sessions, the session resources are 404 (logins included), and
    /// every live session ends: only basic auth works.
    pub fn set_session_service(&self, enabled: bool) {
        self.sessions.set_enabled(enabled);
    }

    /// Sessions currently logged in (a client that leaks sessions makes this grow).
    pub fn live_sessions(&self) -> usize {
        self.sessions.live()
    }

    /// Login attempts so far, refused ones included: each carried the password.
    pub fn logins(&self) -> u64 {
        self.sessions.logins()
    }

    /// Requests authenticated by basic auth so far: each carried the password.
    pub fn basic_auth_requests(&self) -> u64 {
        self.sessions.basic_requests()
    }

    /// Stops accepting, releases requests still waiting on a BMC that never answers
    /// (503), and waits (at most a few seconds) for connections to close.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for SimRedfishServer {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}
