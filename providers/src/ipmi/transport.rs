//! UDP to one BMC: send a request, wait for *its* answer, send it again if none
//! comes, and never wait past the caller's deadline.
//!
//! IPMI over LAN has no connection and no ordering: a datagram may be lost, answered
//! twice, or answered late (after it was sent again). So an exchange is "send, then
//! read datagrams until one is accepted as the answer": the caller's `accept`
//! function discards everything else (stale answers, another session's packets,
//! forged or corrupted ones). Each try waits at most [`IpmiConfig::try_timeout`],
//! shortened so that every try fits in what is left of the deadline; the packet is
//! rebuilt for each try because an authenticated retransmission needs a fresh
//! session sequence number.
//!
//! The socket is connected to the BMC's address, so the kernel drops datagrams from
//! anyone else, and an ICMP "port unreachable" surfaces as `ConnectionRefused`
//! (reported, not fatal: the next try may find the BMC back). A duplicate of the
//! socket (plain `std`, non-blocking) lets `Drop` send a last Close Session without
//! an async context.
//!
//! [`IpmiConfig::try_timeout`]: super::IpmiConfig::try_timeout

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::error::DriverError;
use crate::power::within;

/// The shortest wait for one answer, however little time is left, unless the
/// configured try timeout is shorter still.
const MIN_TRY: Duration = Duration::from_millis(200);
/// Largest datagram read (IPMI answers used here are well under 100 bytes).
const MAX_DATAGRAM: usize = 1024;

/// Why no answer was accepted.
#[derive(Debug)]
pub(crate) enum Silence {
    /// Every try went unanswered.
    Unanswered {
        /// Datagrams sent.
        tries: u32,
        /// Time spent.
        waited: Duration,
        /// An ICMP port unreachable came back (nothing listens on the port).
        refused: bool,
        /// Datagrams received but not accepted, with the last reason.
        ignored: Option<(u32, &'static str)>,
    },
    /// The deadline passed first.
    Deadline {
        /// Time allowed.
        after: Duration,
        /// Datagrams sent.
        tries: u32,
    },
    /// The socket failed.
    Io(io::Error),
}

impl Silence {
    /// The driver error for `what` (which command, which BMC).
    pub fn into_error(self, what: &str) -> DriverError {
        match self {
            Silence::Unanswered {
                tries,
                waited,
                refused,
                ignored,
            } => {
                let mut msg = format!(
                    "{what}: no answer from the BMC ({tries} tries in {:.1}s)",
                    waited.as_secs_f64()
                );
                if refused {
                    msg.push_str("; ICMP port unreachable: nothing listens on that port?");
                }
                if let Some((n, why)) = ignored {
                    msg.push_str(&format!("; ignored {n} datagrams (last: {why})"));
                }
                DriverError::Retryable(msg)
            }
            Silence::Deadline { after, tries } => DriverError::Timeout {
                after,
                what: format!("{what} ({tries} tries)"),
            },
            Silence::Io(e) => DriverError::Retryable(format!("{what}: socket error: {e}")),
        }
    }
}

/// A UDP socket connected to one BMC.
#[derive(Debug)]
pub(crate) struct Transport {
    socket: UdpSocket,
    sync: std::net::UdpSocket,
    peer: SocketAddr,
    try_timeout: Duration,
}

impl Transport {
    /// Resolve `host` and open a socket connected to `host:port` (before `deadline`).
    pub async fn connect(
        host: &str,
        port: u16,
        try_timeout: Duration,
        deadline: Instant,
    ) -> Result<Transport, DriverError> {
        let what = format!("ipmi: resolving {host}");
        let peer = within(deadline, &what, async {
            let mut addrs = tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| DriverError::Retryable(format!("{what}: {e}")))?;
            addrs
                .next()
                .ok_or_else(|| DriverError::Retryable(format!("{what}: no address")))
        })
        .await?;
        let local: SocketAddr = if peer.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let io_err =
            |e: io::Error| DriverError::Retryable(format!("ipmi: UDP socket to {peer}: {e}"));
        let std = std::net::UdpSocket::bind(local).map_err(io_err)?;
        std.connect(peer).map_err(io_err)?;
        std.set_nonblocking(true).map_err(io_err)?;
        let sync = std.try_clone().map_err(io_err)?;
        let socket = UdpSocket::from_std(std).map_err(io_err)?;
        Ok(Transport {
            socket,
            sync,
            peer,
            try_timeout,
        })
    }

