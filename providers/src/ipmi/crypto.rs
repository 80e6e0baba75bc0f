//! Cipher suite 3, the one suite this driver speaks: RAKP-HMAC-SHA1 authentication,
//! HMAC-SHA1-96 integrity and AES-CBC-128 confidentiality (IPMI 2.0 sections 13.28
//! to 13.32).
//!
//! The HMACs, the session integrity key (SIK) and its derived keys K1 / K2 are
//! computed here from the RAKP exchange's values, with RustCrypto's `hmac`, `sha1`,
//! `aes` and `cbc` crates (no hand-rolled primitive). All secret comparisons go
//! through `hmac`'s constant-time `verify_*`. Keys never appear in `Debug` output.

use std::fmt;

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;
type AesCbcEnc = cbc::Encryptor<aes::Aes128>;
type AesCbcDec = cbc::Decryptor<aes::Aes128>;

/// HMAC-SHA1 output length.
pub(crate) const SHA1_LEN: usize = 20;
/// HMAC-SHA1-96 AuthCode length (and the RAKP 4 integrity check value length).
pub(crate) const AUTHCODE_LEN: usize = 12;
/// AES block (and IV) length.
pub(crate) const AES_BLOCK: usize = 16;

fn mac(key: &[u8], parts: &[&[u8]]) -> HmacSha1 {
    // HMAC takes keys of any length: cannot fail.
    let mut m = HmacSha1::new_from_slice(key).expect("HMAC accepts any key length");
    for p in parts {
        m.update(p);
    }
    m
}

/// HMAC-SHA1 of the concatenated `parts`.
pub(crate) fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; SHA1_LEN] {
    mac(key, parts).finalize().into_bytes().into()
}

/// Constant-time check of a full (20-byte) or left-truncated (e.g. 12-byte)
/// HMAC-SHA1 of `parts`.
pub(crate) fn verify_hmac_sha1(key: &[u8], parts: &[&[u8]], expected: &[u8]) -> bool {
    let m = mac(key, parts);
    if expected.len() == SHA1_LEN {
        m.verify_slice(expected).is_ok()
    } else {
        m.verify_truncated_left(expected).is_ok()
    }
}

/// The values both sides know after RAKP 1 and 2, from which every RAKP HMAC and the
/// session keys are computed (IPMI 2.0 section 13.31).
#[derive(Clone)]
pub(crate) struct Rakp<'a> {
    /// Our (remote console) session id, `SIDm`.
    pub sid_m: u32,
    /// The BMC's (managed system) session id, `SIDc`.
    pub sid_c: u32,
    /// Our random number, `Rm`.
    pub rand_m: [u8; 16],
    /// The BMC's random number, `Rc`.
    pub rand_c: [u8; 16],
    /// The BMC's GUID, `GUIDc`, as it sent it.
    pub guid_c: [u8; 16],
    /// The role byte of RAKP 1 (`ROLEm`: privilege and lookup bit), as sent.
    pub role: u8,
    /// User name, `UNAMEm` (at most 16 bytes).
    pub user: &'a [u8],
}

impl fmt::Debug for Rakp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rakp")
            .field("sid_m", &format_args!("{:#010x}", self.sid_m))
            .field("sid_c", &format_args!("{:#010x}", self.sid_c))
            .field("role", &format_args!("{:#04x}", self.role))
            .finish_non_exhaustive()
    }
}

