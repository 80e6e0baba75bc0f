//! Wire framing, without any cryptography: the RMCP header, the IPMI 1.5 session
//! wrapper (used only before a session exists, for Get Channel Authentication
//! Capabilities), the IPMI 2.0 / RMCP+ session wrapper with its integrity trailer,
//! and the IPMI LAN message with its two checksums.
//!
//! Everything is a pure function over byte slices so that each layout can be unit
//! tested against hand-written packets (IPMI 2.0 spec sections 13.6 to 13.8).
//! Parsers return a short static reason instead of an error type: a datagram that
//! does not parse is simply not the answer being waited for.

/// RMCP header: version 1.0 (`0x06`), reserved, sequence `0xFF` (no RMCP ack),
/// class IPMI (`0x07`).
pub(crate) const RMCP_HEADER: [u8; 4] = [0x06, 0x00, 0xFF, 0x07];
/// IPMI session header "authentication type" meaning RMCP+ (IPMI 2.0 format).
pub(crate) const AUTH_TYPE_RMCP_PLUS: u8 = 0x06;
/// IPMI 1.5 authentication type "none" (pre-session messages).
const AUTH_TYPE_NONE: u8 = 0x00;

/// Payload type bit: the payload is encrypted.
pub(crate) const PAYLOAD_ENCRYPTED: u8 = 0x80;
/// Payload type bit: the packet carries an integrity trailer (AuthCode).
pub(crate) const PAYLOAD_AUTHENTICATED: u8 = 0x40;
/// Payload types (low six bits).
pub(crate) mod payload {
    /// An IPMI message.
    pub(crate) const IPMI: u8 = 0x00;
    /// RMCP+ Open Session Request.
    pub(crate) const OPEN_SESSION_REQUEST: u8 = 0x10;
    /// RMCP+ Open Session Response.
    pub(crate) const OPEN_SESSION_RESPONSE: u8 = 0x11;
    /// RAKP Message 1.
    pub(crate) const RAKP1: u8 = 0x12;
    /// RAKP Message 2.
    pub(crate) const RAKP2: u8 = 0x13;
    /// RAKP Message 3.
    pub(crate) const RAKP3: u8 = 0x14;
    /// RAKP Message 4.
    pub(crate) const RAKP4: u8 = 0x15;
}

/// "Next header" byte closing an integrity trailer.
const NEXT_HEADER: u8 = 0x07;
/// The BMC's IPMB address (responder).
pub(crate) const BMC_ADDR: u8 = 0x20;
/// Our address: software ID 0x40 << 1 | 1, the usual remote console value.
pub(crate) const CONSOLE_ADDR: u8 = 0x81;

/// IPMI two's complement checksum: the byte that makes `bytes` sum to 0 mod 256.
pub(crate) fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |acc, b| acc.wrapping_add(*b))
        .wrapping_neg()
}

fn sums_to_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b)) == 0
}

/// An IPMI LAN request message: `rsAddr, netFn/rsLUN, chk1, rqAddr, rqSeq/rqLUN,
/// cmd, data…, chk2`. `rq_seq` is 6 bits.
pub(crate) fn encode_request(netfn: u8, cmd: u8, rq_seq: u8, data: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(7 + data.len());
    m.push(BMC_ADDR);
    m.push(netfn << 2);
    m.push(checksum(&m[0..2]));
    m.push(CONSOLE_ADDR);
    m.push((rq_seq & 0x3F) << 2);
    m.push(cmd);
    m.extend_from_slice(data);
    let chk = checksum(&m[3..]);
    m.push(chk);
    m
}

/// A decoded IPMI LAN response message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    /// Network function of the response (request's + 1).
    pub netfn: u8,
    /// Request sequence number echoed by the BMC.
    pub rq_seq: u8,
    /// Command echoed by the BMC.
    pub cmd: u8,
    /// Completion code.
    pub cc: u8,
    /// Response data after the completion code.
    pub data: Vec<u8>,
}

/// Decode an IPMI LAN response (`rqAddr, netFn/rqLUN, chk1, rsAddr, rqSeq/rsLUN,
/// cmd, cc, data…, chk2`), checking both checksums and the addresses.
pub(crate) fn decode_response(m: &[u8]) -> Result<Response, &'static str> {
    if m.len() < 8 {
        return Err("IPMI message too short");
    }
    if !sums_to_zero(&m[0..3]) {
        return Err("IPMI header checksum mismatch");
    }
    if !sums_to_zero(&m[3..]) {
        return Err("IPMI data checksum mismatch");
    }
    if m[0] != CONSOLE_ADDR {
        return Err("IPMI response not addressed to us");
    }
    Ok(Response {
        netfn: m[1] >> 2,
        rq_seq: m[4] >> 2,
        cmd: m[5],
        cc: m[6],
        data: m[7..m.len() - 1].to_vec(),
    })
}

