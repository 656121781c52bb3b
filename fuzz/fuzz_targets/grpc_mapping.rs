//! The request-to-core mapping of `sign_one` (src/service/grpc.rs), copied because src/ has it
//! inline rather than as a pure function. Shared by the `grpc_sign_request` fuzz target and
//! `tests/proptest_parsers.rs`; keep it in step with `sign_one`.

use byline::core::canonical::MediaType;
use byline::core::constants::DEFAULT_MAX_ARTICLE_BYTES;
use byline::core::digest::{ArticleDigests, Sha256Digest};
use byline::core::manifest::{
    AiSystem, AuthorshipClass, EditorialResponsibility, Human, Publisher, Segment, Supersedes,
    Timestamp,
};
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
    if a.byline.trim().is_empty() {
        return None;
    }
    let class = class_from_pb(a.authorship)?;
    if a.subject.trim().is_empty() {
        return None;
    }
    let mut authorship = Authorship {
        subject_name: a.subject.clone(),
        byline: a.byline.clone(),
        authorship: class,
        ai_systems: a
            .ai_systems
            .iter()
            .map(|s| AiSystem {
                name: s.name.clone(),
                version: optional(&s.version),
                provider: optional(&s.provider),
            })
            .collect(),
        humans: a
            .humans
            .iter()
            .map(|h| Human {
                name: h.name.clone(),
                role: h.role.clone(),
            })
            .collect(),
        publisher: Publisher {
            name: optional(&a.publisher_name).unwrap_or_else(|| SERVER_PUBLISHER_NAME.into()),
            domain: domain.clone(),
        },
        title: optional(&a.title),
        language: optional(&a.language),
        published_at: match &a.published_at {
            Some(t) => Some(Timestamp::from_unix(t.seconds)?),
            None => None,
        },
        segments: if a.segments.is_empty() {
            None
        } else {
            Some(
                a.segments
                    .iter()
                    .map(|seg| {
                        let class = class_from_pb(seg.authorship)?;
                        Some(Segment {
                            start: seg.start,
                            end: seg.end,
                            authorship: class,
                            digital_source_type: class.digital_source_type(),
                        })
                    })
                    .collect::<Option<Vec<_>>>()?,
            )
        },
        editorial_responsibility: match &a.editorial_responsibility {
            Some(e) => Some(EditorialResponsibility {
                name: e.name.clone(),
                role: e.role.clone(),
                reviewed_at: match &e.reviewed_at {
                    Some(t) => Timestamp::from_unix(t.seconds)?,
                    None => now,
                },
                policy_url: optional(&e.policy_url),
            }),
            None => None,
        },
        supersedes: match &a.supersedes {
            Some(s) => Some(Supersedes {
                statement_sha256: s.statement_sha256.parse().ok()?,
                log_index: s.log_index,
            }),
            None => None,
        },
    };
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

fn class_from_pb(value: i32) -> Option<AuthorshipClass> {
    match pb::AuthorshipClass::try_from(value) {
        Ok(pb::AuthorshipClass::Human) => Some(AuthorshipClass::Human),
        Ok(pb::AuthorshipClass::AiAssisted) => Some(AuthorshipClass::AiAssisted),
        Ok(pb::AuthorshipClass::AiGenerated) => Some(AuthorshipClass::AiGenerated),
        Ok(pb::AuthorshipClass::Mixed) => Some(AuthorshipClass::Mixed),
        _ => None,
    }
}

fn optional(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_string())
}
