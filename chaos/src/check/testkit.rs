//! Builders of synthetic histories for the checkers' unit tests.

use std::collections::BTreeMap;

use crate::history::{
    Bounds, Condition, EventFact, Facts, FailureKind, HostEnd, Injected, IntentFact, LedgerFact,
    MemberEnd, Ms, Op, PowerCause, Sample, Truth, Write,
};

/// Policy numbers of the tests: lease 5 s, detect 3 s, verify 6 s, recover 10 s,
/// fence 4 s, 1 recovery attempt, 3 fences per hour, grace 30 s.
pub(crate) fn bounds() -> Bounds {
    Bounds {
        lease_ms: 5_000,
        detect_ms: 3_000,
        verify_ms: 6_000,
        recover_ms: 10_000,
        fence_ms: 4_000,
        recovery_attempts: 1,
        fence_budget: 3,
        budget_window_ms: 3_600_000,
        healthy_grace_ms: 30_000,
    }
}

/// An empty run of `end_ms` with the test bounds, quiet from half-way.
pub(crate) fn run(end_ms: Ms) -> Facts {
    Facts {
        end_ms,
        healed_at: end_ms / 2,
        bounds: Some(bounds()),
        ..Facts::default()
    }
}

/// An injected failure (BMC fault `None`, healed by a reboot).
pub(crate) fn inj(host: &str, kind: FailureKind, at: Ms, healed_at: Option<Ms>) -> Injected {
    Injected {
        host: host.into(),
        kind,
        at,
        healed_at,
        reboot_heals: true,
        bmc_fault: "None".into(),
    }
}

/// A crash at `at`, never healed by the harness.
pub(crate) fn crash(host: &str, at: Ms) -> Injected {
    inj(host, FailureKind::Crash, at, None)
}

/// A ground-truth power change.
pub(crate) fn truth(
    seq: u64,
    t_ms: Ms,
    host: &str,
    off: bool,
    cause: PowerCause,
    member: Option<u64>,
    condition: Condition,
) -> Truth {
    Truth {
        seq,
        t_ms,
        host: host.into(),
        off,
        cause,
        member,
        condition,
    }
}

/// A fence by `member` of a crashed host.
pub(crate) fn fence(seq: u64, t_ms: Ms, host: &str, member: u64) -> Truth {
    truth(
        seq,
        t_ms,
        host,
        true,
        PowerCause::Off,
        Some(member),
        Condition::Crashed,
    )
}

/// Both halves of a power cycle by `member` of a host in `condition` (the condition
/// just before each half: a power-off leaves the OS condition as it was), the
/// power-on 1 ms after the power-off.
pub(crate) fn cycle(
    seq: u64,
    t_ms: Ms,
    host: &str,
    member: u64,
    condition: Condition,
) -> [Truth; 2] {
    [
        truth(
            seq,
            t_ms,
            host,
            true,
            PowerCause::Cycle,
            Some(member),
            condition,
        ),
        truth(
            seq + 1,
            t_ms + 1,
            host,
            false,
            PowerCause::Cycle,
            Some(member),
            condition,
        ),
    ]
}

/// The harness powering a host on (or off).
pub(crate) fn harness(seq: u64, t_ms: Ms, host: &str, off: bool, condition: Condition) -> Truth {
    truth(seq, t_ms, host, off, PowerCause::Harness, None, condition)
}

/// A harness step.
pub(crate) fn op(t_ms: Ms, kind: &str, member: Option<u64>, host: Option<&str>) -> Op {
    Op {
        t_ms,
        kind: kind.into(),
        member,
        host: host.map(str::to_string),
        detail: String::new(),
    }
}

/// A replicated event.
pub(crate) fn event(
    seq: u64,
    at_wall: u64,
    host: Option<&str>,
    pool: Option<&str>,
    kind: &str,
    detail: &str,
) -> EventFact {
    EventFact {
        seq,
        at_wall,
        host: host.map(str::to_string),
        pool: pool.map(str::to_string),
        kind: kind.into(),
        detail: detail.into(),
    }
}

/// A ledger entry.
pub(crate) fn ledger(intent: u64, host: &str, pool: &str, fence: bool, at_wall: u64) -> LedgerFact {
    LedgerFact {
        intent,
        host: host.into(),
        pool: pool.into(),
        fence,
        at_wall,
    }
}

/// An intent with its begin records.
pub(crate) fn intent(id: u64, host: &str, kind: &str, begun_by: &[u64]) -> IntentFact {
    IntentFact {
        id,
        host: host.into(),
        kind: kind.into(),
        begun_by: begun_by.to_vec(),
    }
}

/// An observer sample; `owners` are (host, owner, epoch).
pub(crate) fn sample(
    t_ms: Ms,
    member: u64,
    term: u64,
    is_leader: bool,
    owners: &[(&str, Option<u64>, u64)],
) -> Sample {
    Sample {
        t_ms,
        member,
        term,
        leader: None,
        is_leader,
        applied: Some(t_ms),
        owners: owners
            .iter()
            .map(|(h, o, e)| (h.to_string(), (*o, *e)))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// A write of the workload.
pub(crate) fn write(key: &str, value: &str, t_ms: Ms, acked: bool) -> Write {
    Write {
        key: key.into(),
        value: value.into(),
        t_ms,
        acked,
    }
}

/// A member at the end.
pub(crate) fn member_end(member: u64, applied: Option<u64>, digest: &str) -> MemberEnd {
    MemberEnd {
        member,
        applied,
        digest: digest.into(),
    }
}

/// A host at the end.
pub(crate) fn host_end(
    host: &str,
    state: &str,
    alarm: bool,
    owner: Option<u64>,
    powered: bool,
    condition: Condition,
) -> HostEnd {
    HostEnd {
        host: host.into(),
        state: state.into(),
        alarm,
        owner,
        powered,
        condition,
    }
}
