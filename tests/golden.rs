//! Golden scenarios: whole stories of the HA engine, run through the real
//! deterministic apply (`VigilState::apply`), checked event by event.
//!
//! Format (one directive per line, `#` comments; see tests/golden/README.md):
//!
//! ```text
//! policy policy.activity.rounds=3          # cluster setting(s)
//! pool p hosts=3 [disabled] [key=value]... # pool with hosts p-1..p-3, powered on, available
//! host NAME pool=P [fence=N] [maintenance] # an extra host (not powered on)
//! at 10s | at +10s                         # set the clock (absolute or relative)
//! tick [+10s]                              # advance (optional) and tick every due host
//! p-1 health fail [xN] | pass [xN]         # health observations (owner-side streaks)
//! p-1 activity active|inactive|error
//! p-1 power on|off|unknown
//! p-1 outcome done [on|off|unknown] | failed [reason] | stale
//! p-1 admin enable|disable|reevaluate|retry|confirm-off|unfence
//! p-1 maintenance on|off
//! p-1@7 health fail                        # an input carrying epoch 7 (hosts are
//!                                          # owned by member 1 at epoch 1)
//! pool-enable P | pool-disable P
//! expect p-1 available -> suspect          # next event: host transition
//! expect p-1 intent recover|fence [level=N]
//! expect p-1 end succeeded|failed|timed-out|abandoned
//! expect p-1 alarm
//! expect p-1 fenced [by=sim|operator|power-reading]  # the HostFenced event
//! expect p-1 rejected                      # the last input was rejected
//! expect pool P active -> inactive
//! check p-1 STATE | check p-1 blocked | check p-1 power off
//! check pool P STATE | check budget P used=N
//! ```
//!
//! Every event an input produces must be matched by the `expect` lines that follow
//! it, in order, before the next input: nothing may happen unannounced.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use vigil::engine::health::HealthTracker;
use vigil::engine::{ActionResult, Activity, Admin, HaState, Input, PoolState, PowerState};
use vigil::settings;
use vigil::state::model::{EventKind, HostSpec, IntentKind, PoolSpec};
use vigil::state::{Command, HostInput, InputOutcome, Response, Stamp, VigilState};
use vigil_raft::{ApplyContext, StateMachine};

struct World {
    state: VigilState,
    now: u64,
    trackers: BTreeMap<String, HealthTracker>,
    seen: u64,
    pending: VecDeque<EventKindAt>,
    last_rejected: bool,
    index: u64,
}

#[derive(Debug)]
struct EventKindAt {
    host: Option<String>,
    pool: Option<String>,
    kind: EventKind,
}

fn parse_ms(s: &str) -> Result<u64> {
    Ok(humantime::parse_duration(s)
        .with_context(|| format!("bad duration {s:?}"))?
        .as_millis() as u64)
}

fn host_spec(name: &str, pool: &str, levels: usize) -> HostSpec {
    vigil::fleet::sim_host(name, pool, levels)
}

fn overrides(args: &[&str]) -> Result<BTreeMap<String, settings::SettingValue>> {
    let mut o = BTreeMap::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| anyhow!("expected KEY=VALUE, got {a:?}"))?;
        let def = settings::lookup(k)?;
        o.insert(k.to_string(), def.parse(k, v)?);
    }
    Ok(o)
}

impl World {
    fn new() -> Self {
        World {
            state: VigilState::default(),
            now: 0,
            trackers: BTreeMap::new(),
            seen: 0,
            pending: VecDeque::new(),
            last_rejected: false,
            index: 0,
        }
    }

    fn stamp(&self) -> Stamp {
        Stamp {
            by: 1,
            at_ms: self.now,
        }
    }

    fn apply(&mut self, cmd: Command) -> Response {
        self.index += 1;
        let ctx = ApplyContext {
            index: self.index,
            term: 1,
            position: 0,
        };
        let r = self.state.apply(ctx, &cmd);
        self.last_rejected = match &r {
            Response::Rejected { .. } => true,
            Response::Inputs { results, .. } => results
                .iter()
                .any(|o| matches!(o, InputOutcome::Rejected { .. })),
            Response::Applied { .. } | Response::Begun { .. } => false,
        };
        r
    }

    fn must(&mut self, cmd: Command) -> Result<()> {
        match self.apply(cmd) {
            Response::Rejected { reason } => bail!("setup command rejected: {reason}"),
            _ => Ok(()),
        }
    }

