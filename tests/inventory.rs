//! Declarative inventories (`POST /api/v1/apply`, `vigil apply -f`) against an
//! in-process 3-member cluster: dry run, atomic apply, idempotence (the second apply
//! proposes nothing), prune, errors that name the field path or the YAML line, an
//! invalid third host that leaves nothing applied, and passwords that never appear in
//! a diff. Also checks that docs/inventory.example.yaml is a valid inventory.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use vigil::dev::DevCluster;
use vigil::inventory;
use vigil::state::model::{HostSpec, PoolSpec};
use vigil::state::{Command, InventoryChange, Response, Stamp, VigilState};
use vigil_raft::RaftTimings;

const PASSWORD: &str = "s3cr3t-xyz";

const INVENTORY: &str = r#"
policy: { policy.health.interval: 7s }
pools:
  - name: rack1
    policy: { policy.fence.budget: "2" }
  - name: rack2
    enabled: false
hosts:
  - name: node01
    pool: rack1
    kind: hypervisor
    labels: { rack: r1 }
    health: { kind: http, target: "http://10.0.0.1:8080/health" }
    activity: { kind: heartbeat-file, target: /mnt/shared/hb/node01 }
    fence:
      - { driver: ipmi, address: "10.0.1.1:623", username: admin, password: s3cr3t-xyz }
      - { driver: redfish, address: "https://10.0.1.1", username: admin, password_env: BMC_PW, options: { insecure: "false" } }
  - name: node02
    pool: rack1
    health: { kind: tcp, target: "10.0.0.2:22" }
    fence:
      - { driver: sim, address: node02 }
  - name: node03
    pool: rack2
    fence:
      - { driver: script, address: /usr/sbin/fence_dummy }
"#;

struct Api {
    http: reqwest::Client,
    urls: Vec<String>,
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
        }
    }

    /// `POST /api/v1/apply` on member `i`: status, raw body, JSON.
    async fn apply(
        &self,
        i: usize,
        yaml: &str,
        dry_run: bool,
        prune: bool,
    ) -> (StatusCode, String, Value) {
        let body =
            json!({"yaml": yaml, "dry_run": dry_run, "prune": prune, "env": {"BMC_PW": PASSWORD}});
        let resp = self
            .http
            .post(format!("{}/api/v1/apply", self.urls[i]))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains(PASSWORD),
            "the password is in an apply answer: {text}"
        );
        let v = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, text, v)
    }

    async fn get(&self, i: usize, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.urls[i]))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains(PASSWORD),
            "the password is in {path}: {text}"
        );
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn lines(v: &Value) -> Vec<String> {
    v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["line"].as_str().unwrap().to_string())
        .collect()
}

