//! The properties the three `canonicalize_*` targets check (the same ones as
//! `tests/proptest_parsers.rs`).
//!
//! The canonical text is *not* a fixed point of text/plain canonicalization as it stands:
//! paragraphs are joined by one LF, but text/plain ends paragraphs only at blank lines, so
//! `"A\nB"` reads back as the single paragraph `"A B"`; and a text that starts with U+FEFF loses
//! it, because step 1 drops one leading byte order mark. What does hold, and is checked here:
//!
//! * the paragraphs written out with blank lines between them, after one U+FEFF, read back as
//!   text/plain to exactly the canonical text (without the U+FEFF too, unless the text starts
//!   with one);
//! * the canonical text itself read back as text/plain is its paragraphs joined by spaces (so it
//!   is a true fixed point when it has at most one paragraph), unless it starts with U+FEFF.

use byline::core::canonical::{canonicalize, canonicalize_with_limit, Canonical, MediaType};

const BOM: char = '\u{feff}';

/// Canonicalizes `data` as `media` (which must not panic) and checks the result when it is Ok.
pub fn check(data: &[u8], media: MediaType) {
    if let Ok(canonical) = canonicalize(data, media) {
        check_canonical(&canonical);
    }
}

/// Checks the shape of a canonical text and how it reads back as text/plain.
pub fn check_canonical(c: &Canonical) {
    let text = &c.text;
    if !text.is_empty() {
        for p in text.split('\n') {
            assert!(!p.is_empty(), "empty paragraph in {text:?}");
            assert!(
                p.chars().all(|ch| ch == ' ' || !ch.is_whitespace()),
                "unfolded white space in {p:?}"
            );
            assert!(
                !p.starts_with(' ') && !p.ends_with(' ') && !p.contains("  "),
                "untrimmed or doubled space in {p:?}"
            );
        }
    }
    assert_eq!(c.paragraph_labels.len(), c.paragraphs().count());

    let paragraphs: Vec<&str> = c.paragraphs().collect();
    let blank_separated = paragraphs.join("\n\n");
    let with_bom = format!("{BOM}{blank_separated}");
    assert_eq!(plain(&with_bom).text, *text, "BOM + blank-line rendering");
    if !text.starts_with(BOM) {
        assert_eq!(plain(&blank_separated).text, *text, "blank-line rendering");
        assert_eq!(
            plain(text).text,
            text.replace('\n', " "),
            "text read as plain"
        );
    }
}

fn plain(text: &str) -> Canonical {
    // The canonical text can be longer than the input (NFC expands some characters), so the
    // size limit is lifted; everything else is the text/plain path.
    match canonicalize_with_limit(text.as_bytes(), MediaType::Plain, usize::MAX) {
        Ok(c) => c,
        Err(e) => panic!("canonical text does not canonicalize as text/plain: {e}"),
    }
}
