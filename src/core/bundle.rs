//! The bundle: everything a verifier needs offline, in one JSON document (DESIGN.md, "Bundle").

use crate::core::constants::{BUNDLE_MEDIA_TYPE_V1, MAX_BUNDLE_BYTES};
use crate::core::dsse::Envelope;
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

    /// Pretty JSON with a trailing newline, as written to sidecar files.
    pub fn to_json_pretty(&self) -> String {
        // Serializing plain structs of strings and integers cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Compact JSON on one line, as embedded in articles.
    pub fn to_json_compact(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
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
