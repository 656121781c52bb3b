//! The verifier: an article, a bundle and a trust store in; an honest verdict out.
//!
//! The checks run in the order `docs/verification.md` lists, and the first failure decides the
//! verdict. Nothing shown in a verdict comes from outside the verified bytes: the signature is
//! checked first, then exactly the verified payload is parsed.

use crate::core::bundle::Bundle;
use crate::core::canonical::{
    fold_like_paragraph, invisible_characters, InvisibleChar, InvisibleKind, MediaType,
};
use crate::core::constants::PAYLOAD_TYPE_IN_TOTO;
use crate::core::digest::Sha256Digest;
use crate::core::dsse::{verify_envelope, DsseError};
use crate::core::logproof::{verify_log_entry, VerifiedLogEntry};
use crate::core::manifest::{AuthorshipClass, AuthorshipStatement, Timestamp};
use crate::core::revocation::{apply_key_revocations, retraction_of, VerifiedRevocation};
use crate::core::sign::prepare_article;
use crate::core::trust::{KeyStanding, TrustStore, TrustedKey};

/// Policy knobs a caller may tighten; the defaults are what `byline verify` uses.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// Only the exact binding counts (`--require-binding exact`).
    pub require_exact: bool,
    /// A bundle without a log proof fails (`--require-logged`).
    pub require_logged: bool,
    /// Only keys trusted for this publisher domain count (`--publisher`).
    pub publisher: Option<String>,
    /// How far the predicate's `signedAt` may be later than the log's time, in seconds.
    pub max_clock_skew_secs: i64,
    /// Signatures older than this many seconds (by the signing time) fail (`--max-age`).
    pub max_age_secs: Option<i64>,
    /// The largest article the verifier will canonicalize.
    pub max_article_bytes: usize,
    /// Compare the page's `data-byline` element with the signed byline (HTML).
    pub check_displayed_byline: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            require_exact: false,
            require_logged: false,
            publisher: None,
            max_clock_skew_secs: 300,
            max_age_secs: None,
            max_article_bytes: crate::core::constants::DEFAULT_MAX_ARTICLE_BYTES,
            check_displayed_byline: true,
        }
    }
}

/// Why an article did not verify. Each variant is one line in `docs/verification.md`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The bundle is not a well-formed byline bundle.
    #[error("{0}")]
    MalformedBundle(String),
    /// The trust store cannot be used.
    #[error("trust store unusable: {0}")]
    TrustStore(String),
    /// The envelope has no signatures.
    #[error("malformed bundle: the envelope has no signatures")]
    NoSignatures,
    /// No signature verifies with a key trusted for any publisher.
    #[error("{0}")]
    SignatureInvalid(String),
    /// The signing key is not in the trust store (for this publisher, when one was required).
    #[error("{0}")]
    KeyNotTrusted(String),
    /// The payload type is not an in-toto statement.
    #[error("unsupported payloadType {got:?}: expected {PAYLOAD_TYPE_IN_TOTO:?}")]
    UnsupportedPayloadType {
        /// What the envelope says.
        got: String,
    },
    /// The verified payload is not a valid authorship statement.
    #[error("{0}")]
    MalformedStatement(String),
    /// The statement names a publisher other than the one the key is trusted for.
    #[error("publisher mismatch: the statement says {statement:?} but the key is trusted for {trusted:?}")]
    PublisherMismatch {
        /// The domain in the statement.
        statement: String,
        /// The domain of the trust entry.
        trusted: String,
    },
    /// The log entry or its proof does not check out.
    #[error("log proof invalid: {0}")]
    LogProofInvalid(String),
    /// Policy requires a log entry and the bundle has none.
    #[error("not logged: the bundle has no transparency-log entry and logging is required")]
    NotLogged,
    /// The key did not count at the signing time.
    #[error("{0}")]
    KeyNotValid(String),
    /// The predicate claims a signing time later than the log's time.
    #[error("signedAt {signed_at} is later than the log's integratedTime {integrated_time} (beyond {skew_secs} s of clock skew)")]
    SignedAfterLogTime {
        /// The claimed time.
        signed_at: Timestamp,
        /// The log's time.
        integrated_time: Timestamp,
        /// The allowed skew.
        skew_secs: i64,
    },
    /// The signature is older than the policy allows.
    #[error("too old: signed {signed}, older than the maximum age of {max_age_secs} s")]
    TooOld {
        /// The signing time.
        signed: Timestamp,
        /// The policy.
        max_age_secs: i64,
    },
    /// The article could not be read as its media type.
    #[error("cannot canonicalize the article: {0}")]
    Canonicalization(String),
    /// Neither digest matches: the article is not what was signed.
    #[error("digest mismatch: the article's text digest is {got} but the manifest binds {expected}{changes}")]
    DigestMismatch {
        /// The digest signed.
        expected: Sha256Digest,
        /// The digest of the displayed article.
        got: Sha256Digest,
        /// A summary of paragraph changes, when the manifest has paragraph digests.
        changes: String,
    },
    /// Only the text binding matched and the exact one was required.
    #[error(
        "exact binding required: the canonical text matches but the bytes differ from those signed"
    )]
    ExactBindingRequired,
    /// The log showed two histories (a fork) when checked against the latest checkpoint.
    #[error("{0}")]
    LogFork(String),
    /// The publisher retracted this manifest, in an entry the log proves.
    #[error("retracted by {publisher} at {at} (log index {log_index}): {reason}")]
    Retracted {
        /// The publisher that retracted it.
        publisher: String,
        /// The log's time for the retraction.
        at: Timestamp,
        /// The retraction's log index.
        log_index: u64,
        /// The reason it gives.
        reason: String,
    },
    /// The page shows a byline other than the signed one.
    #[error("displayed byline {displayed:?} does not match the signed byline {signed:?}")]
    DisplayedBylineMismatch {
        /// What the page shows.
        displayed: String,
        /// What was signed.
        signed: String,
    },
}

