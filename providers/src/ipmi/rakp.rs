//! The RMCP+ session set-up messages (IPMI 2.0 sections 13.17 to 13.23): Open
//! Session Request / Response and RAKP messages 1 to 4, as plain structs with
//! encoders for what we send and decoders for what the BMC answers.
//!
//! Only cipher suite 3 is ever proposed: RAKP-HMAC-SHA1 (authentication algorithm
//! 1), HMAC-SHA1-96 (integrity 1), AES-CBC-128 (confidentiality 1). The decoders
//! check lengths and the message tag / session id echoes; what the status codes
//! mean is in [`super::codes`], what the HMACs prove is in [`super::crypto`].

/// Authentication algorithm RAKP-HMAC-SHA1.
pub(crate) const AUTH_RAKP_HMAC_SHA1: u8 = 0x01;
/// Integrity algorithm HMAC-SHA1-96.
pub(crate) const INTEGRITY_HMAC_SHA1_96: u8 = 0x01;
/// Confidentiality algorithm AES-CBC-128.
pub(crate) const CONF_AES_CBC_128: u8 = 0x01;

/// RAKP 1 role bit: look the user up by name only (the requested privilege is a
/// maximum, not an exact match); what ipmitool does by default.
pub(crate) const NAME_ONLY_LOOKUP: u8 = 0x10;

/// Open Session Request payload (32 bytes).
pub(crate) fn open_session_request(tag: u8, privilege: u8, sid_m: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(32);
    p.push(tag);
    p.push(privilege);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&sid_m.to_le_bytes());
    // Payload type, reserved ×2, length 8, algorithm, reserved ×3.
    p.extend_from_slice(&[0x00, 0, 0, 0x08, AUTH_RAKP_HMAC_SHA1, 0, 0, 0]);
    p.extend_from_slice(&[0x01, 0, 0, 0x08, INTEGRITY_HMAC_SHA1_96, 0, 0, 0]);
    p.extend_from_slice(&[0x02, 0, 0, 0x08, CONF_AES_CBC_128, 0, 0, 0]);
    p
}

/// What an Open Session Response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OpenSessionResponse {
    /// The BMC refused with this RMCP+ status code.
    Refused(u8),
    /// A session was opened (not yet authenticated).
    Opened {
        /// The BMC's session id, `SIDc`.
        sid_c: u32,
        /// Maximum privilege the BMC granted for the session.
        max_privilege: u8,
        /// (authentication, integrity, confidentiality) algorithms it chose.
        algorithms: (u8, u8, u8),
    },
}

/// Decode an Open Session Response; `Err` when it is not the answer to our request
/// (tag or session id mismatch) or is malformed.
pub(crate) fn parse_open_session_response(
    p: &[u8],
    tag: u8,
    sid_m: u32,
) -> Result<OpenSessionResponse, &'static str> {
    if p.len() < 2 || p[0] != tag {
        return Err("not our Open Session Response");
    }
    if p[1] != 0 {
        // On error the BMC may send only the tag and the status.
        return Ok(OpenSessionResponse::Refused(p[1]));
    }
    if p.len() < 36 {
        return Err("Open Session Response too short");
    }
    if le32(&p[4..8]) != sid_m {
        return Err("Open Session Response for another session");
    }
    Ok(OpenSessionResponse::Opened {
        sid_c: le32(&p[8..12]),
        max_privilege: p[2] & 0x0F,
        algorithms: (p[16] & 0x3F, p[24] & 0x3F, p[32] & 0x3F),
    })
}

/// RAKP Message 1 payload.
pub(crate) fn rakp1(tag: u8, sid_c: u32, rand_m: &[u8; 16], role: u8, user: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(28 + user.len());
    p.push(tag);
    p.extend_from_slice(&[0, 0, 0]);
    p.extend_from_slice(&sid_c.to_le_bytes());
    p.extend_from_slice(rand_m);
    p.push(role);
    p.extend_from_slice(&[0, 0]);
    p.push(user.len() as u8);
    p.extend_from_slice(user);
    p
}

/// What RAKP Message 2 says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rakp2 {
    /// The BMC refused with this RMCP+ status code.
    Refused(u8),
    /// The BMC's random number, GUID and key exchange AuthCode.
    Accepted {
        /// `Rc`.
        rand_c: [u8; 16],
        /// `GUIDc`.
        guid_c: [u8; 16],
        /// HMAC to verify (20 bytes for RAKP-HMAC-SHA1).
        auth_code: Vec<u8>,
    },
}

/// Decode RAKP Message 2 (for our tag and `SIDm`).
pub(crate) fn parse_rakp2(p: &[u8], tag: u8, sid_m: u32) -> Result<Rakp2, &'static str> {
    if p.len() < 8 || p[0] != tag {
        return Err("not our RAKP 2");
    }
    if le32(&p[4..8]) != sid_m {
        return Err("RAKP 2 for another session");
    }
    if p[1] != 0 {
        return Ok(Rakp2::Refused(p[1]));
    }
    if p.len() < 40 {
        return Err("RAKP 2 too short");
    }
    Ok(Rakp2::Accepted {
        rand_c: p[8..24].try_into().expect("16 bytes"),
        guid_c: p[24..40].try_into().expect("16 bytes"),
        auth_code: p[40..].to_vec(),
    })
}

/// RAKP Message 3 payload. A non-zero `status` tells the BMC to abandon the
/// session (we use it when the BMC's RAKP 2 did not prove the password).
pub(crate) fn rakp3(tag: u8, status: u8, sid_c: u32, auth_code: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + auth_code.len());
    p.push(tag);
    p.push(status);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&sid_c.to_le_bytes());
    p.extend_from_slice(auth_code);
    p
}

