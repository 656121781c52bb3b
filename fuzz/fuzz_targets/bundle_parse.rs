//! `Bundle::from_json` never panics; an Ok bundle re-serializes to itself; and `verify_article`
//! on the same bytes against an empty trust store never panics and never says verified.
#![no_main]

use byline::core::bundle::Bundle;
use byline::core::canonical::MediaType;
use byline::core::manifest::Timestamp;
use byline::core::trust::TrustStore;
use byline::core::verify::{verify_article, Failure, VerifyOptions};
use libfuzzer_sys::fuzz_target;

const ARTICLE: &[u8] = b"# Ferry returns\n\nThe ferry resumed service on Tuesday.\n";

fuzz_target!(|data: &[u8]| {
    let parsed = Bundle::from_json(data);
    if let Ok(bundle) = &parsed {
        for json in [bundle.to_json_compact(), bundle.to_json_pretty()] {
            assert_eq!(Bundle::from_json(json.as_bytes()).as_ref(), Ok(bundle));
        }
    }
    // A fixed time keeps runs reproducible: 2026-03-02T08:30:00Z.
    let now = Timestamp::from_unix(1_772_440_200).unwrap_or_else(Timestamp::now);
    let verdict = verify_article(
        ARTICLE,
        MediaType::Markdown,
        data,
        &TrustStore::default(),
        &VerifyOptions::default(),
        now,
    );
    assert!(!verdict.verified(), "verified with an empty trust store");
    if parsed.is_err() {
        assert!(matches!(verdict.failure, Some(Failure::MalformedBundle(_))));
    }
});