    /// Move new events into `pending` (configuration events are not checked).
    fn collect(&mut self) {
        for e in &self.state.events {
            if e.seq < self.seen {
                continue;
            }
            self.seen = e.seq + 1;
            if matches!(e.kind, EventKind::Config { .. }) {
                continue;
            }
            self.pending.push_back(EventKindAt {
                host: e.host.clone(),
                pool: e.pool.clone(),
                kind: e.kind.clone(),
            });
        }
    }

    fn discard(&mut self) {
        self.collect();
        self.pending.clear();
    }

    fn inputs(&mut self, host: &str, epoch: Option<u64>, inputs: Vec<Input>) {
        let cmd = Command::HostInputs {
            inputs: inputs
                .into_iter()
                .map(|input| HostInput {
                    host: host.to_string(),
                    epoch,
                    input,
                })
                .collect(),
            stamp: self.stamp(),
        };
        self.apply(cmd);
    }

    fn health(&mut self, host: &str, epoch: Option<u64>, pass: bool, n: usize) {
        let window = self
            .state
            .hosts
            .get(host)
            .map(|h| self.state.host_policy(&h.spec).health_window)
            .unwrap_or(0);
        for _ in 0..n {
            let obs = self.trackers.entry(host.to_string()).or_default().observe(
                pass,
                if pass { "ok" } else { "no answer" },
                window,
            );
            self.inputs(host, epoch, vec![Input::Health(obs)]);
        }
    }

    fn setup_pool(&mut self, args: &[&str]) -> Result<()> {
        let name = *args.first().ok_or_else(|| anyhow!("pool needs a name"))?;
        let mut hosts = 0;
        let mut enabled = true;
        let mut levels = 1;
        let mut rest = Vec::new();
        for a in &args[1..] {
            if let Some(n) = a.strip_prefix("hosts=") {
                hosts = n.parse()?;
            } else if let Some(n) = a.strip_prefix("fence=") {
                levels = n.parse()?;
            } else if *a == "disabled" {
                enabled = false;
            } else {
                rest.push(*a);
            }
        }
        let stamp = self.stamp();
        self.must(Command::CreatePool {
            spec: PoolSpec {
                name: name.into(),
                enabled,
                policy: overrides(&rest)?,
            },
            stamp,
        })?;
        for i in 1..=hosts {
            let h = format!("{name}-{i}");
            self.must(Command::AddHost {
                spec: host_spec(&h, name, levels),
                stamp,
            })?;
            self.own(&h)?;
            if enabled {
                self.inputs(
                    &h,
                    None,
                    vec![Input::Power {
                        state: PowerState::On,
                        detail: "setup".into(),
                    }],
                );
                self.health(&h, None, true, 1);
            }
        }
        self.discard();
        Ok(())
    }

    fn setup_host(&mut self, args: &[&str]) -> Result<()> {
        let name = *args.first().ok_or_else(|| anyhow!("host needs a name"))?;
        let mut pool = None;
        let mut levels = 1;
        let mut maintenance = false;
        for a in &args[1..] {
            if let Some(p) = a.strip_prefix("pool=") {
                pool = Some(p.to_string());
            } else if let Some(n) = a.strip_prefix("fence=") {
                levels = n.parse()?;
            } else if *a == "maintenance" {
                maintenance = true;
            } else {
                bail!("unknown host option {a:?}");
            }
        }
        let pool = pool.ok_or_else(|| anyhow!("host needs pool=P"))?;
        let mut spec = host_spec(name, &pool, levels);
        spec.maintenance = maintenance;
        let stamp = self.stamp();
        self.must(Command::AddHost { spec, stamp })?;
        self.own(name)?;
        self.discard();
        Ok(())
    }

    /// Every host is owned by member 1 (the runner), at epoch 1.
    fn own(&mut self, host: &str) -> Result<()> {
        let stamp = self.stamp();
        self.must(Command::SetMemberLiveness {
            id: 1,
            addr: "runner".into(),
            alive: true,
            stamp,
        })?;
        self.must(Command::AssignHosts {
            assignments: vec![(host.to_string(), Some(1))],
            stamp,
        })?;
        Ok(())
    }

