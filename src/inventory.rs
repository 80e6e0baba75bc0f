//! The declarative inventory of `vigil apply -f FILE` (and `POST /api/v1/apply`): its
//! YAML schema, the conversion into validated specs, and the diff against the current
//! state that becomes one atomic [`Command::ApplyInventory`](crate::state::Command).
//!
//! Everything here is pure (no clock, no I/O): the CLI uses it to check a file before
//! sending it (and to find the `password_env` variables it must resolve from its own
//! environment), the API uses it to plan against a linearizable read of the state.
//! The host document is also the body of `POST /api/v1/hosts`, so a host is written
//! the same way everywhere.
//!
//! Error messages name the field path, e.g.
//! `hosts[2] (node03).fence[0].driver: unknown driver kind "ipmx"; known: …`; YAML
//! syntax errors carry the parser's line and column. Passwords are [`Secret`]s: never
//! printed, never part of a diff line (a changed password shows as `password`).
//!
//! Omitted fields: a new pool is enabled, an existing pool keeps its enabled flag (so
//! re-applying a file never undoes an emergency `vigil pool disable`); likewise a host's
//! `maintenance` is kept unless the file says it. Everything else in a pool or host
//! entry is the whole truth: policy overrides, labels, checks and fence levels not in
//! the file are removed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::engine::policy::{check_override, parse_override, Overrides};
use crate::settings::{self, Scope};
use crate::state::model::{
    CheckKind, CheckSpec, DriverKind, DriverSpec, HostSpec, PoolSpec, Secret,
};
use crate::state::{validate, InventoryChange, VigilState};

/// Host kind used when none is given.
pub const DEFAULT_HOST_KIND: &str = "baremetal";

/// Most errors reported at once (the rest are counted).
const MAX_ERRORS: usize = 50;

/// A scalar written as text: YAML/JSON strings, numbers and booleans are all accepted
/// (`budget: 2` and `budget: "2"` mean the same), then parsed by the setting's type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Text(pub String);

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(s.to_string())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A whole inventory file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// Cluster-wide `policy.*` settings to set (keys not listed are left alone).
    #[serde(default)]
    pub policy: BTreeMap<String, Text>,
    /// Pools.
    #[serde(default)]
    pub pools: Vec<PoolDoc>,
    /// Hosts.
    #[serde(default)]
    pub hosts: Vec<HostDoc>,
}

/// One pool entry (also the body of `POST /api/v1/pools`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolDoc {
    /// Unique name.
    pub name: String,
    /// HA enabled (omitted: true for a new pool, unchanged for an existing one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `policy.*` overrides for the pool (the whole set).
    #[serde(default)]
    pub policy: BTreeMap<String, Text>,
}

/// One host entry (also the body of `POST /api/v1/hosts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostDoc {
    /// Unique name.
    pub name: String,
    /// Pool it belongs to.
    pub pool: String,
    /// Provider kind (free text; default `baremetal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, Text>,
    /// Operator maintenance (omitted: false for a new host, unchanged otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<bool>,
    /// Health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<CheckDoc>,
    /// Activity check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<CheckDoc>,
    /// Power drivers in escalation order (the fence levels).
    #[serde(default)]
    pub fence: Vec<FenceDoc>,
    /// `policy.*` overrides for the host (host-scoped keys).
    #[serde(default)]
    pub policy: BTreeMap<String, Text>,
}

/// A health or activity check entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckDoc {
    /// Check kind (`http`, `tcp`, `script`, `sim`, `heartbeat-file`, `redfish-power`).
    pub kind: String,
    /// URL, `host:port`, path or script.
    #[serde(default)]
    pub target: String,
    /// Kind-specific options.
    #[serde(default)]
    pub options: BTreeMap<String, Text>,
}

/// One fence level. `Debug` never shows the password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FenceDoc {
    /// Driver kind (`redfish`, `ipmi`, `ipmitool`, `script`, `sim`).
    pub driver: String,
    /// BMC address.
    #[serde(default)]
    pub address: String,
    /// BMC user.
    #[serde(default)]
    pub username: String,
    /// BMC password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Environment variable holding the password, resolved by the CLI from its own
    /// environment (so that secrets need not be in the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Driver options.
    #[serde(default)]
    pub options: BTreeMap<String, Text>,
}

/// `at.field`, or `field` at the top.
fn join(at: &str, field: &str) -> String {
    if at.is_empty() {
        field.to_string()
    } else {
        format!("{at}.{field}")
    }
}