    /// The BMC's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Send `build()` and wait for a datagram that `accept` takes (`Err` = not the
    /// answer: ignored, with a reason for the logs); up to `tries` sends, never past
    /// `deadline`.
    pub async fn exchange<T>(
        &self,
        tries: u32,
        deadline: Instant,
        mut build: impl FnMut() -> Vec<u8>,
        mut accept: impl FnMut(&[u8]) -> Result<T, &'static str>,
    ) -> Result<T, Silence> {
        let start = Instant::now();
        let tries = tries.max(1);
        let mut buf = [0u8; MAX_DATAGRAM];
        // Answers to earlier, abandoned requests: not ours.
        while self.socket.try_recv(&mut buf).is_ok() {}
        let mut refused = false;
        let mut ignored: Option<(u32, &'static str)> = None;
        let mut sent = 0;
        while sent < tries {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let left = deadline - now;
            let wait = (left / (tries - sent)).max(MIN_TRY).min(self.try_timeout);
            let try_end = (now + wait).min(deadline);
            let packet = build();
            sent += 1;
            match self.socket.send(&packet).await {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => refused = true,
                Err(e) => return Err(Silence::Io(e)),
            }
            loop {
                match tokio::time::timeout_at(try_end, self.socket.recv(&mut buf)).await {
                    Err(_) => break,
                    Ok(Ok(n)) => match accept(&buf[..n]) {
                        Ok(t) => return Ok(t),
                        Err(why) => {
                            tracing::debug!(peer = %self.peer, why, "ipmi: datagram ignored");
                            let n = ignored.map_or(0, |(n, _)| n);
                            ignored = Some((n + 1, why));
                        }
                    },
                    Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        // Reported once per ICMP message: wait out this try.
                        refused = true;
                    }
                    Ok(Err(e)) => return Err(Silence::Io(e)),
                }
            }
        }
        if Instant::now() >= deadline {
            Err(Silence::Deadline {
                after: deadline.saturating_duration_since(start),
                tries: sent,
            })
        } else {
            Err(Silence::Unanswered {
                tries: sent,
                waited: start.elapsed(),
                refused,
                ignored,
            })
        }
    }

    /// Send `packet` now, without waiting for anything and ignoring failure (a last
    /// Close Session from `Drop`, an abort of a half-open session).
    pub fn send_now(&self, packet: &[u8]) {
        if let Err(e) = self.sync.send(packet) {
            tracing::debug!(peer = %self.peer, error = %e, "ipmi: best-effort send failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retransmits_until_an_answer_is_accepted() {
        let bmc = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = bmc.local_addr().unwrap().port();
        let t = Transport::connect("127.0.0.1", port, Duration::from_millis(200), {
            Instant::now() + Duration::from_secs(2)
        })
        .await
        .unwrap();
        // The "BMC" drops the first request, answers the second with garbage and
        // then with the real answer.
        let server = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let (_, _) = bmc.recv_from(&mut buf).await.unwrap();
            let (n, from) = bmc.recv_from(&mut buf).await.unwrap();
            bmc.send_to(b"garbage", from).await.unwrap();
            bmc.send_to(&buf[..n], from).await.unwrap();
        });
        let mut n = 0u8;
        let got = t
            .exchange(
                4,
                Instant::now() + Duration::from_secs(2),
                || {
                    n += 1;
                    vec![n]
                },
                |d| if d == [2] { Ok(d[0]) } else { Err("not it") },
            )
            .await
            .unwrap();
        assert_eq!(got, 2, "the second packet was answered");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_silent_peer_is_bounded_by_the_tries_or_the_deadline() {
        // Bound but never read: datagrams vanish, like a BMC that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let t = Transport::connect("127.0.0.1", port, Duration::from_millis(100), {
            Instant::now() + Duration::from_secs(1)
        })
        .await
        .unwrap();
        let start = Instant::now();
        let e = t
            .exchange(3, start + Duration::from_secs(5), || vec![1], |_| Ok(()))
            .await
            .unwrap_err();
        assert!(matches!(e, Silence::Unanswered { tries: 3, .. }), "{e:?}");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(1),
            "{took:?}"
        );
        let msg = e.into_error("Get Chassis Status").to_string();
        assert!(msg.contains("no answer from the BMC (3 tries"), "{msg}");

        // A deadline shorter than the tries: Timeout, on time, tries spread in it.
        let slow = Transport::connect("127.0.0.1", port, Duration::from_secs(10), {
            Instant::now() + Duration::from_secs(1)
        })
        .await
        .unwrap();
        let start = Instant::now();
        let e = slow
            .exchange(
                4,
                start + Duration::from_millis(900),
                || vec![1],
                |_| Ok(()),
            )
            .await
            .unwrap_err();
        let took = start.elapsed();
        assert!(matches!(e, Silence::Deadline { tries: 4, .. }), "{e:?}");
        assert!(took < Duration::from_millis(1100), "{took:?}");
        let mut buf = [0u8; 8];
        silent.set_nonblocking(true).unwrap();
        let mut received = 0;
        while silent.recv(&mut buf).is_ok() {
            received += 1;
        }
        assert_eq!(received, 3 + 4, "every try reached the peer");
    }

    #[tokio::test]
    async fn nothing_listening_is_reported() {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = Transport::connect("127.0.0.1", port, Duration::from_millis(100), {
            Instant::now() + Duration::from_secs(1)
        })
        .await
        .unwrap();
        let e = t
            .exchange(
                2,
                Instant::now() + Duration::from_secs(2),
                || vec![1],
                |_| Ok(()),
            )
            .await
            .unwrap_err();
        let msg = e.into_error("x").to_string();
        assert!(msg.contains("port unreachable"), "{msg}");
    }
}