    fn current_intent(&self, host: &str) -> Result<u64> {
        self.state
            .hosts
            .get(host)
            .and_then(|h| h.ha.intent)
            .ok_or_else(|| anyhow!("host {host} has no intent in flight"))
    }

    fn host_directive(&mut self, target: &str, words: &[&str]) -> Result<()> {
        let (host, epoch) = match target.split_once('@') {
            Some((h, e)) => (h.to_string(), Some(e.parse::<u64>()?)),
            None => (target.to_string(), None),
        };
        if !self.state.hosts.contains_key(&host) {
            bail!("unknown host {host}");
        }
        let times = |w: Option<&&str>| -> Result<usize> {
            match w.and_then(|w| w.strip_prefix('x')) {
                Some(n) => Ok(n.parse()?),
                None => Ok(1),
            }
        };
        let input = match words {
            ["health", "pass", rest @ ..] => {
                self.health(&host, epoch, true, times(rest.first())?);
                return Ok(());
            }
            ["health", "fail", rest @ ..] => {
                self.health(&host, epoch, false, times(rest.first())?);
                return Ok(());
            }
            ["activity", r] => Input::Activity {
                result: match *r {
                    "active" => Activity::Active,
                    "inactive" => Activity::Inactive,
                    "error" => Activity::Error,
                    _ => bail!("activity active|inactive|error"),
                },
                detail: "scenario".into(),
            },
            ["power", p] => Input::Power {
                state: parse_power(p)?,
                detail: "scenario".into(),
            },
            ["outcome", "stale"] => Input::Outcome {
                intent: 999_999,
                result: ActionResult::Done {
                    power_after: PowerState::Off,
                    detail: "scenario".into(),
                },
            },
            ["outcome", "done", rest @ ..] => {
                let intent = self.current_intent(&host)?;
                let default = match self.state.intents.get(&intent).map(|i| &i.kind) {
                    Some(IntentKind::Recover { .. }) => PowerState::On,
                    _ => PowerState::Off,
                };
                let power_after = match rest.first() {
                    Some(p) => parse_power(p)?,
                    None => default,
                };
                Input::Outcome {
                    intent,
                    result: ActionResult::Done {
                        power_after,
                        detail: "scenario".into(),
                    },
                }
            }
            ["outcome", "failed", rest @ ..] => Input::Outcome {
                intent: self.current_intent(&host)?,
                result: ActionResult::Failed {
                    reason: if rest.is_empty() {
                        "BMC error".into()
                    } else {
                        rest.join(" ")
                    },
                },
            },
            ["outcome", "unknown", p] => Input::Outcome {
                intent: self.current_intent(&host)?,
                result: ActionResult::Unknown {
                    power: parse_power(p)?,
                    detail: "scenario: the executor changed mid-action".into(),
                },
            },
            ["admin", op] => Input::Admin(match *op {
                "enable" => Admin::Enable,
                "disable" => Admin::Disable,
                "reevaluate" => Admin::Reevaluate,
                "retry" => Admin::Retry,
                "confirm-off" => Admin::ConfirmOff,
                "unfence" => Admin::Unfence,
                _ => bail!("unknown admin op {op}"),
            }),
            ["tick"] => Input::Tick,
            ["maintenance", on] => {
                let stamp = self.stamp();
                self.apply(Command::SetMaintenance {
                    name: host.clone(),
                    on: *on == "on",
                    stamp,
                });
                return Ok(());
            }
            _ => bail!("unknown host directive {words:?}"),
        };
        self.inputs(&host, epoch, vec![input]);
        Ok(())
    }