impl Failure {
    /// A stable, machine-readable name for the failure (in `--json` and CI reports).
    pub fn code(&self) -> &'static str {
        match self {
            Failure::MalformedBundle(_) => "malformed-bundle",
            Failure::TrustStore(_) => "trust-store",
            Failure::NoSignatures => "no-signatures",
            Failure::SignatureInvalid(_) => "signature-invalid",
            Failure::KeyNotTrusted(_) => "key-not-trusted",
            Failure::UnsupportedPayloadType { .. } => "unsupported-payload-type",
            Failure::MalformedStatement(_) => "malformed-statement",
            Failure::PublisherMismatch { .. } => "publisher-mismatch",
            Failure::LogProofInvalid(_) => "log-proof-invalid",
            Failure::NotLogged => "not-logged",
            Failure::KeyNotValid(_) => "key-not-valid",
            Failure::SignedAfterLogTime { .. } => "signed-after-log-time",
            Failure::TooOld { .. } => "too-old",
            Failure::Canonicalization(_) => "canonicalization",
            Failure::DigestMismatch { .. } => "digest-mismatch",
            Failure::ExactBindingRequired => "exact-binding-required",
            Failure::DisplayedBylineMismatch { .. } => "displayed-byline-mismatch",
            Failure::LogFork(_) => "log-fork",
            Failure::Retracted { .. } => "retracted",
        }
    }
}

/// Which binding matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Binding {
    /// Both the canonical text and the exact bytes match.
    Exact,
    /// Only the canonical text matches (the article was re-rendered).
    Text,
}

/// How a displayed paragraph relates to the signed ones.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum ParagraphChange {
    /// A signed paragraph was replaced by different text.
    Changed {
        /// Its index in the signed article.
        signed: usize,
        /// Its index in the displayed article.
        displayed: usize,
    },
    /// The displayed article has a paragraph the signed one did not.
    Added {
        /// Its index in the displayed article.
        displayed: usize,
    },
    /// A signed paragraph is missing from the displayed article.
    Removed {
        /// Its index in the signed article.
        signed: usize,
    },
}

