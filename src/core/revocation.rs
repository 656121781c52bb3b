//! Revocations: a retracted manifest or a revoked publisher key, each a logged DSSE envelope
//! (DESIGN.md, "Transparency log"; the predicate is specified in `docs/predicate.md`).
//!
//! A retraction is signed by the publisher's own key, so only the publisher can take back what
//! it said; a key revocation is signed by the log's key, because the key it revokes may be the
//! attacker's. Either counts only once the log proves it: a verifier believes a revocation for
//! the same reason it believes a manifest, and a revocation that could be shown to one reader
//! and hidden from another would be worthless.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;

use crate::core::bundle::Bundle;
use crate::core::constants::{
    PAYLOAD_TYPE_IN_TOTO, PREDICATE_TYPE_REVOCATION_V1, STATEMENT_TYPE_V1,
};
use crate::core::digest::Sha256Digest;
use crate::core::dsse::{sign_envelope, verify_envelope, DsseError, Envelope};
use crate::core::keys::{keyid, public_key_from_base64, public_key_to_base64, SigningKey};
use crate::core::logproof::{pinned_log_verifiers, verify_log_entry};
use crate::core::manifest::{check_domain, Statement, Subject, Timestamp};
use crate::core::strict_json;
use crate::core::trust::TrustStore;

/// The longest reason a revocation may give (bytes).
pub const MAX_REASON_BYTES: usize = 256;

/// Why a revocation was refused, or does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationError {
    /// The payload is not a well-formed revocation statement.
    #[error("malformed revocation: {0}")]
    Malformed(String),
    /// A field breaks a rule of the predicate.
    #[error("revocation {field}: {reason}")]
    InvalidField {
        /// The field, as a JSON path.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The revocation bundle has no log entry: unlogged revocations are not believed.
    #[error("revocation was never logged; only logged revocations count")]
    NotLogged,
    /// The log proof of the revocation failed.
    #[error("revocation's log proof: {0}")]
    LogProof(String),
    /// No acceptable key made the signature.
    #[error("revocation signature: {0}")]
    Signature(String),
    /// The signature verified, but under a key that may not make this kind of revocation.
    #[error("{0}")]
    WrongSigner(String),
}

/// What a revocation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationAction {
    /// The publisher takes back one manifest (corrected, withdrawn, published in error).
    RetractManifest,
    /// A publisher key stops counting from a given time (compromised, retired).
    RevokeKey,
}

/// The manifest a retraction takes back.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetractedManifest {
    /// SHA-256 of the retracted statement's payload bytes (as `supersedes` names one).
    pub statement_sha256: Sha256Digest,
    /// Its log index.
    pub log_index: u64,
}

/// The key a key revocation revokes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RevokedKey {
    /// Lowercase hex SHA-256 of the public key.
    pub keyid: String,
    /// Base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
    /// Signatures the log integrated at or after this time no longer count.
    pub revoked_since: Timestamp,
}

/// The revocation predicate (`https://byline.dev/revocation/v1`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RevocationPredicate {
    /// Retraction or key revocation.
    pub action: RevocationAction,
    /// Why, in a word or a sentence ("corrected", "withdrawn", "compromised").
    pub reason: String,
    /// The publisher whose manifest or key this is.
    pub publisher_domain: String,
    /// When the revocation was made, as the signer claims (the log's time is what counts).
    pub revoked_at: Timestamp,
    /// For a retraction: the manifest taken back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<RetractedManifest>,
    /// For a key revocation: the key and from when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<RevokedKey>,
}

/// An in-toto Statement v1 carrying a revocation predicate.
pub type RevocationStatement = Statement<RevocationPredicate>;

fn statement(subject: Subject, predicate: RevocationPredicate) -> RevocationStatement {
    Statement {
        statement_type: STATEMENT_TYPE_V1.to_string(),
        subject: vec![subject],
        predicate_type: PREDICATE_TYPE_REVOCATION_V1.to_string(),
        predicate,
    }
}

