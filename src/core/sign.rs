//! Building and signing manifests: from an article (or its digests) and its authorship to a
//! DSSE envelope. Front ends (CLI, server) call this and never assemble statements themselves.

use crate::core::canonical::{canonicalize_with_limit, Canonical, CanonicalError, MediaType};
use crate::core::constants::{CANONICALIZATION_V1, PAYLOAD_TYPE_IN_TOTO};
use crate::core::digest::{ArticleDigests, Sha256Digest};
use crate::core::dsse::{sign_envelope, Envelope};
use crate::core::embed::{strip_embedded, EmbedError};
use crate::core::keys::SigningKey;
use crate::core::manifest::{
    AiSystem, AuthorshipClass, AuthorshipPredicate, AuthorshipStatement, BindingDigests,
    EditorialResponsibility, Human, ManifestError, Publisher, Segment, Supersedes, Timestamp,
};

/// Why a manifest could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The article could not be canonicalized.
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
    /// The article's embedded bundle block is malformed.
    #[error(transparent)]
    Embedded(#[from] EmbedError),
    /// The authorship metadata breaks a rule of the predicate.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// What the signer says about an article, besides its digests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorship {
    /// The article's URL or id (the statement's subject name).
    pub subject_name: String,
    /// The byline as displayed.
    pub byline: String,
    /// The authorship class.
    pub authorship: AuthorshipClass,
    /// AI systems involved.
    pub ai_systems: Vec<AiSystem>,
    /// People involved.
    pub humans: Vec<Human>,
    /// The publisher.
    pub publisher: Publisher,
    /// Title, if it may be public.
    pub title: Option<String>,
    /// Language tag.
    pub language: Option<String>,
    /// Publication time.
    pub published_at: Option<Timestamp>,
    /// Per-paragraph authorship, given explicitly.
    pub segments: Option<Vec<Segment>>,
    /// Editorial responsibility.
    pub editorial_responsibility: Option<EditorialResponsibility>,
    /// The manifest this one replaces.
    pub supersedes: Option<Supersedes>,
}

/// An article prepared for signing: its digests, canonical text and paragraph digests.
#[derive(Clone, Debug)]
pub struct PreparedArticle {
    /// Both binding digests.
    pub digests: ArticleDigests,
    /// The canonical form.
    pub canonical: Canonical,
    /// SHA-256 of each canonical paragraph.
    pub paragraph_digests: Vec<Sha256Digest>,
}

/// Computes everything about an article's bytes that a manifest binds.
pub fn prepare_article(
    bytes: &[u8],
    media_type: MediaType,
    limit: usize,
) -> Result<PreparedArticle, SignError> {
    let (signed_bytes, _) = strip_embedded(bytes, media_type)?;
    let canonical = canonicalize_with_limit(&signed_bytes, media_type, limit)?;
    let paragraph_digests = canonical
        .paragraphs()
        .map(|p| Sha256Digest::of(p.as_bytes()))
        .collect();
    Ok(PreparedArticle {
        digests: ArticleDigests {
            text: Sha256Digest::of(canonical.text.as_bytes()),
            exact: Sha256Digest::of(&signed_bytes),
        },
        canonical,
        paragraph_digests,
    })
}

/// Segments from an HTML page's `data-byline-authorship` marks: consecutive paragraphs with the
/// same label form one segment. Unknown labels are an error naming the paragraph.
pub fn segments_from_labels(
    labels: &[Option<String>],
) -> Result<Option<Vec<Segment>>, ManifestError> {
    let mut segments: Vec<Segment> = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let Some(label) = label else { continue };
        let class: AuthorshipClass = label.parse().map_err(|_| ManifestError::InvalidField {
            field: "data-byline-authorship",
            reason: format!(
                "paragraph {i}: {label:?} is not one of human, ai-assisted, ai-generated, mixed"
            ),
        })?;
        let index = i as u32;
        match segments.last_mut() {
            Some(last) if last.authorship == class && last.end + 1 == index => last.end = index,
            _ => segments.push(Segment {
                start: index,
                end: index,
                authorship: class,
                digital_source_type: class.digital_source_type(),
            }),
        }
    }
    Ok((!segments.is_empty()).then_some(segments))
}

