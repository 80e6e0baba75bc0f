//! Building power drivers from a host's [`DriverSpec`] (one fence level).
//!
//! The spec is vigil's replicated description; the drivers live in `vigil-providers`.
//! Options understood per kind:
//! - `redfish`: address = BMC URL (`https://bmc` — `https://` is assumed when no scheme
//!   is given); options `system_id`, `ca_file`, `insecure` (`true` to skip TLS checks,
//!   an explicit opt-in), `poll_interval_ms`.
//! - `script`: address = path of a fence-agents compatible program; the username is
//!   passed as `username=…`; every option is passed as `key=value` on stdin (e.g. `ip`,
//!   `ipport`, `lanplus`).
//! - `ipmitool`: address = `host` or `host:port` (default 623); options `cipher_suite`
//!   (default 3), `program` (path of ipmitool). The password reaches ipmitool through
//!   its environment (`-E`), never its command line.
//! - `ipmi`: the native RMCP+ driver is not built yet; until then `ipmi` runs the
//!   `ipmitool` driver (the fallback DESIGN.md §6 names), with the same options.
//! - `sim`: only inside `vigil dev` and tests (they own the simulated fleet).

use std::path::PathBuf;
use std::time::Duration;

use vigil_providers::ipmitool::{IpmitoolConfig, IpmitoolDriver};
use vigil_providers::redfish::{RedfishConfig, RedfishDriver};
use vigil_providers::script::ScriptDriver;
use vigil_providers::PowerDriver;

use crate::state::model::{DriverKind, DriverSpec};

/// Build the driver a spec describes, or say why it cannot be built here.
pub fn power_driver(spec: &DriverSpec) -> Result<Box<dyn PowerDriver>, String> {
    match spec.kind {
        DriverKind::Redfish => {
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
                            _ => return Err(format!("redfish option insecure={v:?}: expected true or false")),
                        }
                    }
                    "poll_interval_ms" => {
                        let ms: u64 = v
                            .parse()
                            .map_err(|_| format!("redfish option poll_interval_ms={v:?}: not a number"))?;
                        cfg.poll_interval = Duration::from_millis(ms.max(50));
                    }
                    _ => {
                        return Err(format!(
                            "unknown redfish option {k:?}; known: system_id, ca_file, insecure, poll_interval_ms"
                        ))
                    }
                }
            }
            Ok(Box::new(
                RedfishDriver::new(cfg).map_err(|e| e.to_string())?,
            ))
        }
        DriverKind::Script => {
            let mut options = spec.options.clone();
            if !spec.username.is_empty() {
                options.insert("username".into(), spec.username.clone());
            }
            let d = ScriptDriver::new(&spec.address, options, spec.password.expose())
                .map_err(|e| e.to_string())?;
            Ok(Box::new(d))
        }
        DriverKind::Ipmi | DriverKind::Ipmitool => {
            let (host, port) = match spec.address.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
                    let port: u16 = p
                        .parse()
                        .map_err(|_| format!("ipmi address {:?}: bad port", spec.address))?;
                    (h.trim_matches(['[', ']']).to_string(), port)
                }
                _ => (spec.address.clone(), 623),
            };
            let mut cfg = IpmitoolConfig::new(host, &spec.username, spec.password.expose());
            cfg.port = port;
            for (k, v) in &spec.options {
                match k.as_str() {
                    "cipher_suite" => {
                        cfg.cipher_suite = v
                            .parse()
                            .map_err(|_| format!("ipmi option cipher_suite={v:?}: not a number"))?
                    }
                    "program" => cfg.program = PathBuf::from(v),
                    _ => {
                        return Err(format!(
                            "unknown {} option {k:?}; known: cipher_suite, program",
                            spec.kind.name()
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
        assert_eq!(d.kind(), "ipmitool");
        assert!(power_driver(&spec(DriverKind::Ipmitool, "10.0.0.1:x", &[])).is_err());
        assert!(power_driver(&spec(
            DriverKind::Ipmitool,
            "10.0.0.1",
            &[("colour", "red")]
        ))
        .is_err());
    }
}
