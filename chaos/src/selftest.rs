//! The self-test: run the cluster with each planted bug (`vigil::planted`, the cargo
//! feature `planted-bugs`) and require that some checker catches it within a seed
//! budget — a checker that cannot fail proves nothing (Pacemaker's CTS once had an
//! audit that silently never ran).
//!
//! Each bug gets the fault mix and options that give it a chance to show (a budget
//! bug needs a small budget and many deaths; a repeated cycle needs recovery on, slow
//! BMCs and owners killed mid-action). Two bugs cannot be shown by this tier and are
//! reported as such, not counted as caught: `no-fence-escalation` (the sim fleet's
//! BMC faults hit every fence level of a host alike, so a second level never
//! succeeds where the first failed) and `ack-before-fsync` (an in-process crash keeps
//! sled's unflushed writes: it needs SIGKILL of real processes).

use std::collections::BTreeMap;
use std::path::Path;

use vigil::planted::Bug;

use crate::check::CHECKS;
use crate::error::ChaosError;
use crate::plan::{self, FaultKind, Options};
use crate::report;

/// What the self-test found for one bug.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The bug.
    pub bug: Bug,
    /// Why this tier cannot show it (then it was not run).
    pub not_in_tier: Option<&'static str>,
    /// Seeds run.
    pub seeds: Vec<u64>,
    /// The seed that caught it and the checkers that failed there.
    pub caught: Option<(u64, Vec<String>)>,
}

impl Finding {
    /// Caught, or honestly out of this tier's reach.
    pub fn ok(&self) -> bool {
        self.caught.is_some() || self.not_in_tier.is_some()
    }
}

/// Options that give `bug` a chance to show; None when this tier cannot show it.
pub fn options_for(bug: Bug, seed: u64, chaos_ms: u64) -> Result<Options, &'static str> {
    use FaultKind::*;
    let (faults, tweak): (Vec<FaultKind>, fn(&mut Options)) = match bug {
        Bug::SkipLeaseCheck => (vec![Links, Host], |o| {
            o.host_failures = vec!["crash".into()];
            o.action_latency_ms = 300;
        }),
        Bug::NoCycleGuard | Bug::RepeatTakenOverCycle => (vec![Kill, Host], |o| {
            o.recovery = true;
            o.action_latency_ms = 1_500;
            o.host_failures = vec!["crash".into()];
        }),
        Bug::GateIgnoresBudget => (vec![Host], |o| {
            o.fence_budget = 2;
            o.recovery = false;
            o.host_failures = vec!["crash".into()];
        }),
        Bug::ActivityErrorIsInactive => (vec![Host], |o| {
            o.host_failures = vec!["isolate-noisy".into()];
        }),
        Bug::DeadHostsKept => (vec![Kill, Host], |o| {
            o.host_failures = vec!["crash".into()];
            o.fence_budget = 100;
            // Down for longer than L2's bound (2 leases + 5 s): a death, not a blip.
            o.min_down_ms = 12_000;
        }),
        Bug::NoFenceEscalation => {
            return Err("the sim fleet's BMC faults hit every fence level of a host alike")
        }
        Bug::AckBeforeFsync => return Err("needs SIGKILL of real processes (the process tier)"),
    };
    let mut o = Options::derive(seed, 3, 12, chaos_ms, faults);
    tweak(&mut o);
    o.planted_bug = Some(bug.name().to_string());
    Ok(o)
}

/// Run the self-test for `bugs`, at most `seeds` seeds each from `first`, runs under
/// `out/<bug>/<seed>`; `progress` gets one line per run.
pub async fn run(
    bugs: &[Bug],
    first: u64,
    seeds: u64,
    chaos_ms: u64,
    out: &Path,
    progress: &mut dyn FnMut(String),
) -> Result<Vec<Finding>, ChaosError> {
    if !vigil::planted::ENABLED {
        return Err(ChaosError::Usage(
            "this build has no planted bugs: build with `--features planted-bugs` (never for real hosts)".into(),
        ));
    }
    let mut findings = Vec::new();
    for &bug in bugs {
        let mut f = Finding {
            bug,
            not_in_tier: None,
            seeds: Vec::new(),
            caught: None,
        };
        for k in 0..seeds.max(1) {
            let seed = first.wrapping_add(k);
            let opts = match options_for(bug, seed, chaos_ms) {
                Ok(o) => o,
                Err(why) => {
                    f.not_in_tier = Some(why);
                    break;
                }
            };
            let steps = plan::schedule(&opts);
            let dir = out.join(bug.name()).join(format!("{seed:016x}"));
            report::save_inputs(&dir, &opts, &steps)?;
            let data =
                tempfile::tempdir_in(&dir).map_err(|e| ChaosError::io("creating a data dir", e))?;
            let mut quiet = |_: String| {};
            let outcome = crate::run::run(&opts, &steps, data.path(), &mut quiet).await?;
            report::save_outputs(&dir, &outcome.facts, &outcome.verdicts)?;
            f.seeds.push(seed);
            let failed: Vec<String> = outcome
                .verdicts
                .iter()
                .filter(|(_, v)| !v.pass)
                .map(|(k, _)| k.clone())
                .collect();
            progress(format!(
                "{:<28} seed {seed:#x}: {}",
                bug.name(),
                if failed.is_empty() {
                    "not caught".to_string()
                } else {
                    format!("caught by {}", failed.join(", "))
                }
            ));
            if !failed.is_empty() {
                f.caught = Some((seed, failed));
                break;
            }
        }
        findings.push(f);
    }
    Ok(findings)
}

/// The bug × checker matrix: `X` where a checker failed on the catching seed, `.`
/// elsewhere; the last column says caught, NOT CAUGHT, or why this tier cannot show
/// the bug.
pub fn matrix(findings: &[Finding]) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<28} {}  result",
        "planted bug",
        CHECKS.map(|c| format!("{c:<4}")).join(" ")
    )];
    for f in findings {
        let failed: BTreeMap<&str, bool> = f
            .caught
            .as_ref()
            .map(|(_, ids)| ids.iter().map(|i| (i.as_str(), true)).collect())
            .unwrap_or_default();
        let cells =
            CHECKS.map(|c| format!("{:<4}", if failed.contains_key(c) { "X" } else { "." }));
        let result = match (&f.caught, f.not_in_tier) {
            (Some((seed, _)), _) => format!("caught (seed {seed:#x}, {} run(s))", f.seeds.len()),
            (None, Some(why)) => format!("not in this tier: {why}"),
            (None, None) => format!("NOT CAUGHT in {} seed(s)", f.seeds.len()),
        };
        lines.push(format!(
            "{:<28} {}  {result}",
            f.bug.name(),
            cells.join(" ")
        ));
    }
    lines
}