fn subject(name: String, sha256_hex: String) -> Subject {
    let mut digest = BTreeMap::new();
    digest.insert("sha256".to_string(), sha256_hex);
    Subject { name, digest }
}

/// Builds a retraction of the manifest whose statement payload has `statement_sha256`, logged
/// at `log_index`. The subject is the retracted statement, named `subject_name` (the article).
pub fn retraction(
    publisher_domain: &str,
    subject_name: &str,
    statement_sha256: Sha256Digest,
    log_index: u64,
    reason: &str,
    now: Timestamp,
) -> Result<RevocationStatement, RevocationError> {
    let s = statement(
        subject(subject_name.to_string(), statement_sha256.to_hex()),
        RevocationPredicate {
            action: RevocationAction::RetractManifest,
            reason: reason.to_string(),
            publisher_domain: publisher_domain.to_string(),
            revoked_at: now,
            manifest: Some(RetractedManifest {
                statement_sha256,
                log_index,
            }),
            key: None,
        },
    );
    validate(&s)?;
    Ok(s)
}

/// Builds a revocation of `key` (trusted for `publisher_domain`) from `since` on. The subject is
/// the key itself: its name is `ed25519:<keyid>` and its digest the keyid.
pub fn key_revocation(
    publisher_domain: &str,
    key: &VerifyingKey,
    since: Timestamp,
    reason: &str,
    now: Timestamp,
) -> Result<RevocationStatement, RevocationError> {
    let id = keyid(key);
    let s = statement(
        subject(format!("ed25519:{id}"), id.clone()),
        RevocationPredicate {
            action: RevocationAction::RevokeKey,
            reason: reason.to_string(),
            publisher_domain: publisher_domain.to_string(),
            revoked_at: now,
            manifest: None,
            key: Some(RevokedKey {
                keyid: id,
                public_key: public_key_to_base64(key),
                revoked_since: since,
            }),
        },
    );
    validate(&s)?;
    Ok(s)
}

/// The payload bytes to sign (compact JSON).
pub fn to_payload(statement: &RevocationStatement) -> Vec<u8> {
    // A struct of strings, digests and integers always serializes.
    serde_json::to_vec(statement).unwrap_or_default()
}

/// Signs a revocation into a DSSE envelope with `key` (the publisher's for a retraction, the
/// log's for a key revocation).
pub fn sign_revocation(statement: &RevocationStatement, key: &SigningKey) -> Envelope {
    sign_envelope(PAYLOAD_TYPE_IN_TOTO, &to_payload(statement), key)
}

/// Whether a verified payload is a revocation (by its predicate type), without judging it.
pub fn is_revocation_payload(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "predicateType", default)]
        predicate_type: String,
    }
    serde_json::from_slice::<Head>(bytes)
        .map(|h| h.predicate_type == PREDICATE_TYPE_REVOCATION_V1)
        .unwrap_or(false)
}

/// Parses verified payload bytes strictly and checks every rule of the predicate.
pub fn from_payload(bytes: &[u8]) -> Result<RevocationStatement, RevocationError> {
    strict_json::check(bytes).map_err(|e| RevocationError::Malformed(e.to_string()))?;
    let s: RevocationStatement =
        serde_json::from_slice(bytes).map_err(|e| RevocationError::Malformed(e.to_string()))?;
    if s.statement_type != STATEMENT_TYPE_V1 {
        return Err(RevocationError::Malformed(format!(
            "statement _type is {:?}, expected {STATEMENT_TYPE_V1:?}",
            s.statement_type
        )));
    }
    if s.predicate_type != PREDICATE_TYPE_REVOCATION_V1 {
        return Err(RevocationError::Malformed(format!(
            "predicateType is {:?}, expected {PREDICATE_TYPE_REVOCATION_V1:?}",
            s.predicate_type
        )));
    }
    validate(&s)?;
    Ok(s)
}

