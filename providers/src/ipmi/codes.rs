//! What a BMC's numeric answers mean, and what the caller should do about them:
//! IPMI completion codes (IPMI 2.0 table 5-2) and RMCP+ status codes (table 13-15),
//! mapped to [`DriverError::Permanent`] (fix something first: privilege, unknown
//! command, bad credentials) or [`DriverError::Retryable`] (busy, not ready,
//! unspecified). Every message carries the code in hex, so that a BMC's own
//! documentation can be searched for it.

use crate::error::DriverError;

/// Name of a generic completion code, or `None` for OEM / command-specific codes.
pub(crate) fn completion_name(cc: u8) -> Option<&'static str> {
    Some(match cc {
        0x00 => "command completed normally",
        0xC0 => "node busy",
        0xC1 => "invalid command",
        0xC2 => "command invalid for given LUN",
        0xC3 => "timeout while processing command",
        0xC4 => "out of space",
        0xC5 => "reservation canceled or invalid",
        0xC6 => "request data truncated",
        0xC7 => "request data length invalid",
        0xC8 => "request data field length limit exceeded",
        0xC9 => "parameter out of range",
        0xCA => "cannot return number of requested data bytes",
        0xCB => "requested sensor, data, or record not present",
        0xCC => "invalid data field in request",
        0xCD => "command illegal for specified sensor or record type",
        0xCE => "command response could not be provided",
        0xCF => "cannot execute duplicated request",
        0xD0 => "SDR repository in update mode",
        0xD1 => "device in firmware update mode",
        0xD2 => "BMC initialization in progress",
        0xD3 => "destination unavailable",
        0xD4 => "insufficient privilege level",
        0xD5 => "command not supported in present state",
        0xD6 => "command sub-function disabled or unavailable",
        0xFF => "unspecified error",
        _ => return None,
    })
}

/// Whether retrying a command that failed with `cc` may succeed without anyone
/// changing anything.
fn completion_retryable(cc: u8) -> bool {
    !matches!(cc, 0xC1 | 0xC2 | 0xC6..=0xCD | 0xD4 | 0xD6)
}

/// The error for a command (`what`) that the BMC answered with a non-zero
/// completion code. `specific` names command-specific codes (0x80..=0xBE) and says
/// whether each is permanent.
pub(crate) fn completion_error(what: &str, cc: u8, specific: &[(u8, &str, bool)]) -> DriverError {
    if let Some((_, name, permanent)) = specific.iter().find(|(c, _, _)| *c == cc) {
        let msg = format!("{what}: {name} (completion code {cc:#04x})");
        return if *permanent {
            DriverError::Permanent(msg)
        } else {
            DriverError::Retryable(msg)
        };
    }
    let name = completion_name(cc).unwrap_or(match cc {
        0x01..=0x7E => "OEM completion code",
        _ => "command-specific completion code",
    });
    let mut msg = format!("{what}: {name} (completion code {cc:#04x})");
    if cc == 0xD4 {
        msg.push_str(": the user or session privilege is too low");
    }
    if completion_retryable(cc) {
        DriverError::Retryable(msg)
    } else {
        DriverError::Permanent(msg)
    }
}

/// Name of an RMCP+ / RAKP status code.
pub(crate) fn rmcp_status_name(code: u8) -> &'static str {
    match code {
        0x00 => "no errors",
        0x01 => "insufficient resources to create a session",
        0x02 => "invalid session id",
        0x03 => "invalid payload type",
        0x04 => "invalid authentication algorithm",
        0x05 => "invalid integrity algorithm",
        0x06 => "no matching authentication payload",
        0x07 => "no matching integrity payload",
        0x08 => "inactive session id",
        0x09 => "invalid role",
        0x0A => "unauthorized role or privilege level requested",
        0x0B => "insufficient resources to create a session at the requested role",
        0x0C => "invalid name length",
        0x0D => "unauthorized name",
        0x0E => "unauthorized GUID",
        0x0F => "invalid integrity check value",
        0x10 => "invalid confidentiality algorithm",
        0x11 => "no cipher suite match with proposed security algorithms",
        0x12 => "illegal or unrecognized parameter",
        _ => "unknown RMCP+ status",
    }
}

