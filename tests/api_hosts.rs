//! Pools and hosts through the admin API of an in-process 3-member cluster, and the
//! `vigil pool` / `vigil host` commands against it: create, add (through followers
//! too), list with filters, show, maintenance, explain, operator actions, policy
//! profiles, input validation that names the field, and a BMC password that never
//! comes back out of any answer.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use vigil::dev::DevCluster;
use vigil::engine::input::{HealthObs, Input};
use vigil::engine::policy::FAST_PROFILE;
use vigil::engine::record::PowerState;
use vigil::state::{Command, HostInput, Response, Stamp};
use vigil_raft::RaftTimings;

const PASSWORD: &str = "s3cr3t-xyz";

/// A JSON client that keeps every answer body, to check afterwards that no secret
/// ever came back.
struct Api {
    http: reqwest::Client,
    urls: Vec<String>,
    seen: Mutex<Vec<String>>,
}

impl Api {
    fn new(c: &DevCluster) -> Self {
        Api {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            urls: c.members.iter().map(|m| m.url()).collect(),
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Send to member `i`; the status and the JSON answer.
    async fn call(
        &self,
        i: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.urls[i]));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        self.seen.lock().unwrap().push(text.clone());
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    async fn ok(&self, i: usize, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(i, method.clone(), path, body).await;
        assert_eq!(s, StatusCode::OK, "{method} {path}: {v}");
        v
    }

    /// Expect `status` with an error message containing `needle`.
    async fn err(
        &self,
        i: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
        needle: &str,
    ) {
        let (s, v) = self.call(i, method.clone(), path, body).await;
        let msg = v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(s, status, "{method} {path}: {v}");
        assert!(
            msg.contains(needle),
            "{method} {path}: {msg:?} does not mention {needle:?}"
        );
    }

    fn assert_never_saw(&self, secret: &str) {
        let seen = self.seen.lock().unwrap();
        assert!(seen.len() > 10, "too few answers recorded: {}", seen.len());
        for body in seen.iter() {
            assert!(
                !body.contains(secret),
                "an API answer contains the password: {body}"
            );
        }
    }
}

fn host(name: &str, pool: &str) -> Value {
    json!({
        "name": name,
        "pool": pool,
        "kind": "hypervisor",
        "labels": {"rack": "r1"},
        "health": {"kind": "http", "target": "http://10.0.0.1:8080/health"},
        "activity": {"kind": "heartbeat-file", "target": format!("/mnt/hb/{name}")},
        "fence": [
            {"driver": "ipmi", "address": "127.0.0.1:9001", "username": "admin", "password": PASSWORD},
            {"driver": "sim", "address": name, "options": {"delay": "0"}}
        ]
    })
}

fn stamp(at_ms: u64) -> Stamp {
    Stamp { by: 1, at_ms }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn health(pass: bool, n: u32) -> Input {
    Input::Health(HealthObs {
        pass,
        consecutive_failures: if pass { 0 } else { n },
        window_failures: if pass { 0 } else { n },
        window_len: n.max(1),
        detail: if pass {
            "200 OK".into()
        } else {
            "connection refused".into()
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pools_and_hosts_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let c = DevCluster::start(3, dir.path(), RaftTimings::default())
        .await
        .unwrap();
    let api = Api::new(&c);
    use Method as M;

    // Pools.
    let w = api
        .ok(
            0,
            M::POST,
            "/api/v1/pools",
            Some(json!({"name": "rack1", "policy": {"policy.fence.budget": 5}})),
        )
        .await;
    assert_eq!(w["pool"]["enabled"], true);
    assert_eq!(w["pool"]["policy"]["policy.fence.budget"], "5");
    assert_eq!(w["pool"]["fence_budget"]["max"], 5);
    api.err(
        1,
        M::POST,
        "/api/v1/pools",
        Some(json!({"name": "rack1"})),
        StatusCode::BAD_REQUEST,
        "already exists",
    )
    .await;
    api.err(
        0,
        M::POST,
        "/api/v1/pools",
        Some(json!({"name": "bad/name"})),
        StatusCode::BAD_REQUEST,
        "may only contain",
    )
    .await;
    api.err(
        0,
        M::POST,
        "/api/v1/pools",
        Some(json!({"name": "p", "policy": {"policy.breaker.ratio": "1.5"}})),
        StatusCode::BAD_REQUEST,
        "policy.breaker.ratio",
    )
    .await;
    api.ok(
        2,
        M::POST,
        "/api/v1/pools",
        Some(json!({"name": "rack2", "enabled": false})),
    )
    .await;

    // Hosts, added through followers too (writes are forwarded to the leader).
    let w = api
        .ok(2, M::POST, "/api/v1/hosts", Some(host("node01", "rack1")))
        .await;
    assert_eq!(w["host"]["state"], "ineligible", "{w}");
    assert_eq!(w["host"]["fence"][0]["password_set"], true);
    assert_eq!(w["host"]["fence"][1]["password_set"], false);
    api.ok(1, M::POST, "/api/v1/hosts", Some(host("node02", "rack1")))
        .await;
    api.ok(0, M::POST, "/api/v1/hosts", Some(host("node03", "rack2")))
        .await;

    // Bad input: 400 naming the field, nothing proposed.
    let rev_before = c.members[0].member.read(|s| s.revision).await.unwrap();
    api.err(
        1,
        M::POST,
        "/api/v1/hosts",
        Some(host("node01", "rack1")),
        StatusCode::BAD_REQUEST,
        "host node01 already exists",
    )
    .await;
    api.err(
        0,
        M::POST,
        "/api/v1/hosts",
        Some(host("node09", "nope")),
        StatusCode::BAD_REQUEST,
        "unknown pool \"nope\"",
    )
    .await;
    let mut h = host("node09", "rack1");
    h["fence"][0]["driver"] = json!("ipmx");
    api.err(
        0,
        M::POST,
        "/api/v1/hosts",
        Some(h),
        StatusCode::BAD_REQUEST,
        "fence[0].driver: unknown driver kind \"ipmx\"",
    )
    .await;
    let mut h = host("node09", "rack1");
    h["health"]["kind"] = json!("heartbeat-file");
    api.err(
        0,
        M::POST,
        "/api/v1/hosts",
        Some(h),
        StatusCode::BAD_REQUEST,
        "health.kind: unknown health check kind",
    )
    .await;
    let mut h = host("node09", "rack1");
    h["policy"] = json!({"policy.health.interval": "soon"});
    api.err(
        0,
        M::POST,
        "/api/v1/hosts",
        Some(h),
        StatusCode::BAD_REQUEST,
        "policy.health.interval",
    )
    .await;
    let mut h = host("node09", "rack1");
    h["policy"] = json!({"policy.fence.budget": "1"});
    api.err(
        0,
        M::POST,
        "/api/v1/hosts",
        Some(h),
        StatusCode::BAD_REQUEST,
        "cannot be overridden for a host",
    )
    .await;
    let mut h = host("node09", "rack1");
    h["fence"][0]["username"] = json!("");
    api.err(
        0,
        M::POST,
        "/api/v1/hosts",
        Some(h),
        StatusCode::BAD_REQUEST,
        "fence[0].username: required for ipmi",
    )
    .await;
    let mut h = host("node09", "rack1");
    h["fence"][0]["passwrd"] = json!("x");
    api.err(
        0,
        M::POST,
        "/api/v1/hosts",
        Some(h),
        StatusCode::BAD_REQUEST,
        "unknown field `passwrd`",
    )
    .await;
    let rev_after = c.members[0].member.read(|s| s.revision).await.unwrap();
    assert_eq!(
        rev_before, rev_after,
        "a refused request proposed something"
    );

    // Lists and filters.
    let all = api.ok(1, M::GET, "/api/v1/hosts", None).await;
    assert_eq!(all.as_array().unwrap().len(), 3);
    let r1 = api.ok(2, M::GET, "/api/v1/hosts?pool=rack1", None).await;
    let names: Vec<&str> = r1
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node01", "node02"]);
    let dis = api
        .ok(0, M::GET, "/api/v1/hosts?state=disabled", None)
        .await;
    assert_eq!(dis.as_array().unwrap().len(), 1, "{dis}");
    assert_eq!(dis[0]["name"], "node03");
    let none = api
        .ok(
            0,
            M::GET,
            "/api/v1/hosts?pool=rack1&state=Fence_Failed",
            None,
        )
        .await;
    assert!(none.as_array().unwrap().is_empty());
    api.err(
        0,
        M::GET,
        "/api/v1/hosts?state=bogus",
        None,
        StatusCode::BAD_REQUEST,
        "\"bogus\"",
    )
    .await;
    api.err(
        0,
        M::GET,
        "/api/v1/hosts?pool=nope",
        None,
        StatusCode::NOT_FOUND,
        "nope",
    )
    .await;
    api.err(
        0,
        M::GET,
        "/api/v1/hosts?color=red",
        None,
        StatusCode::BAD_REQUEST,
        "color",
    )
    .await;

    // Show.
    let n1 = api.ok(1, M::GET, "/api/v1/hosts/node01", None).await;
    assert_eq!(n1["fence"][0]["username"], "admin");
    assert_eq!(n1["fence"][0]["kind"], "ipmi");
    assert_eq!(n1["fence"][1]["options"]["delay"], "0");
    assert_eq!(n1["labels"]["rack"], "r1");
    assert_eq!(n1["health"]["kind"], "http");
    api.err(
        0,
        M::GET,
        "/api/v1/hosts/nope",
        None,
        StatusCode::NOT_FOUND,
        "unknown host",
    )
    .await;

    // Maintenance → ineligible (in maintenance), and explain says what it waits for.
    let w = api
        .ok(
            2,
            M::PUT,
            "/api/v1/hosts/node01/maintenance",
            Some(json!({"on": true})),
        )
        .await;
    assert_eq!(w["host"]["state"], "ineligible");
    assert_eq!(w["host"]["maintenance"], true);
    assert_eq!(w["host"]["ineligible"], "in maintenance");
    let ex = api
        .ok(1, M::GET, "/api/v1/hosts/node01/explain", None)
        .await;
    assert_eq!(ex["state"], "ineligible");
    assert!(
        ex["waiting_for"]
            .as_str()
            .unwrap()
            .contains("in maintenance"),
        "{ex}"
    );
    assert_eq!(ex["pool_gate"]["state"], "inactive");
    assert_eq!(ex["pool_gate"]["actions_allowed"], false);
    let ts = ex["transitions"].as_array().unwrap();
    assert_eq!(ts.last().unwrap()["reason"], "in maintenance", "{ex}");
    assert_eq!(ts.last().unwrap()["evidence_kind"], "admin");

    // Drive node02 with engine inputs (as its owner would): power on, healthy → available;
    // then failing → suspect, and an operator confirms it is off → fenced.
    let m = &c.members[0].member;
    let t = now_ms();
    let inputs = |input: Input| {
        vec![HostInput {
            host: "node02".into(),
            epoch: None,
            input,
        }]
    };
    m.write(Command::HostInputs {
        inputs: inputs(Input::Power {
            state: PowerState::On,
            detail: "ipmi: chassis power on".into(),
        }),
        stamp: stamp(t),
    })
    .await
    .unwrap();
    m.write(Command::HostInputs {
        inputs: inputs(health(true, 1)),
        stamp: stamp(t + 1),
    })
    .await
    .unwrap();
    let ex = api
        .ok(2, M::GET, "/api/v1/hosts/node02/explain", None)
        .await;
    assert_eq!(ex["state"], "available", "{ex}");
    assert!(
        ex["waiting_for"]
            .as_str()
            .unwrap()
            .contains("health checks every 5s"),
        "{ex}"
    );
    assert!(
        ex["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["evidence"]
                .as_str()
                .unwrap()
                .contains("health check passed")),
        "{ex}"
    );
    api.err(
        0,
        M::POST,
        "/api/v1/hosts/node02/admin",
        Some(json!({"op": "retry"})),
        StatusCode::CONFLICT,
        "applies only to fence-failed",
    )
    .await;
    api.err(
        0,
        M::POST,
        "/api/v1/hosts/node02/admin",
        Some(json!({"op": "reboot"})),
        StatusCode::BAD_REQUEST,
        "op: unknown operation",
    )
    .await;
    let r = m
        .write(Command::HostInputs {
            inputs: inputs(health(false, 3)),
            stamp: stamp(t + 2),
        })
        .await
        .unwrap();
    assert!(matches!(r, Response::Inputs { .. }), "{r:?}");
    let ex = api
        .ok(1, M::GET, "/api/v1/hosts/node02/explain", None)
        .await;
    assert_eq!(ex["state"], "suspect", "{ex}");
    assert!(
        ex["waiting_for"]
            .as_str()
            .unwrap()
            .contains("activity round 1/"),
        "{ex}"
    );
    assert!(ex["next_at_ms"].as_u64().is_some(), "{ex}");
    let w = api
        .ok(
            2,
            M::POST,
            "/api/v1/hosts/node02/admin",
            Some(json!({"op": "confirm-off"})),
        )
        .await;
    assert_eq!(w["host"]["state"], "fenced", "{w}");
    assert_eq!(w["transition"]["to"], "fenced");
    let w = api
        .ok(
            0,
            M::POST,
            "/api/v1/hosts/node02/admin",
            Some(json!({"op": "unfence"})),
        )
        .await;
    assert_eq!(w["transition"]["from"], "fenced", "{w}");

    // Pool policy: the fast profile, then an explicit value on top, then unset.
    let w = api
        .ok(
            1,
            M::PUT,
            "/api/v1/pools/rack1/policy",
            Some(json!({"profile": "fast"})),
        )
        .await;
    let p = &w["pool"];
    for (k, _) in FAST_PROFILE {
        assert!(
            p["policy"].get(*k).is_some(),
            "{k} not set by --profile fast: {p}"
        );
        let e = p["effective_policy"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == *k)
            .unwrap();
        assert_eq!(e["source"], "pool", "{e}");
    }
    assert_eq!(p["policy"]["policy.health.interval"], "1s");
    assert_eq!(p["policy"]["policy.fence.budget"], "5", "kept: {p}");
    let w = api
        .ok(
            2,
            M::PUT,
            "/api/v1/pools/rack1/policy",
            Some(json!({"set": {"policy.health.failures": "4"}, "unset": ["policy.fence.budget"]})),
        )
        .await;
    assert_eq!(w["pool"]["policy"]["policy.health.failures"], "4");
    assert!(w["pool"]["policy"].get("policy.fence.budget").is_none());
    api.err(
        0,
        M::PUT,
        "/api/v1/pools/rack1/policy",
        Some(json!({"profile": "turbo"})),
        StatusCode::BAD_REQUEST,
        "unknown profile \"turbo\"",
    )
    .await;
    api.err(
        0,
        M::PUT,
        "/api/v1/pools/rack1/policy",
        Some(json!({"set": {"policy.health.interval": "fast"}})),
        StatusCode::BAD_REQUEST,
        "policy.health.interval",
    )
    .await;
    api.err(
        0,
        M::PUT,
        "/api/v1/pools/rack1/policy",
        Some(json!({})),
        StatusCode::BAD_REQUEST,
        "nothing to change",
    )
    .await;
    api.err(
        0,
        M::PUT,
        "/api/v1/pools/nope/policy",
        Some(json!({"profile": "fast"})),
        StatusCode::NOT_FOUND,
        "unknown pool",
    )
    .await;

    // Enable / disable, show, list.
    let w = api.ok(2, M::POST, "/api/v1/pools/rack2/enable", None).await;
    assert_eq!(w["pool"]["enabled"], true);
    assert_eq!(
        api.ok(0, M::GET, "/api/v1/hosts/node03", None).await["state"],
        "ineligible"
    );
    let w = api
        .ok(0, M::POST, "/api/v1/pools/rack2/disable", None)
        .await;
    assert_eq!(w["pool"]["state"], "disabled");
    assert_eq!(
        api.ok(1, M::GET, "/api/v1/hosts/node03", None).await["state"],
        "disabled"
    );
    let pools = api.ok(1, M::GET, "/api/v1/pools", None).await;
    assert_eq!(pools.as_array().unwrap().len(), 2);
    let p = api.ok(2, M::GET, "/api/v1/pools/rack1", None).await;
    assert_eq!(p["counts"]["hosts"], 2);
    assert_eq!(p["breaker"]["open"], false);
    assert_eq!(
        p["effective_policy"].as_array().unwrap().len(),
        vigil::settings::SETTINGS
            .iter()
            .filter(|d| d.key.starts_with("policy."))
            .count()
    );

    // Removal: a pool with hosts is refused by apply (409); hosts then pool go.
    api.err(
        0,
        M::DELETE,
        "/api/v1/pools/rack2",
        None,
        StatusCode::CONFLICT,
        "still has 1 host",
    )
    .await;
    api.ok(1, M::DELETE, "/api/v1/hosts/node03", None).await;
    api.err(
        0,
        M::GET,
        "/api/v1/hosts/node03",
        None,
        StatusCode::NOT_FOUND,
        "node03",
    )
    .await;
    api.ok(2, M::DELETE, "/api/v1/pools/rack2", None).await;
    api.err(
        0,
        M::DELETE,
        "/api/v1/pools/rack2",
        None,
        StatusCode::NOT_FOUND,
        "unknown pool",
    )
    .await;

    // The password never came back, and the state's Debug (what logs would show) hides it.
    api.assert_never_saw(PASSWORD);
    let state = m.read(|s| s.clone()).await.unwrap();
    assert_eq!(
        state.hosts["node01"].spec.fence[0].password.expose(),
        PASSWORD,
        "replicated as given"
    );
    assert!(!format!("{state:?}").contains(PASSWORD));
    c.stop().await.unwrap();
}

#[path = "support/cli.rs"]
mod cli;
use cli::vigil;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pool_and_host_commands() {
    let dir = tempfile::tempdir().unwrap();
    let c = DevCluster::start(3, dir.path(), RaftTimings::default())
        .await
        .unwrap();
    let url = c.members[1].url();
    let run = |env: &'static [(&'static str, &'static str)], args: Vec<&'static str>| {
        let url = url.clone();
        async move {
            let r = vigil(&url, env, &args).await;
            assert!(
                !r.1.contains(PASSWORD) && !r.2.contains(PASSWORD),
                "password printed by {args:?}: {r:?}"
            );
            r
        }
    };

    let (ok, out, err) = run(
        &[],
        vec![
            "pool",
            "create",
            "rack1",
            "--policy",
            "policy.fence.budget=4",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("pool rack1 created"), "{out}");
    let (ok, out, err) = run(
        &[("BMC_PW", PASSWORD)],
        vec![
            "host",
            "add",
            "node01",
            "--pool",
            "rack1",
            "--label",
            "rack=r1",
            "--health",
            "http:http://10.0.0.1:8080/health",
            "--activity",
            "heartbeat-file:/mnt/hb/node01",
            "--fence",
            "kind=ipmi,address=127.0.0.1:9001,username=admin,password-env=BMC_PW",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("host node01 (rack1) added"), "{out}");
    assert!(err.is_empty(), "no warning for password-env: {err}");
    let (ok, _, err) = run(
        &[],
        vec![
            "host",
            "add",
            "node02",
            "--pool",
            "rack1",
            "--fence",
            "kind=sim,address=x,password=inline-pw",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert!(err.contains("visible in the process list"), "{err}");
    let (ok, _, err) = run(
        &[],
        vec![
            "host",
            "add",
            "node03",
            "--pool",
            "rack1",
            "--fence",
            "kind=ipmi,address=x,username=u,password-env=NOT_SET_ANYWHERE",
        ],
    )
    .await;
    assert!(!ok && err.contains("NOT_SET_ANYWHERE is not set"), "{err}");
    let (ok, _, err) = run(&[], vec!["host", "add", "node03", "--pool", "nope"]).await;
    assert!(!ok && err.contains("unknown pool \"nope\""), "{err}");

    let (ok, out, _) = run(&[], vec!["host", "list"]).await;
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "POOL", "STATE", "POWER", "OWNER", "SINCE"]
    );
    assert!(
        lines[1].starts_with("node01")
            && lines[1].contains("ineligible")
            && lines[1].ends_with("ago"),
        "{out}"
    );
    let (ok, out, _) = run(&[], vec!["host", "list", "--state", "available"]).await;
    assert!(ok && out.lines().count() == 1, "{out}");
    let (ok, _, err) = run(&[], vec!["host", "list", "--state", "sleepy"]).await;
    assert!(!ok && err.contains("\"sleepy\""), "{err}");

    let (ok, out, _) = run(&[], vec!["host", "show", "node01"]).await;
    assert!(
        ok && out.contains("PASSWORD") && out.contains("set"),
        "{out}"
    );
    let (ok, out, _) = run(&[], vec!["-o", "json", "host", "show", "node01"]).await;
    assert!(ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["fence"][0]["password_set"], true);

    let (ok, out, _) = run(&[], vec!["host", "maintenance", "node01", "on"]).await;
    assert!(ok && out.contains("ineligible (in maintenance)"), "{out}");
    let (ok, out, _) = run(&[], vec!["host", "explain", "node01"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("waiting for: the cause to clear: in maintenance"),
        "{out}"
    );
    assert!(out.contains("can act: no"), "{out}");
    assert!(out.contains("last transitions"), "{out}");
    let (ok, _, err) = run(&[], vec!["host", "retry", "node01"]).await;
    assert!(!ok && err.contains("applies only to fence-failed"), "{err}");

    let (ok, out, _) = run(
        &[],
        vec![
            "-o",
            "json",
            "pool",
            "set-policy",
            "rack1",
            "--profile",
            "fast",
            "policy.health.failures=3",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pool"]["policy"]["policy.health.interval"], "1s");
    assert_eq!(
        v["pool"]["policy"]["policy.health.failures"], "3",
        "explicit value wins over the profile"
    );
    let (ok, out, _) = run(&[], vec!["pool", "show", "rack1"]).await;
    assert!(
        ok && out.contains("policy.quiet_period") && out.contains("pool rack1:"),
        "{out}"
    );
    let (ok, out, _) = run(&[], vec!["pool", "list"]).await;
    assert!(
        ok && out.starts_with("NAME") && out.contains("0/4"),
        "{out}"
    );
    let (ok, _, err) = run(&[], vec!["pool", "remove", "rack1"]).await;
    assert!(!ok && err.contains("still has 2 host(s)"), "{err}");
    c.stop().await.unwrap();
}
