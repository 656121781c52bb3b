//! C2SP signed notes (c2sp.org/signed-note) and transparency-log checkpoints
//! (c2sp.org/tlog-checkpoint).
//!
//! Checkpoints are how the log commits to its state, and signed notes are the
//! envelope that carries them: using the common C2SP formats lets existing
//! witnesses, monitors and verifiers check this log without bespoke code.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::core::merkle::Hash;

/// Largest note [`open_note`] and [`sign_note`] accept, in bytes, so a hostile
/// peer cannot make a verifier hash or scan unbounded input.
pub const MAX_NOTE_LEN: usize = 1 << 20;

/// Most signature lines [`open_note`] accepts (the spec requires at least 16),
/// so a hostile note cannot make a verifier loop over signatures forever.
pub const MAX_SIGNATURES: usize = 100;

/// Signature type byte for Ed25519 in key ids and verifier keys.
const ED25519_TYPE: u8 = 0x01;
/// Every signature line starts with an em dash (U+2014) and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// Length of the key-id prefix of an encoded signature.
const KEY_HASH_LEN: usize = 4;

/// Why a verifier key, a note or a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key name breaks the signed-note rules.
    #[error("key name {name:?} is invalid: {reason}")]
    InvalidKeyName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// A verifier key string is not `<name>+<8 hex digits>+<base64 key>`.
    #[error("verifier key is malformed: {reason}; expected <name>+<8 hex digits>+<base64 of 0x01 || 32-byte Ed25519 key>")]
    MalformedVerifierKey {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A verifier key uses a signature type this log does not support.
    #[error("verifier key has signature type 0x{got:02x}, but only Ed25519 (0x01) is supported")]
    UnsupportedKeyType {
        /// The type byte found.
        got: u8,
    },

    /// The public key bytes are not a usable Ed25519 key.
    #[error("verifier key for {name:?} is not a usable Ed25519 public key: {reason}")]
    InvalidPublicKey {
        /// The key's name.
        name: String,
        /// Why it cannot be used.
        reason: &'static str,
    },

    /// The key id in a verifier key does not belong to the name and key.
    #[error("verifier key for {name:?} carries key id {got:08x} but its name and key give {expected:08x}; the key string is corrupted or was edited")]
    KeyHashMismatch {
        /// The key's name.
        name: String,
        /// The id computed from the name and key.
        expected: u32,
        /// The id written in the key string.
        got: u32,
    },

    /// The text to sign is not a valid note text.
    #[error("note text is invalid: {reason}")]
    InvalidText {
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// The note holds an ASCII control character other than newline.
    #[error("note has control character 0x{byte:02x} at byte {offset}; notes may contain no control characters other than newline")]
    ControlCharacter {
        /// The offending byte.
        byte: u8,
        /// Where it is, in bytes from the start.
        offset: usize,
    },

    /// The note is larger than this implementation accepts.
    #[error("note is {got} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// The limit, [`MAX_NOTE_LEN`].
        limit: usize,
        /// The note's size.
        got: usize,
    },

    /// The note has no blank line separating text from signatures.
    #[error("note has no signature block: text and signatures must be separated by a blank line")]
    MissingSignatureBlock,

    /// A line of the signature block is not `— <name> <base64>`.
    #[error("signature line {line} is malformed: {reason}")]
    MalformedSignatureLine {
        /// 1-based line number within the signature block.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The note has more signatures than this implementation accepts.
    #[error("note has {got} signature lines, over the limit of {limit}")]
    TooManySignatures {
        /// The limit, [`MAX_SIGNATURES`].
        limit: usize,
        /// The number of signature lines.
        got: usize,
    },

    /// Two different trusted keys share a name and key id, so a signature cannot be attributed.
    #[error("two different trusted keys are named {name:?} with key id {key_hash:08x}; remove one from the trusted set")]
    AmbiguousVerifier {
        /// The shared name.
        name: String,
        /// The shared key id.
        key_hash: u32,
    },

    /// A signature from a trusted key does not verify: the note was altered or forged.
    #[error("signature by trusted key {name:?} ({key_hash:08x}) does not verify; the note was altered or forged")]
    InvalidSignature {
        /// The key's name.
        name: String,
        /// The key's id.
        key_hash: u32,
    },

    /// No signature on the note comes from a trusted key.
    #[error("note carries no signature from a trusted key ({unknown} signature(s) from unknown keys were ignored)")]
    NoTrustedSignature {
        /// How many signatures came from keys not in the trusted set.
        unknown: usize,
    },

    /// The checkpoint text breaks the tlog-checkpoint format.
    #[error("checkpoint is malformed: {reason}")]
    MalformedCheckpoint {
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// The checkpoint's tree size line is not a canonical decimal u64.
    #[error("checkpoint tree size {got:?} is invalid: {reason}")]
    InvalidTreeSize {
        /// The line as found.
        got: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// The checkpoint's root hash line is not the standard base64 of 32 bytes.
    #[error("checkpoint root hash {got:?} is invalid: {reason}")]
    InvalidRootHash {
        /// The line as found.
        got: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
}

/// A trusted public key for opening notes: what a verifier configures to
/// decide whose signatures count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_hash: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Reads a verifier key in the C2SP form
    /// `<name>+<8 hex key id>+<base64 of 0x01 || 32-byte key>`, as published
    /// by logs and witnesses.
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        // Names cannot contain '+', so the first two '+' are the separators;
        // the base64 key may contain '+' itself.
        let mut parts = s.splitn(3, '+');
        let (Some(name), Some(hash_hex), Some(key_b64)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::MalformedVerifierKey {
                reason: "it does not have three '+'-separated parts",
            });
        };
        validate_key_name(name)?;
        if hash_hex.len() != 8 || !hash_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NoteError::MalformedVerifierKey {
                reason: "the key id is not exactly 8 hex digits",
            });
        }
        let got =
            u32::from_str_radix(hash_hex, 16).map_err(|_| NoteError::MalformedVerifierKey {
                reason: "the key id is not exactly 8 hex digits",
            })?;
        let raw = BASE64
            .decode(key_b64)
            .map_err(|_| NoteError::MalformedVerifierKey {
                reason: "the key is not standard padded base64",
            })?;
        let Some((&key_type, key_bytes)) = raw.split_first() else {
            return Err(NoteError::MalformedVerifierKey {
                reason: "the key is empty",
            });
        };
        if key_type != ED25519_TYPE {
            return Err(NoteError::UnsupportedKeyType { got: key_type });
        }
        let key_bytes: &[u8; 32] =
            key_bytes
                .try_into()
                .map_err(|_| NoteError::MalformedVerifierKey {
                    reason: "an Ed25519 key is 32 bytes after the type byte",
                })?;
        let key = VerifyingKey::from_bytes(key_bytes).map_err(|_| NoteError::InvalidPublicKey {
            name: name.to_owned(),
            reason: "the bytes are not a valid curve point",
        })?;
        let verifier = Self::from_key(name, &key)?;
        if verifier.key_hash != got {
            return Err(NoteError::KeyHashMismatch {
                name: name.to_owned(),
                expected: verifier.key_hash,
                got,
            });
        }
        Ok(verifier)
    }

    /// Builds the verifier for a key this service holds, e.g. to publish the
    /// log's own verifier key or to open notes it signed itself.
    pub fn from_key(name: &str, key: &VerifyingKey) -> Result<Self, NoteError> {
        validate_key_name(name)?;
        if key.is_weak() {
            return Err(NoteError::InvalidPublicKey {
                name: name.to_owned(),
                reason: "it is a small-order (weak) key that no signature should be accepted under",
            });
        }
        Ok(Self {
            name: name.to_owned(),
            key_hash: key_hash(name, key),
            key: *key,
        })
    }

    /// The key name that signature lines carry.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id that, with the name, picks this key for a signature.
    pub fn key_hash(&self) -> u32 {
        self.key_hash
    }

    /// The Ed25519 public key signatures are checked against.
    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }
}

