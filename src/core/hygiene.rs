//! Metadata hygiene: the byline and every name field must read as what they are.
//!
//! Whoever wants AI text to pass as human can try to make a label look like another: "By AI"
//! with a Cyrillic А, with a zero-width space, or "By Al" with a lowercase L. These checks run
//! at signing (an error naming the field and the code point) and at verification (a warning
//! on the verdict): NFC only; no bidi controls, invisible characters, variation selectors, TAG
//! characters, C0/C1 controls or line separators; one script per word; and no byline whose
//! UTS #39 confusable skeleton equals a reserved byline's without being it.

use unicode_normalization::is_nfc;
use unicode_security::{skeleton, MixedScript};

use crate::core::canonical::{is_bidi_control, is_invisible_format};

/// Bylines that others may not imitate; the list starts with "By AI".
pub const DEFAULT_RESERVED_BYLINES: &[&str] = &["By AI"];

/// Why a byline or name field was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HygieneError {
    /// The text is not in Unicode NFC, so it has two spellings.
    #[error("{field} is not in Unicode NFC form; normalize it before signing")]
    NotNfc {
        /// The field.
        field: String,
    },
    /// A character that hides, reorders or breaks what is displayed.
    #[error("{field} contains {code_point} ({kind}), which is not allowed in names and bylines")]
    Forbidden {
        /// The field.
        field: String,
        /// The code point, as `U+XXXX`.
        code_point: String,
        /// What kind of character it is.
        kind: &'static str,
    },
    /// A word mixes scripts (a Greek Β among Latin letters), the mark of a homoglyph.
    #[error("{field}: the word {word:?} mixes scripts ({detail}), as lookalike spoofing does")]
    MixedScript {
        /// The field.
        field: String,
        /// The word.
        word: String,
        /// Which characters are from which script, briefly.
        detail: String,
    },
    /// The byline looks like a reserved byline without being it.
    #[error("{field} {got:?} looks confusably like the reserved byline {reserved:?}")]
    Lookalike {
        /// The field.
        field: String,
        /// The byline given.
        got: String,
        /// The reserved byline it imitates.
        reserved: String,
    },
}

impl HygieneError {
    /// The same refusal, naming the field `name` instead: lets a caller that checks many
    /// fields build a field's name (`humans[2].role`) only when that field is refused.
    pub(crate) fn in_field(mut self, name: String) -> Self {
        match &mut self {
            HygieneError::NotNfc { field }
            | HygieneError::Forbidden { field, .. }
            | HygieneError::MixedScript { field, .. }
            | HygieneError::Lookalike { field, .. } => *field = name,
        }
        self
    }
}

fn forbidden_kind(ch: char) -> Option<&'static str> {
    if is_bidi_control(ch) {
        Some("a bidi control")
    } else if matches!(ch, '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}') {
        Some("a variation selector")
    } else if matches!(ch, '\u{E0000}'..='\u{E007F}') {
        Some("a TAG character")
    } else if is_invisible_format(ch) {
        Some("an invisible character")
    } else if matches!(ch, '\u{2028}' | '\u{2029}') {
        Some("a line or paragraph separator")
    } else if ch.is_control() {
        Some("a control character")
    } else {
        None
    }
}

/// Checks a name field (a person's, a publisher's, an AI system's, a role): NFC, no forbidden
/// characters, one script per word.
pub fn check_name(field: &str, value: &str) -> Result<(), HygieneError> {
    if let Some((ch, kind)) = value
        .chars()
        .find_map(|c| forbidden_kind(c).map(|k| (c, k)))
    {
        return Err(HygieneError::Forbidden {
            field: field.to_string(),
            code_point: format!("U+{:04X}", ch as u32),
            kind,
        });
    }
    // ASCII is always NFC, and an ASCII word is always one script (Latin letters with
    // script-neutral digits and punctuation): names that are ASCII, most of them, skip both
    // Unicode checks.
    if value.is_ascii() {
        return Ok(());
    }
    if !is_nfc(value) {
        return Err(HygieneError::NotNfc {
            field: field.to_string(),
        });
    }
    for word in value.split_whitespace() {
        if !word.is_single_script() {
            let detail = word
                .chars()
                .filter(|c| !c.is_ascii())
                .map(|c| format!("U+{:04X}", c as u32))
                .collect::<Vec<_>>()
                .join(" ");
            return Err(HygieneError::MixedScript {
                field: field.to_string(),
                word: word.to_string(),
                detail: if detail.is_empty() {
                    "mixed".into()
                } else {
                    format!("non-ASCII {detail}")
                },
            });
        }
    }
    Ok(())
}

/// Checks a byline: a name field that also may not imitate a reserved byline.
pub fn check_byline(field: &str, value: &str, reserved: &[&str]) -> Result<(), HygieneError> {
    check_name(field, value)?;
    // The skeletons are compared as they are produced: most bylines differ from a reserved
    // one within a few characters, and neither skeleton is kept.
    for r in reserved {
        if *r != value && skeleton(r).eq(skeleton(value)) {
            return Err(HygieneError::Lookalike {
                field: field.to_string(),
                got: value.to_string(),
                reserved: r.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honest_names_in_any_single_script_pass() {
        for ok in [
            "By AI",
            "By Zoë Ångström",
            "Автор: Иван Петров",
            "記者 山田太郎",
            "By AI, edited by J. O'Neil-Smith",
        ] {
            assert_eq!(
                check_byline("byline", ok, DEFAULT_RESERVED_BYLINES),
                Ok(()),
                "{ok}"
            );
        }
    }

    #[test]
    fn spoofs_are_refused_naming_field_and_code_point() {
        let err = check_byline("byline", "By A\u{200B}I", DEFAULT_RESERVED_BYLINES).unwrap_err();
        assert!(err.to_string().contains("U+200B"), "{err}");
        assert!(matches!(
            check_byline("byline", "\u{0392}y AI", DEFAULT_RESERVED_BYLINES),
            Err(HygieneError::MixedScript { .. })
        ));
        assert!(matches!(
            check_byline("byline", "By Al", DEFAULT_RESERVED_BYLINES),
            Err(HygieneError::Lookalike { .. })
        ));
        assert!(matches!(
            check_byline("byline", "By \u{202E}IA", DEFAULT_RESERVED_BYLINES),
            Err(HygieneError::Forbidden { .. })
        ));
        assert!(matches!(
            check_name("humans.name", "Zoe\u{0308}"),
            Err(HygieneError::NotNfc { .. })
        ));
        assert!(matches!(
            check_name("humans.name", "Jo\u{E0041}"),
            Err(HygieneError::Forbidden {
                kind: "a TAG character",
                ..
            })
        ));
        assert!(matches!(
            check_name("humans.name", "Jo\u{2028}Ann"),
            Err(HygieneError::Forbidden { .. })
        ));
    }
}
