//! How to reach one BMC over RMCP+: address, credentials, privilege and the timing
//! knobs of the native IPMI driver.
//!
//! Kept apart from the driver so that `vigil`'s host specs (and tests) can build and
//! inspect a configuration without touching the network. Every duration here is an
//! upper bound *inside* the caller's deadline, never an extension of it.

use std::fmt;
use std::time::Duration;

/// An IPMI privilege level (IPMI 2.0 table 6-1), as requested in RAKP 1 and set with
/// Set Session Privilege Level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Privilege {
    /// `USER` (2): enough to read the chassis status, not to change power.
    User,
    /// `OPERATOR` (3): enough for Chassis Control.
    Operator,
    /// `ADMINISTRATOR` (4): everything; what most fencing set-ups use.
    Administrator,
}

impl Privilege {
    /// The level's number on the wire.
    pub fn level(self) -> u8 {
        match self {
            Privilege::User => 2,
            Privilege::Operator => 3,
            Privilege::Administrator => 4,
        }
    }

    /// Parse `user`, `operator`, `administrator` / `admin` (any case) or `2`..`4`.
    pub fn parse(s: &str) -> Option<Privilege> {
        match s.trim().to_ascii_lowercase().as_str() {
            "user" | "2" => Some(Privilege::User),
            "operator" | "3" => Some(Privilege::Operator),
            "administrator" | "admin" | "4" => Some(Privilege::Administrator),
            _ => None,
        }
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Privilege::User => "user",
            Privilege::Operator => "operator",
            Privilege::Administrator => "administrator",
        })
    }
}

/// How to reach one BMC with the native RMCP+ driver. `Debug` never shows the
/// password.
#[derive(Clone)]
pub struct IpmiConfig {
    /// BMC address (name or IP).
    pub host: String,
    /// BMC UDP port (623 by default).
    pub port: u16,
    /// IPMI user (at most 16 bytes).
    pub username: String,
    /// IPMI password (at most 20 bytes: IPMI 2.0 passwords).
    pub password: String,
    /// Privilege requested for the session (RAKP 1, name-only lookup) and set with
    /// Set Session Privilege Level before Chassis Control. Administrator by default;
    /// Operator is the least that can change power.
    pub privilege: Privilege,
    /// Longest wait for one answer before the request is sent again. Each wait is
    /// also shortened so that all tries fit in what is left of the deadline.
    pub try_timeout: Duration,
    /// How many times a request is sent again after the first try (3 by default).
    pub retries: u32,
    /// Pause between status reads while verifying an action.
    pub poll_interval: Duration,
    /// For a cycle: how long to wait for an off reading before an on reading is
    /// accepted (a fast BMC may cycle between two reads).
    pub cycle_grace: Duration,
    /// A session unused for longer than this is closed and opened again before the
    /// next command (BMCs drop idle sessions: ipmi_sim after ~30 s, many after 60 s).
    pub idle_reconnect: Duration,
}

impl IpmiConfig {
    /// Defaults for `host`:623 as `username` / `password`, administrator privilege.
    pub fn new(
        host: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        IpmiConfig {
            host: host.into(),
            port: 623,
            username: username.into(),
            password: password.into(),
            privilege: Privilege::Administrator,
            try_timeout: Duration::from_secs(1),
            retries: 3,
            poll_interval: Duration::from_millis(250),
            cycle_grace: Duration::from_secs(2),
            idle_reconnect: Duration::from_secs(20),
        }
    }
}

impl fmt::Debug for IpmiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpmiConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &crate::power::redacted(&self.password))
            .field("privilege", &self.privilege)
            .field("try_timeout", &self.try_timeout)
            .field("retries", &self.retries)
            .field("poll_interval", &self.poll_interval)
            .field("cycle_grace", &self.cycle_grace)
            .field("idle_reconnect", &self.idle_reconnect)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileges_parse_and_order() {
        assert_eq!(Privilege::parse("Admin"), Some(Privilege::Administrator));
        assert_eq!(Privilege::parse("operator"), Some(Privilege::Operator));
        assert_eq!(Privilege::parse("2"), Some(Privilege::User));
        assert_eq!(Privilege::parse("root"), None);
        assert!(Privilege::User < Privilege::Operator);
        assert!(Privilege::Operator < Privilege::Administrator);
        assert_eq!(Privilege::Administrator.level(), 4);
    }

    #[test]
    fn debug_hides_the_password() {
        let c = IpmiConfig::new("bmc", "admin", "hunter2");
        let s = format!("{c:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("(set)"), "{s}");
        assert_eq!(c.port, 623);
    }
}
