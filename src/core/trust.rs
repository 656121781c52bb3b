//! The trust store and the trust policy: which keys may sign for which publisher, and when.
//!
//! Trust never comes from a bundle: a key is trusted only because an entry here says so, for
//! one publisher, within a validity window. The format (`keys/trust.toml`) is documented in
//! `docs/trust.md`.

use ed25519_dalek::VerifyingKey;

use crate::core::keys::{keyid, public_key_from_base64, public_key_to_base64, KeyError};
use crate::core::manifest::{check_domain, Timestamp};

/// Why a trust store could not be read or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The TOML is malformed, has an unknown or duplicate key, or a value of the wrong type.
    #[error("malformed trust store: {0}")]
    Malformed(String),
    /// An entry's public key is not usable.
    #[error("trust entry {index} ({publisher}): {source}")]
    BadKey {
        /// Zero-based index of the `[[publisher_key]]` entry.
        index: usize,
        /// The entry's publisher.
        publisher: String,
        /// What is wrong with the key.
        source: KeyError,
    },
    /// An entry's publisher is not a lowercase domain name.
    #[error("trust entry {index}: publisher {publisher:?} is not a lowercase domain name")]
    BadPublisher {
        /// Zero-based index of the entry.
        index: usize,
        /// The publisher as written.
        publisher: String,
    },
    /// An entry's `keyid` does not match its key.
    #[error(
        "trust entry {index}: keyid {got} does not match the public key (expected {expected})"
    )]
    KeyIdMismatch {
        /// Zero-based index of the entry.
        index: usize,
        /// The keyid written.
        got: String,
        /// The keyid of the key.
        expected: String,
    },
}

/// A trust store: publisher keys and transparency-log keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustStore {
    /// Keys that may sign manifests for a publisher.
    #[serde(
        default,
        rename = "publisher_key",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub publisher_keys: Vec<PublisherKeyEntry>,
    /// Transparency logs whose checkpoints are believed.
    #[serde(default, rename = "log", skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogEntryTrust>,
}

/// One key trusted for one publisher.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherKeyEntry {
    /// The publisher's domain, as in `predicate.publisher.domain`.
    pub publisher: String,
    /// The publisher's name as the trust store knows it (what verdicts show).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The Ed25519 public key, base64 of its 32 bytes.
    pub public_key: String,
    /// Lowercase hex SHA-256 of the key (informational; checked when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    /// The key is trusted from this time on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    /// The key is trusted until (not including) this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Timestamp>,
    /// The key is revoked from this time on; signatures the log proves earlier still count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_since: Option<Timestamp>,
    /// Manifests under this key must carry a log proof.
    #[serde(default)]
    pub require_log: bool,
    /// Where the entry came from (`keygen`, `trust add https://…`, by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One transparency log that verifiers believe.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntryTrust {
    /// The log's origin line (first line of its checkpoints).
    pub origin: String,
    /// The log key as a C2SP note verifier key (`name+hash+base64`).
    pub verifier_key: String,
    /// Where the entry came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// A publisher key entry with its key decoded, ready for verification.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    /// The entry as written.
    pub entry: PublisherKeyEntry,
    /// Its decoded key.
    pub key: VerifyingKey,
    /// Its key id.
    pub keyid: String,
}

/// How a trusted key stands at the time a signature counts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyStanding {
    /// Trusted, in its window, not revoked.
    Active,
    /// Revoked since a time after the logged signing time: the signature still counts.
    Retired {
        /// When it was revoked.
        since: Timestamp,
    },
}

/// Why a key did not count at the signing time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyTrustFailure {
    /// The signing time is before the key's window opened.
    #[error("key not yet valid at {at} (trusted from {not_before})")]
    NotYetValid {
        /// The time judged.
        at: Timestamp,
        /// When the window opens.
        not_before: Timestamp,
    },
    /// The signing time is past the key's window.
    #[error("key expired: signing time {at} is past its validity (until {not_after})")]
    Expired {
        /// The time judged.
        at: Timestamp,
        /// When the window closed.
        not_after: Timestamp,
    },
    /// The key was revoked before the signing time, or the signature has no log time.
    #[error("key revoked at {since} (signed {when})")]
    Revoked {
        /// When it was revoked.
        since: Timestamp,
        /// How the signing time relates to it.
        when: String,
    },
    /// The trust entry requires a log proof and the bundle has none.
    #[error("key requires a transparency-log entry (require_log) but the bundle was never logged")]
    LogRequired,
}

impl TrustStore {
    /// Parses a trust store from TOML, checking every entry.
    pub fn from_toml(text: &str) -> Result<Self, TrustError> {
        let store: TrustStore =
            toml::from_str(text).map_err(|e| TrustError::Malformed(e.to_string()))?;
        store.trusted_keys()?;
        Ok(store)
    }