/// Checks the rules that types alone do not express (see `docs/predicate.md`).
pub fn validate(s: &RevocationStatement) -> Result<(), RevocationError> {
    let invalid =
        |field: &'static str, reason: String| RevocationError::InvalidField { field, reason };
    let p = &s.predicate;
    if p.reason.trim().is_empty() {
        return Err(invalid(
            "predicate.reason",
            "must not be empty (say why: corrected, withdrawn, compromised, ...)".into(),
        ));
    }
    if p.reason.len() > MAX_REASON_BYTES {
        return Err(invalid(
            "predicate.reason",
            format!("longer than {MAX_REASON_BYTES} bytes"),
        ));
    }
    if let Some(c) = p.reason.chars().find(|c| c.is_control()) {
        return Err(invalid(
            "predicate.reason",
            format!("contains the control character U+{:04X}", c as u32),
        ));
    }
    check_domain(&p.publisher_domain)
        .map_err(|e| invalid("predicate.publisherDomain", e.to_string()))?;
    if s.subject.len() != 1 {
        return Err(invalid(
            "subject",
            format!("expected exactly one subject, got {}", s.subject.len()),
        ));
    }
    let subject_digest = s.subject[0].digest.get("sha256");
    let target = match (p.action, &p.manifest, &p.key) {
        (RevocationAction::RetractManifest, Some(m), None) => m.statement_sha256.to_hex(),
        (RevocationAction::RevokeKey, None, Some(k)) => {
            let key = public_key_from_base64(&k.public_key)
                .map_err(|e| invalid("predicate.key.publicKey", e.to_string()))?;
            if keyid(&key) != k.keyid {
                return Err(invalid(
                    "predicate.key.keyid",
                    "is not the SHA-256 of the public key".into(),
                ));
            }
            k.keyid.clone()
        }
        (RevocationAction::RetractManifest, _, _) => {
            return Err(invalid(
                "predicate.manifest",
                "a retract-manifest revocation has `manifest` and no `key`".into(),
            ))
        }
        (RevocationAction::RevokeKey, _, _) => {
            return Err(invalid(
                "predicate.key",
                "a revoke-key revocation has `key` and no `manifest`".into(),
            ))
        }
    };
    if subject_digest != Some(&target) {
        return Err(invalid(
            "subject.digest.sha256",
            "must be the retracted statement's digest or the revoked keyid".into(),
        ));
    }
    Ok(())
}

/// A revocation whose signature and log inclusion checked out, with the key that signed it
/// judged fit for its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedRevocation {
    /// The verified statement.
    pub statement: RevocationStatement,
    /// Where the log holds it.
    pub log_index: u64,
    /// When the log integrated it: the time the revocation took effect for readers.
    pub integrated_time: Timestamp,
}

impl VerifiedRevocation {
    /// The predicate.
    pub fn predicate(&self) -> &RevocationPredicate {
        &self.statement.predicate
    }
}

enum Candidate {
    Publisher(crate::core::trust::TrustedKey),
    Log(VerifyingKey),
}

impl Candidate {
    fn key(&self) -> &VerifyingKey {
        match self {
            Candidate::Publisher(k) => &k.key,
            Candidate::Log(k) => k,
        }
    }
}

