//! The real checks against local servers, files and scripts (127.0.0.1 only).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::time::Instant;
use vigil_providers::check::{ActivityCheck, ActivityResult, Health, HealthCheck};
use vigil_providers::checks::{
    self, HeartbeatFile, HttpActivity, HttpHealth, ScriptActivity, ScriptHealth, TcpHealth,
};

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

async fn serve(app: Router) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}

/// A port nothing listens on (bound, then released).
async fn closed_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// A listener that accepts connections and never answers.
async fn silent() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    addr
}

fn pass(h: &Health) -> &str {
    match h {
        Health::Pass { detail } => detail,
        other => panic!("expected Pass, got {other:?}"),
    }
}

fn fail(h: &Health) -> &str {
    match h {
        Health::Fail { reason } => reason,
        other => panic!("expected Fail, got {other:?}"),
    }
}

fn error(h: &Health) -> &str {
    match h {
        Health::Error { reason } => reason,
        other => panic!("expected Error, got {other:?}"),
    }
}

// ---- http health ----

#[tokio::test]
async fn http_health_pass_and_fail() {
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/down", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route("/empty", get(|| async { StatusCode::NO_CONTENT }));
    let a = serve(app).await;
    let h = HttpHealth::new(format!("http://{a}/health"))
        .check(soon())
        .await;
    assert!(pass(&h).contains("HTTP 200"), "{h:?}");
    let h = HttpHealth::new(format!("http://{a}/down"))
        .check(soon())
        .await;
    assert!(fail(&h).contains("HTTP 503, expected 200"), "{h:?}");
    let h = HttpHealth::new(format!("http://{a}/empty"))
        .expect_status(204)
        .check(soon())
        .await;
    pass(&h);
    let h = HttpHealth::new(format!("http://{a}/nope"))
        .check(soon())
        .await;
    assert!(fail(&h).contains("HTTP 404"), "{h:?}");
}

#[tokio::test]
async fn http_health_refused_and_silent_are_failures() {
    let a = closed_port().await;
    let h = HttpHealth::new(format!("http://{a}/health"))
        .check(soon())
        .await;
    assert!(fail(&h).to_lowercase().contains("refused"), "{h:?}");

    let a = silent().await;
    let start = Instant::now();
    let h = HttpHealth::new(format!("http://{a}/health"))
        .check(start + Duration::from_millis(300))
        .await;
    assert!(fail(&h).contains("no answer within"), "{h:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn http_health_invalid_url_is_an_error() {
    for url in ["not a url", "ftp://127.0.0.1/x", ""] {
        let h = HttpHealth::new(url).check(soon()).await;
        assert!(error(&h).contains("invalid URL"), "{h:?}");
    }
}

// ---- tcp health ----

#[tokio::test]
async fn tcp_health() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    let h = TcpHealth::new(a.to_string()).check(soon()).await;
    assert!(pass(&h).contains("connected"), "{h:?}");
    drop(l);
    let h = TcpHealth::new(a.to_string()).check(soon()).await;
    assert!(fail(&h).to_lowercase().contains("refused"), "{h:?}");
    let h = TcpHealth::new(format!("localhost:{}", closed_port().await.port()))
        .check(soon())
        .await;
    fail(&h);
    for bad in ["127.0.0.1", "127.0.0.1:port", "::1:80"] {
        let h = TcpHealth::new(bad).check(soon()).await;
        assert!(error(&h).contains("expected host:port"), "{h:?}");
    }
}

// ---- scripts ----

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn script_health_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let cases = [
        ("ok", "echo all good; exit 0"),
        ("bad", "echo disk full >&2; exit 1"),
        ("odd", "exit 3"),
    ];
    let mut out = Vec::new();
    for (name, body) in cases {
        let c = ScriptHealth::new(script(dir, name, body), vec![], BTreeMap::new());
        out.push(c.check(soon()).await);
    }
    assert!(pass(&out[0]).ends_with("exit 0: all good"), "{:?}", out[0]);
    assert!(fail(&out[1]).ends_with("exit 1: disk full"), "{:?}", out[1]);
    assert!(error(&out[2]).ends_with("exit 3"), "{:?}", out[2]);

    let c = ScriptHealth::new(dir.join("missing"), vec![], BTreeMap::new());
    assert!(error(&c.check(soon()).await).contains("cannot run"));
    let c = ScriptHealth::new(script(dir, "sig", "kill -9 $$"), vec![], BTreeMap::new());
    assert!(error(&c.check(soon()).await).contains("signal 9"));
}

#[tokio::test]
async fn script_health_gets_args_and_options() {
    let d = tempfile::tempdir().unwrap();
    let p = script(
        d.path(),
        "probe",
        r#"[ "$1" = node01 ] || exit 3
grep -qx 'port=22' || exit 1
echo "probed $1""#,
    );
    let c = ScriptHealth::new(&p, vec!["node01".into()], options(&[("port", "22")]));
    assert!(pass(&c.check(soon()).await).contains("probed node01"));
    let c = ScriptHealth::new(&p, vec!["node01".into()], options(&[("port", "23")]));
    fail(&c.check(soon()).await);
    // Through the factory: the target is split on whitespace.
    let c = checks::health_check(
        "script",
        &format!("{} node01", p.display()),
        &options(&[("port", "22")]),
    )
    .unwrap();
    pass(&c.check(soon()).await);
}

