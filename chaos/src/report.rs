//! Saving a run (its options, schedule, facts and verdicts) and printing its verdicts.
//!
//! A run directory holds: `options.json`, `schedule.json`, `history.jsonl` (the
//! harness's steps), `truth.jsonl` (ground truth), `events.jsonl` (replicated
//! events), `facts.json` (everything the checkers read: `vigil-chaos check DIR`
//! re-judges it), `verdicts.json` (`{"S1": {"pass": true, "detail": "…"}, …}`) and
//! `members.log` (the members' tracing output). The members' data dirs are kept in
//! `data/` only when a check failed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::check::{Verdict, CHECKS};
use crate::error::ChaosError;
use crate::history::Facts;
use crate::plan::{Options, Step};

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ChaosError> {
    std::fs::write(dir.join(name), bytes)
        .map_err(|e| ChaosError::io(format!("writing {}", dir.join(name).display()), e))
}

fn json<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).expect("plain data serializes");
    b.push(b'\n');
    b
}

fn jsonl<T: Serialize>(items: &[T]) -> Vec<u8> {
    let mut b = Vec::new();
    for i in items {
        serde_json::to_writer(&mut b, i).expect("plain data serializes");
        b.push(b'\n');
    }
    b
}

/// Save the inputs of a run (before it runs: a crash of the harness still leaves
/// what is needed to replay it).
pub fn save_inputs(dir: &Path, opts: &Options, steps: &[Step]) -> Result<(), ChaosError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ChaosError::io(format!("creating {}", dir.display()), e))?;
    write_file(dir, "options.json", &json(opts))?;
    write_file(dir, "schedule.json", &json(steps))
}

/// Save what a run recorded and how it was judged.
pub fn save_outputs(
    dir: &Path,
    facts: &Facts,
    verdicts: &BTreeMap<String, Verdict>,
) -> Result<(), ChaosError> {
    write_file(dir, "history.jsonl", &jsonl(&facts.ops))?;
    write_file(dir, "truth.jsonl", &jsonl(&facts.truth))?;
    write_file(dir, "events.jsonl", &jsonl(&facts.events))?;
    write_file(dir, "facts.json", &json(facts))?;
    write_file(dir, "verdicts.json", &json(verdicts))
}

/// Read a saved file.
pub fn load<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<T, ChaosError> {
    let p = dir.join(name);
    let bytes =
        std::fs::read(&p).map_err(|e| ChaosError::io(format!("reading {}", p.display()), e))?;
    serde_json::from_slice(&bytes).map_err(|e| ChaosError::Format {
        what: p.display().to_string(),
        reason: e.to_string(),
    })
}

/// The header of a run.
pub fn header(opts: &Options, steps: &[Step]) -> String {
    let faults: Vec<&str> = opts.faults.iter().map(|f| f.name()).collect();
    format!(
        "vigil-chaos {} tier={:?} seed={:#018x}\n  members={} hosts={} faults={} chaos={}s quiet={}s recovery={} fence-levels={} fence-budget={}/h steps={}{}",
        env!("CARGO_PKG_VERSION"),
        opts.tier,
        opts.seed,
        opts.members,
        opts.hosts,
        if faults.is_empty() { "none".into() } else { faults.join(",") },
        opts.chaos_ms / 1000,
        opts.quiet_ms / 1000,
        opts.recovery,
        opts.fence_levels,
        opts.fence_budget,
        steps.len(),
        opts.planted_bug
            .as_ref()
            .map(|b| format!(" planted-bug={b}"))
            .unwrap_or_default()
    )
}

/// One line per checker, in report order.
pub fn verdict_lines(verdicts: &BTreeMap<String, Verdict>) -> Vec<String> {
    CHECKS
        .iter()
        .filter_map(|id| {
            verdicts.get(*id).map(|v| {
                format!(
                    "{id:<4} {} {}",
                    if v.pass { "PASS" } else { "FAIL" },
                    v.detail
                )
            })
        })
        .collect()
}

/// Print the verdicts to `out`.
pub fn print_verdicts(out: &mut dyn std::io::Write, verdicts: &BTreeMap<String, Verdict>) {
    for l in verdict_lines(verdicts) {
        let _ = writeln!(out, "{l}");
    }
}