/// The outcome of verification: what a reader is told.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// Why it failed; `None` means verified.
    pub failure: Option<Failure>,
    /// The verified statement (present once the signature checked out, even if a later check
    /// failed, so a verdict can say what was signed).
    pub statement: Option<AuthorshipStatement>,
    /// SHA-256 of the verified statement payload (how retractions and corrections name it).
    pub statement_sha256: Option<Sha256Digest>,
    /// The trust entry whose key verified the signature.
    pub signer: Option<TrustedKey>,
    /// How the key stood at the signing time.
    pub key_standing: Option<KeyStanding>,
    /// The log entry, when the bundle had one and it checked out.
    pub log: Option<VerifiedLogEntry>,
    /// The size of the latest checkpoint the bundle's checkpoint was proved consistent with
    /// (set by front ends that asked the log; `None` means consistency was not checked).
    pub consistency_checked_to: Option<u64>,
    /// The time trust was judged at: the log's time, or the present for offline bundles.
    pub judged_at: Option<Timestamp>,
    /// Which binding matched.
    pub binding: Option<Binding>,
    /// Paragraph-level differences, when the digests did not match.
    pub paragraph_changes: Vec<ParagraphChange>,
    /// Invisible and bidi characters in the displayed text.
    pub invisible: Vec<InvisibleChar>,
    /// The displayed text's canonical paragraphs (for `--show` and excerpts).
    pub displayed_paragraphs: Vec<String>,
    /// The page's displayed byline, when it has a `data-byline` element.
    pub displayed_byline: Option<String>,
    /// Human-readable warnings that do not fail verification.
    pub warnings: Vec<String>,
}

impl Verdict {
    /// Whether the article verified.
    pub fn verified(&self) -> bool {
        self.failure.is_none()
    }

    /// The signed authorship class, once known.
    pub fn authorship(&self) -> Option<AuthorshipClass> {
        self.statement.as_ref().map(|s| s.predicate.authorship)
    }

    fn fail(mut self, failure: Failure) -> Verdict {
        self.failure = Some(failure);
        self
    }
}

/// Verifies an article against a bundle (JSON bytes) under a trust store, at `now`.
pub fn verify_article(
    article: &[u8],
    media_type: MediaType,
    bundle_json: &[u8],
    trust: &TrustStore,
    options: &VerifyOptions,
    now: Timestamp,
) -> Verdict {
    match Bundle::from_json(bundle_json) {
        Ok(bundle) => verify_bundle(article, media_type, &bundle, trust, options, now),
        Err(e) => Verdict::default().fail(Failure::MalformedBundle(e.to_string())),
    }
}

