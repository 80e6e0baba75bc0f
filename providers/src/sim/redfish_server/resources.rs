//! The Redfish documents the sim server answers with, built from what the simulated
//! BMC reports. Pure: no I/O, no fleet access.
//!
//! Each simulated host is a ComputerSystem `/redfish/v1/Systems/{host}` and a Chassis
//! `/redfish/v1/Chassis/{host}` with a `Power` resource (one `PowerControl` reading).
//! The service has one `SessionService` with its `Sessions`.

use serde_json::{json, Value};

use super::sessions::SESSIONS;
use crate::power::PowerState;
use crate::sim::{Condition, HostSnapshot};

/// The `SessionService` resource.
const SESSION_SERVICE: &str = "/redfish/v1/SessionService";

/// The `ResetType` values every system offers, in the order it lists them.
pub const RESET_TYPES: [&str; 5] = [
    "On",
    "ForceOff",
    "ForceRestart",
    "GracefulShutdown",
    "PowerCycle",
];

/// `PowerConsumedWatts` of a powered-on host that is doing work.
pub const WORKING_WATTS: f64 = 240.0;

/// `PowerConsumedWatts` of a powered-on host doing no work (idle, hung or crashed):
/// power still flows, so an activity check by watts needs a threshold between this
/// and [`WORKING_WATTS`].
pub const IDLE_WATTS: f64 = 60.0;

/// The service root (served without authentication); with `sessions`, it
/// advertises the `SessionService` and `Links.Sessions`.
pub(super) fn service_root(sessions: bool) -> Value {
    let mut root = json!({
        "@odata.id": "/redfish/v1",
        "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
        "Id": "RootService",
        "Name": "vigil sim Redfish service",
        "RedfishVersion": "1.6.0",
        "Systems": {"@odata.id": "/redfish/v1/Systems"},
        "Chassis": {"@odata.id": "/redfish/v1/Chassis"},
    });
    if sessions {
        root["SessionService"] = json!({"@odata.id": SESSION_SERVICE});
        root["Links"] = json!({"Sessions": {"@odata.id": SESSIONS}});
    }
    root
}

/// The `SessionService` resource.
pub(super) fn session_service() -> Value {
    json!({
        "@odata.id": SESSION_SERVICE,
        "@odata.type": "#SessionService.v1_1_8.SessionService",
        "Id": "SessionService",
        "Name": "Session Service",
        "ServiceEnabled": true,
        "SessionTimeout": 600,
        "Sessions": {"@odata.id": SESSIONS},
    })
}

/// The `Sessions` collection of the live sessions `ids`.
pub(super) fn sessions(ids: &[String]) -> Value {
    let members: Vec<Value> = ids
        .iter()
        .map(|id| json!({"@odata.id": format!("{SESSIONS}/{id}")}))
        .collect();
    json!({
        "@odata.id": SESSIONS,
        "@odata.type": "#SessionCollection.SessionCollection",
        "Name": "Session Collection",
        "Members@odata.count": members.len(),
        "Members": members,
    })
}

/// Session `id` of `user` (never its token).
pub(super) fn session(id: &str, user: &str) -> Value {
    json!({
        "@odata.id": format!("{SESSIONS}/{id}"),
        "@odata.type": "#Session.v1_3_0.Session",
        "Id": id,
        "Name": "User Session",
        "UserName": user,
    })
}

/// A resource collection (`Systems` or `Chassis`) of every host.
pub(super) fn collection(kind: &str, hosts: &[String]) -> Value {
    let members: Vec<Value> = hosts
        .iter()
        .map(|h| json!({"@odata.id": format!("/redfish/v1/{kind}/{}", segment(h))}))
        .collect();
    let odata_type = if kind == "Systems" {
        "#ComputerSystemCollection.ComputerSystemCollection"
    } else {
        "#ChassisCollection.ChassisCollection"
    };
    json!({
        "@odata.id": format!("/redfish/v1/{kind}"),
        "@odata.type": odata_type,
        "Name": format!("{kind} Collection"),
        "Members@odata.count": members.len(),
        "Members": members,
    })
}

