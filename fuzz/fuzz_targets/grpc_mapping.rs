//! What `sign_one` (src/service/grpc.rs) hands to `build_statement`: the authorship through the
//! server's own `authorship_from_pb`, and the article part as `sign_one` reads it. Shared by the
//! `grpc_sign_request` fuzz target and `tests/proptest_parsers.rs`.

use byline::core::canonical::MediaType;
use byline::core::constants::DEFAULT_MAX_ARTICLE_BYTES;
use byline::core::digest::{ArticleDigests, Sha256Digest};
use byline::core::manifest::Timestamp;
use byline::core::sign::{prepare_article, segments_from_labels, Authorship};
use byline::proto as pb;

/// The publisher the caller's token signs for.
pub const TOKEN_PUBLISHER: &str = "news.example";
/// The server's configured name for that publisher.
pub const SERVER_PUBLISHER_NAME: &str = "News Example";

/// What `sign_one` hands to `build_statement`, checked in the same order; `None` where it
/// answers with an error status. `now` stands for the server's clock.
pub fn sign_inputs(
    req: pb::SignRequest,
    now: Timestamp,
) -> Option<(Authorship, ArticleDigests, Option<Vec<Sha256Digest>>)> {
    let a = req.authorship?;
    let domain = if a.publisher_domain.is_empty() {
        TOKEN_PUBLISHER.to_string()
    } else {
        a.publisher_domain.clone()
    };
    if domain != TOKEN_PUBLISHER {
        return None;
    }
    let mut authorship =
        byline::service::grpc::authorship_from_pb(&a, &domain, SERVER_PUBLISHER_NAME, now).ok()?;
    let (digests, paragraphs) = match req.article? {
        pb::sign_request::Article::Content(article) => {
            let media: MediaType = article.media_type.parse().ok()?;
            if article.content.len() > DEFAULT_MAX_ARTICLE_BYTES {
                return None;
            }
            let prepared =
                prepare_article(&article.content, media, DEFAULT_MAX_ARTICLE_BYTES).ok()?;
            if authorship.segments.is_none() {
                authorship.segments =
                    segments_from_labels(&prepared.canonical.paragraph_labels).ok()?;
            }
            (prepared.digests, Some(prepared.paragraph_digests))
        }
        pb::sign_request::Article::Digests(d) => (
            ArticleDigests {
                text: d.text_sha256.parse().ok()?,
                exact: d.exact_sha256.parse().ok()?,
            },
            None,
        ),
    };
    Some((authorship, digests, paragraphs))
}
