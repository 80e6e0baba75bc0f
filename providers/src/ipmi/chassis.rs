//! The IPMI commands this driver sends, with their numbers and what their answers
//! mean: Get Chassis Status and Chassis Control (chassis netfn, IPMI 2.0 section 28),
//! Set Session Privilege Level, Close Session, Get Session Info and Get Channel
//! Authentication Capabilities (app netfn, section 22).

use crate::power::{PowerAction, PowerState};

/// Network function Chassis.
pub(crate) const NETFN_CHASSIS: u8 = 0x00;
/// Network function Application.
pub(crate) const NETFN_APP: u8 = 0x06;

/// Get Chassis Status (chassis).
pub(crate) const CMD_GET_CHASSIS_STATUS: u8 = 0x01;
/// Chassis Control (chassis).
pub(crate) const CMD_CHASSIS_CONTROL: u8 = 0x02;
/// Get Channel Authentication Capabilities (app).
pub(crate) const CMD_GET_CHANNEL_AUTH_CAPS: u8 = 0x38;
/// Set Session Privilege Level (app).
pub(crate) const CMD_SET_SESSION_PRIVILEGE: u8 = 0x3B;
/// Close Session (app).
pub(crate) const CMD_CLOSE_SESSION: u8 = 0x3C;
/// Get Session Info (app).
pub(crate) const CMD_GET_SESSION_INFO: u8 = 0x3D;

/// Command-specific completion codes of Set Session Privilege Level: (code, meaning,
/// permanent).
pub(crate) const SET_PRIVILEGE_CODES: &[(u8, &str, bool)] = &[
    (0x80, "requested level not available for this user", true),
    (
        0x81,
        "requested level exceeds the channel or user privilege limit",
        true,
    ),
    (0x82, "cannot disable user level authentication", true),
];

/// Command-specific completion codes of Close Session.
pub(crate) const CLOSE_SESSION_CODES: &[(u8, &str, bool)] = &[
    (0x87, "invalid session id", false),
    (0x88, "invalid session handle", false),
];

/// A Chassis Control request (data byte 1, low nibble).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChassisControl {
    /// 0: power down (hard off, no OS shutdown).
    PowerDown,
    /// 1: power up.
    PowerUp,
    /// 2: power cycle (off, then on after at least 1 s).
    PowerCycle,
    /// 3: hard reset (not used by the power driver; listed for completeness).
    #[allow(dead_code)]
    HardReset,
}

impl ChassisControl {
    /// What the driver sends for `action`.
    pub fn for_action(action: PowerAction) -> ChassisControl {
        match action {
            PowerAction::Off => ChassisControl::PowerDown,
            PowerAction::On => ChassisControl::PowerUp,
            PowerAction::Cycle => ChassisControl::PowerCycle,
        }
    }

    /// The data byte.
    pub fn code(self) -> u8 {
        match self {
            ChassisControl::PowerDown => 0,
            ChassisControl::PowerUp => 1,
            ChassisControl::PowerCycle => 2,
            ChassisControl::HardReset => 3,
        }
    }

    /// Its name in the IPMI spec.
    pub fn name(self) -> &'static str {
        match self {
            ChassisControl::PowerDown => "power down",
            ChassisControl::PowerUp => "power up",
            ChassisControl::PowerCycle => "power cycle",
            ChassisControl::HardReset => "hard reset",
        }
    }
}

/// Decode Get Chassis Status response data (after the completion code): the power
/// state from bit 0 of "current power state", and a short evidence string that
/// also names any fault bit the BMC reports.
pub(crate) fn parse_chassis_status(data: &[u8]) -> Result<(PowerState, String), String> {
    let Some(&current) = data.first() else {
        return Err("Get Chassis Status: empty answer".to_string());
    };
    let state = if current & 0x01 != 0 {
        PowerState::On
    } else {
        PowerState::Off
    };
    let mut detail =
        format!("Get Chassis Status: power {state} (current power state {current:#04x}");
    for (bit, name) in [
        (0x02, "power overload"),
        (0x04, "interlock"),
        (0x08, "power fault"),
        (0x10, "power control fault"),
    ] {
        if current & bit != 0 {
            detail.push_str(", ");
            detail.push_str(name);
        }
    }
    detail.push(')');
    Ok((state, detail))
}