impl Rakp<'_> {
    fn name_part(&self) -> [u8; 2] {
        [self.role, self.user.len() as u8]
    }

    /// What the BMC's RAKP 2 key exchange AuthCode covers:
    /// `SIDm | SIDc | Rm | Rc | GUIDc | ROLEm | ULENGTHm | UNAMEm`.
    fn rakp2_input(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(58 + self.user.len());
        v.extend_from_slice(&self.sid_m.to_le_bytes());
        v.extend_from_slice(&self.sid_c.to_le_bytes());
        v.extend_from_slice(&self.rand_m);
        v.extend_from_slice(&self.rand_c);
        v.extend_from_slice(&self.guid_c);
        v.extend_from_slice(&self.name_part());
        v.extend_from_slice(self.user);
        v
    }

    /// Whether `code` (from RAKP 2) is `HMAC(Kuid, rakp2 input)`: proof that the
    /// BMC knows the same password.
    pub fn verify_rakp2(&self, kuid: &[u8], code: &[u8]) -> bool {
        code.len() == SHA1_LEN && verify_hmac_sha1(kuid, &[&self.rakp2_input()], code)
    }

    /// RAKP 3 AuthCode we send: `HMAC(Kuid, Rc | SIDm | ROLEm | ULENGTHm | UNAMEm)`.
    pub fn rakp3(&self, kuid: &[u8]) -> [u8; SHA1_LEN] {
        hmac_sha1(
            kuid,
            &[
                &self.rand_c,
                &self.sid_m.to_le_bytes(),
                &self.name_part(),
                self.user,
            ],
        )
    }

    /// Session integrity key: `HMAC(Kg, Rm | Rc | ROLEm | ULENGTHm | UNAMEm)` where
    /// `Kg` is the BMC key, or the user's password when the BMC has none.
    pub fn sik(&self, kg: &[u8]) -> [u8; SHA1_LEN] {
        hmac_sha1(
            kg,
            &[&self.rand_m, &self.rand_c, &self.name_part(), self.user],
        )
    }

    /// Whether `icv` (from RAKP 4) is `HMAC(SIK, Rm | SIDc | GUIDc)` truncated to 12
    /// bytes.
    pub fn verify_rakp4(&self, sik: &[u8; SHA1_LEN], icv: &[u8]) -> bool {
        icv.len() == AUTHCODE_LEN
            && verify_hmac_sha1(
                sik,
                &[&self.rand_m, &self.sid_c.to_le_bytes(), &self.guid_c],
                icv,
            )
    }
}

/// The keys of an established session: K1 (integrity) and the first 16 bytes of K2
/// (AES). `Debug` shows none of them.
#[derive(Clone)]
pub(crate) struct SessionKeys {
    k1: [u8; SHA1_LEN],
    aes: [u8; AES_BLOCK],
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

impl SessionKeys {
    /// `K1 = HMAC(SIK, 0x01 × 20)`, `K2 = HMAC(SIK, 0x02 × 20)`.
    pub fn derive(sik: &[u8; SHA1_LEN]) -> SessionKeys {
        let k1 = hmac_sha1(sik, &[&[0x01; SHA1_LEN]]);
        let k2 = hmac_sha1(sik, &[&[0x02; SHA1_LEN]]);
        let mut aes = [0u8; AES_BLOCK];
        aes.copy_from_slice(&k2[..AES_BLOCK]);
        SessionKeys { k1, aes }
    }

    /// HMAC-SHA1-96 AuthCode of `bytes` (auth type through next header).
    pub fn authcode(&self, bytes: &[u8]) -> [u8; AUTHCODE_LEN] {
        let full = hmac_sha1(&self.k1, &[bytes]);
        let mut code = [0u8; AUTHCODE_LEN];
        code.copy_from_slice(&full[..AUTHCODE_LEN]);
        code
    }

    /// Constant-time check of a received AuthCode.
    pub fn verify_authcode(&self, bytes: &[u8], code: &[u8]) -> bool {
        code.len() == AUTHCODE_LEN && verify_hmac_sha1(&self.k1, &[bytes], code)
    }

    /// AES-CBC-128 payload: `IV | E(K2, plain | 1, 2, … n | n)` with `n` in 0..=15
    /// chosen so that the plaintext and its pad fill whole blocks.
    pub fn encrypt(&self, plain: &[u8], iv: [u8; AES_BLOCK]) -> Vec<u8> {
        let mut buf = pad_confidentiality(plain);
        let len = buf.len();
        let ct = AesCbcEnc::new(&self.aes.into(), &iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
            .expect("padded to whole blocks")
            .to_vec();
        let mut out = Vec::with_capacity(AES_BLOCK + ct.len());
        out.extend_from_slice(&iv);
        out.extend_from_slice(&ct);
        out
    }

    /// Inverse of [`SessionKeys::encrypt`]; checks the confidentiality pad.
    pub fn decrypt(&self, payload: &[u8]) -> Result<Vec<u8>, &'static str> {
        if payload.len() < 2 * AES_BLOCK || payload.len() % AES_BLOCK != 0 {
            return Err("encrypted payload is not IV + whole AES blocks");
        }
        let (iv, ct) = payload.split_at(AES_BLOCK);
        let mut iv_arr = [0u8; AES_BLOCK];
        iv_arr.copy_from_slice(iv);
        let mut buf = ct.to_vec();
        let plain = AesCbcDec::new(&self.aes.into(), &iv_arr.into())
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| "AES-CBC decryption failed")?;
        unpad_confidentiality(plain).map(|p| p.to_vec())
    }
}