/// Wrap an IPMI message in RMCP + an IPMI 1.5 session header with no session and
/// no authentication (the only way Get Channel Authentication Capabilities travels
/// before a session exists).
pub(crate) fn wrap_v15(msg: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(14 + msg.len());
    p.extend_from_slice(&RMCP_HEADER);
    p.push(AUTH_TYPE_NONE);
    p.extend_from_slice(&0u32.to_le_bytes()); // session sequence
    p.extend_from_slice(&0u32.to_le_bytes()); // session id
    p.push(msg.len() as u8);
    p.extend_from_slice(msg);
    p
}

/// The IPMI message inside a sessionless IPMI 1.5 packet.
pub(crate) fn unwrap_v15(p: &[u8]) -> Result<&[u8], &'static str> {
    check_rmcp(p)?;
    if p.len() < 14 {
        return Err("IPMI 1.5 packet too short");
    }
    let auth = p[4];
    let (len_at, msg_at) = if auth == AUTH_TYPE_NONE {
        (13, 14)
    } else if auth == AUTH_TYPE_RMCP_PLUS {
        return Err("RMCP+ packet where IPMI 1.5 was expected");
    } else {
        // Authenticated IPMI 1.5 packets carry a 16-byte AuthCode before the length.
        (29, 30)
    };
    let len = *p.get(len_at).ok_or("IPMI 1.5 packet too short")? as usize;
    p.get(msg_at..msg_at + len)
        .ok_or("IPMI 1.5 length field longer than the packet")
}

fn check_rmcp(p: &[u8]) -> Result<(), &'static str> {
    if p.len() < 5 {
        return Err("packet too short for RMCP");
    }
    if p[0] != RMCP_HEADER[0] {
        return Err("not RMCP 1.0");
    }
    if p[3] & 0x1F != RMCP_HEADER[3] {
        return Err("not an IPMI-class RMCP message");
    }
    Ok(())
}

/// An RMCP+ packet without session (Open Session, RAKP): session id 0, sequence 0,
/// no integrity trailer.
pub(crate) fn wrap_plus_clear(payload_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = plus_header(payload_type, 0, 0, payload.len());
    p.extend_from_slice(payload);
    p
}

fn plus_header(payload_type: u8, session_id: u32, seq: u32, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(16 + len + 32);
    p.extend_from_slice(&RMCP_HEADER);
    p.push(AUTH_TYPE_RMCP_PLUS);
    p.push(payload_type);
    p.extend_from_slice(&session_id.to_le_bytes());
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend_from_slice(&(len as u16).to_le_bytes());
    p
}

/// Integrity pad length: the bytes from the auth type through the next header
/// (12 header bytes + payload + pad + pad length + next header) must be a multiple
/// of 4.
pub(crate) fn integrity_pad(payload_len: usize) -> usize {
    (4 - (12 + payload_len + 2) % 4) % 4
}

/// An authenticated RMCP+ packet: header, `payload` (already encrypted if the
/// session encrypts), integrity pad (`0xFF`…), pad length, next header and the
/// AuthCode that `authcode` computes over the bytes from the auth type through the
/// next header.
pub(crate) fn wrap_plus_authenticated<const N: usize>(
    payload_type: u8,
    session_id: u32,
    seq: u32,
    payload: &[u8],
    authcode: impl FnOnce(&[u8]) -> [u8; N],
) -> Vec<u8> {
    let mut p = plus_header(
        payload_type | PAYLOAD_AUTHENTICATED,
        session_id,
        seq,
        payload.len(),
    );
    p.extend_from_slice(payload);
    let pad = integrity_pad(payload.len());
    p.extend(std::iter::repeat_n(0xFF, pad));
    p.push(pad as u8);
    p.push(NEXT_HEADER);
    let code = authcode(&p[4..]);
    p.extend_from_slice(&code);
    p
}

