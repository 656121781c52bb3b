//! Strict JSON: one meaning per document.
//!
//! Two parsers that disagree about a document are an attack surface: `{"byline":"By AI",
//! "byline":"By Jane"}` means one thing to a parser that keeps the first key and another to one
//! that keeps the last. Every JSON document byline reads passes through [`check`] first, which
//! rejects duplicate keys at any depth and numbers outside the I-JSON range (RFC 7493), and only
//! then is deserialized into typed structs.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// The largest integer magnitude that every I-JSON reader represents exactly (2^53 − 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// How deep objects and arrays may nest before a document is refused (no parser recursion bomb).
pub const MAX_DEPTH: usize = 64;

/// Why a JSON document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrictJsonError {
    /// The document is not JSON, or breaks one of the strict rules; the message says where.
    #[error("{0}")]
    Invalid(String),
}

/// Checks that `bytes` is one JSON value with no duplicate keys, no number outside I-JSON, and
/// nesting no deeper than [`MAX_DEPTH`].
pub fn check(bytes: &[u8]) -> Result<(), StrictJsonError> {
    check_integer_literals(bytes)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // serde_json's own recursion limit (128) is above ours; ours is enforced by the visitor.
    de.deserialize_any(StrictVisitor { depth: 0 })
        .and_then(|()| de.end())
        .map_err(|e| StrictJsonError::Invalid(e.to_string()))
}

/// Refuses integer literals (no fraction, no exponent) beyond ±(2^53 − 1): serde_json reads
/// those too large for 64 bits as floats, which would silently round them.
fn check_integer_literals(bytes: &[u8]) -> Result<(), StrictJsonError> {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let token = &bytes[start..i];
                let integral = !token.iter().any(|b| matches!(b, b'.' | b'e' | b'E'));
                let digits = token.iter().filter(|b| b.is_ascii_digit()).count();
                if integral && digits > 15 {
                    let text = String::from_utf8_lossy(token);
                    let too_big = text
                        .trim_start_matches('-')
                        .parse::<u64>()
                        .map_or(true, |v| v > MAX_SAFE_INTEGER);
                    if too_big {
                        return Err(StrictJsonError::Invalid(format!(
                            "number {text} is outside the I-JSON range"
                        )));
                    }
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Checks `bytes` strictly, then deserializes them into `T`.
pub fn from_slice<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StrictJsonError> {
    check(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| StrictJsonError::Invalid(e.to_string()))
}

#[derive(Clone, Copy)]
struct StrictVisitor {
    depth: usize,
}

impl StrictVisitor {
    fn nested<E: de::Error>(&self) -> Result<StrictVisitor, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!(
                "JSON nests deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(StrictVisitor {
            depth: self.depth + 1,
        })
    }
}

struct Nested(StrictVisitor);

impl<'de> de::DeserializeSeed<'de> for Nested {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self.0)
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        if v.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(E::custom(format!("number {v} is outside the I-JSON range")));
        }
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        if v > MAX_SAFE_INTEGER {
            return Err(E::custom(format!("number {v} is outside the I-JSON range")));
        }
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // Integer literals too large for 64 bits also arrive here as floats; they are caught
        // by `check_integer_literals` before this visitor runs.
        if !v.is_finite() {
            return Err(E::custom(format!("number {v} is outside the I-JSON range")));
        }
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while seq.next_element_seed(Nested(inner))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value_seed(Nested(inner))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_rejected_at_any_depth() {
        assert!(check(br#"{"a":1,"a":2}"#).is_err());
        assert!(check(br#"{"x":[{"b":1,"b":1}]}"#).is_err());
        let err = check(br#"{"o":{"k":1,"k":2}}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate key \"k\""), "{err}");
        assert!(check(br#"{"a":1,"b":{"a":2}}"#).is_ok());
    }

    #[test]
    fn escaped_duplicate_keys_rejected() {
        assert!(check(br#"{"a":1,"\u0061":2}"#).is_err());
    }

    #[test]
    fn numbers_outside_i_json_rejected() {
        assert!(check(b"9007199254740991").is_ok());
        assert!(check(b"9007199254740992").is_err());
        assert!(check(b"-9007199254740992").is_err());
        assert!(check(b"1e400").is_err());
        assert!(check(b"100000000000000000000").is_err());
        assert!(check(b"-1.5").is_ok());
        assert!(check(b"[1.23e67]").is_ok());
        assert!(check(br#"{"a":"100000000000000000000"}"#).is_ok());
    }

    #[test]
    fn trailing_data_and_deep_nesting_rejected() {
        assert!(check(b"{} x").is_err());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(check(deep.as_bytes()).is_err());
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(check(ok.as_bytes()).is_ok());
    }
}