/// IPMI confidentiality pad (section 13.29): bytes `1, 2, … n` then the pad length
/// `n`, so that the result is a whole number of AES blocks.
pub(crate) fn pad_confidentiality(plain: &[u8]) -> Vec<u8> {
    let n = AES_BLOCK - 1 - plain.len() % AES_BLOCK;
    let mut v = Vec::with_capacity(plain.len() + n + 1);
    v.extend_from_slice(plain);
    v.extend(1..=n as u8);
    v.push(n as u8);
    v
}

/// Strip and check an IPMI confidentiality pad.
pub(crate) fn unpad_confidentiality(padded: &[u8]) -> Result<&[u8], &'static str> {
    let (&n, rest) = padded.split_last().ok_or("empty decrypted payload")?;
    let n = n as usize;
    if n >= AES_BLOCK || n > rest.len() {
        return Err("bad confidentiality pad length");
    }
    let (plain, pad) = rest.split_at(rest.len() - n);
    if pad.iter().enumerate().any(|(i, b)| *b as usize != i + 1) {
        return Err("bad confidentiality pad bytes");
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        // RFC 2202 test case 2.
        let code = hmac_sha1(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            code.to_vec(),
            hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        );
        assert!(verify_hmac_sha1(
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &code
        ));
        assert!(verify_hmac_sha1(
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &code[..12]
        ));
        assert!(!verify_hmac_sha1(
            b"Jeff",
            &[b"what do ya want for nothing?"],
            &code
        ));
    }

    /// A RAKP exchange with fixed values. The expected HMACs were computed
    /// independently with Python's `hmac` / `hashlib` from the same byte strings.
    fn sample() -> Rakp<'static> {
        Rakp {
            sid_m: 0x1122_3344,
            sid_c: 0x0000_0204,
            rand_m: core::array::from_fn(|i| i as u8),
            rand_c: core::array::from_fn(|i| 0xF0 - i as u8),
            guid_c: core::array::from_fn(|i| 0xA0 + i as u8),
            role: 0x14, // administrator, name-only lookup
            user: b"admin",
        }
    }

    #[test]
    fn rakp_hmacs_and_session_keys_match_independent_vectors() {
        let r = sample();
        let kuid = b"password";
        let rakp2 = hmac_sha1(kuid, &[&r.rakp2_input()]);
        assert_eq!(rakp2.to_vec(), hex(RAKP2_HMAC));
        assert!(r.verify_rakp2(kuid, &rakp2));
        assert!(!r.verify_rakp2(b"not-the-password", &rakp2));
        assert!(!r.verify_rakp2(kuid, &rakp2[..12]));

        assert_eq!(r.rakp3(kuid).to_vec(), hex(RAKP3_HMAC));

        let sik = r.sik(kuid);
        assert_eq!(sik.to_vec(), hex(SIK));
        let keys = SessionKeys::derive(&sik);
        assert_eq!(keys.k1.to_vec(), hex(K1));
        assert_eq!(keys.aes.to_vec(), hex(&K2[..32]));

        let icv = &hmac_sha1(&sik, &[&r.rand_m, &r.sid_c.to_le_bytes(), &r.guid_c])[..12];
        assert_eq!(icv.to_vec(), hex(RAKP4_ICV));
        assert!(r.verify_rakp4(&sik, icv));
        let mut bad = icv.to_vec();
        bad[0] ^= 1;
        assert!(!r.verify_rakp4(&sik, &bad));

        assert_eq!(keys.authcode(b"abc").to_vec(), hex(AUTHCODE_ABC));
        assert!(keys.verify_authcode(b"abc", &hex(AUTHCODE_ABC)));
        assert!(!keys.verify_authcode(b"abd", &hex(AUTHCODE_ABC)));
    }

    #[test]
    fn confidentiality_pad() {
        assert_eq!(pad_confidentiality(&[]), {
            let mut v: Vec<u8> = (1..=15).collect();
            v.push(15);
            v
        });
        let p = pad_confidentiality(&[0xAA; 15]);
        assert_eq!(p.len(), 16);
        assert_eq!(p[15], 0);
        let p = pad_confidentiality(&[0xAA; 8]);
        assert_eq!(&p[8..], &[1, 2, 3, 4, 5, 6, 7, 7]);
        for len in 0..40 {
            let plain = vec![0x5A; len];
            let padded = pad_confidentiality(&plain);
            assert_eq!(padded.len() % AES_BLOCK, 0);
            assert_eq!(unpad_confidentiality(&padded).unwrap(), &plain[..]);
        }
        assert!(unpad_confidentiality(&[0xAA, 1, 2, 3, 3, 0]).is_ok());
        assert_eq!(
            unpad_confidentiality(&[0xAA, 1, 9, 2]),
            Err("bad confidentiality pad bytes")
        );
        assert_eq!(
            unpad_confidentiality(&[0xAA, 16]),
            Err("bad confidentiality pad length")
        );
    }

    #[test]
    fn aes_cbc_matches_openssl_and_round_trips() {
        let keys = SessionKeys::derive(&sample().sik(b"password"));
        let iv: [u8; 16] = core::array::from_fn(|i| 0x10 + i as u8);
        // An IPMI Get Chassis Status request message (7 bytes).
        let plain = [0x20, 0x00, 0xE0, 0x81, 0x04, 0x01, 0x7A];
        let payload = keys.encrypt(&plain, iv);
        assert_eq!(&payload[..16], &iv);
        assert_eq!(payload[16..].to_vec(), hex(AES_CT));
        assert_eq!(keys.decrypt(&payload).unwrap(), plain);
        let mut bad = payload.clone();
        bad[20] ^= 1;
        assert!(keys.decrypt(&bad).is_err());
        assert!(keys.decrypt(&payload[..20]).is_err());
        let s = format!("{keys:?} {:?}", sample());
        assert!(!s.contains("k1") && !s.contains("rand"), "{s}");
    }

    // Vectors (see `sample`), computed with Python 3:
    //   kuid = b"password"; role/ulen/user = b"\x14\x05admin"
    //   rakp2 = hmac(kuid, sid_m_le + sid_c_le + rm + rc + guid + role..user, sha1)
    //   rakp3 = hmac(kuid, rc + sid_m_le + role..user, sha1)
    //   sik = hmac(kuid, rm + rc + role..user, sha1)
    //   k1 = hmac(sik, b"\x01" * 20, sha1); k2 = hmac(sik, b"\x02" * 20, sha1)
    //   icv = hmac(sik, rm + sid_c_le + guid, sha1)[:12]
    //   authcode("abc") = hmac(k1, b"abc", sha1)[:12]
    // and `openssl enc -aes-128-cbc -nopad -K k2[:16] -iv 101112…1f` of the
    // plaintext above padded with 01..08 08.
    const RAKP2_HMAC: &str = "e591255fa470448d27eafbfa21fd6a88f370e512";
    const RAKP3_HMAC: &str = "5b5e2716535556fdfa42eee6e0908936088c66ff";
    const SIK: &str = "7500662ef32b557f1c08d97564125bb3518247e2";
    const K1: &str = "5a3ae7ac28d75843609c293c26664c92164ea5f0";
    const K2: &str = "62832ee51ac33accd766ab7d36ef80cf24ff198d";
    const RAKP4_ICV: &str = "6a6c417cd0238ab6f69e7f81";
    const AUTHCODE_ABC: &str = "c6b9aa98cc1ab0d51c651cae";
    const AES_CT: &str = "5496dd0628c3ee0d5f0f15ac4c8418f6";
}
