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

/// Decode a value, refusing trailing garbage (a sign of a torn or mixed-up record).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError(format!("decode: {e}")))?;
    if used != bytes.len() {
        return Err(CodecError(format!(
            "decode: {} trailing bytes after value",
            bytes.len() - used
        )));
    }
    Ok(value)
}
