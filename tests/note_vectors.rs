//! Checks the signed-note implementation against the C2SP worked example
//! (see tests/vectors/c2sp-note/README.md).

use std::fs;
use std::path::Path;

use serde::Deserialize;

use byline::core::note::{open_note, NoteError, NoteVerifier};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Example {
    #[allow(dead_code)]
    source: String,
    verifier_key: String,
    signed_text: String,
    signature_line: String,
    #[allow(dead_code)]
    notes: String,
}

fn example() -> Example {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/c2sp-note/signed-note-example.json");
    serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn c2sp_worked_example_verifies() {
    let ex = example();
    let verifier = NoteVerifier::parse(&ex.verifier_key).unwrap();
    assert_eq!(verifier.name(), "example.com/foo");
    assert_eq!(verifier.key_hash(), 0x530d903a);
    assert_eq!(verifier.to_string(), ex.verifier_key);

    let note = format!("{}\n{}\n", ex.signed_text, ex.signature_line);
    let opened = open_note(&note, std::slice::from_ref(&verifier)).unwrap();
    assert_eq!(opened.text, ex.signed_text);
    assert_eq!(opened.signers, vec![verifier.clone()]);
    assert!(opened.unknown.is_empty());

    // The signature covers the text exactly.
    let altered = note.replacen("example", "Example", 1);
    assert!(matches!(
        open_note(&altered, &[verifier]),
        Err(NoteError::InvalidSignature { .. })
    ));
}

#[test]
fn c2sp_worked_example_needs_a_trusted_key() {
    let ex = example();
    let note = format!("{}\n{}\n", ex.signed_text, ex.signature_line);
    assert_eq!(
        open_note(&note, &[]),
        Err(NoteError::NoTrustedSignature { unknown: 1 })
    );
}