impl fmt::Display for NoteVerifier {
    /// The C2SP verifier key string, the form in which keys are published and configured.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = Vec::with_capacity(33);
        raw.push(ED25519_TYPE);
        raw.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_hash,
            BASE64.encode(raw)
        )
    }
}

/// A note whose signatures were checked, as [`open_note`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedNote {
    /// The signed text, through its final newline.
    pub text: String,
    /// The trusted keys whose signatures verified, each once, in note order.
    pub signers: Vec<NoteVerifier>,
    /// Signatures from keys not in the trusted set, which were not checked
    /// (e.g. witness cosignatures a caller may want to count separately).
    pub unknown: Vec<UnknownSignature>,
}

/// A signature [`open_note`] ignored because its key is not trusted, kept so
/// callers can report or count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSignature {
    /// The key name on the signature line.
    pub name: String,
    /// The key id in the signature.
    pub key_hash: u32,
}

/// Signs `text` as a C2SP signed note under key `name`, so anyone holding the
/// matching [`NoteVerifier`] can check it.
pub fn sign_note(text: &str, name: &str, key: &SigningKey) -> Result<String, NoteError> {
    validate_key_name(name)?;
    if text.is_empty() {
        return Err(NoteError::InvalidText {
            reason: "it is empty",
        });
    }
    if !text.ends_with('\n') {
        return Err(NoteError::InvalidText {
            reason: "it must end with a newline",
        });
    }
    check_control_characters(text)?;

    let verifying = key.verifying_key();
    let signature = key.sign(text.as_bytes());
    let mut encoded = Vec::with_capacity(KEY_HASH_LEN + 64);
    encoded.extend_from_slice(&key_hash(name, &verifying).to_be_bytes());
    encoded.extend_from_slice(&signature.to_bytes());
    let note = format!(
        "{text}\n{SIGNATURE_PREFIX}{name} {}\n",
        BASE64.encode(encoded)
    );
    if note.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLarge {
            limit: MAX_NOTE_LEN,
            got: note.len(),
        });
    }
    Ok(note)
}