/// Verifies an article against a parsed bundle (see [`verify_article`]).
pub fn verify_bundle(
    article: &[u8],
    media_type: MediaType,
    bundle: &Bundle,
    trust: &TrustStore,
    options: &VerifyOptions,
    now: Timestamp,
) -> Verdict {
    let mut verdict = Verdict::default();
    let keys = match trust.trusted_keys() {
        Ok(keys) => keys,
        Err(e) => return verdict.fail(Failure::TrustStore(e.to_string())),
    };
    let candidates: Vec<TrustedKey> = match &options.publisher {
        Some(p) => keys
            .into_iter()
            .filter(|k| &k.entry.publisher == p)
            .collect(),
        None => keys,
    };
    let envelope = &bundle.dsse_envelope;
    let verified = match verify_envelope(envelope, &candidates, |k| &k.key) {
        Ok(v) => v,
        Err(DsseError::NoSignatures) => return verdict.fail(Failure::NoSignatures),
        Err(e @ DsseError::UnknownKey { .. }) => {
            let scope = options
                .publisher
                .as_ref()
                .map(|p| format!(" (only keys for {p} were considered)"))
                .unwrap_or_default();
            return verdict.fail(Failure::KeyNotTrusted(format!("{e}{scope}")));
        }
        Err(e @ (DsseError::TooManySignatures { .. } | DsseError::PayloadNotBase64)) => {
            return verdict.fail(Failure::MalformedBundle(format!("malformed bundle: {e}")))
        }
        Err(e @ DsseError::SignatureInvalid { .. }) => {
            return verdict.fail(Failure::SignatureInvalid(e.to_string()))
        }
    };
    let mut signer = verified.signer.clone();
    verdict.signer = Some(signer.clone());
    verdict.statement_sha256 = Some(Sha256Digest::of(&verified.payload));
    if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO {
        return verdict.fail(Failure::UnsupportedPayloadType {
            got: envelope.payload_type.clone(),
        });
    }
    let statement = match AuthorshipStatement::from_payload(&verified.payload) {
        Ok(s) => s,
        Err(e) => return verdict.fail(Failure::MalformedStatement(e.to_string())),
    };
    verdict.statement = Some(statement.clone());
    let predicate = &statement.predicate;
    if let Err(e) = predicate.hygiene(crate::core::hygiene::DEFAULT_RESERVED_BYLINES) {
        verdict.warnings.push(format!("suspicious metadata: {e}"));
    }
    // One key may be trusted for several publishers: take the entry for the one the statement
    // names, if there is such an entry for this key.
    if let Some(better) = candidates
        .iter()
        .find(|k| k.key == signer.key && k.entry.publisher == predicate.publisher.domain)
    {
        signer = better.clone();
        verdict.signer = Some(signer.clone());
    }
    if predicate.publisher.domain != signer.entry.publisher {
        return verdict.fail(Failure::PublisherMismatch {
            statement: predicate.publisher.domain.clone(),
            trusted: signer.entry.publisher.clone(),
        });
    }

    let judged_at = match &bundle.log_entry {
        Some(entry) => match verify_log_entry(envelope, entry, &trust.logs) {
            Ok(log) => {
                let at = log.integrated_time;
                verdict.log = Some(log);
                at
            }
            Err(e) => return verdict.fail(Failure::LogProofInvalid(e.to_string())),
        },
        None => {
            if options.require_logged {
                return verdict.fail(Failure::NotLogged);
            }
            now
        }
    };
    verdict.judged_at = Some(judged_at);
    // The same key may be listed more than once for a publisher (an expired entry and its
    // renewal): any entry under which the key stands at the signing time counts.
    let logged = bundle.log_entry.is_some();
    if let Some(standing) = candidates.iter().find(|k| {
        k.key == signer.key
            && k.entry.publisher == signer.entry.publisher
            && k.standing_at(judged_at, logged).is_ok()
    }) {
        signer = standing.clone();
        verdict.signer = Some(signer.clone());
    }
    match signer.standing_at(judged_at, logged) {
        Ok(standing) => {
            if let KeyStanding::Retired { since } = standing {
                verdict.warnings.push(format!(
                    "retired key: revoked at {since}, after this signature was logged"
                ));
            }
            verdict.key_standing = Some(standing);
        }
        Err(e) => return verdict.fail(Failure::KeyNotValid(e.to_string())),
    }
    if predicate.signed_at.unix() > judged_at.unix() + options.max_clock_skew_secs {
        if bundle.log_entry.is_some() {
            return verdict.fail(Failure::SignedAfterLogTime {
                signed_at: predicate.signed_at,
                integrated_time: judged_at,
                skew_secs: options.max_clock_skew_secs,
            });
        }
        verdict
            .warnings
            .push(format!("signedAt {} is in the future", predicate.signed_at));
    }
    if let Some(max_age) = options.max_age_secs {
        // Offline bundles have no log time, so their age is the signer's claimed time.
        let signed = if bundle.log_entry.is_some() {
            judged_at
        } else {
            predicate.signed_at
        };
        if now.unix() - signed.unix() > max_age {
            return verdict.fail(Failure::TooOld {
                signed,
                max_age_secs: max_age,
            });
        }
    }

    let prepared = match prepare_article(article, media_type, options.max_article_bytes) {
        Ok(p) => p,
        Err(e) => return verdict.fail(Failure::Canonicalization(e.to_string())),
    };
    verdict.displayed_paragraphs = prepared
        .canonical
        .paragraphs()
        .map(str::to_string)
        .collect();
    verdict.displayed_byline = prepared.canonical.displayed_byline.clone();
    verdict.invisible = invisible_characters(&prepared.canonical.text);
    let bidi = verdict
        .invisible
        .iter()
        .filter(|c| c.kind == InvisibleKind::Bidi)
        .count();
    if bidi > 0 {
        verdict.warnings.push(format!(
            "the text contains {bidi} bidi control character(s), which can reorder what is displayed"
        ));
    }
    let hidden = verdict.invisible.len() - bidi;
    if hidden > 0 {
        verdict
            .warnings
            .push(format!("the text contains {hidden} invisible character(s)"));
    }
    // The byline a reader sees is checked before the digests, so that a page showing another
    // byline gets that message even when the text around it changed too.
    if options.check_displayed_byline {
        match &prepared.canonical.displayed_byline {
            Some(shown) if *shown != fold_like_paragraph(&predicate.byline) => {
                return verdict.fail(Failure::DisplayedBylineMismatch {
                    displayed: shown.clone(),
                    signed: predicate.byline.clone(),
                })
            }
            Some(_) => {}
            None if media_type == MediaType::Html => verdict
                .warnings
                .push("displayed byline not checked: the page has no data-byline element".into()),
            None => {}
        }
    }
    let text_ok = prepared.digests.text == predicate.digests.text;
    let exact_ok = prepared.digests.exact == predicate.digests.exact;
    if !text_ok && !exact_ok {
        if let Some(signed) = &predicate.paragraphs {
            verdict.paragraph_changes = paragraph_changes(signed, &prepared.paragraph_digests);
        }
        let changes = summarize_changes(&verdict.paragraph_changes);
        return verdict.fail(Failure::DigestMismatch {
            expected: predicate.digests.text,
            got: prepared.digests.text,
            changes,
        });
    }
    verdict.binding = Some(if exact_ok {
        Binding::Exact
    } else {
        Binding::Text
    });
    if options.require_exact && !exact_ok {
        return verdict.fail(Failure::ExactBindingRequired);
    }
    verdict
}

