//! The bundle: everything a verifier needs offline, in one JSON document (DESIGN.md, "Bundle").

use crate::core::constants::{BUNDLE_MEDIA_TYPE_V1, MAX_BUNDLE_BYTES};
use crate::core::dsse::Envelope;
use crate::core::json_string::push_json_string;
use crate::core::strict_json;

/// Why a bundle could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Not JSON, duplicate keys, unknown or missing fields, wrong types.
    #[error("malformed bundle: {0}")]
    Malformed(String),
    /// The `mediaType` is not a byline bundle v1.
    #[error("malformed bundle: mediaType is {got:?}, expected {expected:?}")]
    MediaType {
        /// What the bundle says.
        got: String,
        /// What byline reads.
        expected: &'static str,
    },
    /// Larger than any honest bundle.
    #[error("malformed bundle: {got} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Its size.
        got: usize,
        /// The limit.
        limit: usize,
    },
}

/// A byline bundle v1.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Bundle {
    /// Always `application/vnd.byline.bundle.v1+json`.
    pub media_type: String,
    /// The signed manifest.
    pub dsse_envelope: Envelope,
    /// Where the manifest sits in the transparency log; absent when signed offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_entry: Option<LogEntry>,
}

/// The manifest's place in the log and the proof of it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogEntry {
    /// Zero-based index of the leaf.
    pub log_index: u64,
    /// The sequencer's time for the entry (RFC 3339 UTC, whole seconds); part of the leaf.
    pub integrated_time: String,
    /// The RFC 9162 inclusion proof against the checkpoint.
    pub inclusion_proof: InclusionProof,
}

/// An inclusion proof with the signed checkpoint it proves against.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InclusionProof {
    /// The size of the tree the proof is for (equal to the checkpoint's size).
    pub tree_size: u64,
    /// The audit path, leaf to root, each hash base64.
    pub hashes: Vec<String>,
    /// The C2SP signed note of the checkpoint, verbatim.
    pub checkpoint: String,
}

impl Bundle {
    /// A bundle with no log entry (signed offline with a local key).
    pub fn offline(envelope: Envelope) -> Self {
        Bundle {
            media_type: BUNDLE_MEDIA_TYPE_V1.to_string(),
            dsse_envelope: envelope,
            log_entry: None,
        }
    }