/// The ComputerSystem of `host`, with the power state the BMC reports.
pub(super) fn system(host: &str, reported: PowerState) -> Value {
    let id = segment(host);
    let path = format!("/redfish/v1/Systems/{id}");
    json!({
        "@odata.id": path,
        "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
        "Id": host,
        "Name": host,
        "SystemType": "Physical",
        "PowerState": power_state(reported),
        "Status": {"State": "Enabled", "Health": "OK"},
        "Links": {"Chassis": [{"@odata.id": format!("/redfish/v1/Chassis/{id}")}]},
        "Actions": {"#ComputerSystem.Reset": {
            "target": format!("{path}/Actions/ComputerSystem.Reset"),
            "ResetType@Redfish.AllowableValues": RESET_TYPES,
        }},
    })
}

/// The Chassis of `host`, with the power state the BMC reports.
pub(super) fn chassis(host: &str, reported: PowerState) -> Value {
    let id = segment(host);
    let path = format!("/redfish/v1/Chassis/{id}");
    json!({
        "@odata.id": path,
        "@odata.type": "#Chassis.v1_10_0.Chassis",
        "Id": host,
        "Name": host,
        "ChassisType": "RackMount",
        "PowerState": power_state(reported),
        "Power": {"@odata.id": format!("{path}/Power")},
        "Links": {"ComputerSystems": [{"@odata.id": format!("/redfish/v1/Systems/{id}")}]},
    })
}

/// The Power resource of `host`'s chassis: one `PowerControl` reading `watts`.
pub(super) fn power(host: &str, watts: f64) -> Value {
    let path = format!("/redfish/v1/Chassis/{}/Power", segment(host));
    json!({
        "@odata.id": path,
        "@odata.type": "#Power.v1_5_0.Power",
        "Id": "Power",
        "Name": "Power",
        "PowerControl": [{
            "@odata.id": format!("{path}#/PowerControl/0"),
            "MemberId": "0",
            "Name": "System Power Control",
            "PowerConsumedWatts": watts,
        }],
    })
}

/// What the host draws, from its true state: 0 when off, [`WORKING_WATTS`] while it
/// runs and works (isolated or not), [`IDLE_WATTS`] otherwise.
pub(super) fn watts(host: &HostSnapshot) -> f64 {
    match (host.power, host.condition) {
        (PowerState::Off, _) => 0.0,
        (PowerState::On, Condition::Running | Condition::Isolated) if host.working => WORKING_WATTS,
        (PowerState::On, _) => IDLE_WATTS,
    }
}

/// A Redfish error body (`error.code`, `error.message`, one extended message).
pub(super) fn error(code: &str, message: &str) -> Value {
    json!({"error": {
        "code": format!("Base.1.8.{code}"),
        "message": message,
        "@Message.ExtendedInfo": [{
            "MessageId": format!("Base.1.8.{code}"),
            "Message": message,
            "Severity": "Critical",
        }],
    }})
}

fn power_state(s: PowerState) -> &'static str {
    match s {
        PowerState::On => "On",
        PowerState::Off => "Off",
    }
}

/// `host` as one path segment: bytes outside RFC 3986's unreserved set are
/// percent-encoded (the router decodes them back).
pub(super) fn segment(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    for b in host.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::BmcFault;

    fn host(power: PowerState, condition: Condition, working: bool) -> HostSnapshot {
        HostSnapshot {
            name: "h".into(),
            power,
            condition,
            working,
            fault: BmcFault::None,
            health_check_error: false,
            activity_check_error: false,
            reboot_heals: true,
        }
    }

    #[test]
    fn watts_follow_the_true_state() {
        use Condition::*;
        use PowerState::*;
        assert_eq!(watts(&host(On, Running, true)), WORKING_WATTS);
        assert_eq!(watts(&host(On, Isolated, true)), WORKING_WATTS);
        assert_eq!(watts(&host(On, Running, false)), IDLE_WATTS);
        assert_eq!(watts(&host(On, Hung, true)), IDLE_WATTS);
        assert_eq!(watts(&host(On, Crashed, true)), IDLE_WATTS);
        assert_eq!(watts(&host(Off, Running, true)), 0.0);
    }

    #[test]
    fn ids_are_single_path_segments() {
        assert_eq!(segment("node-01.rack_a~x"), "node-01.rack_a~x");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        let doc = system("a b", PowerState::Off);
        assert_eq!(doc["Id"], "a b");
        assert_eq!(doc["@odata.id"], "/redfish/v1/Systems/a%20b");
        assert_eq!(doc["PowerState"], "Off");
        assert_eq!(
            doc["Actions"]["#ComputerSystem.Reset"]["target"],
            "/redfish/v1/Systems/a%20b/Actions/ComputerSystem.Reset"
        );
    }
}