/// What Get Channel Authentication Capabilities says about IPMI 2.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChannelAuth {
    /// The BMC can open IPMI 2.0 (RMCP+) sessions on this channel.
    pub ipmi20: bool,
    /// The BMC has a non-null BMC key (Kg), which this driver cannot supply.
    pub kg_set: bool,
}

/// Decode Get Channel Authentication Capabilities response data (after the
/// completion code).
pub(crate) fn parse_channel_auth(data: &[u8]) -> Result<ChannelAuth, String> {
    if data.len() < 4 {
        return Err(format!(
            "Get Channel Authentication Capabilities: answer too short ({} bytes)",
            data.len()
        ));
    }
    Ok(ChannelAuth {
        ipmi20: data[1] & 0x80 != 0 && data[3] & 0x02 != 0,
        kg_set: data[2] & 0x20 != 0,
    })
}

/// What Get Session Info says about the BMC's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionInfo {
    /// Session slots the BMC has.
    pub slots: u8,
    /// Sessions active on the BMC right now (ours included; half-open ones too,
    /// on some BMCs).
    pub active: u8,
    /// Our session's handle.
    pub handle: u8,
    /// Our session's id on the BMC (`SIDc`).
    pub session_id: u32,
}

/// Decode Get Session Info response data (after the completion code).
pub(crate) fn parse_session_info(data: &[u8], session_id: u32) -> Result<SessionInfo, String> {
    if data.len() < 3 {
        return Err(format!(
            "Get Session Info: answer too short ({} bytes)",
            data.len()
        ));
    }
    Ok(SessionInfo {
        handle: data[0],
        slots: data[1] & 0x3F,
        active: data[2] & 0x3F,
        session_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chassis_status() {
        let (s, d) = parse_chassis_status(&[0x01, 0x00, 0x00]).unwrap();
        assert_eq!(s, PowerState::On);
        assert_eq!(d, "Get Chassis Status: power on (current power state 0x01)");
        let (s, d) = parse_chassis_status(&[0x08, 0x10, 0x40, 0x00]).unwrap();
        assert_eq!(s, PowerState::Off);
        assert!(d.contains("power fault"), "{d}");
        assert!(parse_chassis_status(&[]).is_err());
    }

    #[test]
    fn chassis_control_codes() {
        assert_eq!(ChassisControl::for_action(PowerAction::Off).code(), 0);
        assert_eq!(ChassisControl::for_action(PowerAction::On).code(), 1);
        assert_eq!(ChassisControl::for_action(PowerAction::Cycle).code(), 2);
        assert_eq!(ChassisControl::HardReset.code(), 3);
    }

    #[test]
    fn channel_auth_caps() {
        // ipmi_sim with a guid: channel 1, md2/md5/straight + v2 bit, flags 0x04,
        // RMCP and RMCP+, OEM 0.
        let a = parse_channel_auth(&[0x01, 0x96, 0x04, 0x03, 0, 0, 0, 0]).unwrap();
        assert!(a.ipmi20 && !a.kg_set);
        let a = parse_channel_auth(&[0x01, 0x16, 0x24, 0x01, 0, 0, 0, 0]).unwrap();
        assert!(!a.ipmi20 && a.kg_set);
        assert!(parse_channel_auth(&[0x01]).is_err());
    }

    #[test]
    fn session_info() {
        let i = parse_session_info(&[0x01, 0x3F, 0x02, 0x02, 0x04, 0x11], 0x204).unwrap();
        assert_eq!(
            i,
            SessionInfo {
                slots: 63,
                active: 2,
                handle: 1,
                session_id: 0x204
            }
        );
        assert!(parse_session_info(&[1], 1).is_err());
    }
}