    /// Parses a bundle strictly: one meaning per document.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge {
                got: bytes.len(),
                limit: MAX_BUNDLE_BYTES,
            });
        }
        let bundle: Bundle =
            strict_json::from_slice(bytes).map_err(|e| BundleError::Malformed(e.to_string()))?;
        if bundle.media_type != BUNDLE_MEDIA_TYPE_V1 {
            return Err(BundleError::MediaType {
                got: bundle.media_type,
                expected: BUNDLE_MEDIA_TYPE_V1,
            });
        }
        Ok(bundle)
    }

    /// Pretty JSON with a trailing newline, as written to sidecar files and returned by `Sign`.
    ///
    /// Written by hand, byte for byte what `serde_json::to_string_pretty` writes (the tests
    /// compare the two on arbitrary bundles): the server writes one bundle per signed article,
    /// and serde_json looks at every byte of the base64 payload one at a time to escape it,
    /// where [`push_json_string`] copies clean runs eight bytes at a time.
    pub fn to_json_pretty(&self) -> String {
        let envelope = &self.dsse_envelope;
        let mut out = String::with_capacity(envelope.payload.len() + 2048);
        out.push_str("{\n  \"mediaType\": ");
        push_json_string(&mut out, &self.media_type);
        out.push_str(",\n  \"dsseEnvelope\": {\n    \"payloadType\": ");
        push_json_string(&mut out, &envelope.payload_type);
        out.push_str(",\n    \"payload\": ");
        push_json_string(&mut out, &envelope.payload);
        out.push_str(",\n    \"signatures\": [");
        for (n, signature) in envelope.signatures.iter().enumerate() {
            start_item(&mut out, n, "      {\n");
            if let Some(keyid) = &signature.keyid {
                out.push_str("        \"keyid\": ");
                push_json_string(&mut out, keyid);
                out.push_str(",\n");
            }
            out.push_str("        \"sig\": ");
            push_json_string(&mut out, &signature.sig);
            out.push_str("\n      }");
        }
        if !envelope.signatures.is_empty() {
            out.push_str("\n    ");
        }
        out.push_str("]\n  }");
        if let Some(entry) = &self.log_entry {
            let proof = &entry.inclusion_proof;
            out.push_str(",\n  \"logEntry\": {\n    \"logIndex\": ");
            out.push_str(&entry.log_index.to_string());
            out.push_str(",\n    \"integratedTime\": ");
            push_json_string(&mut out, &entry.integrated_time);
            out.push_str(",\n    \"inclusionProof\": {\n      \"treeSize\": ");
            out.push_str(&proof.tree_size.to_string());
            out.push_str(",\n      \"hashes\": [");
            for (n, hash) in proof.hashes.iter().enumerate() {
                start_item(&mut out, n, "        ");
                push_json_string(&mut out, hash);
            }
            if !proof.hashes.is_empty() {
                out.push_str("\n      ");
            }
            out.push_str("],\n      \"checkpoint\": ");
            push_json_string(&mut out, &proof.checkpoint);
            out.push_str("\n    }\n  }");
        }
        out.push_str("\n}\n");
        out
    }

    /// Compact JSON on one line, as embedded in articles.
    pub fn to_json_compact(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Starts item `n` of an array in pretty JSON: a comma after the first item, a new line, and
/// `opening` (the indentation, and a brace for an object).
fn start_item(out: &mut String, n: usize, opening: &str) {
    if n > 0 {
        out.push(',');
    }
    out.push('\n');
    out.push_str(opening);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dsse::EnvelopeSignature;

    fn bundle() -> Bundle {
        Bundle::offline(Envelope {
            payload_type: "application/vnd.in-toto+json".into(),
            payload: "e30=".into(),
            signatures: vec![EnvelopeSignature {
                keyid: Some("ab".into()),
                sig: "AA==".into(),
            }],
        })
    }

    /// serde_json's pretty form of the bundle, which `to_json_pretty` writes by hand.
    fn serde_pretty(b: &Bundle) -> String {
        serde_json::to_string_pretty(b).unwrap() + "\n"
    }

    #[test]
    fn pretty_json_is_serde_jsons_for_a_logged_bundle() {
        let mut b = bundle();
        b.log_entry = Some(LogEntry {
            log_index: 41,
            integrated_time: "2026-11-29T09:00:00Z".into(),
            inclusion_proof: InclusionProof {
                tree_size: 42,
                hashes: vec!["a2V5".into(), "dmFsdWU=".into()],
                checkpoint: "byline.localhost/log\n42\nroot=\n\n\u{2014} byline abc=\n".into(),
            },
        });
        assert_eq!(b.to_json_pretty(), serde_pretty(&b));
        assert_eq!(Bundle::from_json(b.to_json_pretty().as_bytes()).unwrap(), b);
        assert_eq!(bundle().to_json_pretty(), serde_pretty(&bundle()));
    }

    proptest::proptest! {
        #[test]
        fn pretty_json_is_serde_jsons_for_any_bundle(
            media_type in "[\\x00-\\x{2029}]{0,8}",
            payload_type in "[\\x00-\\x{2029}]{0,8}",
            payload in "[A-Za-z0-9+/=\"\\\\\n\\x{e9}]{0,64}",
            signatures in proptest::collection::vec(
                (proptest::option::of("[\\x00-\\x{2029}]{0,8}"), "[\\x00-\\x{10ffff}]{0,8}"),
                0..3,
            ),
            entry in proptest::option::of((
                proptest::num::u64::ANY,
                "[\\x00-\\x{2029}]{0,8}",
                proptest::num::u64::ANY,
                proptest::collection::vec("[\\x00-\\x{2029}]{0,8}", 0..4),
                "[\\x00-\\x{10ffff}]{0,24}",
            )),
        ) {
            let b = Bundle {
                media_type,
                dsse_envelope: Envelope {
                    payload_type,
                    payload,
                    signatures: signatures
                        .into_iter()
                        .map(|(keyid, sig)| EnvelopeSignature { keyid, sig })
                        .collect(),
                },
                log_entry: entry.map(|(log_index, integrated_time, tree_size, hashes, checkpoint)| {
                    LogEntry {
                        log_index,
                        integrated_time,
                        inclusion_proof: InclusionProof { tree_size, hashes, checkpoint },
                    }
                }),
            };
            proptest::prop_assert_eq!(b.to_json_pretty(), serde_pretty(&b));
        }
    }

    #[test]
    fn round_trips_and_rejects_unknown_and_duplicate_fields() {
        let b = bundle();
        assert_eq!(Bundle::from_json(b.to_json_pretty().as_bytes()).unwrap(), b);
        let mut v: serde_json::Value = serde_json::from_str(&b.to_json_compact()).unwrap();
        v["extra"] = serde_json::json!(true);
        assert!(Bundle::from_json(v.to_string().as_bytes()).is_err());
        let dup = b
            .to_json_compact()
            .replacen('{', "{\"mediaType\":\"x\",", 1);
        let err = Bundle::from_json(dup.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("duplicate key"), "{err}");
        assert!(Bundle::from_json(b"{\"mediaType\":").is_err());
    }
}
