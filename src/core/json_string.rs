//! Writing a JSON string quickly, for the two documents written once per signed article: the
//! log leaf and the bundle.
//!
//! RFC 8785 (JCS, the leaf's form) and serde_json write a string the same way: `"` and `\`
//! escaped, the control characters as `\b \t \n \f \r` or `\u00xx` (lower-case hex), and every
//! other character as its UTF-8 bytes. Most of the text in both documents is base64 (the
//! payload, the signature, the proof hashes), which needs no escaping at all, so the writer
//! checks 64 bytes at a time (eight where a block holds an escape) and copies clean runs whole.

/// Every byte of a word set to `0x01`.
const ONES: u64 = 0x0101_0101_0101_0101;
/// Every byte of a word set to `0x80`.
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes of `word` must be escaped in a JSON string: a control
/// character (below `0x20`), `"` or `\`. Exact as a yes/no answer (the borrow tricks below can
/// mark the wrong byte, never the wrong word).
fn needs_escape(word: u64) -> bool {
    let below_space = word.wrapping_sub(0x20 * ONES) & !word;
    let quote = word ^ (u64::from(b'"') * ONES);
    let backslash = word ^ (u64::from(b'\\') * ONES);
    let zero_in_quote = quote.wrapping_sub(ONES) & !quote;
    let zero_in_backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | zero_in_quote | zero_in_backslash) & HIGHS != 0
}

/// How many bytes one step of the scan checks: written as a plain loop over an array, the
/// check compiles to vector instructions (SSE2, on any x86-64), and 64 bytes took about half
/// the time of eight 8-byte word checks on 2 KB of base64.
const BLOCK: usize = 64;

/// Whether any byte of `block` must be escaped in a JSON string (see [`needs_escape`]).
fn block_needs_escape(block: &[u8; BLOCK]) -> bool {
    block.iter().fold(false, |found, &b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// The escape for one byte, if it needs one; `None` for a byte copied as it is.
fn escape_of(byte: u8) -> Option<&'static str> {
    Some(match byte {
        b'"' => "\\\"",
        b'\\' => "\\\\",
        0x08 => "\\b",
        b'\t' => "\\t",
        b'\n' => "\\n",
        0x0c => "\\f",
        b'\r' => "\\r",
        0x00..=0x1f => "\\u00",
        _ => return None,
    })
}

/// Appends `value` as a JSON string, quotes included, in the form RFC 8785 and serde_json
/// share (see the module documentation). It writes into a `String`: every piece copied is a
/// whole run of `value` between escaped ASCII bytes (so on character boundaries) or ASCII,
/// and the document needs no UTF-8 check afterwards (the bundle's check was about 1.3k
/// instructions of a unary call's 475k, counted under callgrind).
pub(crate) fn push_json_string(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = value.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push('"');
    // `copied` is the first byte not yet written; `at` the next byte to look at.
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        if let Some(block) = bytes.get(at..at + BLOCK) {
            if !block_needs_escape(block.try_into().unwrap_or(&[0; BLOCK])) {
                at += BLOCK;
                continue;
            }
        }
        // A block with an escape in it (or the last bytes, short of a block): word by word,
        // then byte by byte, to the end of the block before looking at whole blocks again.
        let block_end = (at + BLOCK).min(bytes.len());
        while at < block_end {
            if let Some(word) = bytes.get(at..at + 8) {
                let word = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
                if !needs_escape(word) {
                    at += 8;
                    continue;
                }
            }
            let byte = bytes[at];
            if let Some(escape) = escape_of(byte) {
                // `byte` is ASCII, so `at` and `at + 1` are character boundaries.
                out.push_str(&value[copied..at]);
                out.push_str(escape);
                if escape == "\\u00" {
                    out.push(char::from(HEX[usize::from(byte >> 4)]));
                    out.push(char::from(HEX[usize::from(byte & 0xf)]));
                }
                copied = at + 1;
            }
            at += 1;
        }
    }
    out.push_str(&value[copied..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(value: &str) -> String {
        let mut out = String::new();
        push_json_string(&mut out, value);
        out
    }

    #[test]
    fn every_ascii_character_is_written_as_serde_json_writes_it() {
        for byte in 0u8..0x80 {
            let one = char::from(byte).to_string();
            assert_eq!(
                written(&one),
                serde_json::to_string(&one).unwrap(),
                "{byte:#04x}"
            );
            // The same character at every position of a word, between clean bytes.
            for position in 0..9 {
                let s = format!("{}{one}{}", "A".repeat(position), "b".repeat(9 - position));
                assert_eq!(written(&s), serde_json::to_string(&s).unwrap(), "{s:?}");
            }
            // And at every position of two and a half blocks, and twice in one block.
            for position in 0..2 * BLOCK + BLOCK / 2 {
                let s = format!(
                    "{}{one}{}",
                    "A".repeat(position),
                    "b".repeat(160 - position)
                );
                assert_eq!(written(&s), serde_json::to_string(&s).unwrap(), "{s:?}");
                let s = format!("{}{one}x{one}{}", "A".repeat(position), "b".repeat(9));
                assert_eq!(written(&s), serde_json::to_string(&s).unwrap(), "{s:?}");
            }
        }
    }

    #[test]
    fn the_word_check_flags_exactly_the_words_that_need_escaping() {
        // Every byte value at every position of an otherwise clean word, and the borrow cases:
        // a flagged byte followed by bytes just above the limits.
        for byte in 0u8..=255 {
            for position in 0..8 {
                let mut word = [b'a'; 8];
                word[position] = byte;
                let expected = word.iter().any(|&b| escape_of(b).is_some());
                assert_eq!(needs_escape(u64::from_le_bytes(word)), expected, "{word:?}");
                let mut neighbours = [0x21u8; 8];
                neighbours[position] = byte;
                let expected = neighbours.iter().any(|&b| escape_of(b).is_some());
                assert_eq!(needs_escape(u64::from_le_bytes(neighbours)), expected);
            }
        }
    }

    #[test]
    fn the_block_check_flags_exactly_the_blocks_that_need_escaping() {
        for byte in 0u8..=255 {
            for position in [0, 1, 7, 8, 31, 32, 33, 62, 63] {
                let mut block = [b'a'; BLOCK];
                block[position] = byte;
                let expected = escape_of(byte).is_some();
                assert_eq!(
                    block_needs_escape(&block),
                    expected,
                    "{byte:#04x} at {position}"
                );
            }
        }
        assert!(!block_needs_escape(&[0x7f; BLOCK]));
        assert!(!block_needs_escape(&[0xff; BLOCK]));
    }

    proptest::proptest! {
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(s in "[\\x00-\\x{10ffff}]{0,40}") {
            proptest::prop_assert_eq!(written(&s), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn long_mostly_clean_strings_are_written_as_serde_json_writes_them(
            s in "([A-Za-z0-9+/=]{0,30}[\\x00-\\x22\\x5c\\x7f-\\x{ff}]?){0,12}"
        ) {
            proptest::prop_assert_eq!(written(&s), serde_json::to_string(&s).unwrap());
        }
    }
}
