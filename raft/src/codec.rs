//! bincode 2 (serde mode) encoding for log entries, votes, snapshots and RPC bodies.
//!
//! One place so that every byte vigil writes to disk or to the wire uses the same
//! configuration. Note: bincode varints do not sort, so these bytes are never used
//! as sled keys (keys are big-endian integers).

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Encoding or decoding failed; the message says what and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encode a value.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError(format!("encode: {e}")))
}

/// The most bytes one decode may claim (1 GiB): a length prefix beyond it is an error,
/// not an allocation. Far above any real entry or snapshot; tighter per-use limits
/// (RPC bodies, votes) are issue 12's work.
pub const DECODE_LIMIT: usize = 1 << 30;

/// Decode a value, refusing trailing garbage (a sign of a torn or mixed-up record) and
/// any length prefix beyond [`DECODE_LIMIT`] (an untrusted body must not make the
/// process allocate what it claims).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config().with_limit::<DECODE_LIMIT>())
            .map_err(|e| CodecError(format!("decode: {e}")))?;
    if used != bytes.len() {
        return Err(CodecError(format!(
            "decode: {} trailing bytes after value",
            bytes.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_length_prefix_is_an_error_not_an_abort() {
        // A batch of one command whose first string claims 2^45 bytes, in 11 bytes.
        let mut body = vec![1u8]; // one element
        body.push(0); // enum variant 0
        body.push(253); // varint u64 follows
        body.extend_from_slice(&(1u64 << 45).to_le_bytes());
        let r: Result<Vec<(u32, String)>, _> = decode(&body);
        assert!(r.is_err(), "{r:?}");
        let ok: Vec<String> = decode(&encode(&vec!["x".to_string()]).unwrap()).unwrap();
        assert_eq!(ok, vec!["x".to_string()]);
    }
}
