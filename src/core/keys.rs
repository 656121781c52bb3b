//! Ed25519 keys: the secret signing key (never printed, zeroized on drop), key ids, and the
//! checks that keep weak public keys out of a trust store.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::hazmat::ExpandedSecretKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::VerifyingKey;
use sha2::Sha512;
use zeroize::Zeroizing;

use crate::core::digest::Sha256Digest;

/// Why a key could not be read or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The private key text is not an Ed25519 PKCS#8 PEM document.
    #[error("not an Ed25519 PKCS#8 PEM private key ({0})")]
    PrivateKeyPem(String),
    /// The public key text is not an Ed25519 SubjectPublicKeyInfo PEM document.
    #[error("not an Ed25519 public key PEM ({0})")]
    PublicKeyPem(String),
    /// The public key text is not base64 of 32 bytes.
    #[error("not a base64 Ed25519 public key of 32 bytes: {got:?}")]
    PublicKeyBase64 {
        /// What was given (shortened).
        got: String,
    },
    /// The key is weak: of small order, with a torsion component, or not canonically encoded.
    #[error("weak Ed25519 public key refused: {reason}")]
    Weak {
        /// Which property failed.
        reason: &'static str,
    },
}

/// A publisher's (or the log's) Ed25519 signing key.
///
/// It has no `Debug` or `Display`, so it cannot end up in a log line, and it is zeroized when
/// dropped (ed25519-dalek's `zeroize` feature, which also covers the expanded key).
///
/// Ed25519 signing starts by hashing the 32-byte seed into the secret scalar and the nonce
/// prefix (RFC 8032 §5.1.5), and every envelope names its key by the SHA-256 of the public key.
/// Both depend on the key alone, so they are computed once here rather than in every `Sign`
/// call; the signatures are byte for byte ed25519-dalek's own (the tests compare them).
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    expanded: ExpandedSecretKey,
    keyid: String,
}

impl SigningKey {
    fn new(key: ed25519_dalek::SigningKey) -> Self {
        SigningKey {
            expanded: ExpandedSecretKey::from(key.as_bytes()),
            keyid: keyid(&key.verifying_key()),
            key,
        }
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        SigningKey::new(ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng))
    }

    /// Reads a PKCS#8 PEM private key, as written by [`SigningKey::to_pkcs8_pem`].
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map(SigningKey::new)
            .map_err(|e| KeyError::PrivateKeyPem(e.to_string()))
    }

    /// The PKCS#8 PEM form; the returned string is zeroized when dropped.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        self.key
            .to_pkcs8_pem(Default::default())
            .map(|pem| Zeroizing::new(pem.to_string()))
            .map_err(|e| KeyError::PrivateKeyPem(e.to_string()))
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The key id of the public half ([`keyid`]), computed when the key was read.
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// A pure Ed25519 signature of `message` (RFC 8032), from the expanded key kept with it.
    pub(crate) fn sign(&self, message: &[u8]) -> ed25519_dalek::Signature {
        ed25519_dalek::hazmat::raw_sign::<Sha512>(
            &self.expanded,
            message,
            &self.key.verifying_key(),
        )
    }

    /// The dalek key, for signing inside this crate.
    pub(crate) fn inner(&self) -> &ed25519_dalek::SigningKey {
        &self.key
    }

    /// Builds a key from its 32-byte seed; for tests and vectors only.
    pub fn danger_from_seed(seed: &[u8; 32]) -> Self {
        SigningKey::new(ed25519_dalek::SigningKey::from_bytes(seed))
    }
}

/// The key id of DESIGN.md: lowercase hex SHA-256 of the raw 32-byte public key. A hint only.
pub fn keyid(key: &VerifyingKey) -> String {
    Sha256Digest::of(key.as_bytes()).to_hex()
}

/// The public key as standard base64 of its 32 bytes, the form trust stores hold.
pub fn public_key_to_base64(key: &VerifyingKey) -> String {
    STANDARD.encode(key.as_bytes())
}

/// Reads a public key from base64 of its 32 bytes, refusing weak keys.
pub fn public_key_from_base64(text: &str) -> Result<VerifyingKey, KeyError> {
    let malformed = || KeyError::PublicKeyBase64 {
        got: text.chars().take(60).collect(),
    };
    let bytes = STANDARD.decode(text.trim()).map_err(|_| malformed())?;
    let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| malformed())?;
    strong_public_key(&bytes)
}