    fn expect(&mut self, words: &[&str]) -> Result<()> {
        if words == ["nothing"] {
            self.collect();
            if let Some(e) = self.pending.front() {
                bail!("expected nothing, got {e:?}");
            }
            return Ok(());
        }
        if words.len() == 2 && words[1] == "rejected" {
            if !self.last_rejected {
                bail!("expected the last input to be rejected");
            }
            return Ok(());
        }
        self.collect();
        let Some(ev) = self.pending.pop_front() else {
            bail!("expected {words:?}, but no (more) events happened");
        };
        let ok = match (words, &ev.kind) {
            (["pool", p, from, "->", to], EventKind::PoolTransition { from: f, to: t, .. }) => {
                ev.pool.as_deref() == Some(*p) && parse_pool(from)? == *f && parse_pool(to)? == *t
            }
            ([h, from, "->", to], EventKind::HostTransition(t)) => {
                ev.host.as_deref() == Some(*h)
                    && parse_state(from)? == t.from
                    && parse_state(to)? == t.to
            }
            ([h, "intent", kind, rest @ ..], EventKind::IntentStarted { kind: k, .. }) => {
                let level = rest
                    .iter()
                    .find_map(|w| w.strip_prefix("level="))
                    .map(|l| l.parse::<u32>())
                    .transpose()?;
                ev.host.as_deref() == Some(*h)
                    && match (kind, k) {
                        (&"recover", IntentKind::Recover { .. }) => true,
                        (&"fence", IntentKind::Fence { level: l, .. }) => {
                            level.is_none_or(|x| x == *l + 1)
                        }
                        _ => false,
                    }
            }
            ([h, "end", how], EventKind::IntentEnded { end, .. }) => {
                use vigil::engine::IntentEnd as E;
                ev.host.as_deref() == Some(*h)
                    && matches!(
                        (*how, end),
                        ("succeeded", E::Succeeded)
                            | ("failed", E::Failed(_))
                            | ("timed-out", E::TimedOut)
                            | ("abandoned", E::Abandoned(_))
                    )
            }
            ([h, "alarm"], EventKind::Alarm { .. }) => ev.host.as_deref() == Some(*h),
            ([h, "fenced", rest @ ..], EventKind::HostFenced { by, .. }) => {
                ev.host.as_deref() == Some(*h)
                    && rest
                        .iter()
                        .find_map(|w| w.strip_prefix("by="))
                        .is_none_or(|want| want == by)
            }
            _ => false,
        };
        if !ok {
            bail!("expected {}, got {ev:?}", words.join(" "));
        }
        Ok(())
    }

    fn check(&mut self, words: &[&str]) -> Result<()> {
        match words {
            ["pool", p, st] => {
                let got = self
                    .state
                    .pools
                    .get(*p)
                    .ok_or_else(|| anyhow!("no pool {p}"))?;
                if got.status.state != parse_pool(st)? {
                    bail!(
                        "pool {p} is {:?} ({}), expected {st}",
                        got.status.state,
                        got.status.reason
                    );
                }
            }
            ["budget", p, used] => {
                let want: u32 = used
                    .strip_prefix("used=")
                    .ok_or_else(|| anyhow!("used=N"))?
                    .parse()?;
                let b = self.state.pool_budget(p, self.now);
                if b.used != want {
                    bail!(
                        "pool {p} budget used {} (of {}), expected {want}",
                        b.used,
                        b.max
                    );
                }
            }
            [h, "blocked"] => {
                let host = self
                    .state
                    .hosts
                    .get(*h)
                    .ok_or_else(|| anyhow!("no host {h}"))?;
                if host.ha.blocked.is_none() {
                    bail!("host {h} is not blocked: {:?}", host.ha);
                }
            }
            [h, "power", p] => {
                let host = self
                    .state
                    .hosts
                    .get(*h)
                    .ok_or_else(|| anyhow!("no host {h}"))?;
                if host.ha.power != parse_power(p)? {
                    bail!("host {h} power is {}", host.ha.power);
                }
            }
            [h, st] => {
                let host = self
                    .state
                    .hosts
                    .get(*h)
                    .ok_or_else(|| anyhow!("no host {h}"))?;
                if host.ha.state != parse_state(st)? {
                    bail!(
                        "host {h} is {}, expected {st}: {:?}",
                        host.ha.state,
                        host.ha
                    );
                }
            }
            _ => bail!("unknown check {words:?}"),
        }
        Ok(())
    }

    fn before_input(&mut self) -> Result<()> {
        self.collect();
        if !self.pending.is_empty() {
            bail!(
                "unexpected event(s) not covered by `expect`: {:?}",
                self.pending
            );
        }
        Ok(())
    }

