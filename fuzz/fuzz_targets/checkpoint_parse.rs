//! `Checkpoint::parse` and `open_note` never panic on any text. Also: an accepted checkpoint has
//! exactly one text (it re-encodes to the input); an opened note's text is a prefix of the note
//! and was signed by the fixed verifier; and any text `sign_note` accepts opens back to itself.
#![no_main]

use byline::core::note::{open_note, sign_note, Checkpoint, NoteVerifier};
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

/// The verifier key of the C2SP signed-note specification's worked example
/// (`tests/vectors/c2sp-note/signed-note-example.json`), so that its example note is a seed that
/// opens.
const C2SP_EXAMPLE_VERIFIER: &str =
    "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";

/// The key name the round-trip signs under.
const LOG_NAME: &str = "fuzz.example/log";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(checkpoint) = Checkpoint::parse(text) {
        assert_eq!(checkpoint.to_note_text().as_deref(), Ok(text));
    }

    let example = match NoteVerifier::parse(C2SP_EXAMPLE_VERIFIER) {
        Ok(v) => v,
        Err(e) => panic!("the fixed verifier key does not parse: {e}"),
    };
    if let Ok(opened) = open_note(text, std::slice::from_ref(&example)) {
        assert!(text.starts_with(&opened.text));
        assert_eq!(opened.signers, vec![example]);
        let _ = Checkpoint::parse(&opened.text);
    }

    let key = SigningKey::from_bytes(&[0x42; 32]);
    let log = match NoteVerifier::from_key(LOG_NAME, &key.verifying_key()) {
        Ok(v) => v,
        Err(e) => panic!("the fixed log key is refused: {e}"),
    };
    if let Ok(note) = sign_note(text, LOG_NAME, &key) {
        match open_note(&note, std::slice::from_ref(&log)) {
            Ok(opened) => {
                assert_eq!(opened.text, text);
                assert_eq!(opened.signers, vec![log]);
            }
            Err(e) => panic!("a note sign_note made does not open: {e}; note {note:?}"),
        }
    }
});
