//! Checking a bundle's log entry offline: the checkpoint is signed by a pinned log key, and the
//! leaf — the JCS serialization of the envelope and its `integratedTime` — is included in the
//! tree the checkpoint commits to (DESIGN.md, "Bundle" and "Transparency log").

use crate::core::bundle::LogEntry;
use crate::core::dsse::{decode_base64_any, Envelope};
use crate::core::json_string::push_json_string;
use crate::core::manifest::Timestamp;
use crate::core::merkle::{leaf_hash, verify_consistency, verify_inclusion, Hash};
use crate::core::note::{open_note, Checkpoint, NoteVerifier};
use crate::core::trust::LogEntryTrust;

/// Why a bundle's log entry does not prove what it claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogProofError {
    /// The trust store pins no log, so no checkpoint can be believed.
    #[error(
        "no transparency log is trusted; pin the log key with `byline trust add --server URL`"
    )]
    NoTrustedLog,
    /// A pinned log key in the trust store is malformed.
    #[error("pinned log key {key:?} is malformed: {reason}")]
    BadPinnedKey {
        /// The key as written.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The checkpoint's signature does not verify under a pinned log key.
    #[error("checkpoint not signed by a trusted log: {0}")]
    Checkpoint(String),
    /// The checkpoint is for a different log than the key that signed it is pinned for.
    #[error("checkpoint origin {got:?} does not match the pinned log origin {expected:?}")]
    Origin {
        /// The checkpoint's origin line.
        got: String,
        /// The pinned origin.
        expected: String,
    },
    /// `treeSize` and the checkpoint's size differ.
    #[error("inclusion proof is for tree size {proof} but the checkpoint has size {checkpoint}")]
    TreeSize {
        /// The proof's size.
        proof: u64,
        /// The checkpoint's size.
        checkpoint: u64,
    },
    /// The entry's time is not RFC 3339 UTC with whole seconds.
    #[error("integratedTime {0:?} is not RFC 3339 UTC with whole seconds")]
    Time(String),
    /// A proof hash is not base64 of 32 bytes.
    #[error("inclusion proof hash {index} is not base64 of 32 bytes")]
    Hash {
        /// Its position in the list.
        index: usize,
    },
    /// Two checkpoints of one log cannot both be honest: the log forked or rewrote history.
    #[error("log fork: {0}")]
    Fork(String),
    /// The leaf is not in the tree: the entry does not match its envelope, or the proof is wrong.
    #[error("the log entry does not match its envelope or the checkpoint: {0}")]
    NotIncluded(String),
}

/// A log entry that checked out against a pinned log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedLogEntry {
    /// The entry's index.
    pub log_index: u64,
    /// The log's time for the entry: what trust decisions use.
    pub integrated_time: Timestamp,
    /// The checkpoint proved against.
    pub checkpoint: Checkpoint,
    /// The checkpoint's signed note, verbatim.
    pub checkpoint_note: String,
}

/// The log leaf for an entry: RFC 8785 (JCS) of `{"dsseEnvelope": …, "integratedTime": …}`.
///
/// Written by hand rather than through a generic JCS serializer: the leaf is built for every
/// entry the log appends, and its shape is fixed — an object of strings whose member names are
/// already in JCS order — so canonical form needs only JCS string escaping. The tests compare
/// it with a generic RFC 8785 implementation on arbitrary envelopes.
pub fn leaf_bytes(envelope: &Envelope, integrated_time: &str) -> Vec<u8> {
    let signatures: usize = envelope
        .signatures
        .iter()
        .map(|s| s.sig.len() + s.keyid.as_ref().map_or(0, String::len) + 24)
        .sum();
    let mut out = String::with_capacity(
        envelope.payload.len()
            + envelope.payload_type.len()
            + integrated_time.len()
            + signatures
            + 80,
    );
    // Member names in UTF-16 code unit order (RFC 8785 section 3.2.3): dsseEnvelope <
    // integratedTime; payload < payloadType < signatures; keyid < sig.
    out.push_str("{\"dsseEnvelope\":{\"payload\":");
    push_json_string(&mut out, &envelope.payload);
    out.push_str(",\"payloadType\":");
    push_json_string(&mut out, &envelope.payload_type);
    out.push_str(",\"signatures\":[");
    for (n, signature) in envelope.signatures.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push('{');
        if let Some(keyid) = &signature.keyid {
            out.push_str("\"keyid\":");
            push_json_string(&mut out, keyid);
            out.push(',');
        }
        out.push_str("\"sig\":");
        push_json_string(&mut out, &signature.sig);
        out.push('}');
    }
    out.push_str("]},\"integratedTime\":");
    push_json_string(&mut out, integrated_time);
    out.push('}');
    // Built as text (every piece is a `str`), handed out as the bytes the leaf is.
    out.into_bytes()
}

