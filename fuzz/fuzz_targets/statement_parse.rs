//! `AuthorshipStatement::from_payload` never panics, and what it accepts is valid and survives
//! `to_payload` and a second `from_payload` unchanged.
#![no_main]

use byline::core::manifest::AuthorshipStatement;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(statement) = AuthorshipStatement::from_payload(data) else {
        return;
    };
    assert_eq!(statement.validate(), Ok(()));
    let payload = statement
        .to_payload()
        .unwrap_or_else(|e| panic!("an accepted statement does not serialize: {e}"));
    assert_eq!(AuthorshipStatement::from_payload(&payload), Ok(statement));
});