    fn line(&mut self, line: &str) -> Result<()> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => Ok(()),
            ["expect", rest @ ..] => self.expect(rest),
            ["check", rest @ ..] => self.check(rest),
            ["policy", rest @ ..] => {
                for (k, v) in overrides(rest)? {
                    let stamp = self.stamp();
                    self.must(Command::SetSetting {
                        key: k,
                        value: v,
                        stamp,
                    })?;
                }
                self.discard();
                Ok(())
            }
            ["pool", rest @ ..] => self.setup_pool(rest),
            ["host", rest @ ..] => self.setup_host(rest),
            ["at", t] => {
                self.before_input()?;
                self.now = match t.strip_prefix('+') {
                    Some(d) => self.now + parse_ms(d)?,
                    None => parse_ms(t)?,
                };
                Ok(())
            }
            ["tick", rest @ ..] => {
                self.before_input()?;
                if let Some(t) = rest.first() {
                    let d = t
                        .strip_prefix('+')
                        .ok_or_else(|| anyhow!("tick +DURATION"))?;
                    self.now += parse_ms(d)?;
                }
                let stamp = self.stamp();
                self.apply(Command::TickAll { stamp });
                Ok(())
            }
            ["pool-enable", p] | ["pool-disable", p] => {
                self.before_input()?;
                let stamp = self.stamp();
                self.apply(Command::UpdatePool {
                    name: p.to_string(),
                    enabled: Some(words[0] == "pool-enable"),
                    set: BTreeMap::new(),
                    unset: vec![],
                    stamp,
                });
                Ok(())
            }
            [target, rest @ ..] => {
                self.before_input()?;
                self.host_directive(target, rest)
            }
        }
    }
}

fn parse_state(s: &str) -> Result<HaState> {
    HaState::parse(s).ok_or_else(|| anyhow!("unknown HA state {s:?}"))
}

fn parse_pool(s: &str) -> Result<PoolState> {
    Ok(match s {
        "disabled" => PoolState::Disabled,
        "active" => PoolState::Active,
        "inactive" => PoolState::Inactive,
        _ => bail!("unknown pool state {s:?}"),
    })
}

fn parse_power(s: &str) -> Result<PowerState> {
    Ok(match s {
        "on" => PowerState::On,
        "off" => PowerState::Off,
        "unknown" => PowerState::Unknown,
        _ => bail!("power on|off|unknown"),
    })
}

fn run_file(path: &Path) -> Result<VigilState> {
    let text = std::fs::read_to_string(path)?;
    let mut w = World::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        w.line(line)
            .with_context(|| format!("{}:{}: {}", path.display(), n + 1, raw.trim()))?;
    }
    w.before_input()
        .with_context(|| format!("{}: at end of file", path.display()))?;
    Ok(w.state)
}

fn scenario_files() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "scn"))
        .collect();
    files.sort();
    files
}

#[test]
fn golden_scenarios() {
    let files = scenario_files();
    assert!(files.len() >= 10, "scenario files missing: {files:?}");
    let mut failures = Vec::new();
    for f in &files {
        match run_file(f) {
            Ok(_) => eprintln!("ok    {}", f.file_name().unwrap().to_string_lossy()),
            Err(e) => {
                eprintln!("FAIL  {}: {e:#}", f.file_name().unwrap().to_string_lossy());
                failures.push(format!("{e:#}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} scenario(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Replaying a scenario gives the same state, byte for byte (determinism), and the
/// snapshot of the result restores to the same state.
#[test]
fn scenarios_are_deterministic_and_snapshot_round_trip() {
    for f in scenario_files() {
        let a = run_file(&f).unwrap_or_default();
        let b = run_file(&f).unwrap_or_default();
        assert_eq!(a.encode_snapshot(), b.encode_snapshot(), "{}", f.display());
        let restored = VigilState::decode_snapshot(&a.encode_snapshot()).unwrap();
        assert_eq!(restored, a, "{}", f.display());
    }
}

/// The runner itself must catch a wrong expectation (a runner that accepts anything
/// would make every scenario pass).
#[test]
fn runner_rejects_wrong_expectations() {
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        "pool p hosts=3\np-1 health fail x3\nexpect p-1 available -> checking\n",
        "pool p hosts=3\np-1 health fail x3\n",
        "pool p hosts=3\np-1 health fail x2\nexpect p-1 available -> suspect\n",
        "pool p hosts=3\ncheck p-1 suspect\n",
    ];
    for (i, text) in bad.iter().enumerate() {
        let p = dir.path().join(format!("bad{i}.scn"));
        std::fs::write(&p, text).unwrap();
        assert!(
            run_file(&p).is_err(),
            "runner accepted a wrong scenario:\n{text}"
        );
    }
}