/// Verifies like [`verify_bundle`], with logged revocations taken into account: key revocations
/// are applied to (a copy of) the trust store first, so a signature the log integrated after a
/// key's revocation fails and one integrated before it verifies as a "retired key"; then a
/// retraction of the verified statement by its publisher turns "verified" into "retracted".
/// `revocations` must already be verified ([`crate::core::revocation::verify_revocation`]).
pub fn verify_bundle_with_revocations(
    article: &[u8],
    media_type: MediaType,
    bundle: &Bundle,
    trust: &TrustStore,
    revocations: &[VerifiedRevocation],
    options: &VerifyOptions,
    now: Timestamp,
) -> Verdict {
    let mut adjusted;
    let trust = if revocations.is_empty() {
        trust
    } else {
        adjusted = trust.clone();
        apply_key_revocations(&mut adjusted, revocations);
        &adjusted
    };
    let mut verdict = verify_bundle(article, media_type, bundle, trust, options, now);
    let (Some(digest), Some(statement)) = (verdict.statement_sha256, &verdict.statement) else {
        return verdict;
    };
    if let Some(r) = retraction_of(revocations, &digest, &statement.predicate.publisher.domain) {
        let failure = Failure::Retracted {
            publisher: r.predicate().publisher_domain.clone(),
            at: r.integrated_time,
            log_index: r.log_index,
            reason: r.predicate().reason.clone(),
        };
        if verdict.verified() {
            verdict.failure = Some(failure);
        } else {
            verdict.warnings.push(format!("also {failure}"));
        }
    }
    verdict
}

/// What to ask a log about once a bundle's signature has verified: revocations of its statement
/// (retractions) and of the key that signed it (key revocations), as hex digests.
pub fn revocation_targets(verdict: &Verdict) -> Vec<String> {
    let mut targets = Vec::new();
    if let Some(d) = &verdict.statement_sha256 {
        targets.push(d.to_hex());
    }
    if let Some(signer) = &verdict.signer {
        targets.push(signer.keyid.clone());
    }
    targets
}

