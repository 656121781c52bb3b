//! SHA-256 digests as they appear in manifests: 64 lowercase hex digits.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A SHA-256 digest; the one hash byline binds articles, paragraphs and statements with.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Hashes `data` in one call.
    pub fn of(data: &[u8]) -> Self {
        Sha256Digest(Sha256::digest(data).into())
    }

    /// The lowercase hex form written in manifests.
    ///
    /// Written here rather than with `hex::encode`, which builds the string one `char` at a
    /// time: a signing call writes about ten of these, and counted under callgrind they were
    /// about 4 % of the async thread's instructions per call (docs/BENCHMARKS.md, sixth session).
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 64];
        for (pair, byte) in text.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        // Cannot fail: every byte is an ASCII digit or letter.
        String::from_utf8(text.to_vec()).unwrap_or_default()
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

/// Why a digest string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not exactly 64 lowercase hex digits.
    #[error("not a SHA-256 digest: expected 64 lowercase hex digits, got {got:?}")]
    Malformed {
        /// The text that was given (shortened when long).
        got: String,
    },
}

/// The value of each byte as a hex digit (either case), or `NOT_HEX`.
const HEX_VALUES: [u8; 256] = {
    let mut values = [NOT_HEX; 256];
    let mut digit = 0;
    while digit < 10 {
        values[b'0' as usize + digit] = digit as u8;
        digit += 1;
    }
    let mut letter = 0;
    while letter < 6 {
        values[b'a' as usize + letter] = 10 + letter as u8;
        values[b'A' as usize + letter] = 10 + letter as u8;
        letter += 1;
    }
    values
};

/// Marks a byte that is not a hex digit in [`HEX_VALUES`].
const NOT_HEX: u8 = 0xff;

/// The 32 bytes written as 64 hex digits (either case) in `hex_digits`, or `None` if it is
/// anything else.
///
/// A table lookup per digit rather than `hex::decode_to_slice`: every `Sign` call decodes its
/// two article digests, and the log decodes three digests per entry again for its index.
pub(crate) fn decode_hex_32(hex_digits: &str) -> Option<[u8; 32]> {
    let digits = hex_digits.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    let mut bad = 0u8;
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (high, low) = (
            HEX_VALUES[usize::from(pair[0])],
            HEX_VALUES[usize::from(pair[1])],
        );
        // NOT_HEX has its high bit set, which no digit's value has.
        bad |= high | low;
        *byte = (high << 4) | (low & 0x0f);
    }
    (bad & 0x80 == 0).then_some(out)
}

impl FromStr for Sha256Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || DigestError::Malformed {
            got: s.chars().take(80).collect(),
        };
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(malformed());
        }
        decode_hex_32(s).map(Sha256Digest).ok_or_else(malformed)
    }
}

impl serde::Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The two digests that bind a manifest to an article (DESIGN.md, "Bindings").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArticleDigests {
    /// SHA-256 of the canonical text: survives re-rendering.
    pub text: Sha256Digest,
    /// SHA-256 of the bytes as signed, less any embedded bundle block.
    pub exact: Sha256Digest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decoding_agrees_with_the_hex_crate() {
        let mut samples: Vec<String> = vec![
            "00".repeat(32),
            "ff".repeat(32),
            "0123456789abcdefABCDEF".repeat(3)[..64].to_string(),
            "0".repeat(63),
            "0".repeat(65),
            String::new(),
        ];
        // Every byte value in every position of an otherwise valid string.
        for byte in 0u8..=255 {
            for position in [0, 1, 31, 62, 63] {
                let mut digits = b"a".repeat(64);
                digits[position] = byte;
                if let Ok(text) = String::from_utf8(digits) {
                    samples.push(text);
                }
            }
        }
        samples.push(format!("{}\u{e9}", "a".repeat(62)));
        for sample in samples {
            let mut expected = [0u8; 32];
            let expected = hex::decode_to_slice(&sample, &mut expected)
                .ok()
                .map(|()| expected);
            assert_eq!(decode_hex_32(&sample), expected, "{sample:?}");
        }
    }

    #[test]
    fn parses_only_lowercase_hex_of_the_right_length() {
        let d = Sha256Digest::of(b"abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.to_hex().parse::<Sha256Digest>().unwrap(), d);
        assert!(d.to_hex().to_uppercase().parse::<Sha256Digest>().is_err());
        assert!("abcd".parse::<Sha256Digest>().is_err());
    }

    /// Every byte value is written as the two lowercase digits the hex crate writes.
    #[test]
    fn hex_form_matches_the_hex_crate_for_every_byte() {
        for first in (0..=255u8).step_by(32) {
            let bytes: [u8; 32] = std::array::from_fn(|i| first.wrapping_add(i as u8));
            let d = Sha256Digest(bytes);
            assert_eq!(d.to_hex(), hex::encode(bytes));
        }
    }
}