async fn revision(c: &DevCluster) -> u64 {
    c.members[0].member.read(|s| s.revision).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_is_atomic_idempotent_and_prunes() {
    let dir = tempfile::tempdir().unwrap();
    let c = DevCluster::start(3, dir.path(), RaftTimings::default())
        .await
        .unwrap();
    let api = Api::new(&c);

    // Dry run: the diff, nothing proposed.
    let rev0 = revision(&c).await;
    let (s, _, v) = api.apply(1, INVENTORY, true, false).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        lines(&v),
        [
            "~ setting policy.health.interval: 5s (default) -> 7s",
            "+ pool rack1",
            "+ pool rack2 (disabled)",
            "+ host node01 (rack1)",
            "+ host node02 (rack1)",
            "+ host node03 (rack2)",
        ]
    );
    assert_eq!(v["applied"], false);
    assert_eq!(revision(&c).await, rev0);
    assert_eq!(api.get(0, "/api/v1/pools").await.1, json!([]));
    // Inventories may be larger than other API bodies (1 MiB).
    let big = format!("{INVENTORY}\n# {}\n", "x".repeat(1_500_000));
    let (s, _, v) = api.apply(0, &big, true, false).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(lines(&v).len(), 6);

    // An inventory whose third host is invalid: refused whole, naming the field path.
    let bad = INVENTORY.replace("driver: script", "driver: ipmx");
    let (s, _, v) = api.apply(2, &bad, false, false).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let msg = v["error"]["message"].as_str().unwrap();
    assert_eq!(
        msg,
        "hosts[2] (node03).fence[0].driver: unknown driver kind \"ipmx\"; known: redfish, ipmi, ipmitool, script, sim"
    );
    assert_eq!(revision(&c).await, rev0, "nothing applied");
    assert_eq!(api.get(0, "/api/v1/pools").await.1, json!([]));
    assert_eq!(api.get(1, "/api/v1/hosts").await.1, json!([]));

    // Malformed YAML: the parser's line and column.
    let (s, _, v) = api
        .apply(0, "pools:\n  - name: a\n   bad: [\n", false, false)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("inventory: ") && msg.contains("line 3"),
        "{msg}"
    );
    let (s, _, v) = api
        .apply(
            0,
            "hosts:\n  - name: a\n    pool: p\n    colour: red\n",
            false,
            false,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("hosts[0]: unknown field `colour`") && msg.contains("line 4"),
        "{msg}"
    );

    // A password_env the caller did not provide.
    let resp = api
        .http
        .post(format!("{}/api/v1/apply", api.urls[0]))
        .json(&json!({"yaml": INVENTORY}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("hosts[0] (node01).fence[1].password_env: variable BMC_PW was not provided"),
        "{text}"
    );

    // Apply through a follower: one command, everything at once.
    let (s, _, v) = api.apply(2, INVENTORY, false, false).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["applied"], true);
    let rev1 = v["revision"].as_u64().unwrap();
    assert_eq!(rev1, rev0 + 1, "one command");
    let (_, hosts) = api.get(1, "/api/v1/hosts").await;
    assert_eq!(hosts.as_array().unwrap().len(), 3);
    let (_, n1) = api.get(0, "/api/v1/hosts/node01").await;
    assert_eq!(n1["fence"][1]["password_set"], true);
    assert_eq!(n1["kind"], "hypervisor");
    let (_, n2) = api.get(0, "/api/v1/hosts/node02").await;
    assert_eq!(n2["kind"], inventory::DEFAULT_HOST_KIND);
    let (_, p2) = api.get(0, "/api/v1/pools/rack2").await;
    assert_eq!(p2["enabled"], false);
    let state = c.members[1].member.read(|s| s.clone()).await.unwrap();
    assert_eq!(
        state.hosts["node01"].spec.fence[1].password.expose(),
        PASSWORD,
        "password_env resolved"
    );
    assert!(!format!("{state:?}").contains(PASSWORD));

    // Second apply: no changes, nothing proposed, revision unchanged.
    let (s, _, v) = api.apply(0, INVENTORY, false, false).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["changes"], json!([]));
    assert_eq!(v["applied"], false);
    assert_eq!(v["unchanged"], 6);
    assert_eq!(v["revision"].as_u64().unwrap(), rev1);
    assert_eq!(revision(&c).await, rev1);

    // Changes name fields; a changed password is named, never shown.
    let edited = INVENTORY
        .replace("password: s3cr3t-xyz", "password: n3w-s3cr3t")
        .replace("rack: r1", "rack: r9");
    let (_, text, v) = api.apply(1, &edited, true, false).await;
    assert_eq!(lines(&v), ["~ host node01: labels, password"]);
    assert!(!text.contains("n3w-s3cr3t"));

    // An operator's maintenance and emergency disable survive a re-apply that does not
    // mention them.
    let http = &api.http;
    let r = http
        .put(format!("{}/api/v1/hosts/node02/maintenance", api.urls[0]))
        .json(&json!({"on": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let r = http
        .post(format!("{}/api/v1/pools/rack1/disable", api.urls[0]))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (_, _, v) = api.apply(0, INVENTORY, true, false).await;
    assert_eq!(v["changes"], json!([]), "{v}");

    // A host not in the file is kept and listed; --prune removes it.
    let without_3: String = INVENTORY
        .split("  - name: node03")
        .next()
        .unwrap()
        .to_string();
    let (_, _, v) = api.apply(2, &without_3, false, false).await;
    assert_eq!(v["changes"], json!([]));
    let kept: Vec<&str> = v["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["line"].as_str().unwrap())
        .collect();
    assert_eq!(
        kept,
        ["  host node03 (rack2): not in the file, kept (use --prune to remove)"]
    );
    let (_, _, v) = api.apply(2, &without_3, true, true).await;
    assert_eq!(lines(&v), ["- host node03 (rack2)"]);
    assert_eq!(
        api.get(0, "/api/v1/hosts/node03").await.0,
        StatusCode::OK,
        "dry run kept it"
    );
    let (s, _, v) = api.apply(1, &without_3, false, true).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["applied"], true);
    assert_eq!(
        api.get(0, "/api/v1/hosts/node03").await.0,
        StatusCode::NOT_FOUND
    );
    // rack2 is still in the file: kept.
    assert_eq!(api.get(0, "/api/v1/pools/rack2").await.0, StatusCode::OK);
    let (s, _, v) = api.apply(1, "pools: []\nhosts: []\n", false, true).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("refusing --prune"));

    c.stop().await.unwrap();
}

/// The state layer itself: an `ApplyInventory` whose third host is refused at apply
/// leaves nothing of the change behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_inventory_command_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = DevCluster::start(3, dir.path(), RaftTimings::default())
        .await
        .unwrap();
    let m = &c.members[2].member;
    let host = |name: &str, pool: &str| HostSpec {
        name: name.into(),
        pool: pool.into(),
        kind: "baremetal".into(),
        labels: Default::default(),
        health: None,
        activity: None,
        fence: vec![],
        maintenance: false,
        policy: Default::default(),
    };
    let before: VigilState = m.read(|s| s.clone()).await.unwrap();
    let change = InventoryChange {
        pools: vec![PoolSpec {
            name: "p1".into(),
            enabled: true,
            policy: Default::default(),
        }],
        hosts: vec![host("h1", "p1"), host("h2", "p1"), host("h3", "missing")],
        ..Default::default()
    };
    let r = m
        .write(Command::ApplyInventory {
            change,
            stamp: Stamp { by: 3, at_ms: 1 },
        })
        .await
        .unwrap();
    let Response::Rejected { reason } = r else {
        panic!("expected a rejection, got {r:?}");
    };
    assert!(
        reason.contains("h3") && reason.contains("missing"),
        "{reason}"
    );
    let after: VigilState = m.read(|s| s.clone()).await.unwrap();
    assert_eq!(before, after, "a refused inventory changed the state");
    c.stop().await.unwrap();
}