/// The error for a session set-up step (`what`: "Open Session", "RAKP 2", …) that the
/// BMC answered with a non-zero RMCP+ status code. Out of session slots is worth a
/// retry; everything else needs a change of configuration.
pub(crate) fn rmcp_status_error(what: &str, code: u8, user: &str) -> DriverError {
    let mut msg = format!(
        "{what}: BMC refused: {} (RMCP+ status {code:#04x})",
        rmcp_status_name(code)
    );
    match code {
        0x01 | 0x0B => {
            msg.push_str(": all session slots are in use (sessions leaked by some client?)");
            return DriverError::Retryable(msg);
        }
        0x0D | 0x12 if what.contains("RAKP") => {
            msg.push_str(&format!(": is there a user {user:?} on this BMC?"));
        }
        0x09 | 0x0A => msg.push_str(": the user may not have the requested privilege"),
        0x0F => msg.push_str(": wrong password?"),
        0x04..=0x07 | 0x10 | 0x11 => {
            msg.push_str(": the BMC does not offer cipher suite 3");
        }
        _ => {}
    }
    DriverError::Permanent(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permanent(e: &DriverError) -> bool {
        matches!(e, DriverError::Permanent(_))
    }

    #[test]
    fn completion_codes_carry_their_number_and_class() {
        let e = completion_error("Chassis Control", 0xD4, &[]);
        assert!(permanent(&e), "{e:?}");
        let m = e.to_string();
        assert!(m.contains("insufficient privilege"), "{m}");
        assert!(m.contains("0xd4"), "{m}");
        assert!(m.starts_with("Chassis Control: "), "{m}");

        let e = completion_error("Get Chassis Status", 0xC1, &[]);
        assert!(
            permanent(&e)
                && e.to_string()
                    .contains("invalid command (completion code 0xc1)")
        );
        assert!(permanent(&completion_error("x", 0xCC, &[])));
        assert!(permanent(&completion_error("x", 0xD6, &[])));

        for cc in [0xC0, 0xC3, 0xCE, 0xCF, 0xD1, 0xD2, 0xD5, 0xFF] {
            let e = completion_error("x", cc, &[]);
            assert!(e.is_retryable(), "{cc:#x}: {e:?}");
            assert!(e.to_string().contains(&format!("{cc:#04x}")), "{e}");
        }
        let e = completion_error("Get Chassis Status", 0xFF, &[]);
        assert_eq!(
            e.to_string(),
            "Get Chassis Status: unspecified error (completion code 0xff)"
        );
        assert!(completion_error("x", 0x05, &[])
            .to_string()
            .contains("OEM completion code (completion code 0x05)"));
    }

    #[test]
    fn command_specific_codes() {
        let specific = [(0x81, "requested level exceeds the user's limit", true)];
        let e = completion_error("Set Session Privilege Level", 0x81, &specific);
        assert!(permanent(&e));
        assert!(e
            .to_string()
            .contains("exceeds the user's limit (completion code 0x81)"));
        let e = completion_error("Set Session Privilege Level", 0x82, &specific);
        assert!(e
            .to_string()
            .contains("command-specific completion code (completion code 0x82)"));
    }

    #[test]
    fn rmcp_status_codes() {
        let e = rmcp_status_error("Open Session", 0x01, "admin");
        assert!(e.is_retryable(), "{e:?}");
        assert!(e.to_string().contains("RMCP+ status 0x01"), "{e}");
        let e = rmcp_status_error("RAKP 2", 0x12, "bob");
        assert!(permanent(&e));
        assert!(e.to_string().contains("user \"bob\""), "{e}");
        let e = rmcp_status_error("Open Session", 0x11, "bob");
        assert!(e.to_string().contains("cipher suite 3"), "{e}");
        assert!(permanent(&rmcp_status_error("RAKP 4", 0x0F, "bob")));
    }
}