/// Verifies a revocation bundle under a trust store: it must be logged in a pinned log; a
/// retraction must be signed by a key trusted for the publisher it names (and standing at the
/// log's time), a key revocation by the key of the log that logged it.
pub fn verify_revocation(
    bundle: &Bundle,
    trust: &TrustStore,
) -> Result<VerifiedRevocation, RevocationError> {
    let entry = bundle
        .log_entry
        .as_ref()
        .ok_or(RevocationError::NotLogged)?;
    let envelope = &bundle.dsse_envelope;
    let logged = verify_log_entry(envelope, entry, &trust.logs)
        .map_err(|e| RevocationError::LogProof(e.to_string()))?;
    let mut candidates: Vec<Candidate> = trust
        .trusted_keys()
        .map_err(|e| RevocationError::Signature(e.to_string()))?
        .into_iter()
        .map(Candidate::Publisher)
        .collect();
    let logs =
        pinned_log_verifiers(&trust.logs).map_err(|e| RevocationError::LogProof(e.to_string()))?;
    candidates.extend(
        logs.iter()
            .filter(|(_, pin)| pin.origin == logged.checkpoint.origin)
            .map(|(v, _)| Candidate::Log(*v.key())),
    );
    let verified = verify_envelope(envelope, &candidates, Candidate::key).map_err(|e| match e {
        DsseError::UnknownKey { .. } => RevocationError::Signature(format!(
            "{e}: neither a trusted publisher key nor the key of the log that logged it"
        )),
        other => RevocationError::Signature(other.to_string()),
    })?;
    if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO {
        return Err(RevocationError::Malformed(format!(
            "payloadType {:?}, expected {PAYLOAD_TYPE_IN_TOTO:?}",
            envelope.payload_type
        )));
    }
    let statement = from_payload(&verified.payload)?;
    let p = &statement.predicate;
    match (p.action, verified.signer) {
        (RevocationAction::RetractManifest, Candidate::Publisher(signer)) => {
            // The same key may be trusted for several publishers: any entry for the named
            // publisher under which the key stands at the log's time will do.
            let fit = candidates.iter().any(|c| match c {
                Candidate::Publisher(k) => {
                    k.key == signer.key
                        && k.entry.publisher == p.publisher_domain
                        && k.standing_at(logged.integrated_time, true).is_ok()
                }
                Candidate::Log(_) => false,
            });
            if !fit {
                return Err(RevocationError::WrongSigner(format!(
                    "retraction for {} is signed by key {}, which is not trusted for {} at {}",
                    p.publisher_domain,
                    crate::core::dsse::short_keyid(&signer.keyid),
                    p.publisher_domain,
                    logged.integrated_time
                )));
            }
        }
        (RevocationAction::RetractManifest, Candidate::Log(_)) => {
            return Err(RevocationError::WrongSigner(
                "a retraction must be signed by the publisher's key, not the log's".into(),
            ))
        }
        (RevocationAction::RevokeKey, Candidate::Log(_)) => {}
        (RevocationAction::RevokeKey, Candidate::Publisher(_)) => {
            return Err(RevocationError::WrongSigner(
                "a key revocation must be signed by the log's key, not a publisher key".into(),
            ))
        }
    }
    Ok(VerifiedRevocation {
        statement,
        log_index: logged.log_index,
        integrated_time: logged.integrated_time,
    })
}

/// Applies verified key revocations to a trust store: each entry for the revoked key and its
/// publisher is revoked from the revocation's time (the earlier one, when the store already has
/// one). Returns how many entries changed.
pub fn apply_key_revocations(trust: &mut TrustStore, revocations: &[VerifiedRevocation]) -> usize {
    let mut changed = 0;
    for r in revocations {
        let p = r.predicate();
        let Some(k) = &p.key else { continue };
        for entry in &mut trust.publisher_keys {
            if entry.publisher != p.publisher_domain || entry.public_key != k.public_key {
                continue;
            }
            let since = match entry.revoked_since {
                Some(existing) if existing <= k.revoked_since => continue,
                _ => k.revoked_since,
            };
            entry.revoked_since = Some(since);
            changed += 1;
        }
    }
    changed
}

