//! Script checks: a program run with no stdin but its options (`key=value` lines,
//! the fence-agents convention), killed with its process group at the deadline.
//!
//! Health: exit 0 `Pass`, 1 `Fail`, killed at the deadline `Fail` (a hung probe of the
//! host is a failing host); any other exit, a signal, or a program that cannot start:
//! `Error`. Activity: exit 0 `Active`, 1 `Inactive`, anything else (the deadline
//! included) `Error`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{error_chain, option_lines};
use crate::check::{ActivityCheck, ActivityResult, Health, HealthCheck};
use crate::child::{self, Finished, RunError};

/// Most characters of output quoted.
const EXCERPT: usize = 300;

#[derive(Debug, Clone)]
struct Script {
    program: PathBuf,
    args: Vec<String>,
    options: BTreeMap<String, String>,
}

/// What a run gave: the exit code, or why there is none.
enum Ran {
    Exit(i32, Finished),
    Other(String),
    Timeout(String),
}

impl Script {
    fn name(&self) -> String {
        self.program.display().to_string()
    }

    async fn run(&self, deadline: Instant) -> Ran {
        let allowed = deadline.saturating_duration_since(Instant::now());
        match child::run(
            &self.program,
            &self.args,
            &option_lines(&self.options),
            deadline,
        )
        .await
        {
            Ok(done) => match done.status.code() {
                Some(c) => Ran::Exit(c, done),
                None => Ran::Other(format!(
                    "{}: {}",
                    self.name(),
                    child::describe(&done.status)
                )),
            },
            Err(RunError::Timeout) => Ran::Timeout(format!(
                "{}: no exit within {:.1}s (killed)",
                self.name(),
                allowed.as_secs_f64()
            )),
            Err(RunError::Spawn(e)) => {
                Ran::Other(format!("{}: cannot run: {}", self.name(), error_chain(&e)))
            }
            Err(RunError::Wait(e)) => Ran::Other(format!(
                "{}: waiting for it failed: {}",
                self.name(),
                error_chain(&e)
            )),
        }
    }
}

/// `name: exit N: output` (stdout, or stderr if stdout is empty).
fn said(name: &str, code: i32, done: &Finished) -> String {
    let out = child::excerpt(&done.stdout, None, EXCERPT);
    let out = if out.is_empty() {
        child::excerpt(&done.stderr, None, EXCERPT)
    } else {
        out
    };
    if out.is_empty() {
        format!("{name}: exit {code}")
    } else {
        format!("{name}: exit {code}: {out}")
    }
}

/// Health by script: exit 0 pass, 1 fail.
#[derive(Debug, Clone)]
pub struct ScriptHealth(Script);

impl ScriptHealth {
    /// `program args…`, given `options` as `key=value` lines on stdin.
    pub fn new(
        program: impl Into<PathBuf>,
        args: Vec<String>,
        options: BTreeMap<String, String>,
    ) -> Self {
        ScriptHealth(Script {
            program: program.into(),
            args,
            options,
        })
    }
}

#[async_trait]
impl HealthCheck for ScriptHealth {
    async fn check(&self, deadline: Instant) -> Health {
        let name = self.0.name();
        match self.0.run(deadline).await {
            Ran::Exit(0, d) => Health::Pass {
                detail: said(&name, 0, &d),
            },
            Ran::Exit(1, d) => Health::Fail {
                reason: said(&name, 1, &d),
            },
            Ran::Exit(c, d) => Health::Error {
                reason: said(&name, c, &d),
            },
            Ran::Timeout(reason) => Health::Fail { reason },
            Ran::Other(reason) => Health::Error { reason },
        }
    }
}

/// Activity by script: exit 0 active, 1 inactive.
#[derive(Debug, Clone)]
pub struct ScriptActivity(Script);

impl ScriptActivity {
    /// `program args…`, given `options` as `key=value` lines on stdin.
    pub fn new(
        program: impl Into<PathBuf>,
        args: Vec<String>,
        options: BTreeMap<String, String>,
    ) -> Self {
        ScriptActivity(Script {
            program: program.into(),
            args,
            options,
        })
    }
}

#[async_trait]
impl ActivityCheck for ScriptActivity {
    async fn check(&self, deadline: Instant) -> ActivityResult {
        let name = self.0.name();
        match self.0.run(deadline).await {
            Ran::Exit(0, d) => ActivityResult::Active {
                detail: said(&name, 0, &d),
            },
            Ran::Exit(1, d) => ActivityResult::Inactive {
                detail: said(&name, 1, &d),
            },
            Ran::Exit(c, d) => ActivityResult::Error {
                reason: said(&name, c, &d),
            },
            Ran::Timeout(reason) | Ran::Other(reason) => ActivityResult::Error { reason },
        }
    }
}