/// Parses the pinned log keys of a trust store.
pub fn pinned_log_verifiers(
    logs: &[LogEntryTrust],
) -> Result<Vec<(NoteVerifier, &LogEntryTrust)>, LogProofError> {
    logs.iter()
        .map(|log| {
            NoteVerifier::parse(&log.verifier_key)
                .map(|v| (v, log))
                .map_err(|e| LogProofError::BadPinnedKey {
                    key: log.verifier_key.clone(),
                    reason: e.to_string(),
                })
        })
        .collect()
}

/// Opens a checkpoint note with the pinned logs and returns the checkpoint and its origin's
/// pin, checking that the origin is the pinned one.
pub fn open_checkpoint(note: &str, logs: &[LogEntryTrust]) -> Result<Checkpoint, LogProofError> {
    let pinned = pinned_log_verifiers(logs)?;
    if pinned.is_empty() {
        return Err(LogProofError::NoTrustedLog);
    }
    let verifiers: Vec<NoteVerifier> = pinned.iter().map(|(v, _)| v.clone()).collect();
    let opened =
        open_note(note, &verifiers).map_err(|e| LogProofError::Checkpoint(e.to_string()))?;
    let checkpoint =
        Checkpoint::parse(&opened.text).map_err(|e| LogProofError::Checkpoint(e.to_string()))?;
    let signer_origins: Vec<&str> = pinned
        .iter()
        .filter(|(v, _)| opened.signers.contains(v))
        .map(|(_, log)| log.origin.as_str())
        .collect();
    if !signer_origins.contains(&checkpoint.origin.as_str()) {
        return Err(LogProofError::Origin {
            got: checkpoint.origin.clone(),
            expected: signer_origins.join(", "),
        });
    }
    Ok(checkpoint)
}

/// Decodes a list of base64 proof hashes.
pub fn decode_hashes(hashes: &[String]) -> Result<Vec<Hash>, LogProofError> {
    hashes
        .iter()
        .enumerate()
        .map(|(index, h)| {
            decode_base64_any(h)
                .and_then(|b| <Hash>::try_from(b.as_slice()).ok())
                .ok_or(LogProofError::Hash { index })
        })
        .collect()
}

/// Converts proof hashes as raw bytes (how the gRPC API carries them) into hashes.
pub fn hashes_from_bytes(hashes: &[Vec<u8>]) -> Result<Vec<Hash>, LogProofError> {
    hashes
        .iter()
        .enumerate()
        .map(|(index, h)| <Hash>::try_from(h.as_slice()).map_err(|_| LogProofError::Hash { index }))
        .collect()
}

/// Checks a bundle's log entry against its envelope and the pinned logs.
pub fn verify_log_entry(
    envelope: &Envelope,
    entry: &LogEntry,
    logs: &[LogEntryTrust],
) -> Result<VerifiedLogEntry, LogProofError> {
    let integrated_time: Timestamp = entry
        .integrated_time
        .parse()
        .map_err(|_| LogProofError::Time(entry.integrated_time.clone()))?;
    let proof = &entry.inclusion_proof;
    let checkpoint = open_checkpoint(&proof.checkpoint, logs)?;
    if checkpoint.size != proof.tree_size {
        return Err(LogProofError::TreeSize {
            proof: proof.tree_size,
            checkpoint: checkpoint.size,
        });
    }
    let hashes = decode_hashes(&proof.hashes)?;
    let leaf = leaf_hash(&leaf_bytes(envelope, &entry.integrated_time));
    verify_inclusion(
        entry.log_index,
        checkpoint.size,
        &leaf,
        &hashes,
        &checkpoint.root_hash,
    )
    .map_err(|e| LogProofError::NotIncluded(e.to_string()))?;
    Ok(VerifiedLogEntry {
        log_index: entry.log_index,
        integrated_time,
        checkpoint,
        checkpoint_note: proof.checkpoint.clone(),
    })
}