/// The public key as a SubjectPublicKeyInfo PEM document (the `.pub` file).
pub fn public_key_to_pem(key: &VerifyingKey) -> Result<String, KeyError> {
    key.to_public_key_pem(Default::default())
        .map_err(|e| KeyError::PublicKeyPem(e.to_string()))
}

/// Reads a SubjectPublicKeyInfo PEM public key, refusing weak keys.
pub fn public_key_from_pem(pem: &str) -> Result<VerifyingKey, KeyError> {
    let key = VerifyingKey::from_public_key_pem(pem)
        .map_err(|e| KeyError::PublicKeyPem(e.to_string()))?;
    strong_public_key(key.as_bytes())
}

/// Accepts a 32-byte public key only if it is canonically encoded, not of small order, and has
/// no torsion component: such keys let one signature verify for several messages or keys.
pub fn strong_public_key(bytes: &[u8; 32]) -> Result<VerifyingKey, KeyError> {
    let point = CompressedEdwardsY(*bytes)
        .decompress()
        .ok_or(KeyError::Weak {
            reason: "not a point on the curve",
        })?;
    if point.compress().to_bytes() != *bytes {
        return Err(KeyError::Weak {
            reason: "non-canonical encoding",
        });
    }
    if point.is_small_order() {
        return Err(KeyError::Weak {
            reason: "small order",
        });
    }
    if !point.is_torsion_free() {
        return Err(KeyError::Weak {
            reason: "has a torsion component (mixed order)",
        });
    }
    VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::Weak {
        reason: "not a valid Ed25519 key",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_and_keyid() {
        let key = SigningKey::generate();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.verifying_key(), key.verifying_key());
        let id = keyid(&key.verifying_key());
        assert_eq!(id.len(), 64);
        let pub_pem = public_key_to_pem(&key.verifying_key()).unwrap();
        assert_eq!(public_key_from_pem(&pub_pem).unwrap(), key.verifying_key());
        let b64 = public_key_to_base64(&key.verifying_key());
        assert_eq!(public_key_from_base64(&b64).unwrap(), key.verifying_key());
    }

    /// The expanded key kept with a key signs exactly as ed25519-dalek does from the seed, and
    /// the kept key id is the public key's: a stale or wrong expansion would sign for another
    /// key, which verifiers would refuse.
    #[test]
    fn kept_expansion_and_keyid_match_the_key() {
        for seed in [
            [0u8; 32],
            [7u8; 32],
            *SigningKey::generate().inner().as_bytes(),
        ] {
            let key = SigningKey::danger_from_seed(&seed);
            let dalek = ed25519_dalek::SigningKey::from_bytes(&seed);
            for message in [&b""[..], b"byline", &[0xa5; 1500][..]] {
                let ours = key.sign(message);
                assert_eq!(ours, ed25519_dalek::Signer::sign(&dalek, message));
                assert!(dalek.verifying_key().verify_strict(message, &ours).is_ok());
            }
            assert_eq!(key.keyid(), keyid(&dalek.verifying_key()));
        }
        let pem = SigningKey::generate().to_pkcs8_pem().unwrap();
        let read = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(read.keyid(), keyid(&read.verifying_key()));
        assert_eq!(
            read.sign(b"x"),
            ed25519_dalek::Signer::sign(read.inner(), b"x")
        );
    }

    #[test]
    fn weak_keys_refused() {
        // The identity point (small order).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            strong_public_key(&identity),
            Err(KeyError::Weak { .. })
        ));
        // A non-canonical encoding of the identity (y = p + 1).
        let non_canonical: [u8; 32] = {
            let mut b = [0xffu8; 32];
            b[0] = 0xee;
            b[31] = 0x7f;
            b
        };
        assert!(strong_public_key(&non_canonical).is_err());
        // A mixed-order key: a real key plus a point of order 8.
        let real = SigningKey::generate().verifying_key();
        let torsion = curve25519_dalek::constants::EIGHT_TORSION[1];
        let mixed = (CompressedEdwardsY(real.to_bytes()).decompress().unwrap() + torsion)
            .compress()
            .to_bytes();
        assert!(matches!(
            strong_public_key(&mixed),
            Err(KeyError::Weak { .. })
        ));
        assert!(strong_public_key(&real.to_bytes()).is_ok());
    }
}
