//! The `Sign` request path without the server: prost decoding of `byline.v1.SignRequest`
//! bytes, then the pure pieces `sign_one` (src/service/grpc.rs) feeds them through: media type
//! parsing, article preparation or digest parsing, and `build_statement`. None may panic; a
//! decoded request re-encodes to itself; and a statement `build_statement` accepts must be one
//! that `AuthorshipStatement::from_payload` (what every verifier runs) accepts unchanged.
//!
//! The request-to-core mapping is not a separate function in src/, so a copy of it lives in
//! `grpc_mapping.rs`; keep the two in step.
#![no_main]

use byline::core::manifest::{AuthorshipStatement, Timestamp};
use byline::core::sign::build_statement;
use byline::proto as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

mod grpc_mapping;

use grpc_mapping::{sign_inputs, TOKEN_PUBLISHER};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = pb::SignRequest::decode(data) else {
        return;
    };
    let reencoded = request.encode_to_vec();
    assert_eq!(
        pb::SignRequest::decode(reencoded.as_slice()).ok().as_ref(),
        Some(&request)
    );

    // 2026-03-02T08:30:00Z stands for the server's clock, so that runs reproduce.
    let signed_at = Timestamp::from_unix(1_772_440_200).unwrap_or_else(Timestamp::now);
    let Some((authorship, digests, paragraphs)) = sign_inputs(request, signed_at) else {
        return;
    };
    let Ok(statement) = build_statement(&authorship, digests, paragraphs, signed_at) else {
        return;
    };
    assert_eq!(statement.predicate.publisher.domain, TOKEN_PUBLISHER);
    let payload = statement
        .to_payload()
        .unwrap_or_else(|e| panic!("a built statement does not serialize: {e}"));
    assert_eq!(AuthorshipStatement::from_payload(&payload), Ok(statement));
});