/// Checks a signed note against the trusted keys and returns its text, so the
/// text is only ever used once a trusted signature is known to cover it.
///
/// Signatures from unknown keys are ignored; a bad signature from a trusted
/// key rejects the whole note; at least one trusted signature must verify.
pub fn open_note(note: &str, verifiers: &[NoteVerifier]) -> Result<OpenedNote, NoteError> {
    if note.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLarge {
            limit: MAX_NOTE_LEN,
            got: note.len(),
        });
    }
    check_control_characters(note)?;

    // The text keeps its final newline; the blank line is the separator.
    let Some(split) = note.rfind("\n\n") else {
        return Err(NoteError::MissingSignatureBlock);
    };
    // Invariant: `split` indexes an ASCII '\n', so `split + 1` is a char
    // boundary within the string and split_at cannot panic.
    let (text, rest) = note.split_at(split + 1);
    let block = rest.strip_prefix('\n').unwrap_or(rest);
    if block.is_empty() {
        return Err(NoteError::MissingSignatureBlock);
    }
    let Some(block) = block.strip_suffix('\n') else {
        return Err(NoteError::MalformedSignatureLine {
            line: block.split('\n').count(),
            reason: "the last signature line does not end with a newline",
        });
    };
    let count = block.split('\n').count();
    if count > MAX_SIGNATURES {
        return Err(NoteError::TooManySignatures {
            limit: MAX_SIGNATURES,
            got: count,
        });
    }

    let mut signers: Vec<NoteVerifier> = Vec::new();
    let mut unknown = Vec::new();
    for (i, line) in block.split('\n').enumerate() {
        let (name, key_hash, signature) = parse_signature_line(i + 1, line)?;
        let mut candidates = verifiers
            .iter()
            .filter(|v| v.name == name && v.key_hash == key_hash);
        let Some(verifier) = candidates.next() else {
            unknown.push(UnknownSignature {
                name: name.to_owned(),
                key_hash,
            });
            continue;
        };
        if candidates.any(|other| other.key != verifier.key) {
            return Err(NoteError::AmbiguousVerifier {
                name: name.to_owned(),
                key_hash,
            });
        }
        let invalid = || NoteError::InvalidSignature {
            name: name.to_owned(),
            key_hash,
        };
        let signature = Signature::from_slice(&signature).map_err(|_| invalid())?;
        verifier
            .key
            .verify_strict(text.as_bytes(), &signature)
            .map_err(|_| invalid())?;
        if !signers.contains(verifier) {
            signers.push(verifier.clone());
        }
    }
    if signers.is_empty() {
        return Err(NoteError::NoTrustedSignature {
            unknown: unknown.len(),
        });
    }
    Ok(OpenedNote {
        text: text.to_owned(),
        signers,
        unknown,
    })
}