/// Aligns displayed paragraph digests with signed ones (longest common subsequence) and lists
/// what changed, so a verdict can say "paragraph 3 changed" without the original text.
pub fn paragraph_changes(
    signed: &[Sha256Digest],
    displayed: &[Sha256Digest],
) -> Vec<ParagraphChange> {
    const MAX_CELLS: usize = 16_000_000;
    let (n, m) = (signed.len(), displayed.len());
    if n.saturating_mul(m) > MAX_CELLS {
        return Vec::new();
    }
    // lcs[i][j] = LCS length of signed[i..] and displayed[j..].
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[at(i, j)] = if signed[i] == displayed[j] {
                lcs[at(i + 1, j + 1)] + 1
            } else {
                lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
            };
        }
    }
    let mut changes = Vec::new();
    let (mut i, mut j) = (0, 0);
    let mut removed: Vec<usize> = Vec::new();
    let mut added: Vec<usize> = Vec::new();
    let flush =
        |removed: &mut Vec<usize>, added: &mut Vec<usize>, changes: &mut Vec<ParagraphChange>| {
            let paired = removed.len().min(added.len());
            for k in 0..paired {
                changes.push(ParagraphChange::Changed {
                    signed: removed[k],
                    displayed: added[k],
                });
            }
            changes.extend(
                removed[paired..]
                    .iter()
                    .map(|&s| ParagraphChange::Removed { signed: s }),
            );
            changes.extend(
                added[paired..]
                    .iter()
                    .map(|&d| ParagraphChange::Added { displayed: d }),
            );
            removed.clear();
            added.clear();
        };
    while i < n || j < m {
        if i < n && j < m && signed[i] == displayed[j] {
            flush(&mut removed, &mut added, &mut changes);
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[at(i, j + 1)] >= lcs[at(i + 1, j)]) {
            added.push(j);
            j += 1;
        } else {
            removed.push(i);
            i += 1;
        }
    }
    flush(&mut removed, &mut added, &mut changes);
    changes
}

fn summarize_changes(changes: &[ParagraphChange]) -> String {
    if changes.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = changes
        .iter()
        .take(10)
        .map(|c| match c {
            ParagraphChange::Changed { signed, .. } => format!("paragraph {} changed", signed + 1),
            ParagraphChange::Added { displayed } => format!("paragraph {} added", displayed + 1),
            ParagraphChange::Removed { signed } => format!("paragraph {} removed", signed + 1),
        })
        .collect();
    let more = if changes.len() > 10 {
        format!(" and {} more", changes.len() - 10)
    } else {
        String::new()
    };
    format!(" ({}{more})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Sha256Digest {
        Sha256Digest::of(s.as_bytes())
    }

    #[test]
    fn paragraph_changes_name_what_moved() {
        let signed = [d("a"), d("b"), d("c"), d("d")];
        assert!(paragraph_changes(&signed, &signed).is_empty());
        let changed = [d("a"), d("B"), d("c"), d("d")];
        assert_eq!(
            paragraph_changes(&signed, &changed),
            vec![ParagraphChange::Changed {
                signed: 1,
                displayed: 1
            }]
        );
        let removed = [d("a"), d("c"), d("d")];
        assert_eq!(
            paragraph_changes(&signed, &removed),
            vec![ParagraphChange::Removed { signed: 1 }]
        );
        let added = [d("a"), d("b"), d("x"), d("c"), d("d")];
        assert_eq!(
            paragraph_changes(&signed, &added),
            vec![ParagraphChange::Added { displayed: 2 }]
        );
    }
}

/// Where a quoted excerpt sits in a signed article.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExcerptMatch {
    /// The signed article's first paragraph that the excerpt quotes (zero-based).
    pub start: usize,
    /// The authorship class of each quoted paragraph.
    pub classes: Vec<AuthorshipClass>,
}

/// The outcome of checking a quoted excerpt against a bundle.
#[derive(Clone, Debug)]
pub struct ExcerptVerdict {
    /// The bundle's own verdict, judged with the excerpt as the article (its digests cannot
    /// match a part of the article; every other check applies).
    pub verdict: Verdict,
    /// Where the excerpt's paragraphs appear, verbatim after canonicalization, if they do.
    pub found: Option<ExcerptMatch>,
    /// Why the excerpt could not be confirmed, when it was not.
    pub problem: Option<String>,
}

