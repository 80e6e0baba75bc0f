//! Running the `vigil` CLI binary against a member, shared by the API and inventory
//! tests: no inherited endpoint, BMC password or proxy variables, bounded in time.

use std::time::Duration;

/// Run the CLI against `url` with `env` added; (success, stdout, stderr).
pub async fn vigil(url: &str, env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.arg("--endpoint")
        .arg(url)
        .arg("--timeout")
        .arg("30s")
        .args(args);
    for v in [
        "VIGIL_ENDPOINT",
        "BMC_PW",
        "http_proxy",
        "HTTP_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the CLI did not exit within 60s")
        .expect("running the CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