/// Splits `— <name> <base64>` into the name, key id and signature bytes.
fn parse_signature_line(line_no: usize, line: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    let malformed = |reason| NoteError::MalformedSignatureLine {
        line: line_no,
        reason,
    };
    let body = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or_else(|| malformed("it does not start with an em dash (U+2014) and a space"))?;
    let (name, b64) = body
        .split_once(' ')
        .ok_or_else(|| malformed("it has no space between key name and signature"))?;
    if validate_key_name(name).is_err() {
        return Err(malformed(
            "the key name is empty or contains '+', whitespace or a control character",
        ));
    }
    let raw = BASE64
        .decode(b64)
        .map_err(|_| malformed("the signature is not standard padded base64"))?;
    match raw.split_first_chunk::<KEY_HASH_LEN>() {
        Some((id, signature)) if !signature.is_empty() => {
            Ok((name, u32::from_be_bytes(*id), signature.to_vec()))
        }
        _ => Err(malformed(
            "the signature is too short to hold a key id and a signature",
        )),
    }
}

/// The C2SP key id: the first 4 bytes of SHA-256(name || "\n" || 0x01 || key).
fn key_hash(name: &str, key: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519_TYPE]);
    h.update(key.as_bytes());
    let [a, b, c, d, ..]: [u8; 32] = h.finalize().into();
    u32::from_be_bytes([a, b, c, d])
}

/// Enforces the signed-note rules for key names.
fn validate_key_name(name: &str) -> Result<(), NoteError> {
    let invalid = |reason| {
        Err(NoteError::InvalidKeyName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.contains('+') {
        return invalid("it contains '+'");
    }
    if name.chars().any(char::is_whitespace) {
        return invalid("it contains whitespace");
    }
    if name.chars().any(char::is_control) {
        return invalid("it contains a control character");
    }
    Ok(())
}

/// Signed notes may contain no ASCII control characters other than newline.
fn check_control_characters(s: &str) -> Result<(), NoteError> {
    match s.bytes().enumerate().find(|&(_, b)| b < 0x20 && b != b'\n') {
        Some((offset, byte)) => Err(NoteError::ControlCharacter { byte, offset }),
        None => Ok(()),
    }
}

/// A log's signed statement of its size and root (c2sp.org/tlog-checkpoint):
/// what clients pin, witnesses cosign and consistency proofs connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `example.com/log`.
    pub origin: String,
    /// Number of leaves in the tree.
    pub size: u64,
    /// RFC 6962 root of the tree of `size` leaves.
    pub root_hash: Hash,
    /// Opaque extra lines, each non-empty (discouraged by the spec).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text to sign; refuses a checkpoint that would not parse back
    /// (e.g. an origin holding a newline could smuggle in fake lines).
    pub fn to_note_text(&self) -> Result<String, NoteError> {
        if self.origin.contains('\n') || self.extensions.iter().any(|e| e.contains('\n')) {
            return Err(NoteError::MalformedCheckpoint {
                reason: "the origin or an extension line contains a newline",
            });
        }
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root_hash)
        );
        for extension in &self.extensions {
            text.push_str(extension);
            text.push('\n');
        }
        // Parsing back is the single definition of a valid checkpoint.
        Self::parse(&text)?;
        Ok(text)
    }

    /// Reads a checkpoint from a note text (normally [`OpenedNote::text`]),
    /// rejecting anything but the canonical encoding so that one checkpoint
    /// has exactly one text.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let malformed = |reason| NoteError::MalformedCheckpoint { reason };
        check_control_characters(text)?;
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| malformed("the text must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        let (Some(size_line), Some(root_line)) = (lines.next(), lines.next()) else {
            return Err(malformed(
                "it needs at least three lines: origin, tree size, root hash",
            ));
        };
        if origin.is_empty() {
            return Err(malformed("the origin line is empty"));
        }
        let size = parse_tree_size(size_line)?;
        let root_hash = parse_root_hash(root_line)?;
        let mut extensions = Vec::new();
        for line in lines {
            if line.is_empty() {
                return Err(malformed("an extension line is empty"));
            }
            extensions.push(line.to_owned());
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root_hash,
            extensions,
        })
    }
}

