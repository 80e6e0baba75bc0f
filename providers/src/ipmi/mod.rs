//! The native IPMI power driver: IPMI 2.0 over LAN (RMCP+, "lanplus"), spoken
//! directly over an async UDP socket, with cipher suite 3 (RAKP-HMAC-SHA1,
//! HMAC-SHA1-96, AES-CBC-128).
//!
//! # Why its own protocol code
//!
//! The other Rust option, the crate `ipmi-rs` 0.6, does open RMCP+ sessions with
//! ipmi_sim, but it does not fit a fencing driver: its API is blocking (every call
//! would need `spawn_blocking`, and a hung BMC would hold a thread past the caller's
//! deadline), it has no chassis commands, it never raises the session privilege (so
//! Chassis Control fails with "insufficient privilege"), it never sends Close
//! Session (each call would leak one of the BMC's few session slots), it fails RAKP
//! for users whose maximum privilege is not administrator, and its timeouts surface
//! as `WouldBlock`. The part of IPMI a power driver needs is small and well specified
//! (six commands, one cipher suite), so it is implemented here, async on tokio,
//! with RustCrypto's `hmac` / `sha1` / `aes` / `cbc` for the cryptography and
//! `rand` for session ids, nonces and IVs. The `ipmitool` driver stays as the
//! fallback for BMCs that need something this one does not speak (another cipher
//! suite, a BMC key).
//!
//! # Layout (one concept per file)
//!
//! - `config`: [`IpmiConfig`] and [`Privilege`].
//! - `packet`: RMCP / IPMI 1.5 / RMCP+ framing and IPMI LAN messages.
//! - `crypto`: RAKP HMACs, session keys, HMAC-SHA1-96, AES-CBC-128 with IPMI padding.
//! - `rakp`: Open Session and RAKP 1–4 messages.
//! - `codes`: completion codes and RMCP+ status codes → [`DriverError`].
//! - `chassis`: the commands used and their answers.
//! - `transport`: UDP with retransmission, bounded by the deadline.
//! - `session`: opening, using and closing one session.
//! - `driver`: [`IpmiDriver`]: session reuse, reconnect, and [`PowerDriver`].
//!
//! [`DriverError`]: crate::DriverError
//! [`PowerDriver`]: crate::PowerDriver

mod chassis;
mod codes;
mod config;
mod crypto;
mod driver;
mod packet;
mod rakp;
mod session;
mod transport;

pub use chassis::SessionInfo;
pub use config::{IpmiConfig, Privilege};
pub use driver::IpmiDriver;
