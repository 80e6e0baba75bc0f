//! Building power drivers from a host's [`DriverSpec`] (one fence level).
//!
//! The spec is vigil's replicated description; the drivers live in `vigil-providers`.
//! Options understood per kind:
//! - `redfish`: address = BMC URL (`https://bmc` — `https://` is assumed when no scheme
//!   is given); options `system_id`, `ca_file`, `insecure` (`true` to skip TLS checks,
//!   an explicit opt-in), `poll_interval_ms`, `auth` (`basic`, `session` — a Redfish
//!   session: the password is sent once, then a token, logged out when the driver
//!   is dropped — or `auto`, the default: a session when the BMC offers one).
//! - `script`: address = path of a fence-agents compatible program; the username is
//!   passed as `username=…`; every option is passed as `key=value` on stdin (e.g. `ip`,
//!   `ipport`, `lanplus`).
//! - `ipmitool`: address = `host` or `host:port` (default 623); options `cipher_suite`
//!   (default 3), `program` (path of ipmitool). The password reaches ipmitool through
//!   its environment (`-E`), never its command line.
//! - `ipmi`: the native IPMI 2.0 / RMCP+ driver (`vigil_providers::ipmi`: async UDP,
//!   one reused session per BMC, no external program). Address = `host` or
//!   `host:port` (default 623); options `privilege` (`operator` or `administrator`,
//!   the default; `user` can read but not change power) and `cipher_suite`, which
//!   must be 3 (RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128: the only suite it
//!   speaks; a BMC that needs another one uses `ipmitool`). The driver's timings keep
//!   their defaults.
//! - `sim`: only inside `vigil dev` and tests (they own the simulated fleet).

use std::path::PathBuf;
use std::time::Duration;

use vigil_providers::ipmi::{IpmiConfig, IpmiDriver, Privilege};
use vigil_providers::ipmitool::{IpmitoolConfig, IpmitoolDriver};
use vigil_providers::redfish::{RedfishAuth, RedfishConfig, RedfishDriver};
use vigil_providers::script::ScriptDriver;
use vigil_providers::PowerDriver;

use crate::state::model::{DriverKind, DriverSpec};

/// The Redfish driver configuration a `redfish` spec describes (also used by the
/// `redfish-power` activity check, which reads through the same BMC).
pub fn redfish_config(spec: &DriverSpec) -> Result<RedfishConfig, String> {
    let endpoint = if spec.address.contains("://") {
        spec.address.clone()
    } else {
        format!("https://{}", spec.address)
    };
    let mut cfg = RedfishConfig::new(endpoint, &spec.username, spec.password.expose());
    for (k, v) in &spec.options {
        match k.as_str() {
            "system_id" => cfg.system_id = Some(v.clone()),
            "ca_file" => cfg.ca_file = Some(PathBuf::from(v)),
            "insecure" => {
                cfg.insecure = match v.as_str() {
                    "true" | "yes" | "1" => true,
                    "false" | "no" | "0" => false,
                    _ => {
                        return Err(format!(
                            "redfish option insecure={v:?}: expected true or false"
                        ))
                    }
                }
            }
            "poll_interval_ms" => {
                let ms: u64 = v
                    .parse()
                    .map_err(|_| format!("redfish option poll_interval_ms={v:?}: not a number"))?;
                cfg.poll_interval = Duration::from_millis(ms.max(50));
            }
            "auth" => {
                cfg.auth = RedfishAuth::parse(v).ok_or_else(|| {
                    format!(
                        "redfish option auth={v:?}: expected one of {}",
                        RedfishAuth::NAMES
                    )
                })?
            }
            _ => {
                return Err(format!(
                    "unknown redfish option {k:?}; known: system_id, ca_file, insecure, \
                     poll_interval_ms, auth"
                ))
            }
        }
    }
    Ok(cfg)
}