/// ASCII decimal with no sign and no leading zeros, unless the size is 0.
fn parse_tree_size(line: &str) -> Result<u64, NoteError> {
    let invalid = |reason| NoteError::InvalidTreeSize {
        got: line.to_owned(),
        reason,
    };
    if line.is_empty() {
        return Err(invalid("it is empty"));
    }
    if !line.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("it must be ASCII decimal digits only"));
    }
    if line.len() > 1 && line.starts_with('0') {
        return Err(invalid("it has a leading zero"));
    }
    line.parse::<u64>()
        .map_err(|_| invalid("it does not fit in 64 bits"))
}

/// Standard padded base64 of exactly 32 bytes, in its one canonical spelling.
fn parse_root_hash(line: &str) -> Result<Hash, NoteError> {
    let invalid = |reason| NoteError::InvalidRootHash {
        got: line.to_owned(),
        reason,
    };
    let raw = BASE64
        .decode(line)
        .map_err(|_| invalid("it is not standard padded base64"))?;
    let hash: Hash = raw
        .as_slice()
        .try_into()
        .map_err(|_| invalid("it does not decode to exactly 32 bytes"))?;
    if BASE64.encode(hash) != line {
        return Err(invalid("it is not the canonical base64 spelling"));
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use rand_core::OsRng;

    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn verifier(name: &str, key: &SigningKey) -> NoteVerifier {
        NoteVerifier::from_key(name, &key.verifying_key()).unwrap()
    }

    #[test]
    fn sign_then_open_round_trips_with_a_generated_key() {
        let signing = SigningKey::generate(&mut OsRng);
        let v = verifier("byline.example/log", &signing);
        let text = "hello\n\nworld\n";
        let note = sign_note(text, v.name(), &signing).unwrap();
        assert!(note.starts_with("hello\n\nworld\n\n\u{2014} byline.example/log "));
        let opened = open_note(&note, std::slice::from_ref(&v)).unwrap();
        assert_eq!(opened.text, text);
        assert_eq!(opened.signers, vec![v.clone()]);
        assert!(opened.unknown.is_empty());

        // The published key string parses back to the same verifier.
        assert_eq!(NoteVerifier::parse(&v.to_string()).unwrap(), v);
    }

    #[test]
    fn tampered_text_fails() {
        let k = key(1);
        let v = verifier("log", &k);
        let note = sign_note("size 10\n", "log", &k).unwrap();
        let tampered = note.replacen("10", "11", 1);
        assert_eq!(
            open_note(&tampered, std::slice::from_ref(&v)),
            Err(NoteError::InvalidSignature {
                name: "log".into(),
                key_hash: v.key_hash()
            })
        );
    }

    #[test]
    fn only_unknown_keys_fails() {
        let note = sign_note("text\n", "log", &key(1)).unwrap();
        // Same name, other key: a different key id, so unknown.
        let other = verifier("log", &key(2));
        assert_eq!(
            open_note(&note, &[other]),
            Err(NoteError::NoTrustedSignature { unknown: 1 })
        );
        assert_eq!(
            open_note(&note, &[]),
            Err(NoteError::NoTrustedSignature { unknown: 1 })
        );
    }

    #[test]
    fn unknown_signatures_are_ignored_next_to_a_trusted_one() {
        let (k1, k2) = (key(1), key(2));
        let note = sign_note("text\n", "log", &k1).unwrap();
        let cosig = sign_note("text\n", "witness", &k2).unwrap();
        let cosig_line = cosig.strip_prefix("text\n\n").unwrap();
        let both = format!("{note}{cosig_line}");
        let opened = open_note(&both, &[verifier("log", &k1)]).unwrap();
        assert_eq!(opened.signers.len(), 1);
        assert_eq!(
            opened.unknown,
            vec![UnknownSignature {
                name: "witness".into(),
                key_hash: verifier("witness", &k2).key_hash()
            }]
        );
        // Trusting both reports both.
        let opened = open_note(&both, &[verifier("log", &k1), verifier("witness", &k2)]).unwrap();
        assert_eq!(opened.signers.len(), 2);
    }

    #[test]
    fn a_bad_signature_from_a_trusted_key_rejects_the_note() {
        let (k1, k2) = (key(1), key(2));
        let good = sign_note("text\n", "log", &k1).unwrap();
        let other = sign_note("other\n", "witness", &k2).unwrap();
        let wrong_line = other.strip_prefix("other\n\n").unwrap();
        let note = format!("{good}{wrong_line}");
        let trusted = [verifier("log", &k1), verifier("witness", &k2)];
        assert!(matches!(
            open_note(&note, &trusted),
            Err(NoteError::InvalidSignature { name, .. }) if name == "witness"
        ));
    }

    #[test]
    fn malformed_signature_lines_fail() {
        let k = key(1);
        let v = verifier("log", &k);
        let note = sign_note("text\n", "log", &k).unwrap();
        let sig_b64 = note.rsplit(' ').next().unwrap().trim_end().to_owned();
        let cases = [
            format!("text\n\n- log {sig_b64}\n"),
            format!("text\n\n\u{2014}log {sig_b64}\n"),
            format!("text\n\n\u{2014} log{sig_b64}\n"),
            format!("text\n\n\u{2014}  {sig_b64}\n"),
            format!("text\n\n\u{2014} log+x {sig_b64}\n"),
            format!("text\n\n\u{2014} log {sig_b64}!\n"),
            format!("text\n\n\u{2014} log {}\n", sig_b64.trim_end_matches('=')),
            "text\n\n\u{2014} log AAAA\n".to_owned(),
            "text\n\n\u{2014} log \n".to_owned(),
            format!("{note}garbage\n"),
        ];
        for case in cases {
            assert!(
                matches!(
                    open_note(&case, std::slice::from_ref(&v)),
                    Err(NoteError::MalformedSignatureLine { .. })
                ),
                "{case:?} gave {:?}",
                open_note(&case, std::slice::from_ref(&v))
            );
        }
        assert_eq!(
            open_note(note.trim_end_matches('\n'), std::slice::from_ref(&v)),
            Err(NoteError::MalformedSignatureLine {
                line: 1,
                reason: "the last signature line does not end with a newline"
            })
        );
        assert_eq!(
            open_note("text\n\u{2014} log x\n", std::slice::from_ref(&v)),
            Err(NoteError::MissingSignatureBlock)
        );
        assert_eq!(
            open_note("text\n\n", std::slice::from_ref(&v)),
            Err(NoteError::MissingSignatureBlock)
        );
        assert_eq!(
            open_note(&note.replace("text", "te\rxt"), &[v]),
            Err(NoteError::ControlCharacter {
                byte: b'\r',
                offset: 2
            })
        );
    }

    #[test]
    fn size_limits_are_enforced() {
        let k = key(1);
        let v = verifier("log", &k);
        let note = sign_note("text\n", "log", &k).unwrap();
        let line = note.strip_prefix("text\n\n").unwrap();
        let many = format!("text\n\n{}", line.repeat(MAX_SIGNATURES + 1));
        assert_eq!(
            open_note(&many, std::slice::from_ref(&v)),
            Err(NoteError::TooManySignatures {
                limit: MAX_SIGNATURES,
                got: MAX_SIGNATURES + 1
            })
        );
        // Repeating a valid signature up to the limit is accepted, signer once.
        let ok = format!("text\n\n{}", line.repeat(MAX_SIGNATURES));
        assert_eq!(
            open_note(&ok, std::slice::from_ref(&v))
                .unwrap()
                .signers
                .len(),
            1
        );

        let big = "a".repeat(MAX_NOTE_LEN) + "\n";
        assert!(matches!(
            sign_note(&big, "log", &k),
            Err(NoteError::TooLarge { .. })
        ));
        assert!(matches!(
            open_note(&format!("{big}{note}"), &[v]),
            Err(NoteError::TooLarge { .. })
        ));
    }

    #[test]
    fn sign_refuses_invalid_input() {
        let k = key(1);
        for text in ["", "no newline", "tab\there\n"] {
            assert!(sign_note(text, "log", &k).is_err(), "{text:?}");
        }
        for name in ["", "a+b", "a b", "a\u{a0}b", "a\u{7f}b"] {
            assert!(
                matches!(
                    sign_note("t\n", name, &k),
                    Err(NoteError::InvalidKeyName { .. })
                ),
                "{name:?}"
            );
        }
    }

    #[test]
    fn verifier_keys_are_checked() {
        let v = verifier("log", &key(1));
        let s = v.to_string();
        assert_eq!(NoteVerifier::parse(&s).unwrap(), v);

        let (name, rest) = s.split_once('+').unwrap();
        let (hash, key_b64) = rest.split_once('+').unwrap();
        let upper = format!("{name}+{}+{key_b64}", hash.to_uppercase());
        assert_eq!(NoteVerifier::parse(&upper).unwrap(), v);

        let wrong_hash = format!("{name}+{:08x}+{key_b64}", v.key_hash() ^ 1);
        assert_eq!(
            NoteVerifier::parse(&wrong_hash),
            Err(NoteError::KeyHashMismatch {
                name: "log".into(),
                expected: v.key_hash(),
                got: v.key_hash() ^ 1
            })
        );
        let renamed = format!("other+{hash}+{key_b64}");
        assert!(matches!(
            NoteVerifier::parse(&renamed),
            Err(NoteError::KeyHashMismatch { .. })
        ));

        let mut raw = BASE64.decode(key_b64).unwrap();
        raw[0] = 0x02;
        assert_eq!(
            NoteVerifier::parse(&format!("{name}+{hash}+{}", BASE64.encode(&raw))),
            Err(NoteError::UnsupportedKeyType { got: 2 })
        );
        raw[0] = ED25519_TYPE;
        raw.pop();
        assert!(matches!(
            NoteVerifier::parse(&format!("{name}+{hash}+{}", BASE64.encode(&raw))),
            Err(NoteError::MalformedVerifierKey { .. })
        ));
        for bad in [
            "",
            "log",
            "log+1234567+AQ==",
            "log+123456789+AQ==",
            "log+1234567g+AQ==",
            "log+12345678+",
            "log+12345678+not base64",
            " log+12345678+AQ==",
        ] {
            assert!(NoteVerifier::parse(bad).is_err(), "{bad:?}");
        }

        // The identity point is a small-order key: refuse to trust it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        assert!(matches!(
            NoteVerifier::from_key("log", &weak),
            Err(NoteError::InvalidPublicKey { .. })
        ));
    }

    #[test]
    fn ambiguous_trusted_keys_are_an_error() {
        let k = key(1);
        let real = verifier("log", &k);
        let impostor = NoteVerifier {
            key: key(2).verifying_key(),
            ..real.clone()
        };
        let note = sign_note("t\n", "log", &k).unwrap();
        assert!(matches!(
            open_note(&note, &[real.clone(), impostor]),
            Err(NoteError::AmbiguousVerifier { .. })
        ));
        // The same key listed twice is not ambiguous.
        assert!(open_note(&note, &[real.clone(), real]).is_ok());
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "byline.example/log".into(),
            size: 20_852_163,
            root_hash: [7; 32],
            extensions: vec![],
        }
    }

    #[test]
    fn checkpoint_round_trips() {
        let cp = checkpoint();
        let text = cp.to_note_text().unwrap();
        assert_eq!(
            text,
            "byline.example/log\n20852163\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"
        );
        assert_eq!(Checkpoint::parse(&text).unwrap(), cp);

        let with_ext = Checkpoint {
            extensions: vec!["ext one".into(), "— two".into()],
            size: 0,
            ..cp
        };
        let text = with_ext.to_note_text().unwrap();
        assert!(text.ends_with("\next one\n— two\n"));
        assert_eq!(Checkpoint::parse(&text).unwrap(), with_ext);

        // Through a signed note, end to end.
        let k = key(3);
        let note = sign_note(&text, &with_ext.origin, &k).unwrap();
        let opened = open_note(&note, &[verifier(&with_ext.origin, &k)]).unwrap();
        assert_eq!(Checkpoint::parse(&opened.text).unwrap(), with_ext);
    }

    #[test]
    fn checkpoint_refuses_to_emit_what_it_cannot_parse() {
        for bad in [
            Checkpoint {
                origin: String::new(),
                ..checkpoint()
            },
            Checkpoint {
                origin: "a\n5".into(),
                ..checkpoint()
            },
            Checkpoint {
                extensions: vec![String::new()],
                ..checkpoint()
            },
            Checkpoint {
                extensions: vec!["a\nb".into()],
                ..checkpoint()
            },
        ] {
            assert!(bad.to_note_text().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn malformed_checkpoints_are_rejected() {
        let root = BASE64.encode([7u8; 32]);
        let short_root = BASE64.encode([7u8; 31]);
        let long_root = BASE64.encode([7u8; 33]);
        let url_root = BASE64
            .encode([0xfb; 32])
            .replace('+', "-")
            .replace('/', "_");
        let unpadded = root.trim_end_matches('=').to_owned();
        // Same bytes but non-zero trailing bits in the last character.
        let non_canonical = format!("{}{}", &root[..root.len() - 2], "d=");
        let cases = [
            format!("o\n1\n{root}"),
            "o\n1\n".to_owned(),
            format!("o\n1\n{root}\n\n"),
            format!("o\n1\n{root}\next\n\n"),
            format!("\n1\n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("o\n01\n{root}\n"),
            format!("o\n00\n{root}\n"),
            format!("o\n+1\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n 1\n{root}\n"),
            format!("o\n1 \n{root}\n"),
            format!("o\n1.0\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            format!("o\n1\n{short_root}\n"),
            format!("o\n1\n{long_root}\n"),
            format!("o\n1\n{url_root}\n"),
            format!("o\n1\n{unpadded}\n"),
            format!("o\n1\n{non_canonical}\n"),
            format!("o\n1\n {root}\n"),
            format!("o\n1\n{root}\r\n"),
            "o\n1\n\n".to_owned(),
        ];
        for case in cases {
            assert!(Checkpoint::parse(&case).is_err(), "{case:?} was accepted");
        }
        assert_eq!(
            Checkpoint::parse(&format!("o\n18446744073709551615\n{root}\n"))
                .unwrap()
                .size,
            u64::MAX
        );
        assert_eq!(
            Checkpoint::parse(&format!("o\n0\n{root}\n")).unwrap().size,
            0
        );
    }
}
