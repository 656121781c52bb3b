//! `revocation::from_payload` never panics, and what it accepts is valid and survives
//! `to_payload` and a second `from_payload` unchanged.
#![no_main]

use byline::core::revocation::{from_payload, to_payload, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(statement) = from_payload(data) else {
        return;
    };
    assert_eq!(validate(&statement), Ok(()));
    assert_eq!(from_payload(&to_payload(&statement)), Ok(statement));
});
