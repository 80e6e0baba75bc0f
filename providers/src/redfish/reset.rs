//! Pure parts of the Redfish driver: reading a ComputerSystem resource and choosing
//! the `ResetType` for a [`PowerAction`]. No I/O, unit-tested.

use serde_json::Value;

use crate::error::DriverError;
use crate::power::{PowerAction, PowerState};

/// What a ComputerSystem resource says about power, in short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SystemPower {
    /// `PowerState` as the BMC spelled it (`On`, `Off`, `PoweringOn`, …), if present.
    pub raw_state: Option<String>,
    /// `Actions.#ComputerSystem.Reset.target`, if present.
    pub reset_target: Option<String>,
    /// `ResetType@Redfish.AllowableValues`; `None` when the BMC does not say (then
    /// every standard reset type is tried as if allowed).
    pub allowed: Option<Vec<String>>,
}

impl SystemPower {
    /// Reads the fields the driver needs from a ComputerSystem JSON document.
    pub fn parse(system: &Value) -> SystemPower {
        let reset = system
            .get("Actions")
            .and_then(|a| a.get("#ComputerSystem.Reset"));
        SystemPower {
            raw_state: system
                .get("PowerState")
                .and_then(Value::as_str)
                .map(str::to_string),
            reset_target: reset
                .and_then(|r| r.get("target"))
                .and_then(Value::as_str)
                .map(str::to_string),
            allowed: reset
                .and_then(|r| r.get("ResetType@Redfish.AllowableValues"))
                .and_then(Value::as_array)
                .map(|vals| {
                    vals.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                }),
        }
    }

    /// The power state, for a caller that must decide about fencing: only `Off`
    /// reads as off; `On`, `PoweringOn`, `PoweringOff` and `Paused` still have
    /// power and read as on. `None` when the BMC gave no `PowerState` (or `null`,
    /// which Redfish allows for "unknown").
    pub fn state(&self) -> Option<PowerState> {
        match self.raw_state.as_deref()? {
            "Off" => Some(PowerState::Off),
            "On" | "PoweringOn" | "PoweringOff" | "Paused" => Some(PowerState::On),
            _ => None,
        }
    }

    fn allows(&self, reset_type: &str) -> bool {
        match &self.allowed {
            None => true,
            Some(list) => list.iter().any(|v| v == reset_type),
        }
    }
}

/// How to carry out an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResetPlan {
    /// Nothing to do: the system already is in the wanted state.
    Already,
    /// A cycle of a system that is off: nothing is sent and it stays off (a cycle
    /// powers on only a host it powered off itself).
    LeaveOff,
    /// One reset request, then wait until the state reads `expect`.
    Single {
        /// The `ResetType`.
        reset_type: &'static str,
        /// What the state must read afterwards.
        expect: PowerState,
    },
    /// `off` (`ForceOff`), wait for Off, then `on` (`On` or `ForceOn`), wait for On:
    /// a cycle on a BMC that offers neither `ForceRestart` nor `PowerCycle`. The on
    /// step is sent only once Off was read after the off step, and only before the
    /// deadline.
    OffThenOn {
        /// The off `ResetType`.
        off: &'static str,
        /// The on `ResetType`.
        on: &'static str,
    },
}