impl ExcerptVerdict {
    /// Whether the excerpt is confirmed: a trusted manifest whose paragraphs contain it.
    pub fn confirmed(&self) -> bool {
        self.found.is_some() && self.problem.is_none()
    }
}

/// Checks that a quoted excerpt (one paragraph or a run of them) appears verbatim, after
/// canonicalization, in the article a trusted manifest signed — without the article itself,
/// through the manifest's paragraph digests.
pub fn verify_excerpt(
    excerpt: &[u8],
    media_type: MediaType,
    bundle: &Bundle,
    trust: &TrustStore,
    options: &VerifyOptions,
    now: Timestamp,
) -> ExcerptVerdict {
    let options = VerifyOptions {
        check_displayed_byline: false,
        require_exact: false,
        ..options.clone()
    };
    let mut verdict = verify_bundle(excerpt, media_type, bundle, trust, &options, now);
    let problem = match &verdict.failure {
        None | Some(Failure::DigestMismatch { .. }) => None,
        Some(f) => Some(f.to_string()),
    };
    // The excerpt is not the article: a digest mismatch is expected, not a verdict.
    if matches!(verdict.failure, Some(Failure::DigestMismatch { .. })) {
        verdict.failure = None;
        verdict.paragraph_changes.clear();
    }
    if let Some(problem) = problem {
        return ExcerptVerdict {
            verdict,
            found: None,
            problem: Some(problem),
        };
    }
    let Some(statement) = verdict.statement.clone() else {
        return ExcerptVerdict {
            verdict,
            found: None,
            problem: Some("the bundle's statement could not be read".into()),
        };
    };
    let Some(signed) = statement.predicate.paragraphs.clone() else {
        return ExcerptVerdict {
            verdict,
            found: None,
            problem: Some("the manifest has no paragraph digests (signed by digest), so excerpts cannot be checked".into()),
        };
    };
    let quoted: Vec<Sha256Digest> = verdict
        .displayed_paragraphs
        .iter()
        .map(|p| Sha256Digest::of(p.as_bytes()))
        .collect();
    if quoted.is_empty() {
        return ExcerptVerdict {
            verdict,
            found: None,
            problem: Some("the excerpt has no text".into()),
        };
    }
    let start = signed
        .windows(quoted.len())
        .position(|w| w == quoted.as_slice());
    match start {
        Some(start) => {
            let classes = statement.predicate.paragraph_classes(signed.len())
                [start..start + quoted.len()]
                .to_vec();
            ExcerptVerdict {
                verdict,
                found: Some(ExcerptMatch { start, classes }),
                problem: None,
            }
        }
        None => ExcerptVerdict {
            verdict,
            found: None,
            problem: Some("the excerpt does not appear verbatim in the signed article".into()),
        },
    }
}

/// The label of each displayed paragraph: the class of the signed paragraph it matches (by
/// digest), or `None` when it matches none (changed or added).
pub fn displayed_labels(verdict: &Verdict) -> Vec<Option<AuthorshipClass>> {
    let Some(statement) = &verdict.statement else {
        return vec![None; verdict.displayed_paragraphs.len()];
    };
    let p = &statement.predicate;
    match &p.paragraphs {
        Some(signed) => {
            let classes = p.paragraph_classes(signed.len());
            let mut used = vec![false; signed.len()];
            verdict
                .displayed_paragraphs
                .iter()
                .map(|text| {
                    let d = Sha256Digest::of(text.as_bytes());
                    let i = (0..signed.len()).find(|&i| !used[i] && signed[i] == d)?;
                    used[i] = true;
                    Some(classes[i])
                })
                .collect()
        }
        // Signed by digest: when the article verified, its paragraphs are the signed ones.
        None if verdict.verified() => p
            .paragraph_classes(verdict.displayed_paragraphs.len())
            .into_iter()
            .map(Some)
            .collect(),
        None => vec![None; verdict.displayed_paragraphs.len()],
    }
}
