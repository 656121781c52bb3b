//! DSSE envelopes (secure-systems-lab/dsse v1) signed with Ed25519.
//!
//! The signature covers the pre-authentication encoding (PAE) of the payload type and the
//! payload, so that neither can be swapped without breaking it. A verifier checks the signature
//! over the bytes it decoded and hands back exactly those bytes: what is parsed afterwards is
//! what was verified (DSSE `protocol.md`).

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};

use crate::core::keys::{keyid, SigningKey};

/// The most signatures a verifier will look at in one envelope (a bound on hostile input).
pub const MAX_SIGNATURES: usize = 16;

const STANDARD_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const URL_SAFE_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A DSSE envelope exactly as it is serialized in a bundle.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Envelope {
    /// Says how to interpret the payload; authenticated by the signature through PAE.
    pub payload_type: String,
    /// The payload, base64 (standard or URL-safe, as DSSE allows).
    pub payload: String,
    /// One or more signatures over PAE(payloadType, payload).
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// A hint naming the key (lowercase hex SHA-256 of the raw public key); never trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    /// The Ed25519 signature, base64.
    pub sig: String,
}

/// Why an envelope did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseError {
    /// The envelope carries no signature at all; nothing vouches for it.
    #[error("the envelope has no signatures")]
    NoSignatures,
    /// More signatures than a verifier will try.
    #[error("the envelope has {got} signatures, more than the limit of {limit}")]
    TooManySignatures {
        /// How many there were.
        got: usize,
        /// The limit.
        limit: usize,
    },
    /// The payload is not valid base64.
    #[error("the envelope payload is not valid base64")]
    PayloadNotBase64,
    /// No signature verified under any of the candidate keys.
    #[error("signature invalid: no signature verifies over the payload with the trusted key{}", keyid_hint(.keyid))]
    SignatureInvalid {
        /// The key id of a trusted key whose signature failed, if one was named.
        keyid: Option<String>,
    },
    /// No signature was made by any key the verifier knows.
    #[error(
        "key not trusted: no signature was made by a key in the trust store (key ids: {keyids})"
    )]
    UnknownKey {
        /// The key ids the envelope names, comma-separated.
        keyids: String,
    },
}

fn keyid_hint(keyid: &Option<String>) -> String {
    keyid
        .as_ref()
        .map(|k| format!(" {}", short_keyid(k)))
        .unwrap_or_default()
}

/// The first 16 hex digits of a key id, enough to name a key in messages.
pub fn short_keyid(keyid: &str) -> &str {
    keyid.get(..16).unwrap_or(keyid)
}

/// The DSSE v1 pre-authentication encoding: `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Decodes base64 in either alphabet, padded or not, as DSSE requires of verifiers.
pub fn decode_base64_any(text: &str) -> Option<Vec<u8>> {
    if text.contains(['-', '_']) {
        URL_SAFE_ANY_PAD.decode(text).ok()
    } else {
        STANDARD_ANY_PAD.decode(text).ok()
    }
}

/// Standard, padded base64: what byline writes.
pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Signs `payload` into a one-signature envelope.
pub fn sign_envelope(payload_type: &str, payload: &[u8], key: &SigningKey) -> Envelope {
    let signature = key.sign(&pae(payload_type, payload));
    Envelope {
        payload_type: payload_type.to_string(),
        payload: encode_base64(payload),
        signatures: vec![EnvelopeSignature {
            keyid: Some(key.keyid().to_string()),
            sig: encode_base64(&signature.to_bytes()),
        }],
    }
}

/// An envelope whose signature checked out: the key that made it and the exact payload bytes.
#[derive(Debug, Clone)]
pub struct VerifiedEnvelope<'k, K> {
    /// The candidate (as given by the caller) whose key verified a signature.
    pub signer: &'k K,
    /// The decoded payload: the only bytes that may be parsed.
    pub payload: Vec<u8>,
}

/// Verifies `envelope` against candidate keys and returns the first candidate that verifies a
/// signature (threshold one), with the payload bytes that were verified.
///
/// `key_of` maps a candidate to its Ed25519 key. The `keyid` hint never decides trust: every
/// candidate is tried against every signature, and verification is strict (`verify_strict`:
/// no small-order keys or R, canonical S).
pub fn verify_envelope<'k, K>(
    envelope: &Envelope,
    candidates: &'k [K],
    key_of: impl Fn(&K) -> &VerifyingKey,
) -> Result<VerifiedEnvelope<'k, K>, DsseError> {
    if envelope.signatures.is_empty() {
        return Err(DsseError::NoSignatures);
    }
    if envelope.signatures.len() > MAX_SIGNATURES {
        return Err(DsseError::TooManySignatures {
            got: envelope.signatures.len(),
            limit: MAX_SIGNATURES,
        });
    }
    let payload = decode_base64_any(&envelope.payload).ok_or(DsseError::PayloadNotBase64)?;
    let message = pae(&envelope.payload_type, &payload);
    let mut failed_trusted_keyid = None;
    for signature in &envelope.signatures {
        let Some(sig) = decode_base64_any(&signature.sig)
            .and_then(|bytes| <[u8; 64]>::try_from(bytes.as_slice()).ok())
            .map(|bytes| Signature::from_bytes(&bytes))
        else {
            // An undecodable signature that names a trusted key is that key's failed signature.
            if let Some(named) = &signature.keyid {
                if candidates.iter().any(|c| keyid(key_of(c)) == *named) {
                    failed_trusted_keyid = Some(named.clone());
                }
            }
            continue;
        };
        for candidate in candidates {
            let key = key_of(candidate);
            if key.verify_strict(&message, &sig).is_ok() {
                return Ok(VerifiedEnvelope {
                    signer: candidate,
                    payload,
                });
            }
            let id = keyid(key);
            if signature.keyid.as_deref() == Some(id.as_str()) {
                failed_trusted_keyid = Some(id);
            }
        }
    }
    if failed_trusted_keyid.is_some() {
        return Err(DsseError::SignatureInvalid {
            keyid: failed_trusted_keyid,
        });
    }
    let named: Vec<&str> = envelope
        .signatures
        .iter()
        .filter_map(|s| s.keyid.as_deref())
        .filter(|k| !k.is_empty())
        .map(short_keyid)
        .collect();
    if named.is_empty() {
        // Nothing names a key, so a failed signature and an unknown key look alike; say both.
        return Err(DsseError::SignatureInvalid { keyid: None });
    }
    Err(DsseError::UnknownKey {
        keyids: named.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_specification_example() {
        // protocol.md: PAE("http://example.com/HelloWorld", "hello world").
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn sign_then_verify_round_trips_and_type_is_authenticated() {
        let key = SigningKey::generate();
        let vk = key.verifying_key();
        let env = sign_envelope("application/x-test", b"body", &key);
        let ok = verify_envelope(&env, std::slice::from_ref(&vk), |k| k).unwrap();
        assert_eq!(ok.payload, b"body");
        let mut changed = env.clone();
        changed.payload_type = "application/x-other".into();
        assert!(matches!(
            verify_envelope(&changed, std::slice::from_ref(&vk), |k| k),
            Err(DsseError::SignatureInvalid { .. })
        ));
    }

    #[test]
    fn accepts_url_safe_unpadded_base64() {
        assert_eq!(decode_base64_any("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_base64_any("+/8=").unwrap(), vec![0xfb, 0xff]);
        assert!(decode_base64_any("+_8=").is_none());
    }
}