/// Build the driver a spec describes, or say why it cannot be built here.
pub fn power_driver(spec: &DriverSpec) -> Result<Box<dyn PowerDriver>, String> {
    match spec.kind {
        DriverKind::Redfish => Ok(Box::new(
            RedfishDriver::new(redfish_config(spec)?).map_err(|e| e.to_string())?,
        )),
        DriverKind::Script => {
            let mut options = spec.options.clone();
            if !spec.username.is_empty() {
                options.insert("username".into(), spec.username.clone());
            }
            let d = ScriptDriver::new(&spec.address, options, spec.password.expose())
                .map_err(|e| e.to_string())?;
            Ok(Box::new(d))
        }
        DriverKind::Ipmi => {
            let (host, port) = ipmi_host_port(&spec.address)?;
            let mut cfg = IpmiConfig::new(host, &spec.username, spec.password.expose());
            cfg.port = port;
            for (k, v) in &spec.options {
                match k.as_str() {
                    "privilege" => {
                        cfg.privilege = Privilege::parse(v).ok_or_else(|| {
                            format!(
                                "ipmi option privilege={v:?}: expected user, operator or \
                                 administrator"
                            )
                        })?
                    }
                    "cipher_suite" => {
                        if v.trim() != "3" {
                            return Err(format!(
                                "ipmi option cipher_suite={v:?}: the native ipmi driver speaks \
                                 only cipher suite 3 (RAKP-HMAC-SHA1, HMAC-SHA1-96, \
                                 AES-CBC-128); use kind ipmitool for another suite"
                            ));
                        }
                    }
                    _ => {
                        return Err(format!(
                            "unknown ipmi option {k:?}; known: privilege, cipher_suite"
                        ))
                    }
                }
            }
            Ok(Box::new(IpmiDriver::new(cfg).map_err(|e| e.to_string())?))
        }
        DriverKind::Ipmitool => {
            let (host, port) = ipmi_host_port(&spec.address)?;
            let mut cfg = IpmitoolConfig::new(host, &spec.username, spec.password.expose());
            cfg.port = port;
            for (k, v) in &spec.options {
                match k.as_str() {
                    "cipher_suite" => {
                        cfg.cipher_suite = v.parse().map_err(|_| {
                            format!("ipmitool option cipher_suite={v:?}: not a number")
                        })?
                    }
                    "program" => cfg.program = PathBuf::from(v),
                    _ => {
                        return Err(format!(
                            "unknown ipmitool option {k:?}; known: cipher_suite, program"
                        ))
                    }
                }
            }
            Ok(Box::new(
                IpmitoolDriver::new(cfg).map_err(|e| e.to_string())?,
            ))
        }
        DriverKind::Sim => Err(
            "sim drivers exist only inside `vigil dev` and tests (they own the simulated fleet)"
                .into(),
        ),
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` (port 623 by default) of an IPMI BMC.
fn ipmi_host_port(address: &str) -> Result<(String, u16), String> {
    match address.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
            let port: u16 = p
                .parse()
                .map_err(|_| format!("ipmi address {address:?}: bad port"))?;
            Ok((h.trim_matches(['[', ']']).to_string(), port))
        }
        _ => Ok((address.trim_matches(['[', ']']).to_string(), 623)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::state::model::Secret;

    fn spec(kind: DriverKind, address: &str, options: &[(&str, &str)]) -> DriverSpec {
        DriverSpec {
            kind,
            address: address.into(),
            username: "admin".into(),
            password: Secret("pw".into()),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn kinds_and_options() {
        assert_eq!(
            power_driver(&spec(
                DriverKind::Redfish,
                "127.0.0.1:8000",
                &[("insecure", "true")]
            ))
            .unwrap()
            .kind(),
            "redfish"
        );
        let e =
            power_driver(&spec(DriverKind::Redfish, "bmc", &[("insecure", "maybe")])).unwrap_err();
        assert!(e.contains("insecure"), "{e}");
        let e = power_driver(&spec(DriverKind::Redfish, "bmc", &[("colour", "red")])).unwrap_err();
        assert!(e.contains("unknown redfish option"), "{e}");
        assert!(e.contains("auth"), "{e}");
        assert_eq!(
            power_driver(&spec(
                DriverKind::Script,
                "/usr/sbin/fence_ipmilan",
                &[("ip", "10.0.0.1")]
            ))
            .unwrap()
            .kind(),
            "script"
        );
        assert!(power_driver(&spec(DriverKind::Sim, "sim://x", &[])).is_err());
        let d = power_driver(&spec(
            DriverKind::Ipmi,
            "127.0.0.1:9001",
            &[("cipher_suite", "3")],
        ))
        .unwrap();
        assert_eq!(d.kind(), "ipmi");
        let d = power_driver(&spec(
            DriverKind::Ipmi,
            "bmc.example",
            &[("privilege", "operator")],
        ))
        .unwrap();
        assert_eq!(d.kind(), "ipmi");
        let e =
            power_driver(&spec(DriverKind::Ipmi, "bmc", &[("cipher_suite", "17")])).unwrap_err();
        assert!(e.contains("only cipher suite 3"), "{e}");
        let e = power_driver(&spec(DriverKind::Ipmi, "bmc", &[("privilege", "root")])).unwrap_err();
        assert!(e.contains("privilege"), "{e}");
        let e = power_driver(&spec(DriverKind::Ipmi, "bmc", &[("program", "/x")])).unwrap_err();
        assert!(e.contains("unknown ipmi option"), "{e}");
        assert!(power_driver(&spec(DriverKind::Ipmi, "10.0.0.1:x", &[])).is_err());
        assert_eq!(
            power_driver(&spec(
                DriverKind::Ipmitool,
                "10.0.0.1:623",
                &[("cipher_suite", "17")]
            ))
            .unwrap()
            .kind(),
            "ipmitool"
        );
        assert!(power_driver(&spec(DriverKind::Ipmitool, "10.0.0.1:x", &[])).is_err());
        assert!(power_driver(&spec(
            DriverKind::Ipmitool,
            "10.0.0.1",
            &[("colour", "red")]
        ))
        .is_err());
    }

    #[test]
    fn redfish_auth_option() {
        let auth = |v: &str| redfish_config(&spec(DriverKind::Redfish, "bmc", &[("auth", v)]));
        assert_eq!(auth("basic").unwrap().auth, RedfishAuth::Basic);
        assert_eq!(auth("session").unwrap().auth, RedfishAuth::Session);
        assert_eq!(auth("Auto").unwrap().auth, RedfishAuth::Auto);
        assert_eq!(
            redfish_config(&spec(DriverKind::Redfish, "bmc", &[]))
                .unwrap()
                .auth,
            RedfishAuth::Auto,
            "the default"
        );
        let e = auth("kerberos").unwrap_err();
        assert!(
            e.contains("auth=\"kerberos\"") && e.contains("basic, session, auto"),
            "{e}"
        );
    }
}