/// What RAKP Message 4 says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rakp4 {
    /// The BMC refused with this RMCP+ status code.
    Refused(u8),
    /// The integrity check value to verify (12 bytes for RAKP-HMAC-SHA1).
    Accepted {
        /// `HMAC(SIK, Rm | SIDc | GUIDc)` truncated.
        icv: Vec<u8>,
    },
}

/// Decode RAKP Message 4 (for our tag and `SIDm`).
pub(crate) fn parse_rakp4(p: &[u8], tag: u8, sid_m: u32) -> Result<Rakp4, &'static str> {
    if p.len() < 8 || p[0] != tag {
        return Err("not our RAKP 4");
    }
    if le32(&p[4..8]) != sid_m {
        return Err("RAKP 4 for another session");
    }
    if p[1] != 0 {
        return Ok(Rakp4::Refused(p[1]));
    }
    Ok(Rakp4::Accepted {
        icv: p[8..].to_vec(),
    })
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_session_request_layout() {
        let p = open_session_request(0x2A, 0x04, 0xA0B0_C0D0);
        assert_eq!(
            p,
            [
                0x2A, 0x04, 0, 0, 0xD0, 0xC0, 0xB0, 0xA0, //
                0x00, 0, 0, 0x08, 0x01, 0, 0, 0, //
                0x01, 0, 0, 0x08, 0x01, 0, 0, 0, //
                0x02, 0, 0, 0x08, 0x01, 0, 0, 0,
            ]
        );
    }

    #[test]
    fn open_session_response_as_ipmi_sim_sends_it() {
        let mut r = vec![0x2A, 0x00, 0x04, 0x00];
        r.extend_from_slice(&0xA0B0_C0D0u32.to_le_bytes());
        r.extend_from_slice(&0x0000_0204u32.to_le_bytes());
        r.extend_from_slice(&[0x00, 0, 0, 0x08, 0x01, 0, 0, 0]);
        r.extend_from_slice(&[0x01, 0, 0, 0x08, 0x01, 0, 0, 0]);
        r.extend_from_slice(&[0x02, 0, 0, 0x08, 0x01, 0, 0, 0]);
        assert_eq!(
            parse_open_session_response(&r, 0x2A, 0xA0B0_C0D0),
            Ok(OpenSessionResponse::Opened {
                sid_c: 0x204,
                max_privilege: 4,
                algorithms: (1, 1, 1)
            })
        );
        assert!(parse_open_session_response(&r, 0x2B, 0xA0B0_C0D0).is_err());
        assert!(parse_open_session_response(&r, 0x2A, 1).is_err());
        assert!(parse_open_session_response(&r[..20], 0x2A, 0xA0B0_C0D0).is_err());
        // ipmi_sim's refusal: tag and status only.
        assert_eq!(
            parse_open_session_response(&[0x2A, 0x11], 0x2A, 0xA0B0_C0D0),
            Ok(OpenSessionResponse::Refused(0x11))
        );
    }

    #[test]
    fn rakp1_layout() {
        let rm: [u8; 16] = core::array::from_fn(|i| i as u8);
        let p = rakp1(7, 0x0000_0204, &rm, 0x14, b"admin");
        assert_eq!(&p[..8], &[7, 0, 0, 0, 0x04, 0x02, 0, 0]);
        assert_eq!(&p[8..24], &rm);
        assert_eq!(&p[24..28], &[0x14, 0, 0, 5]);
        assert_eq!(&p[28..], b"admin");
    }

    #[test]
    fn rakp2_and_rakp4_decoding() {
        let mut r = vec![7, 0, 0, 0];
        r.extend_from_slice(&0x1122_3344u32.to_le_bytes());
        r.extend_from_slice(&[0xC1; 16]);
        r.extend_from_slice(&[0x6D; 16]);
        r.extend_from_slice(&[0xAB; 20]);
        match parse_rakp2(&r, 7, 0x1122_3344).unwrap() {
            Rakp2::Accepted {
                rand_c,
                guid_c,
                auth_code,
            } => {
                assert_eq!(rand_c, [0xC1; 16]);
                assert_eq!(guid_c, [0x6D; 16]);
                assert_eq!(auth_code, vec![0xAB; 20]);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_rakp2(&r, 8, 0x1122_3344).is_err());
        assert!(parse_rakp2(&r, 7, 0x1122_3345).is_err());
        r[1] = 0x12;
        assert_eq!(parse_rakp2(&r, 7, 0x1122_3344), Ok(Rakp2::Refused(0x12)));

        let mut r4 = vec![7, 0, 0, 0];
        r4.extend_from_slice(&0x1122_3344u32.to_le_bytes());
        r4.extend_from_slice(&[0x99; 12]);
        assert_eq!(
            parse_rakp4(&r4, 7, 0x1122_3344),
            Ok(Rakp4::Accepted {
                icv: vec![0x99; 12]
            })
        );
        r4[1] = 0x0F;
        assert_eq!(parse_rakp4(&r4, 7, 0x1122_3344), Ok(Rakp4::Refused(0x0F)));
    }

    #[test]
    fn rakp3_layout() {
        let p = rakp3(7, 0x0F, 0x0000_0204, &[0xEE; 20]);
        assert_eq!(&p[..8], &[7, 0x0F, 0, 0, 0x04, 0x02, 0, 0]);
        assert_eq!(&p[8..], &[0xEE; 20]);
    }
}