#[path = "support/cli.rs"]
mod cli;

/// The CLI, checking that it never prints the BMC password.
async fn vigil(url: &str, env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let r = cli::vigil(url, env, args).await;
    assert!(
        !r.1.contains(PASSWORD) && !r.2.contains(PASSWORD),
        "password printed by {args:?}: {r:?}"
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_command() {
    let dir = tempfile::tempdir().unwrap();
    let c = DevCluster::start(3, dir.path(), RaftTimings::default())
        .await
        .unwrap();
    let url = c.members[0].url();
    let file = dir.path().join("inv.yaml");
    std::fs::write(&file, INVENTORY).unwrap();
    let f = file.to_str().unwrap();
    let env = [("BMC_PW", PASSWORD)];

    // password_env is resolved by the CLI: unset → refused before anything is sent.
    let (ok, _, err) = vigil(&url, &[], &["apply", "-f", f]).await;
    assert!(!ok);
    assert!(
        err.contains(
            "hosts[0] (node01).fence[1].password_env: environment variable BMC_PW is not set"
        ),
        "{err}"
    );

    let (ok, out, err) = vigil(&url, &env, &["apply", "-f", f, "--dry-run"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("+ host node01 (rack1)\n"), "{out}");
    assert!(
        out.ends_with("dry run: 6 change(s), nothing applied\n"),
        "{out}"
    );
    let (ok, out, err) = vigil(&url, &env, &["apply", "-f", f]).await;
    assert!(ok, "{err}");
    assert!(out.contains("applied 6 change(s) at revision"), "{out}");
    let (ok, out, _) = vigil(&url, &env, &["apply", "-f", f]).await;
    assert!(ok);
    assert_eq!(out, "6 unchanged\nno changes\n");
    let (ok, out, _) = vigil(&url, &env, &["-o", "json", "apply", "-f", f]).await;
    assert!(ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["changes"].clone(), v["applied"].clone()),
        (json!([]), json!(false))
    );
    assert!(v["revision"].as_u64().is_some());

    let without_3 = dir.path().join("two.yaml");
    std::fs::write(
        &without_3,
        INVENTORY.split("  - name: node03").next().unwrap(),
    )
    .unwrap();
    let w = without_3.to_str().unwrap();
    let (ok, out, _) = vigil(&url, &env, &["apply", "-f", w]).await;
    assert!(
        ok && out.contains("host node03 (rack2): not in the file, kept (use --prune to remove)"),
        "{out}"
    );
    let (ok, out, _) = vigil(&url, &env, &["apply", "-f", w, "--prune"]).await;
    assert!(ok && out.starts_with("- host node03 (rack2)\n"), "{out}");

    // Malformed YAML is refused locally with the line.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "pools:\n  - name: a\n    enabled: maybe\n").unwrap();
    let (ok, _, err) = vigil(&url, &env, &["apply", "-f", bad.to_str().unwrap()]).await;
    assert!(
        !ok && err.contains("pools[0].enabled") && err.contains("line 3"),
        "{err}"
    );
    c.stop().await.unwrap();
}

/// The documented example is a valid inventory.
#[test]
fn the_example_inventory_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/inventory.example.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut inv = inventory::parse(&text).unwrap();
    assert_eq!(inv.pools.len(), 2);
    let drivers: std::collections::BTreeSet<&str> = inv
        .hosts
        .iter()
        .flat_map(|h| h.fence.iter().map(|f| f.driver.as_str()))
        .collect();
    for d in ["ipmi", "redfish", "script", "sim"] {
        assert!(drivers.contains(d), "the example has no {d} driver");
    }
    inv.resolve_passwords(|_| Ok("pw".into())).unwrap();
    let plan = inventory::plan(&inv, &VigilState::default(), false).unwrap();
    assert_eq!(plan.change.pools.len(), 2);
    assert_eq!(plan.change.hosts.len(), inv.hosts.len());
    let storage = &plan
        .change
        .pools
        .iter()
        .find(|p| p.name == "storage")
        .unwrap()
        .policy;
    for (k, _) in vigil::engine::policy::FAST_PROFILE {
        assert!(storage.contains_key(*k), "the fast-profile pool lacks {k}");
    }
}