/// Parses per-paragraph segments written as `0-2:ai-generated,3:human` (zero-based,
/// inclusive ranges of canonical paragraphs).
pub fn parse_segments(spec: &str) -> Result<Vec<Segment>, ManifestError> {
    let invalid = |reason: String| ManifestError::InvalidField {
        field: "segments",
        reason,
    };
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (range, class) = part.split_once(':').ok_or_else(|| {
            invalid(format!(
                "{part:?} must be RANGE:CLASS, e.g. 0-2:ai-generated"
            ))
        })?;
        let (start, end) = match range.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (range.trim(), range.trim()),
        };
        let number = |t: &str| {
            t.parse::<u32>()
                .map_err(|_| invalid(format!("{t:?} in {part:?} is not a paragraph number")))
        };
        let authorship: AuthorshipClass = class.trim().parse()?;
        out.push(Segment {
            start: number(start)?,
            end: number(end)?,
            authorship,
            digital_source_type: authorship.digital_source_type(),
        });
    }
    if out.is_empty() {
        return Err(invalid("no segments given".into()));
    }
    Ok(out)
}

/// Builds the statement for an article. `paragraphs` is `None` in digest mode (the signer
/// keeps the text private). The predicate is validated before anything is signed.
pub fn build_statement(
    authorship: &Authorship,
    digests: ArticleDigests,
    paragraphs: Option<Vec<Sha256Digest>>,
    signed_at: Timestamp,
) -> Result<AuthorshipStatement, ManifestError> {
    let predicate = AuthorshipPredicate {
        byline: authorship.byline.clone(),
        authorship: authorship.authorship,
        digital_source_type: authorship.authorship.digital_source_type(),
        ai_systems: authorship.ai_systems.clone(),
        humans: authorship.humans.clone(),
        publisher: authorship.publisher.clone(),
        title: authorship.title.clone(),
        language: authorship.language.clone(),
        published_at: authorship.published_at,
        signed_at,
        canonicalization: CANONICALIZATION_V1.to_string(),
        digests: BindingDigests {
            text: digests.text,
            exact: digests.exact,
        },
        paragraphs,
        segments: authorship.segments.clone(),
        editorial_responsibility: authorship.editorial_responsibility.clone(),
        supersedes: authorship.supersedes.clone(),
    };
    if authorship.subject_name.trim().is_empty() {
        return Err(ManifestError::InvalidField {
            field: "subject.name",
            reason: "must not be empty (give the article's URL or id)".into(),
        });
    }
    let statement = AuthorshipStatement::new(&authorship.subject_name, predicate);
    statement.validate()?;
    statement
        .predicate
        .hygiene(crate::core::hygiene::DEFAULT_RESERVED_BYLINES)?;
    Ok(statement)
}

/// Signs a statement into a DSSE envelope.
pub fn sign_statement(
    statement: &AuthorshipStatement,
    key: &SigningKey,
) -> Result<Envelope, ManifestError> {
    let payload = statement.to_payload()?;
    Ok(sign_envelope(PAYLOAD_TYPE_IN_TOTO, &payload, key))
}

/// SHA-256 of a statement's payload bytes: how a later manifest names the one it supersedes.
pub fn statement_digest(payload: &[u8]) -> Sha256Digest {
    Sha256Digest::of(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_specs_parse() {
        let segs = parse_segments("0-2:ai-generated, 3:human").unwrap();
        assert_eq!(segs.len(), 2);
        assert_eq!(
            (segs[0].start, segs[0].end, segs[0].authorship),
            (0, 2, AuthorshipClass::AiGenerated)
        );
        assert_eq!(
            (segs[1].start, segs[1].end, segs[1].authorship),
            (3, 3, AuthorshipClass::Human)
        );
        assert!(parse_segments("0-2").is_err());
        assert!(parse_segments("a-2:human").is_err());
        assert!(parse_segments("0:robot").is_err());
    }

    #[test]
    fn labels_become_segments() {
        let labels = vec![
            Some("ai-generated".to_string()),
            Some("ai-generated".to_string()),
            None,
            Some("human".to_string()),
        ];
        let segs = segments_from_labels(&labels).unwrap().unwrap();
        assert_eq!(segs.len(), 2);
        assert_eq!((segs[0].start, segs[0].end), (0, 1));
        assert_eq!(
            (segs[1].start, segs[1].end, segs[1].authorship),
            (3, 3, AuthorshipClass::Human)
        );
        assert!(segments_from_labels(&[Some("robot".into())]).is_err());
        assert!(segments_from_labels(&[None]).unwrap().is_none());
    }
}