/// A parsed RMCP+ packet (borrowing the datagram).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlusPacket<'a> {
    /// Payload type byte, flags included.
    pub payload_type: u8,
    /// Session id (ours, the remote console's, in packets from the BMC).
    pub session_id: u32,
    /// The sender's session sequence number.
    pub seq: u32,
    /// The payload (still encrypted if the encrypted bit is set).
    pub payload: &'a [u8],
    /// For authenticated packets: the bytes the AuthCode covers and the AuthCode.
    pub integrity: Option<(&'a [u8], &'a [u8])>,
}

impl PlusPacket<'_> {
    /// Payload type without the flag bits.
    pub fn kind(&self) -> u8 {
        self.payload_type & 0x3F
    }
}

/// Parse an RMCP+ packet; `authcode_len` is the AuthCode size of the negotiated
/// integrity algorithm (used only when the authenticated bit is set).
pub(crate) fn parse_plus(p: &[u8], authcode_len: usize) -> Result<PlusPacket<'_>, &'static str> {
    check_rmcp(p)?;
    if p[4] != AUTH_TYPE_RMCP_PLUS {
        return Err("not an RMCP+ packet");
    }
    if p.len() < 16 {
        return Err("RMCP+ packet too short");
    }
    let payload_type = p[5];
    if payload_type & 0x3F == 0x02 {
        return Err("OEM payloads are not supported");
    }
    let session_id = u32::from_le_bytes([p[6], p[7], p[8], p[9]]);
    let seq = u32::from_le_bytes([p[10], p[11], p[12], p[13]]);
    let len = u16::from_le_bytes([p[14], p[15]]) as usize;
    let end = 16 + len;
    let payload = p
        .get(16..end)
        .ok_or("RMCP+ payload length longer than the packet")?;
    let integrity = if payload_type & PAYLOAD_AUTHENTICATED != 0 {
        if p.len() < end + 2 + authcode_len {
            return Err("RMCP+ integrity trailer missing");
        }
        let code_at = p.len() - authcode_len;
        if p[code_at - 1] != NEXT_HEADER {
            return Err("RMCP+ trailer: bad next header");
        }
        let pad = p[code_at - 2] as usize;
        if end + pad + 2 != code_at || p[end..end + pad].iter().any(|b| *b != 0xFF) {
            return Err("RMCP+ trailer: bad integrity pad");
        }
        Some((&p[4..code_at], &p[code_at..]))
    } else {
        None
    };
    Ok(PlusPacket {
        payload_type,
        session_id,
        seq,
        payload,
        integrity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums() {
        // rsAddr 0x20, netFn App (0x06 << 2 = 0x18): 0x20 + 0x18 + 0xC8 = 0x100.
        assert_eq!(checksum(&[0x20, 0x18]), 0xC8);
        assert_eq!(checksum(&[]), 0);
        assert!(sums_to_zero(&[0x20, 0x18, 0xC8]));
    }

    #[test]
    fn get_channel_auth_caps_request_bytes() {
        // What ipmitool sends (ipmitool -I lanplus -vvvv), byte for byte.
        let m = encode_request(0x06, 0x38, 0, &[0x8E, 0x04]);
        assert_eq!(m, [0x20, 0x18, 0xC8, 0x81, 0x00, 0x38, 0x8E, 0x04, 0xB5]);
        let p = wrap_v15(&m);
        assert_eq!(
            p,
            [
                0x06, 0x00, 0xFF, 0x07, // RMCP
                0x00, 0, 0, 0, 0, 0, 0, 0, 0,    // auth none, seq 0, session 0
                0x09, // length
                0x20, 0x18, 0xC8, 0x81, 0x00, 0x38, 0x8E, 0x04, 0xB5
            ]
        );
    }

    #[test]
    fn request_sequence_is_six_bits() {
        let m = encode_request(0x00, 0x01, 0x3F, &[]);
        assert_eq!(m[4], 0xFC);
        let m = encode_request(0x00, 0x01, 0x41, &[]);
        assert_eq!(m[4], 0x04);
    }

    fn response(rq_seq: u8, cmd: u8, cc: u8, data: &[u8]) -> Vec<u8> {
        let mut m = vec![CONSOLE_ADDR, 0x07 << 2];
        m.push(checksum(&m));
        m.extend_from_slice(&[BMC_ADDR, rq_seq << 2, cmd, cc]);
        m.extend_from_slice(data);
        let c = checksum(&m[3..]);
        m.push(c);
        m
    }

    #[test]
    fn decodes_a_response_and_rejects_bad_checksums() {
        let m = response(5, 0x38, 0x00, &[0x01, 0x80]);
        let r = decode_response(&m).unwrap();
        assert_eq!(
            r,
            Response {
                netfn: 0x07,
                rq_seq: 5,
                cmd: 0x38,
                cc: 0,
                data: vec![0x01, 0x80]
            }
        );
        let mut bad = m.clone();
        bad[2] ^= 1;
        assert_eq!(decode_response(&bad), Err("IPMI header checksum mismatch"));
        let mut bad = m.clone();
        bad[7] ^= 1;
        assert_eq!(decode_response(&bad), Err("IPMI data checksum mismatch"));
        assert!(decode_response(&m[..6]).is_err());
    }

    #[test]
    fn v15_round_trip_and_garbage() {
        let m = response(0, 0x38, 0, &[1, 2, 3]);
        let p = wrap_v15(&m);
        assert_eq!(unwrap_v15(&p).unwrap(), &m[..]);
        assert!(unwrap_v15(&p[..p.len() - 1]).is_err());
        assert!(unwrap_v15(&[0x06, 0x00, 0xFF, 0x06, 0x00]).is_err(), "ASF");
        assert!(unwrap_v15(b"hello").is_err());
    }

    #[test]
    fn integrity_pad_makes_a_multiple_of_four() {
        for len in 0..64 {
            let pad = integrity_pad(len);
            assert!(pad < 4);
            assert_eq!((12 + len + pad + 2) % 4, 0, "len {len}");
        }
        // A 32-byte encrypted payload (IV + one block) needs 2 pad bytes.
        assert_eq!(integrity_pad(32), 2);
    }

    #[test]
    fn authenticated_packet_layout_and_parse() {
        let payload = [0xAAu8; 32];
        let mut covered = Vec::new();
        let p = wrap_plus_authenticated(
            PAYLOAD_ENCRYPTED | payload::IPMI,
            0x0102_0304,
            7,
            &payload,
            |b| {
                covered = b.to_vec();
                [0x55u8; 12]
            },
        );
        // 4 RMCP + 12 session header + 32 payload + 2 pad + 1 pad length + 1 next
        // header + 12 AuthCode.
        assert_eq!(p.len(), 4 + 12 + 32 + 2 + 2 + 12);
        assert_eq!(&p[..6], &[0x06, 0x00, 0xFF, 0x07, 0x06, 0xC0]);
        assert_eq!(&p[6..10], &[0x04, 0x03, 0x02, 0x01]);
        assert_eq!(&p[10..14], &[7, 0, 0, 0]);
        assert_eq!(&p[14..16], &[32, 0]);
        assert_eq!(&p[48..52], &[0xFF, 0xFF, 0x02, 0x07]);
        assert_eq!(covered, &p[4..52]);
        let parsed = parse_plus(&p, 12).unwrap();
        assert_eq!(parsed.payload_type, 0xC0);
        assert_eq!(parsed.kind(), payload::IPMI);
        assert_eq!(parsed.session_id, 0x0102_0304);
        assert_eq!(parsed.seq, 7);
        assert_eq!(parsed.payload, &payload[..]);
        let (signed, code) = parsed.integrity.unwrap();
        assert_eq!(signed, &covered[..]);
        assert_eq!(code, &[0x55; 12]);

        let mut bad = p.clone();
        bad[51] = 0x08;
        assert_eq!(parse_plus(&bad, 12), Err("RMCP+ trailer: bad next header"));
        let mut bad = p.clone();
        bad[50] = 3;
        assert_eq!(
            parse_plus(&bad, 12),
            Err("RMCP+ trailer: bad integrity pad")
        );
        assert!(parse_plus(&p[..40], 12).is_err());
    }

    #[test]
    fn clear_packet_round_trip() {
        let p = wrap_plus_clear(payload::OPEN_SESSION_REQUEST, &[1, 2, 3]);
        assert_eq!(
            p,
            [0x06, 0x00, 0xFF, 0x07, 0x06, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 1, 2, 3]
        );
        let parsed = parse_plus(&p, 12).unwrap();
        assert_eq!(parsed.kind(), payload::OPEN_SESSION_REQUEST);
        assert_eq!(parsed.payload, &[1, 2, 3]);
        assert!(parsed.integrity.is_none());
        // An IPMI 1.5 packet is not RMCP+.
        assert!(parse_plus(&wrap_v15(&[0; 8]), 12).is_err());
    }
}
