//! Validation of pools and hosts, shared by the API (before proposing, so the operator
//! gets a precise error) and by apply (deterministically, on every member).
//! Error messages name the field.

use crate::engine::policy::check_override;
use crate::settings::Scope;
use crate::state::model::{DriverKind, HostSpec, PoolSpec};

/// Check a pool or host name: 1–64 characters of `a-z A-Z 0-9 . _ -`.
pub fn name(what: &str, n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > 64 {
        return Err(format!("{what} name must be 1-64 characters, got {n:?}"));
    }
    if !n
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "{what} name {n:?} may only contain letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Check a pool spec.
pub fn pool(spec: &PoolSpec) -> Result<(), String> {
    name("pool", &spec.name)?;
    for (k, v) in &spec.policy {
        check_override(k, v, Scope::Pool)
            .map_err(|e| format!("pool {}: policy: {e}", spec.name))?;
    }
    Ok(())
}

/// Check a host spec (pool existence is checked by the caller).
pub fn host(spec: &HostSpec) -> Result<(), String> {
    name("host", &spec.name)?;
    let at = |field: &str| format!("host {}: {field}", spec.name);
    name("pool", &spec.pool).map_err(|e| format!("{}: {e}", at("pool")))?;
    if spec.kind.len() > 64 {
        return Err(format!("{}: longer than 64 characters", at("kind")));
    }
    for (k, v) in &spec.labels {
        if k.is_empty() || k.len() > 128 || v.len() > 256 {
            return Err(format!("{}: label {k:?} too long or empty", at("labels")));
        }
    }
    if let Some(c) = &spec.health {
        if !c.kind.is_health() {
            return Err(format!(
                "{}: {} cannot be a health check",
                at("health.kind"),
                c.kind.name()
            ));
        }
        if c.target.is_empty() && c.kind != crate::state::model::CheckKind::Sim {
            return Err(format!("{}: empty", at("health.target")));
        }
    }
    if let Some(c) = &spec.activity {
        if !c.kind.is_activity() {
            return Err(format!(
                "{}: {} cannot be an activity check",
                at("activity.kind"),
                c.kind.name()
            ));
        }
        if c.target.is_empty()
            && !matches!(
                c.kind,
                crate::state::model::CheckKind::Sim | crate::state::model::CheckKind::RedfishPower
            )
        {
            return Err(format!("{}: empty", at("activity.target")));
        }
    }
    if spec.fence.len() > 8 {
        return Err(format!("{}: at most 8 fence levels", at("fence")));
    }
    for (i, d) in spec.fence.iter().enumerate() {
        if d.address.is_empty() {
            return Err(format!("{}: empty", at(&format!("fence[{i}].address"))));
        }
        if matches!(
            d.kind,
            DriverKind::Redfish | DriverKind::Ipmi | DriverKind::Ipmitool
        ) && d.username.is_empty()
        {
            return Err(format!(
                "{}: required for {}",
                at(&format!("fence[{i}].username")),
                d.kind.name()
            ));
        }
    }
    for (k, v) in &spec.policy {
        check_override(k, v, Scope::Host).map_err(|e| format!("{}: {e}", at("policy")))?;
    }
    Ok(())
}
