//! `canonicalize` as text/html never panics, and an Ok result has the shape and plain-text
//! read-back that `canonical_check` describes.
#![no_main]

use byline::core::canonical::MediaType;
use libfuzzer_sys::fuzz_target;

mod canonical_check;

fuzz_target!(|data: &[u8]| {
    canonical_check::check(data, MediaType::Html);
});