/// The retraction, among verified revocations, of the statement with `statement_sha256`
/// published by `publisher_domain`, if there is one (the earliest logged).
pub fn retraction_of<'r>(
    revocations: &'r [VerifiedRevocation],
    statement_sha256: &Sha256Digest,
    publisher_domain: &str,
) -> Option<&'r VerifiedRevocation> {
    revocations
        .iter()
        .filter(|r| {
            let p = r.predicate();
            p.action == RevocationAction::RetractManifest
                && p.publisher_domain == publisher_domain
                && p.manifest
                    .as_ref()
                    .is_some_and(|m| m.statement_sha256 == *statement_sha256)
        })
        .min_by_key(|r| r.log_index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::bundle::{InclusionProof, LogEntry};
    use crate::core::dsse::encode_base64;
    use crate::core::logproof::leaf_bytes;
    use crate::core::merkle::leaf_hash;
    use crate::core::note::{sign_note, Checkpoint, NoteVerifier};
    use crate::core::trust::LogEntryTrust;

    const ORIGIN: &str = "byline.test/log";

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A one-leaf log holding `envelope`, and a trust store pinning it and `publisher`.
    fn logged(envelope: Envelope, log_key: &SigningKey, trust: &mut TrustStore) -> Bundle {
        let time = "2026-11-02T10:00:00Z";
        let root = leaf_hash(&leaf_bytes(&envelope, time));
        let text = Checkpoint {
            origin: ORIGIN.into(),
            size: 1,
            root_hash: root,
            extensions: Vec::new(),
        }
        .to_note_text()
        .unwrap();
        let note = sign_note(&text, ORIGIN, log_key.inner()).unwrap();
        trust.logs = vec![LogEntryTrust {
            origin: ORIGIN.into(),
            verifier_key: NoteVerifier::from_key(ORIGIN, &log_key.verifying_key())
                .unwrap()
                .to_string(),
            source: None,
        }];
        Bundle {
            media_type: crate::core::constants::BUNDLE_MEDIA_TYPE_V1.into(),
            dsse_envelope: envelope,
            log_entry: Some(LogEntry {
                log_index: 0,
                integrated_time: time.into(),
                inclusion_proof: InclusionProof {
                    tree_size: 1,
                    hashes: vec![],
                    checkpoint: note,
                },
            }),
        }
    }

    fn setup() -> (SigningKey, SigningKey, TrustStore) {
        let publisher = SigningKey::generate();
        let log = SigningKey::generate();
        let mut trust = TrustStore::default();
        trust
            .add_publisher_key("news.example", None, &publisher.verifying_key(), false, "t")
            .unwrap();
        (publisher, log, trust)
    }

    #[test]
    fn retraction_signed_by_the_publisher_and_logged_verifies() {
        let (publisher, log, mut trust) = setup();
        let target = Sha256Digest::of(b"statement");
        let s = retraction(
            "news.example",
            "https://news.example/a",
            target,
            7,
            "withdrawn",
            t("2026-11-02T09:59:00Z"),
        )
        .unwrap();
        let bundle = logged(sign_revocation(&s, &publisher), &log, &mut trust);
        let v = verify_revocation(&bundle, &trust).unwrap();
        assert_eq!(v.predicate().reason, "withdrawn");
        assert!(retraction_of(std::slice::from_ref(&v), &target, "news.example").is_some());
        assert!(retraction_of(std::slice::from_ref(&v), &target, "other.example").is_none());
        assert!(retraction_of(&[v], &Sha256Digest::of(b"x"), "news.example").is_none());
    }

    #[test]
    fn retraction_by_the_log_key_or_an_untrusted_key_does_not_count() {
        let (_publisher, log, mut trust) = setup();
        let s = retraction(
            "news.example",
            "a",
            Sha256Digest::of(b"s"),
            0,
            "corrected",
            t("2026-11-02T09:59:00Z"),
        )
        .unwrap();
        let by_log = logged(sign_revocation(&s, &log), &log, &mut trust);
        assert!(matches!(
            verify_revocation(&by_log, &trust),
            Err(RevocationError::WrongSigner(_))
        ));
        let stranger = SigningKey::generate();
        let by_stranger = logged(sign_revocation(&s, &stranger), &log, &mut trust);
        assert!(matches!(
            verify_revocation(&by_stranger, &trust),
            Err(RevocationError::Signature(_))
        ));
        // A key trusted for another publisher cannot retract this one's manifest.
        let other = SigningKey::generate();
        trust
            .add_publisher_key("other.example", None, &other.verifying_key(), false, "t")
            .unwrap();
        let by_other = logged(sign_revocation(&s, &other), &log, &mut trust);
        assert!(matches!(
            verify_revocation(&by_other, &trust),
            Err(RevocationError::WrongSigner(_))
        ));
    }

    #[test]
    fn key_revocation_must_be_signed_by_the_log_and_logged() {
        let (publisher, log, mut trust) = setup();
        let since = t("2026-11-01T00:00:00Z");
        let s = key_revocation(
            "news.example",
            &publisher.verifying_key(),
            since,
            "compromised",
            t("2026-11-02T09:59:00Z"),
        )
        .unwrap();
        // The stolen key cannot revoke itself (an attacker could otherwise deny service
        // silently, or a thief pretend to revoke and keep signing).
        let self_signed = logged(sign_revocation(&s, &publisher), &log, &mut trust);
        assert!(matches!(
            verify_revocation(&self_signed, &trust),
            Err(RevocationError::WrongSigner(_))
        ));
        let mut bundle = logged(sign_revocation(&s, &log), &log, &mut trust);
        let v = verify_revocation(&bundle, &trust).unwrap();
        let mut applied = trust.clone();
        assert_eq!(
            apply_key_revocations(&mut applied, std::slice::from_ref(&v)),
            1
        );
        assert_eq!(applied.publisher_keys[0].revoked_since, Some(since));
        // Applying again changes nothing; an earlier existing revocation is kept.
        assert_eq!(apply_key_revocations(&mut applied, &[v]), 0);
        bundle.log_entry = None;
        assert_eq!(
            verify_revocation(&bundle, &trust),
            Err(RevocationError::NotLogged)
        );
    }

    #[test]
    fn tampered_or_malformed_revocations_are_refused() {
        let (publisher, log, mut trust) = setup();
        let s = retraction(
            "news.example",
            "a",
            Sha256Digest::of(b"s"),
            0,
            "corrected",
            t("2026-11-02T09:59:00Z"),
        )
        .unwrap();
        let mut envelope = sign_revocation(&s, &publisher);
        let mut other = s.clone();
        other.predicate.manifest.as_mut().unwrap().statement_sha256 = Sha256Digest::of(b"t");
        other.subject[0]
            .digest
            .insert("sha256".into(), Sha256Digest::of(b"t").to_hex());
        envelope.payload = encode_base64(&to_payload(&other));
        let bundle = logged(envelope, &log, &mut trust);
        assert!(matches!(
            verify_revocation(&bundle, &trust),
            Err(RevocationError::Signature(_))
        ));
        let payload = String::from_utf8(to_payload(&s)).unwrap();
        let dup = payload.replacen("\"reason\":", "\"reason\":\"x\",\"reason\":", 1);
        assert!(from_payload(dup.as_bytes()).is_err());
        let unknown = payload.replacen("\"reason\":", "\"extra\":1,\"reason\":", 1);
        assert!(from_payload(unknown.as_bytes()).is_err());
        let wrong_subject = payload.replace(&Sha256Digest::of(b"s").to_hex(), &"0".repeat(64));
        let mut mixed = s.clone();
        mixed.predicate.key = Some(RevokedKey {
            keyid: keyid(&publisher.verifying_key()),
            public_key: public_key_to_base64(&publisher.verifying_key()),
            revoked_since: t("2026-11-01T00:00:00Z"),
        });
        assert!(validate(&mixed).is_err());
        // Replacing both digests keeps them equal: still valid, only the target changed.
        assert!(from_payload(wrong_subject.as_bytes()).is_ok());
        let mut lonely = s.clone();
        lonely.subject[0]
            .digest
            .insert("sha256".into(), "1".repeat(64));
        assert!(validate(&lonely).is_err());
        assert!(retraction(
            "news.example",
            "a",
            Sha256Digest::of(b"s"),
            0,
            " ",
            t("2026-11-02T09:59:00Z")
        )
        .is_err());
        assert!(retraction(
            "News.Example",
            "a",
            Sha256Digest::of(b"s"),
            0,
            "x",
            t("2026-11-02T09:59:00Z")
        )
        .is_err());
        assert!(is_revocation_payload(payload.as_bytes()));
        assert!(!is_revocation_payload(
            b"{\"predicateType\":\"https://byline.dev/authorship/v1\"}"
        ));
    }
}