/// Checks that `newer` extends `older` (same log, not smaller, same root at equal size, and a
/// valid RFC 9162 consistency proof otherwise). Any failure means the log showed two histories.
pub fn check_consistent(
    older: &Checkpoint,
    newer: &Checkpoint,
    proof: &[Hash],
) -> Result<(), LogProofError> {
    if older.origin != newer.origin {
        return Err(LogProofError::Fork(format!(
            "checkpoints of different logs ({:?} and {:?})",
            older.origin, newer.origin
        )));
    }
    if newer.size < older.size {
        return Err(LogProofError::Fork(format!(
            "the latest checkpoint has size {} but a checkpoint of size {} was seen before",
            newer.size, older.size
        )));
    }
    if newer.size == older.size {
        if newer.root_hash != older.root_hash {
            return Err(LogProofError::Fork(format!(
                "two checkpoints of size {} have different roots",
                newer.size
            )));
        }
        return Ok(());
    }
    if older.size == 0 {
        return Ok(());
    }
    verify_consistency(
        older.size,
        newer.size,
        &older.root_hash,
        &newer.root_hash,
        proof,
    )
    .map_err(|e| {
        LogProofError::Fork(format!(
            "the checkpoint of size {} is not consistent with the one of size {}: {e}",
            older.size, newer.size
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::merkle::{
        consistency_proof_plan, root_from_leaf_hashes, CompactRange, NodeId,
    };
    use std::collections::HashMap;

    /// The leaf as a generic RFC 8785 serializer writes it.
    fn generic_jcs_leaf(envelope: &Envelope, integrated_time: &str) -> Vec<u8> {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Leaf<'a> {
            dsse_envelope: &'a Envelope,
            integrated_time: &'a str,
        }
        serde_json_canonicalizer::to_vec(&Leaf {
            dsse_envelope: envelope,
            integrated_time,
        })
        .unwrap()
    }

    proptest::proptest! {
        #[test]
        fn hand_written_leaf_is_the_generic_jcs(
            payload in "\\PC{0,40}|[A-Za-z0-9+/=]{0,200}",
            payload_type in "[\\x00-\\x7f]{0,20}|\\PC{0,10}",
            signatures in proptest::collection::vec(
                (proptest::option::of("[\\x00-\\x{2029}]{0,12}"), "[\\x00-\\x{10ffff}]{0,12}"),
                0..4,
            ),
            time in "[\\x00-\\x{ffff}]{0,24}",
        ) {
            let envelope = Envelope {
                payload_type,
                payload,
                signatures: signatures
                    .into_iter()
                    .map(|(keyid, sig)| crate::core::dsse::EnvelopeSignature { keyid, sig })
                    .collect(),
            };
            proptest::prop_assert_eq!(
                String::from_utf8(leaf_bytes(&envelope, &time)).unwrap(),
                String::from_utf8(generic_jcs_leaf(&envelope, &time)).unwrap()
            );
        }
    }

    #[test]
    fn leaf_escapes_quotes_backslashes_and_controls_as_jcs_does() {
        let envelope = Envelope {
            payload_type: "a\"b\\c\u{8}\t\n\u{c}\r\u{1}\u{1f}\u{7f}é\u{2028}😀".into(),
            payload: String::new(),
            signatures: vec![],
        };
        let leaf = String::from_utf8(leaf_bytes(&envelope, "2026-11-28T00:00:00Z")).unwrap();
        assert_eq!(
            leaf,
            "{\"dsseEnvelope\":{\"payload\":\"\",\"payloadType\":\
             \"a\\\"b\\\\c\\b\\t\\n\\f\\r\\u0001\\u001f\u{7f}é\u{2028}😀\",\"signatures\":[]},\
             \"integratedTime\":\"2026-11-28T00:00:00Z\"}"
        );
        assert_eq!(
            leaf.as_bytes(),
            generic_jcs_leaf(&envelope, "2026-11-28T00:00:00Z")
        );
    }

    fn checkpoint(size: u64, root: Hash) -> Checkpoint {
        Checkpoint {
            origin: "example.com/log".into(),
            size,
            root_hash: root,
            extensions: vec![],
        }
    }

    #[test]
    fn consistent_growth_passes_and_forks_are_named() {
        let leaves: Vec<Hash> = (0..10u8).map(|i| leaf_hash(&[i])).collect();
        let mut range = CompactRange::new();
        let mut nodes: HashMap<NodeId, Hash> = HashMap::new();
        for l in &leaves {
            nodes.extend(range.append(*l));
        }
        let old = checkpoint(4, root_from_leaf_hashes(&leaves[..4]));
        let new = checkpoint(10, root_from_leaf_hashes(&leaves));
        let plan = consistency_proof_plan(4, 10).unwrap();
        let hashes: Vec<Hash> = plan.ids().iter().map(|id| nodes[id]).collect();
        let proof = plan.assemble(&hashes).unwrap();
        assert!(check_consistent(&old, &new, &proof).is_ok());
        assert!(matches!(
            check_consistent(&new, &old, &proof),
            Err(LogProofError::Fork(_))
        ));
        let other = checkpoint(10, root_from_leaf_hashes(&leaves[1..]));
        assert!(matches!(
            check_consistent(&new, &other, &[]),
            Err(LogProofError::Fork(_))
        ));
        let forked_new = checkpoint(10, [7u8; 32]);
        assert!(matches!(
            check_consistent(&old, &forked_new, &proof),
            Err(LogProofError::Fork(_))
        ));
        assert!(check_consistent(&new, &new, &[]).is_ok());
    }
}