/// The path of host entry `i`: `hosts[2] (node03)`.
pub fn host_path(i: usize, name: &str) -> String {
    format!("hosts[{i}] ({name})")
}

/// The path of pool entry `i`: `pools[0] (rack1)`.
pub fn pool_path(i: usize, name: &str) -> String {
    format!("pools[{i}] ({name})")
}

/// Join error lines into one message (capped).
pub fn error_text(errors: &[String]) -> String {
    let mut out: Vec<String> = errors.iter().take(MAX_ERRORS).cloned().collect();
    if errors.len() > MAX_ERRORS {
        out.push(format!("… and {} more", errors.len() - MAX_ERRORS));
    }
    out.join("\n")
}

/// Parse inventory YAML. Syntax and schema errors name the path and carry the line
/// and column; an empty document is an empty inventory.
pub fn parse(text: &str) -> Result<Inventory, String> {
    match serde_yaml_ng::from_str::<Option<Inventory>>(text) {
        Ok(inv) => Ok(inv.unwrap_or_default()),
        Err(e) => Err(e.to_string()),
    }
}

impl Inventory {
    /// `(field path, variable)` of every `password_env`.
    pub fn password_envs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, h) in self.hosts.iter().enumerate() {
            for (path, var) in h.password_envs(&host_path(i, &h.name)) {
                out.push((path, var));
            }
        }
        out
    }

    /// Replace every `password_env` by the password `lookup` returns for the variable
    /// (or the error it returns, reported with the field path).
    pub fn resolve_passwords(
        &mut self,
        lookup: impl Fn(&str) -> Result<String, String>,
    ) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        for (i, h) in self.hosts.iter_mut().enumerate() {
            let at = host_path(i, &h.name);
            if let Err(e) = h.resolve_passwords(&at, &lookup) {
                errors.extend(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl FenceDoc {
    /// The driver spec this entry describes (`path` names it in errors).
    pub fn to_spec(&self, path: &str) -> Result<DriverSpec, String> {
        if self.password_env.is_some() {
            return Err(format!(
                "{path}.password_env: not resolved (the CLI reads it from its environment; API clients send the password itself)"
            ));
        }
        let kind = DriverKind::parse(&self.driver).map_err(|e| format!("{path}.driver: {e}"))?;
        Ok(DriverSpec {
            kind,
            address: self.address.clone(),
            username: self.username.clone(),
            password: self.password.clone().unwrap_or_default(),
            options: texts(&self.options),
        })
    }
}

impl HostDoc {
    /// `(field path, variable)` of every `password_env` of this host.
    pub fn password_envs(&self, at: &str) -> Vec<(String, String)> {
        self.fence
            .iter()
            .enumerate()
            .filter_map(|(j, f)| {
                f.password_env
                    .clone()
                    .map(|v| (join(at, &format!("fence[{j}].password_env")), v))
            })
            .collect()
    }

    /// Replace every `password_env` by the password `lookup` returns.
    pub fn resolve_passwords(
        &mut self,
        at: &str,
        lookup: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        for (j, f) in self.fence.iter_mut().enumerate() {
            let Some(var) = f.password_env.take() else {
                continue;
            };
            let path = join(at, &format!("fence[{j}].password_env"));
            if f.password.is_some() {
                errors.push(format!(
                    "{path}: give either password or password_env, not both"
                ));
                continue;
            }
            match lookup(&var) {
                Ok(pw) if pw.is_empty() => {
                    errors.push(format!("{path}: environment variable {var} is empty"))
                }
                Ok(pw) => f.password = Some(Secret(pw)),
                Err(e) => errors.push(format!("{path}: {e}")),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The host spec this entry describes, fully validated (pool existence is the
    /// caller's business). `current` is the host as it is now, if it exists: fields
    /// the entry omits keep their current value. Every `password_env` must have been
    /// resolved. Errors name the field under `at`.
    pub fn to_spec(&self, at: &str, current: Option<&HostSpec>) -> Result<HostSpec, Vec<String>> {
        let mut errors = Vec::new();
        let health = self.health.as_ref().and_then(|c| {
            c.to_spec(&join(at, "health"), true)
                .map_err(|e| errors.push(e))
                .ok()
        });
        let activity = self.activity.as_ref().and_then(|c| {
            c.to_spec(&join(at, "activity"), false)
                .map_err(|e| errors.push(e))
                .ok()
        });
        let mut fence = Vec::new();
        for (j, f) in self.fence.iter().enumerate() {
            let path = join(at, &format!("fence[{j}]"));
            match f.to_spec(&path) {
                Ok(d) => fence.push(d),
                Err(e) => errors.push(e),
            }
        }
        let policy = overrides(&self.policy, Scope::Host, &join(at, "policy"), &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let spec = HostSpec {
            name: self.name.clone(),
            pool: self.pool.clone(),
            kind: self
                .kind
                .clone()
                .or_else(|| current.map(|c| c.kind.clone()))
                .unwrap_or_else(|| DEFAULT_HOST_KIND.to_string()),
            labels: texts(&self.labels),
            health,
            activity,
            fence,
            maintenance: self
                .maintenance
                .or(current.map(|c| c.maintenance))
                .unwrap_or(false),
            policy,
        };
        validate::host(&spec).map_err(|e| {
            let prefix = format!("host {}: ", spec.name);
            vec![match e.strip_prefix(&prefix) {
                Some(rest) => join(at, rest),
                None if at.is_empty() => e,
                None => format!("{at}: {e}"),
            }]
        })?;
        Ok(spec)
    }
}

impl CheckDoc {
    fn to_spec(&self, at: &str, health: bool) -> Result<CheckSpec, String> {
        let kind = CheckKind::parse(&self.kind, health).map_err(|e| format!("{at}.kind: {e}"))?;
        Ok(CheckSpec {
            kind,
            target: self.target.clone(),
            options: texts(&self.options),
        })
    }
}

impl PoolDoc {
    /// The pool spec this entry describes, validated. `current`: the pool now.
    pub fn to_spec(&self, at: &str, current: Option<&PoolSpec>) -> Result<PoolSpec, Vec<String>> {
        let mut errors = Vec::new();
        let policy = overrides(&self.policy, Scope::Pool, &join(at, "policy"), &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let spec = PoolSpec {
            name: self.name.clone(),
            enabled: self.enabled.or(current.map(|c| c.enabled)).unwrap_or(true),
            policy,
        };
        validate::pool(&spec).map_err(|e| {
            let prefix = format!("pool {}: ", spec.name);
            vec![match e.strip_prefix(&prefix) {
                Some(rest) => join(at, rest),
                None if at.is_empty() => e,
                None => format!("{at}: {e}"),
            }]
        })?;
        Ok(spec)
    }
}

fn texts(m: &BTreeMap<String, Text>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}

fn overrides(
    m: &BTreeMap<String, Text>,
    scope: Scope,
    at: &str,
    errors: &mut Vec<String>,
) -> Overrides {
    let mut out = Overrides::new();
    for (k, v) in m {
        match parse_override(k, &v.0, scope) {
            Ok(v) => {
                out.insert(k.clone(), v);
            }
            Err(e) => errors.push(format!("{at}: {e}")),
        }
    }
    out
}

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Created.
    Add,
    /// Changed in place.
    Change,
    /// Removed (`--prune`).
    Remove,
    /// Not in the file and kept (no `--prune`).
    Keep,
}

/// One line of the diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What happens.
    pub op: Op,
    /// `setting`, `pool` or `host`.
    pub kind: String,
    /// Key or name.
    pub name: String,
    /// Changed fields (`~` only): `enabled`, `policy`, `fence`, `password`, …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// The human line: `+ host node01 (rack1)`. Never contains a secret.
    pub line: String,
}

/// The diff of an inventory against the state, and the command that applies it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Only what differs (empty: nothing to propose).
    pub change: InventoryChange,
    /// Additions, changes and removals, in apply order.
    pub changes: Vec<Change>,
    /// Pools and hosts not in the file that are kept (no `--prune`).
    pub kept: Vec<Change>,
    /// Settings, pools and hosts in the file that already match.
    pub unchanged: usize,
}

/// Plan `inv` (passwords resolved) against `state`. With `prune`, pools and hosts not
/// in the file are removed. All problems are reported at once.
pub fn plan(inv: &Inventory, state: &VigilState, prune: bool) -> Result<Plan, Vec<String>> {
    let mut errors = Vec::new();
    let mut plan = Plan::default();
    if prune && inv.pools.is_empty() && inv.hosts.is_empty() {
        return Err(vec![
            "refusing --prune with an inventory that declares no pools and no hosts: it would remove everything".into(),
        ]);
    }

    // Cluster settings.
    for (key, text) in &inv.policy {
        let path = format!("policy.{key}");
        if !key.starts_with("policy.") {
            errors.push(format!(
                "{path}: only policy.* settings may be set here (use `vigil settings set` for others)"
            ));
            continue;
        }
        let value = settings::lookup(key)
            .and_then(|d| d.parse(key, &text.0))
            .and_then(|v| check_override(key, &v, Scope::Cluster).map(|()| v));
        match value {
            Err(e) => errors.push(format!("policy: {e}")),
            Ok(v) => {
                let old = state.settings.get(key).map(|r| &r.value);
                if old == Some(&v) {
                    plan.unchanged += 1;
                } else {
                    let was = match old {
                        Some(o) => o.to_string(),
                        None => state
                            .setting(key)
                            .map(|d| format!("{d} (default)"))
                            .unwrap_or_default(),
                    };
                    plan.changes.push(Change {
                        op: Op::Change,
                        kind: "setting".into(),
                        name: key.clone(),
                        fields: vec![],
                        line: format!("~ setting {key}: {was} -> {v}"),
                    });
                    plan.change.settings.push((key.clone(), v));
                }
            }
        }
    }

    // Pools.
    let mut file_pools: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, p) in inv.pools.iter().enumerate() {
        let at = pool_path(i, &p.name);
        if let Some(first) = file_pools.insert(&p.name, i) {
            errors.push(format!(
                "{at}.name: duplicate: pools[{first}] has the same name"
            ));
            continue;
        }
        let current = state.pools.get(&p.name).map(|c| &c.spec);
        let spec = match p.to_spec(&at, current) {
            Ok(s) => s,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        match current {
            None => {
                plan.changes.push(Change {
                    op: Op::Add,
                    kind: "pool".into(),
                    name: spec.name.clone(),
                    fields: vec![],
                    line: format!(
                        "+ pool {}{}",
                        spec.name,
                        if spec.enabled { "" } else { " (disabled)" }
                    ),
                });
                plan.change.pools.push(spec);
            }
            Some(cur) if *cur == spec => plan.unchanged += 1,
            Some(cur) => {
                let mut fields = Vec::new();
                if cur.enabled != spec.enabled {
                    fields.push("enabled".to_string());
                }
                if cur.policy != spec.policy {
                    fields.push("policy".to_string());
                }
                plan.changes.push(Change {
                    op: Op::Change,
                    kind: "pool".into(),
                    name: spec.name.clone(),
                    line: format!("~ pool {}: {}", spec.name, fields.join(", ")),
                    fields,
                });
                plan.change.pools.push(spec);
            }
        }
    }

    // Hosts.
    let mut file_hosts: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, h) in inv.hosts.iter().enumerate() {
        let at = host_path(i, &h.name);
        if let Some(first) = file_hosts.insert(&h.name, i) {
            errors.push(format!(
                "{at}.name: duplicate: hosts[{first}] has the same name"
            ));
            continue;
        }
        let current = state.hosts.get(&h.name).map(|c| &c.spec);
        let spec = match h.to_spec(&at, current) {
            Ok(s) => s,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        if !file_pools.contains_key(spec.pool.as_str()) {
            if !state.pools.contains_key(&spec.pool) {
                errors.push(format!(
                    "{at}.pool: unknown pool {:?} (neither in the file nor in the cluster)",
                    spec.pool
                ));
                continue;
            }
            if prune {
                errors.push(format!(
                    "{at}.pool: pool {:?} is not in the file, and --prune would remove it",
                    spec.pool
                ));
                continue;
            }
        }
        match current {
            None => {
                plan.changes.push(Change {
                    op: Op::Add,
                    kind: "host".into(),
                    name: spec.name.clone(),
                    fields: vec![],
                    line: format!("+ host {} ({})", spec.name, spec.pool),
                });
                plan.change.hosts.push(spec);
            }
            Some(cur) if *cur == spec => plan.unchanged += 1,
            Some(cur) => {
                let fields = host_fields(cur, &spec);
                let shown: Vec<String> = fields
                    .iter()
                    .map(|f| {
                        if f == "pool" {
                            format!("pool {} -> {}", cur.pool, spec.pool)
                        } else {
                            f.clone()
                        }
                    })
                    .collect();
                plan.changes.push(Change {
                    op: Op::Change,
                    kind: "host".into(),
                    name: spec.name.clone(),
                    line: format!("~ host {}: {}", spec.name, shown.join(", ")),
                    fields,
                });
                plan.change.hosts.push(spec);
            }
        }
    }

    // Not in the file: removed with --prune, listed as kept otherwise.
    let named_pools: BTreeSet<&str> = inv.pools.iter().map(|p| p.name.as_str()).collect();
    let named_hosts: BTreeSet<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
    for h in state.hosts.values() {
        if named_hosts.contains(h.spec.name.as_str()) {
            continue;
        }
        let name = h.spec.name.clone();
        if prune {
            plan.changes.push(Change {
                op: Op::Remove,
                kind: "host".into(),
                line: format!("- host {name} ({})", h.spec.pool),
                name: name.clone(),
                fields: vec![],
            });
            plan.change.remove_hosts.push(name);
        } else {
            plan.kept.push(Change {
                op: Op::Keep,
                kind: "host".into(),
                line: format!(
                    "  host {name} ({}): not in the file, kept (use --prune to remove)",
                    h.spec.pool
                ),
                name,
                fields: vec![],
            });
        }
    }
    for name in state.pools.keys() {
        if named_pools.contains(name.as_str()) {
            continue;
        }
        if prune {
            plan.changes.push(Change {
                op: Op::Remove,
                kind: "pool".into(),
                name: name.clone(),
                fields: vec![],
                line: format!("- pool {name}"),
            });
            plan.change.remove_pools.push(name.clone());
        } else {
            plan.kept.push(Change {
                op: Op::Keep,
                kind: "pool".into(),
                name: name.clone(),
                fields: vec![],
                line: format!("  pool {name}: not in the file, kept (use --prune to remove)"),
            });
        }
    }

    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(errors)
    }
}

/// Names of the fields that differ between two specs of one host. Passwords count
/// only when they differ, and are named, never shown.
pub fn host_fields(cur: &HostSpec, new: &HostSpec) -> Vec<String> {
    let mut f = Vec::new();
    let mut push = |changed: bool, name: &str| {
        if changed {
            f.push(name.to_string());
        }
    };
    push(cur.pool != new.pool, "pool");
    push(cur.kind != new.kind, "kind");
    push(cur.labels != new.labels, "labels");
    push(cur.maintenance != new.maintenance, "maintenance");
    push(cur.health != new.health, "health");
    push(cur.activity != new.activity, "activity");
    let blank = |v: &[DriverSpec]| -> Vec<DriverSpec> {
        v.iter()
            .map(|d| DriverSpec {
                password: Secret::default(),
                ..d.clone()
            })
            .collect()
    };
    push(blank(&cur.fence) != blank(&new.fence), "fence");
    let passwords =
        |v: &[DriverSpec]| -> Vec<Secret> { v.iter().map(|d| d.password.clone()).collect() };
    push(passwords(&cur.fence) != passwords(&new.fence), "password");
    push(cur.policy != new.policy, "policy");
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Command, Response, Stamp};
    use vigil_raft::{ApplyContext, StateMachine};

    const DOC: &str = r#"
policy: { policy.health.interval: 7s }
pools:
  - name: rack1
    policy: { policy.fence.budget: 2 }
hosts:
  - name: node01
    pool: rack1
    labels: { rack: r1, slot: 4 }
    health: { kind: http, target: "http://10.0.0.1:8080/health" }
    activity: { kind: heartbeat-file, target: /mnt/hb/node01 }
    fence:
      - { driver: ipmi, address: "10.0.1.1:623", username: admin, password: secret }
      - { driver: redfish, address: "https://10.0.1.1", username: admin, password_env: BMC_PW }
"#;

    fn resolved(text: &str) -> Inventory {
        let mut inv = parse(text).unwrap();
        inv.resolve_passwords(|v| {
            if v == "BMC_PW" {
                Ok("pw2".into())
            } else {
                Err(format!("environment variable {v} is not set"))
            }
        })
        .unwrap();
        inv
    }

    fn apply(s: &mut VigilState, change: InventoryChange) {
        let r = s.apply(
            ApplyContext {
                index: 1,
                term: 1,
                position: 0,
            },
            &Command::ApplyInventory {
                change,
                stamp: Stamp { by: 1, at_ms: 1000 },
            },
        );
        assert!(matches!(r, Response::Applied { .. }), "{r:?}");
    }

    #[test]
    fn plan_apply_and_replan_is_empty() {
        let inv = resolved(DOC);
        let mut s = VigilState::default();
        let p = plan(&inv, &s, false).unwrap();
        let lines: Vec<&str> = p.changes.iter().map(|c| c.line.as_str()).collect();
        assert_eq!(
            lines,
            [
                "~ setting policy.health.interval: 5s (default) -> 7s",
                "+ pool rack1",
                "+ host node01 (rack1)"
            ]
        );
        let h = &p.change.hosts[0];
        assert_eq!(h.labels["slot"], "4");
        assert_eq!(h.fence[1].password.expose(), "pw2");
        apply(&mut s, p.change);
        let again = plan(&inv, &s, false).unwrap();
        assert!(again.change.is_empty(), "{again:?}");
        assert_eq!(again.unchanged, 3);
    }

    #[test]
    fn changes_name_fields_and_never_show_passwords() {
        let mut s = VigilState::default();
        let c = plan(&resolved(DOC), &s, false).unwrap().change;
        apply(&mut s, c);
        let edited = DOC
            .replace("password: secret", "password: other-secret")
            .replace("slot: 4", "slot: 5");
        let p = plan(&resolved(&edited), &s, false).unwrap();
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.changes[0].line, "~ host node01: labels, password");
        assert!(!format!("{p:?}").contains("other-secret"));
    }

    #[test]
    fn errors_name_the_field_path() {
        let bad = DOC.replace("driver: ipmi", "driver: ipmx");
        let e = plan(&resolved(&bad), &VigilState::default(), false).unwrap_err();
        assert_eq!(
            e[0],
            "hosts[0] (node01).fence[0].driver: unknown driver kind \"ipmx\"; known: redfish, ipmi, ipmitool, script, sim"
        );
        let bad = DOC.replace("kind: http", "kind: htp");
        let e = plan(&resolved(&bad), &VigilState::default(), false).unwrap_err();
        assert!(
            e[0].starts_with("hosts[0] (node01).health.kind: unknown health check kind"),
            "{e:?}"
        );
        let bad = DOC.replace("budget: 2", "budget: lots");
        let e = plan(&resolved(&bad), &VigilState::default(), false).unwrap_err();
        assert!(
            e[0].starts_with("pools[0] (rack1).policy: invalid value for policy.fence.budget"),
            "{e:?}"
        );
        let bad = DOC.replace("username: admin, password: secret", "password: secret");
        let e = plan(&resolved(&bad), &VigilState::default(), false).unwrap_err();
        assert_eq!(
            e[0],
            "hosts[0] (node01).fence[0].username: required for ipmi"
        );
        let e = parse(&DOC.replace("labels:", "lables:")).unwrap_err();
        assert!(
            e.contains("unknown field `lables`") && e.contains("line"),
            "{e}"
        );
        let e = parse("pools: [ { name: a }\nhosts: x").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn unresolved_env_and_empty_inventory() {
        let mut inv = parse(DOC).unwrap();
        assert_eq!(
            inv.password_envs(),
            [(
                "hosts[0] (node01).fence[1].password_env".to_string(),
                "BMC_PW".to_string()
            )]
        );
        let e = inv
            .resolve_passwords(|v| Err(format!("environment variable {v} is not set")))
            .unwrap_err();
        assert_eq!(
            e,
            ["hosts[0] (node01).fence[1].password_env: environment variable BMC_PW is not set"]
        );
        assert_eq!(parse("").unwrap(), Inventory::default());
        assert_eq!(parse("# nothing\n").unwrap(), Inventory::default());
        assert!(plan(&Inventory::default(), &VigilState::default(), true).is_err());
    }

    #[test]
    fn prune_removes_and_keep_lists() {
        let mut s = VigilState::default();
        let two = format!(
            "{DOC}  - {{ name: old1, pool: rack1, fence: [ {{ driver: sim, address: x }} ] }}\n"
        );
        let c = plan(&resolved(&two), &s, false).unwrap().change;
        apply(&mut s, c);
        let p = plan(&resolved(DOC), &s, false).unwrap();
        assert!(p.change.is_empty());
        assert_eq!(
            p.kept[0].line,
            "  host old1 (rack1): not in the file, kept (use --prune to remove)"
        );
        let p = plan(&resolved(DOC), &s, true).unwrap();
        assert_eq!(p.changes[0].line, "- host old1 (rack1)");
        assert_eq!(p.change.remove_hosts, ["old1"]);
    }
}