    /// The TOML form, with a header comment that points to the documentation.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_default();
        format!("# byline trust store: which keys may sign for which publisher. See docs/trust.md.\n\n{body}")
    }

    /// Every publisher key decoded and checked (weak keys and bad domains are refused).
    pub fn trusted_keys(&self) -> Result<Vec<TrustedKey>, TrustError> {
        self.publisher_keys
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                if check_domain(&entry.publisher).is_err() {
                    return Err(TrustError::BadPublisher {
                        index,
                        publisher: entry.publisher.clone(),
                    });
                }
                let key = public_key_from_base64(&entry.public_key).map_err(|source| {
                    TrustError::BadKey {
                        index,
                        publisher: entry.publisher.clone(),
                        source,
                    }
                })?;
                let id = keyid(&key);
                if let Some(written) = &entry.keyid {
                    if *written != id {
                        return Err(TrustError::KeyIdMismatch {
                            index,
                            got: written.clone(),
                            expected: id,
                        });
                    }
                }
                Ok(TrustedKey {
                    entry: entry.clone(),
                    key,
                    keyid: id,
                })
            })
            .collect()
    }

    /// Adds a key for a publisher, unless the same key is already trusted for it. Returns
    /// whether the store changed.
    pub fn add_publisher_key(
        &mut self,
        publisher: &str,
        name: Option<&str>,
        key: &VerifyingKey,
        require_log: bool,
        source: &str,
    ) -> Result<bool, TrustError> {
        let b64 = public_key_to_base64(key);
        if self
            .publisher_keys
            .iter()
            .any(|e| e.publisher == publisher && e.public_key == b64)
        {
            return Ok(false);
        }
        let entry = PublisherKeyEntry {
            publisher: publisher.to_string(),
            name: name.map(str::to_string),
            public_key: b64,
            keyid: Some(keyid(key)),
            not_before: None,
            not_after: None,
            revoked_since: None,
            require_log,
            source: Some(source.to_string()),
        };
        self.publisher_keys.push(entry);
        if let Err(e) = self.trusted_keys() {
            self.publisher_keys.pop();
            return Err(e);
        }
        Ok(true)
    }
}

impl TrustedKey {
    /// The publisher's name as the trust store knows it (its domain when no name is set).
    pub fn publisher_display(&self) -> &str {
        self.entry.name.as_deref().unwrap_or(&self.entry.publisher)
    }

    /// Judges the key at the time the signature counts from (DESIGN.md, "Keys and trust"):
    /// the log's `integratedTime` when `logged`, else the present.
    pub fn standing_at(&self, at: Timestamp, logged: bool) -> Result<KeyStanding, KeyTrustFailure> {
        let e = &self.entry;
        if e.require_log && !logged {
            return Err(KeyTrustFailure::LogRequired);
        }
        if let Some(not_before) = e.not_before {
            if at < not_before {
                return Err(KeyTrustFailure::NotYetValid { at, not_before });
            }
        }
        if let Some(not_after) = e.not_after {
            if at >= not_after {
                return Err(KeyTrustFailure::Expired { at, not_after });
            }
        }
        if let Some(since) = e.revoked_since {
            if !logged {
                return Err(KeyTrustFailure::Revoked {
                    since,
                    when: "offline, with no log time to prove it was earlier".into(),
                });
            }
            if at >= since {
                return Err(KeyTrustFailure::Revoked {
                    since,
                    when: format!("{at}, after the revocation"),
                });
            }
            return Ok(KeyStanding::Retired { since });
        }
        Ok(KeyStanding::Active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::keys::SigningKey;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn toml_round_trip_and_strictness() {
        let mut store = TrustStore::default();
        let key = SigningKey::generate().verifying_key();
        assert!(store
            .add_publisher_key("news.example", Some("News Example"), &key, false, "keygen")
            .unwrap());
        assert!(!store
            .add_publisher_key("news.example", None, &key, false, "keygen")
            .unwrap());
        let text = store.to_toml();
        assert_eq!(TrustStore::from_toml(&text).unwrap(), store);
        assert!(TrustStore::from_toml(&format!("{text}\nsurprise = 1\n")).is_err());
        let dup = text.replacen(
            "require_log = false",
            "require_log = false\nrequire_log = true",
            1,
        );
        assert!(TrustStore::from_toml(&dup).is_err());
        assert!(store
            .add_publisher_key(
                "News.Example",
                None,
                &SigningKey::generate().verifying_key(),
                false,
                "x"
            )
            .is_err());
    }

    #[test]
    fn standing_follows_windows_and_revocation() {
        let key = SigningKey::generate().verifying_key();
        let mut store = TrustStore::default();
        store
            .add_publisher_key("news.example", None, &key, false, "t")
            .unwrap();
        store.publisher_keys[0].not_before = Some(t("2026-01-01T00:00:00Z"));
        store.publisher_keys[0].not_after = Some(t("2027-01-01T00:00:00Z"));
        store.publisher_keys[0].revoked_since = Some(t("2026-06-01T00:00:00Z"));
        let k = &store.trusted_keys().unwrap()[0];
        assert!(matches!(
            k.standing_at(t("2025-12-31T00:00:00Z"), true),
            Err(KeyTrustFailure::NotYetValid { .. })
        ));
        assert!(matches!(
            k.standing_at(t("2026-03-01T00:00:00Z"), true),
            Ok(KeyStanding::Retired { .. })
        ));
        assert!(matches!(
            k.standing_at(t("2026-03-01T00:00:00Z"), false),
            Err(KeyTrustFailure::Revoked { .. })
        ));
        assert!(matches!(
            k.standing_at(t("2026-07-01T00:00:00Z"), true),
            Err(KeyTrustFailure::Revoked { .. })
        ));
        assert!(matches!(
            k.standing_at(t("2027-02-01T00:00:00Z"), true),
            Err(KeyTrustFailure::Expired { .. })
        ));
    }
}