#[tokio::test]
async fn script_health_killed_at_the_deadline_is_a_failure() {
    let d = tempfile::tempdir().unwrap();
    let c = ScriptHealth::new(
        script(d.path(), "hang", "sleep 1000"),
        vec![],
        BTreeMap::new(),
    );
    let start = Instant::now();
    let h = c.check(start + Duration::from_millis(300)).await;
    assert!(fail(&h).contains("killed"), "{h:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn script_activity_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let run = |name: &str, body: &str| {
        ScriptActivity::new(script(dir, name, body), vec![], BTreeMap::new())
    };
    match run("a", "echo io 42MB/s").check(soon()).await {
        ActivityResult::Active { detail } => assert!(detail.ends_with("io 42MB/s"), "{detail}"),
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        run("i", "exit 1").check(soon()).await,
        ActivityResult::Inactive { .. }
    ));
    assert!(matches!(
        run("e", "exit 5").check(soon()).await,
        ActivityResult::Error { .. }
    ));
    let start = Instant::now();
    match run("h", "sleep 1000")
        .check(start + Duration::from_millis(300))
        .await
    {
        ActivityResult::Error { reason } => assert!(reason.contains("killed"), "{reason}"),
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        ScriptActivity::new(dir.join("none"), vec![], BTreeMap::new())
            .check(soon())
            .await,
        ActivityResult::Error { .. }
    ));
}

// ---- heartbeat file ----

fn touch(path: &Path, t: SystemTime) {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap();
    f.set_modified(t).unwrap();
}

#[tokio::test]
async fn heartbeat_file_judges_relative_mtime_change() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("node01.hb");
    // The host's clock is far behind ours: only the change counts.
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    touch(&path, t0);
    let c = HeartbeatFile::new(&path);
    match c.check(soon()).await {
        ActivityResult::Error { reason } => assert!(reason.contains("baseline taken"), "{reason}"),
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        c.check(soon()).await,
        ActivityResult::Inactive { .. }
    ));
    touch(&path, t0 + Duration::from_secs(5));
    match c.check(soon()).await {
        ActivityResult::Active { detail } => assert!(detail.contains("+5.000s"), "{detail}"),
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        c.check(soon()).await,
        ActivityResult::Inactive { .. }
    ));
    // Backwards counts as a change too (the host's clock was stepped).
    touch(&path, t0);
    assert!(matches!(
        c.check(soon()).await,
        ActivityResult::Active { .. }
    ));

    // Missing: an error, the baseline kept.
    std::fs::remove_file(&path).unwrap();
    match c.check(soon()).await {
        ActivityResult::Error { reason } => {
            assert!(reason.contains("No such file"), "{reason}")
        }
        r => panic!("{r:?}"),
    }
    touch(&path, t0);
    assert!(matches!(
        c.check(soon()).await,
        ActivityResult::Inactive { .. }
    ));
}

#[tokio::test]
async fn heartbeat_file_missing_from_the_start_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let c = HeartbeatFile::new(d.path().join("never"));
    for _ in 0..2 {
        match c.check(soon()).await {
            ActivityResult::Error { reason } => {
                assert!(!reason.contains("baseline"), "{reason}")
            }
            r => panic!("{r:?}"),
        }
    }
}

// ---- http activity ----

#[tokio::test]
async fn http_activity_compares_bodies_between_rounds() {
    let counter = Arc::new(AtomicU64::new(7));
    let c2 = counter.clone();
    let app = Router::new()
        .route(
            "/counter",
            get(move || {
                let c = c2.clone();
                async move { format!("writes {}", c.load(Ordering::SeqCst)) }
            }),
        )
        .route(
            "/broken",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        );
    let a = serve(app).await;
    let c = HttpActivity::new(format!("http://{a}/counter"));
    match c.check(soon()).await {
        ActivityResult::Error { reason } => {
            assert!(reason.contains("baseline taken"), "{reason}");
            assert!(reason.contains("writes 7"), "{reason}");
        }
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        c.check(soon()).await,
        ActivityResult::Inactive { .. }
    ));
    counter.store(8, Ordering::SeqCst);
    match c.check(soon()).await {
        ActivityResult::Active { detail } => assert!(detail.contains("writes 8"), "{detail}"),
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        c.check(soon()).await,
        ActivityResult::Inactive { .. }
    ));

    let b = HttpActivity::new(format!("http://{a}/broken"));
    match b.check(soon()).await {
        ActivityResult::Error { reason } => assert!(reason.contains("HTTP 500"), "{reason}"),
        r => panic!("{r:?}"),
    }
    let r = HttpActivity::new(format!("http://{}/x", closed_port().await))
        .check(soon())
        .await;
    assert!(matches!(r, ActivityResult::Error { .. }), "{r:?}");
    let r = HttpActivity::new(format!("http://{}/x", silent().await))
        .check(Instant::now() + Duration::from_millis(300))
        .await;
    assert!(matches!(r, ActivityResult::Error { .. }), "{r:?}");
    let r = HttpActivity::new("::bad").check(soon()).await;
    assert!(matches!(r, ActivityResult::Error { .. }), "{r:?}");
}