/// Chooses the reset for `action` given the current state and the allowed values.
///
/// - Off → `ForceOff` (a fence must not depend on the OS cooperating); already off →
///   [`ResetPlan::Already`].
/// - On → `On`, else `ForceOn`; already on → [`ResetPlan::Already`].
/// - Cycle → `ForceRestart`, else `PowerCycle`, else `ForceOff` then `On`/`ForceOn`.
///   A cycle of a host that is off → [`ResetPlan::LeaveOff`]: HA never powers on a
///   host that is off (it may be off on purpose), and what a restart of an off
///   system does is undefined in Redfish (a BMC may power it on), so nothing is
///   sent.
///
/// A missing `AllowableValues` list allows everything. [`DriverError::Permanent`]
/// when nothing suitable is offered (naming what is).
pub(crate) fn choose(
    action: PowerAction,
    current: PowerState,
    sys: &SystemPower,
) -> Result<ResetPlan, DriverError> {
    let first = |candidates: &[&'static str]| candidates.iter().copied().find(|t| sys.allows(t));
    let none_offered = |wanted: &str| {
        DriverError::Permanent(format!(
            "BMC offers no reset type for {action} (wanted {wanted}; allowed: {})",
            sys.allowed.as_deref().unwrap_or_default().join(", ")
        ))
    };
    match (action, current) {
        (PowerAction::Off, PowerState::Off) | (PowerAction::On, PowerState::On) => {
            Ok(ResetPlan::Already)
        }
        (PowerAction::Off, PowerState::On) => match first(&["ForceOff"]) {
            Some(t) => Ok(ResetPlan::Single {
                reset_type: t,
                expect: PowerState::Off,
            }),
            None => Err(none_offered("ForceOff")),
        },
        (PowerAction::Cycle, PowerState::Off) => Ok(ResetPlan::LeaveOff),
        (PowerAction::On, PowerState::Off) => match first(&["On", "ForceOn"]) {
            Some(t) => Ok(ResetPlan::Single {
                reset_type: t,
                expect: PowerState::On,
            }),
            None => Err(none_offered("On or ForceOn")),
        },
        (PowerAction::Cycle, PowerState::On) => {
            if let Some(t) = first(&["ForceRestart", "PowerCycle"]) {
                return Ok(ResetPlan::Single {
                    reset_type: t,
                    expect: PowerState::On,
                });
            }
            match (first(&["ForceOff"]), first(&["On", "ForceOn"])) {
                (Some(off), Some(on)) => Ok(ResetPlan::OffThenOn { off, on }),
                _ => Err(none_offered(
                    "ForceRestart, PowerCycle, or ForceOff and On/ForceOn",
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sys(allowed: Option<&[&str]>) -> SystemPower {
        SystemPower {
            raw_state: Some("On".into()),
            reset_target: Some("/x".into()),
            allowed: allowed.map(|a| a.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn parses_sushy_system() {
        let doc = json!({
            "Id": "abc",
            "PowerState": "On",
            "Actions": {"#ComputerSystem.Reset": {
                "target": "/redfish/v1/Systems/abc/Actions/ComputerSystem.Reset",
                "ResetType@Redfish.AllowableValues":
                    ["On", "ForceOff", "GracefulShutdown", "GracefulRestart",
                     "ForceRestart", "Nmi", "ForceOn"]
            }}
        });
        let p = SystemPower::parse(&doc);
        assert_eq!(p.state(), Some(PowerState::On));
        assert_eq!(
            p.reset_target.as_deref(),
            Some("/redfish/v1/Systems/abc/Actions/ComputerSystem.Reset")
        );
        let allowed = p.allowed.as_ref().unwrap();
        assert_eq!(allowed.len(), 7);
        assert!(p.allows("ForceRestart") && !p.allows("PowerCycle"));
    }

    #[test]
    fn parses_missing_and_odd_fields() {
        let p = SystemPower::parse(&json!({"PowerState": null}));
        assert_eq!(p.state(), None);
        assert_eq!(p.reset_target, None);
        assert_eq!(p.allowed, None);
        assert!(p.allows("ForceOff"), "no list: everything allowed");
        for (raw, want) in [
            ("PoweringOff", Some(PowerState::On)),
            ("PoweringOn", Some(PowerState::On)),
            ("Off", Some(PowerState::Off)),
            ("Bogus", None),
        ] {
            let p = SystemPower::parse(&json!({"PowerState": raw}));
            assert_eq!(p.state(), want, "{raw}");
        }
    }

    #[test]
    fn chooses_reset_types() {
        use PowerAction::*;
        use PowerState as S;
        let all = sys(Some(&["On", "ForceOff", "ForceRestart", "PowerCycle"]));
        let single = |t, e| ResetPlan::Single {
            reset_type: t,
            expect: e,
        };
        assert_eq!(
            choose(Off, S::On, &all).unwrap(),
            single("ForceOff", S::Off)
        );
        assert_eq!(choose(Off, S::Off, &all).unwrap(), ResetPlan::Already);
        assert_eq!(choose(On, S::On, &all).unwrap(), ResetPlan::Already);
        assert_eq!(choose(On, S::Off, &all).unwrap(), single("On", S::On));
        assert_eq!(
            choose(Cycle, S::On, &all).unwrap(),
            single("ForceRestart", S::On)
        );
        // A cycle never powers on an off host, whatever the BMC offers.
        assert_eq!(choose(Cycle, S::Off, &all).unwrap(), ResetPlan::LeaveOff);
        assert_eq!(
            choose(Cycle, S::Off, &sys(Some(&["ForceOff", "On"]))).unwrap(),
            ResetPlan::LeaveOff
        );
        assert_eq!(
            choose(Cycle, S::Off, &sys(Some(&[]))).unwrap(),
            ResetPlan::LeaveOff
        );

        let no_restart = sys(Some(&["ForceOn", "ForceOff", "PowerCycle"]));
        assert_eq!(
            choose(Cycle, S::On, &no_restart).unwrap(),
            single("PowerCycle", S::On)
        );
        assert_eq!(
            choose(On, S::Off, &no_restart).unwrap(),
            single("ForceOn", S::On)
        );

        let basic = sys(Some(&["On", "ForceOff"]));
        assert_eq!(
            choose(Cycle, S::On, &basic).unwrap(),
            ResetPlan::OffThenOn {
                off: "ForceOff",
                on: "On"
            }
        );

        let graceful_only = sys(Some(&["On", "GracefulShutdown"]));
        let err = choose(Off, S::On, &graceful_only).unwrap_err();
        assert!(
            matches!(&err, DriverError::Permanent(m) if m.contains("ForceOff") && m.contains("GracefulShutdown")),
            "{err}"
        );
        assert!(matches!(
            choose(Cycle, S::On, &graceful_only),
            Err(DriverError::Permanent(_))
        ));

        let unknown = sys(None);
        assert_eq!(
            choose(Cycle, S::On, &unknown).unwrap(),
            single("ForceRestart", S::On)
        );
    }
}
