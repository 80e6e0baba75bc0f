//! The real health and activity checks (DESIGN.md §6).
//!
//! Health: [`HttpHealth`] (`http`), [`TcpHealth`] (`tcp`), [`ScriptHealth`]
//! (`script`). Activity: [`HeartbeatFile`] (`heartbeat-file`), [`HttpActivity`]
//! (`http`), [`ScriptActivity`] (`script`), [`RedfishPowerActivity`] (`redfish-power`,
//! built by the caller from the host's Redfish driver).
//!
//! The rule throughout: a failure of the *host* is `Health::Fail` (or
//! `ActivityResult::Inactive`), a failure of the *checker* (bad URL, script that
//! cannot start, file that cannot be read) is an `Error`, which says nothing about
//! the host.
//!
//! Activity checks that compare rounds ([`HeartbeatFile`], [`HttpActivity`]) answer
//! their **first** round with `ActivityResult::Error { reason: "baseline taken…" }`:
//! a baseline captured at construction could be hours old, and "changed since then"
//! would call a host that stopped an hour ago active. Activity is judged from the
//! second round on, by *relative* change between consecutive rounds, so the checker's
//! and the host's clocks need not agree. vigil's owner loop calls such a checker once
//! more when a suspicion starts and ignores that answer (a fresh baseline), so the
//! first real round is already judged.

mod heartbeat;
mod http;
mod redfish_power;
mod script;
mod tcp;

use std::collections::BTreeMap;

pub use heartbeat::HeartbeatFile;
pub use http::{HttpActivity, HttpHealth};
pub use redfish_power::RedfishPowerActivity;
pub use script::{ScriptActivity, ScriptHealth};
pub use tcp::TcpHealth;

use crate::check::{ActivityCheck, HealthCheck};

/// A health check from its inventory form (`kind`, `target`, `options`).
///
/// - `http`: `target` is the URL; option `expect_status` (default 200).
/// - `tcp`: `target` is `host:port` (`[v6]:port` for IPv6); no options.
/// - `script`: `target` is the program and its arguments, split on whitespace (no
///   shell, no quoting); every option is written to its stdin as a `key=value` line.
///
/// Other kinds (`sim`) are built elsewhere: an error here.
pub fn health_check(
    kind: &str,
    target: &str,
    options: &BTreeMap<String, String>,
) -> Result<Box<dyn HealthCheck>, String> {
    match kind {
        "http" => {
            let mut c = HttpHealth::new(target);
            for (k, v) in options {
                match k.as_str() {
                    "expect_status" => c = c.expect_status(parse_status(v)?),
                    _ => return Err(unknown_option("http", k, &["expect_status"])),
                }
            }
            Ok(Box::new(c))
        }
        "tcp" => {
            if let Some(k) = options.keys().next() {
                return Err(unknown_option("tcp", k, &[]));
            }
            Ok(Box::new(TcpHealth::new(target)))
        }
        "script" => {
            let (program, args) = split_command(target)?;
            Ok(Box::new(ScriptHealth::new(program, args, options.clone())))
        }
        other => Err(format!("health check kind {other:?} is not built here")),
    }
}

/// An activity check from its inventory form (`kind`, `target`, `options`).
///
/// - `heartbeat-file`: `target` is the file's path; no options.
/// - `http`: `target` is the URL whose body must change between rounds; no options.
/// - `script`: as for [`health_check`]; exit 0 active, 1 inactive.
///
/// Other kinds (`sim`, `redfish-power`) are built elsewhere: an error here.
pub fn activity_check(
    kind: &str,
    target: &str,
    options: &BTreeMap<String, String>,
) -> Result<Box<dyn ActivityCheck>, String> {
    match kind {
        "heartbeat-file" | "http" => {
            if let Some(k) = options.keys().next() {
                return Err(unknown_option(kind, k, &[]));
            }
            if target.is_empty() {
                return Err(format!("{kind} activity check: target is empty"));
            }
            Ok(if kind == "http" {
                Box::new(HttpActivity::new(target))
            } else {
                Box::new(HeartbeatFile::new(target))
            })
        }
        "script" => {
            let (program, args) = split_command(target)?;
            Ok(Box::new(ScriptActivity::new(
                program,
                args,
                options.clone(),
            )))
        }
        other => Err(format!("activity check kind {other:?} is not built here")),
    }
}

fn parse_status(v: &str) -> Result<u16, String> {
    match v.trim().parse::<u16>() {
        Ok(s) if (100..=599).contains(&s) => Ok(s),
        _ => Err(format!(
            "expect_status: {v:?} is not an HTTP status (100-599)"
        )),
    }
}

fn unknown_option(kind: &str, k: &str, known: &[&str]) -> String {
    if known.is_empty() {
        format!("{kind} check: unknown option {k:?}; it takes none")
    } else {
        format!(
            "{kind} check: unknown option {k:?}; known: {}",
            known.join(", ")
        )
    }
}

fn split_command(target: &str) -> Result<(String, Vec<String>), String> {
    let mut words = target.split_whitespace().map(str::to_string);
    let program = words
        .next()
        .ok_or_else(|| "script check: target (the program) is empty".to_string())?;
    Ok((program, words.collect()))
}

/// `e` and its sources, `: `-joined (reqwest and io errors hide the useful part,
/// "Connection refused", in a source).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// The input of a check script: `key=value` lines.
pub(crate) fn option_lines(options: &BTreeMap<String, String>) -> Vec<u8> {
    let mut s = String::new();
    for (k, v) in options {
        s.push_str(k);
        s.push('=');
        s.push_str(v);
        s.push('\n');
    }
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factories_validate_options() {
        let none = BTreeMap::new();
        let mut st = BTreeMap::new();
        st.insert("expect_status".to_string(), "204".to_string());
        assert!(health_check("http", "http://127.0.0.1:1/", &st).is_ok());
        st.insert("expect_status".to_string(), "abc".to_string());
        assert!(health_check("http", "http://127.0.0.1:1/", &st).is_err());
        assert!(health_check("tcp", "127.0.0.1:22", &none).is_ok());
        assert!(health_check("tcp", "127.0.0.1:22", &st).is_err());
        assert!(health_check("script", "/bin/true a b", &none).is_ok());
        assert!(health_check("script", "  ", &none).is_err());
        assert!(health_check("sim", "", &none).is_err());
        assert!(activity_check("heartbeat-file", "/tmp/hb", &none).is_ok());
        assert!(activity_check("heartbeat-file", "", &none).is_err());
        assert!(activity_check("http", "http://127.0.0.1:1/", &none).is_ok());
        assert!(activity_check("script", "/bin/true", &none).is_ok());
        assert!(activity_check("redfish-power", "", &none).is_err());
        let s = format!(
            "{:?}",
            health_check("script", "/bin/check x", &none).unwrap()
        );
        assert!(s.contains("/bin/check"), "{s}");
    }
}
