//! Every name that goes on the wire, in one place, so that a change of format is one edit
//! and a reviewer can see the whole vocabulary at a glance.

/// The name of the canonical-text algorithm; it is written into every manifest so that a
/// verifier knows which algorithm produced the `text` digest.
pub const CANONICALIZATION_V1: &str = "byline-text/v1";

/// The DSSE `payloadType` of a manifest: the payload is an in-toto Statement.
pub const PAYLOAD_TYPE_IN_TOTO: &str = "application/vnd.in-toto+json";

/// The in-toto Statement `_type` this crate writes and accepts.
pub const STATEMENT_TYPE_V1: &str = "https://in-toto.io/Statement/v1";

/// The predicate type of an authorship manifest (versioned: a new shape is a new URI).
pub const PREDICATE_TYPE_AUTHORSHIP_V1: &str = "https://byline.dev/authorship/v1";

/// The predicate type of a revocation entry (a retracted manifest or a revoked key).
pub const PREDICATE_TYPE_REVOCATION_V1: &str = "https://byline.dev/revocation/v1";

/// The media type of a bundle file, and the `type` of the HTML `<script>` that embeds one.
pub const BUNDLE_MEDIA_TYPE_V1: &str = "application/vnd.byline.bundle.v1+json";

/// The Markdown front-matter key under which a bundle is embedded.
pub const FRONT_MATTER_BUNDLE_KEY: &str = "byline-bundle";

/// The suffix of a sidecar bundle file: `article.md` has `article.md.byline.json`.
pub const SIDECAR_SUFFIX: &str = ".byline.json";

/// IPTC digital source type vocabulary prefix.
pub const IPTC_DIGITAL_SOURCE_TYPE_PREFIX: &str = "http://cv.iptc.org/newscodes/digitalsourcetype/";

/// The largest article (in bytes) that the library canonicalizes by default; larger inputs are
/// refused rather than risking memory exhaustion on hostile input.
pub const DEFAULT_MAX_ARTICLE_BYTES: usize = 4 * 1024 * 1024;

/// The largest bundle (in bytes) a verifier will parse.
pub const MAX_BUNDLE_BYTES: usize = 1024 * 1024;
