//! The `byline.v1` gRPC handlers. Each handler converts the request into core types (the one
//! place protobuf meets the core), calls the core or the log, and maps every error to a precise
//! status; nothing here computes a digest or builds a statement itself.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status, Streaming};

use crate::core::bundle::Bundle;
use crate::core::canonical::MediaType;
use crate::core::digest::{ArticleDigests, Sha256Digest};
use crate::core::dsse::decode_base64_any;
use crate::core::keys::{keyid, public_key_from_base64, SigningKey};
use crate::core::manifest::AuthorshipStatement;
use crate::core::manifest::{
    AiSystem, AuthorshipClass, Human, ManifestError, Publisher, Timestamp,
};
use crate::core::revocation::{self, VerifiedRevocation};
use crate::core::sign::{
    build_statement, prepare_article, segments_from_labels, Authorship, SignError,
};
use crate::core::trust::TrustStore;
use crate::core::verify::{
    revocation_targets, verify_article, verify_bundle_with_revocations, Binding, VerifyOptions,
};
use crate::proto::byline_server::Byline;
use crate::proto::{self as pb};
use crate::service::auth::{check_token, parse_bearer, AuthError};
use crate::service::cpu_pool::CpuPool;
use crate::service::log::{self as logsvc, LogError, LogSigner, Sequencer};
use crate::service::metrics;
use crate::storage::{EntryKind, PendingEntry, Store, StoreError, TokenRecord};

/// How long a looked-up token is trusted before it is read again (revocation takes effect
/// within this time).
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);

/// A publisher this server signs for.
pub struct PublisherSigner {
    /// The publisher's domain.
    pub domain: String,
    /// Its display name.
    pub name: String,
    /// Its signing key (loaded from `keys/DOMAIN.key`); it carries its key id
    /// ([`SigningKey::keyid`]).
    pub key: SigningKey,
}

/// Limits the service enforces.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest article accepted, in bytes.
    pub max_article_bytes: usize,
    /// Calls handled at once before new ones are shed with `RESOURCE_EXHAUSTED`.
    pub max_concurrent: usize,
    /// Requests of one `SignStream` signed at once.
    pub stream_window: usize,
}

/// The service state shared by every call.
pub struct BylineService<S: Store> {
    store: S,
    limits: Limits,
    keys_dir: PathBuf,
    signers: RwLock<HashMap<String, Arc<PublisherSigner>>>,
    log: Arc<LogSigner>,
    sequencer: Sequencer,
    /// The server's trust store, with its own log pinned, shared by every `Verify` call.
    trust: Arc<TrustStore>,
    limiter: Arc<Semaphore>,
    /// Canonicalizing and verifying, off the async threads and bounded.
    cpu: CpuPool,
    token_cache: Mutex<HashMap<String, (TokenRecord, Instant)>>,
    /// Logged key revocations of signing keys, by keyid, read again after `TOKEN_CACHE_TTL`
    /// (so a revocation made through another replica stops this one signing too).
    key_revocations: Mutex<HashMap<String, (Option<Timestamp>, Instant)>>,
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {reason}"))
}

fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::Unavailable(m) => Status::unavailable(format!("database unavailable: {m}")),
        other => Status::internal(other.to_string()),
    }
}

fn log_status(e: &LogError) -> Status {
    match e {
        LogError::Store(StoreError::Unavailable(m)) => {
            Status::unavailable(format!("database unavailable: {m}"))
        }
        LogError::Closed => Status::unavailable("the server is shutting down"),
        LogError::OutOfRange(m) => Status::out_of_range(m.clone()),
        other => Status::internal(other.to_string()),
    }
}

fn sign_error_status(e: SignError) -> Status {
    match e {
        SignError::Canonical(c) => invalid("article.content", c),
        SignError::Embedded(c) => invalid("article.content", c),
        SignError::Manifest(ManifestError::InvalidField { field, reason }) => {
            invalid(field, reason)
        }
        SignError::Manifest(m) => Status::invalid_argument(m.to_string()),
    }
}

fn timestamp_pb(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.unix(),
        nanos: 0,
    }
}

fn class_from_pb(value: i32) -> Result<AuthorshipClass, Status> {
    match pb::AuthorshipClass::try_from(value) {
        Ok(pb::AuthorshipClass::Human) => Ok(AuthorshipClass::Human),
        Ok(pb::AuthorshipClass::AiAssisted) => Ok(AuthorshipClass::AiAssisted),
        Ok(pb::AuthorshipClass::AiGenerated) => Ok(AuthorshipClass::AiGenerated),
        Ok(pb::AuthorshipClass::Mixed) => Ok(AuthorshipClass::Mixed),
        _ => Err(invalid(
            "authorship.authorship",
            "must be one of HUMAN, AI_ASSISTED, AI_GENERATED, MIXED",
        )),
    }
}

/// The protobuf value of an authorship class.
pub fn class_to_pb(class: AuthorshipClass) -> pb::AuthorshipClass {
    match class {
        AuthorshipClass::Human => pb::AuthorshipClass::Human,
        AuthorshipClass::AiAssisted => pb::AuthorshipClass::AiAssisted,
        AuthorshipClass::AiGenerated => pb::AuthorshipClass::AiGenerated,
        AuthorshipClass::Mixed => pb::AuthorshipClass::Mixed,
    }
}

fn optional(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_string())
}

fn parse_digest(field: &str, s: &str) -> Result<Sha256Digest, Status> {
    s.parse().map_err(|e| invalid(field, e))
}

/// Maps a request's authorship to core types: the one place `Sign` turns protobuf into the
/// core's `Authorship`. Every malformed field is `INVALID_ARGUMENT` naming it. `publisher_name`
/// is the server's name for the publisher, used when the request gives none; `now` stands in for
/// an editorial review time the request leaves out.
pub fn authorship_from_pb(
    a: &pb::Authorship,
    domain: &str,
    publisher_name: &str,
    now: Timestamp,
) -> Result<Authorship, Status> {
    if a.byline.trim().is_empty() {
        return Err(invalid("authorship.byline", "must not be empty"));
    }
    let class = class_from_pb(a.authorship)?;
    if a.subject.trim().is_empty() {
        return Err(invalid(
            "authorship.subject",
            "must not be empty (the article's URL or id)",
        ));
    }
    let authorship = Authorship {
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
            name: optional(&a.publisher_name).unwrap_or_else(|| publisher_name.to_string()),
            domain: domain.to_string(),
        },
        title: optional(&a.title),
        language: optional(&a.language),
        published_at: a
            .published_at
            .map(|t| {
                Timestamp::from_unix(t.seconds)
                    .ok_or_else(|| invalid("authorship.published_at", "out of range"))
            })
            .transpose()?,
        segments: if a.segments.is_empty() {
            None
        } else {
            Some(
                a.segments
                    .iter()
                    .map(|seg| {
                        let class = class_from_pb(seg.authorship).map_err(|_| {
                            invalid("authorship.segments.authorship", "must be a known class")
                        })?;
                        Ok(crate::core::manifest::Segment {
                            start: seg.start,
                            end: seg.end,
                            authorship: class,
                            digital_source_type: class.digital_source_type(),
                        })
                    })
                    .collect::<Result<Vec<_>, Status>>()?,
            )
        },
        editorial_responsibility: a
            .editorial_responsibility
            .as_ref()
            .map(|e| {
                Ok::<_, Status>(crate::core::manifest::EditorialResponsibility {
                    name: e.name.clone(),
                    role: e.role.clone(),
                    reviewed_at: match &e.reviewed_at {
                        Some(t) => Timestamp::from_unix(t.seconds).ok_or_else(|| {
                            invalid(
                                "authorship.editorial_responsibility.reviewed_at",
                                "out of range",
                            )
                        })?,
                        None => now,
                    },
                    policy_url: optional(&e.policy_url),
                })
            })
            .transpose()?,
        supersedes: a
            .supersedes
            .as_ref()
            .map(|s| {
                Ok::<_, Status>(crate::core::manifest::Supersedes {
                    statement_sha256: parse_digest(
                        "authorship.supersedes.statement_sha256",
                        &s.statement_sha256,
                    )?,
                    log_index: s.log_index,
                })
            })
            .transpose()?,
    };
    Ok(authorship)
}

/// Builds the statement for `authorship` over `digests`, signs it with `signer`'s key, and
/// returns the log entry to append: everything `Sign` does between reading the request and
/// waiting for the log, with no await, so none of it is kept in the call's future.
fn seal_manifest(
    authorship: &Authorship,
    digests: ArticleDigests,
    paragraphs: Option<Vec<Sha256Digest>>,
    idempotency_key: &str,
    publisher: String,
    signer: &PublisherSigner,
) -> Result<PendingEntry, Status> {
    let statement = build_statement(authorship, digests, paragraphs, Timestamp::now())
        .map_err(|e| sign_error_status(e.into()))?;
    let payload = statement
        .to_payload()
        .map_err(|e| Status::internal(e.to_string()))?;
    // Sign the very bytes just serialized (serializing again would cost as much as the
    // statement's SHA-256 and could only differ by a bug).
    let envelope = crate::core::dsse::sign_envelope(
        crate::core::constants::PAYLOAD_TYPE_IN_TOTO,
        &payload,
        &signer.key,
    );
    let idempotency_key = optional(idempotency_key);
    if idempotency_key.as_ref().is_some_and(|k| k.len() > 256) {
        return Err(invalid("idempotency_key", "longer than 256 bytes"));
    }
    Ok(PendingEntry {
        kind: EntryKind::Manifest,
        envelope,
        publisher,
        text_sha256: Some(digests.text.to_hex()),
        exact_sha256: Some(digests.exact.to_hex()),
        statement_sha256: Sha256Digest::of(&payload).to_hex(),
        idempotency_key,
        supersedes_sha256: statement
            .predicate
            .supersedes
            .as_ref()
            .map(|s| s.statement_sha256.to_hex()),
    })
}

impl<S: Store> BylineService<S> {
    /// Builds the service.
    pub fn new(
        store: S,
        limits: Limits,
        keys_dir: PathBuf,
        log: Arc<LogSigner>,
        sequencer: Sequencer,
        mut trust: TrustStore,
    ) -> Self {
        // Verify answers with the server's own log pinned beside the configured logs.
        trust.logs.push(crate::core::trust::LogEntryTrust {
            origin: log.origin().to_string(),
            verifier_key: log.verifier_key(),
            source: Some("this server".into()),
        });
        BylineService {
            store,
            limiter: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            cpu: CpuPool::for_this_machine(),
            limits,
            keys_dir,
            signers: RwLock::new(HashMap::new()),
            log,
            sequencer,
            trust: Arc::new(trust),
            token_cache: Mutex::new(HashMap::new()),
            key_revocations: Mutex::new(HashMap::new()),
        }
    }

    fn admit(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.limiter.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "server busy: more than {} calls in flight; retry with backoff",
                self.limits.max_concurrent
            ))
        })
    }

    /// Authenticates the caller and returns its token record.
    async fn authenticate<T>(&self, request: &Request<T>) -> Result<TokenRecord, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated(AuthError::Missing.to_string()))?
            .to_str()
            .map_err(|_| Status::unauthenticated(AuthError::Malformed.to_string()))?;
        let (id, secret) =
            parse_bearer(header).map_err(|e| Status::unauthenticated(e.to_string()))?;
        let cached = {
            let cache = self.token_cache.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .get(&id)
                .filter(|(_, at)| at.elapsed() < TOKEN_CACHE_TTL)
                .map(|(r, _)| r.clone())
        };
        let record = match cached {
            Some(r) => r,
            None => {
                let r = self
                    .store
                    .token(&id)
                    .await
                    .map_err(store_status)?
                    .ok_or_else(|| Status::unauthenticated(AuthError::Invalid.to_string()))?;
                let mut cache = self.token_cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(id, (r.clone(), Instant::now()));
                r
            }
        };
        check_token(&record, &secret, Timestamp::now())
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        Ok(record)
    }

    /// The signer for a publisher, loading `keys/DOMAIN.key` on first use.
    async fn signer(&self, domain: &str) -> Result<Arc<PublisherSigner>, Status> {
        if let Some(s) = self
            .signers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(domain)
        {
            return Ok(s.clone());
        }
        if domain == crate::service::LOG_KEY_NAME {
            return Err(Status::failed_precondition(format!(
                "publisher {domain:?} is reserved for the transparency log's key"
            )));
        }
        let path = self.keys_dir.join(format!("{domain}.key"));
        let key = crate::keyfile::load_signing_key(&path).map_err(|e| {
            Status::failed_precondition(format!(
                "no usable signing key for publisher {domain} on this server: {e:#}"
            ))
        })?;
        let name = self
            .store
            .publishers()
            .await
            .map_err(store_status)?
            .into_iter()
            .find(|(d, _)| d == domain)
            .map(|(_, n)| n)
            .unwrap_or_else(|| domain.to_string());
        let signer = Arc::new(PublisherSigner {
            domain: domain.to_string(),
            name,
            key,
        });
        self.signers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(domain.to_string(), signer.clone());
        Ok(signer)
    }

    /// Signs one request for the authenticated token: the whole `Sign` flow.
    async fn sign_one(
        &self,
        token: &TokenRecord,
        req: pb::SignRequest,
    ) -> Result<pb::SignResponse, Status> {
        let a = req
            .authorship
            .ok_or_else(|| invalid("authorship", "is required"))?;
        let domain = if a.publisher_domain.is_empty() {
            token.publisher.clone()
        } else {
            a.publisher_domain.clone()
        };
        if domain != token.publisher {
            return Err(Status::permission_denied(format!(
                "this token signs only for {}, not for {domain}",
                token.publisher
            )));
        }
        let signer = self.signer(&domain).await?;
        self.refuse_revoked(&signer).await?;
        let mut authorship = authorship_from_pb(&a, &domain, &signer.name, Timestamp::now())?;
        drop(a);
        let (digests, paragraphs) = match req.article {
            Some(pb::sign_request::Article::Content(article)) => {
                let media: MediaType = article
                    .media_type
                    .parse()
                    .map_err(|e| invalid("article.media_type", e))?;
                if article.content.len() > self.limits.max_article_bytes {
                    return Err(invalid(
                        "article.content",
                        format!(
                            "{} bytes is over the article size limit of {} bytes",
                            article.content.len(),
                            self.limits.max_article_bytes
                        ),
                    ));
                }
                let limit = self.limits.max_article_bytes;
                let input_bytes = article.content.len();
                let prepared = self
                    .cpu
                    .run("canonicalization", input_bytes, move || {
                        prepare_article(&article.content, media, limit)
                    })
                    .await?
                    .map_err(sign_error_status)?;
                if authorship.segments.is_none() {
                    authorship.segments =
                        segments_from_labels(&prepared.canonical.paragraph_labels)
                            .map_err(|e| sign_error_status(e.into()))?;
                }
                (prepared.digests, Some(prepared.paragraph_digests))
            }
            Some(pb::sign_request::Article::Digests(d)) => (
                ArticleDigests {
                    text: parse_digest("digests.text_sha256", &d.text_sha256)?,
                    exact: parse_digest("digests.exact_sha256", &d.exact_sha256)?,
                },
                None,
            ),
            None => return Err(invalid("article", "give either content or digests")),
        };
        // What is in scope at an await is kept in the call's future, which `SignStream`
        // allocates and moves per request: the statement is built and signed in
        // `seal_manifest`, so that its locals are not among them while the entry waits for the
        // log (the stream's per-request future was 3,848 bytes with them, 3,200 without).
        let pending = seal_manifest(
            &authorship,
            digests,
            paragraphs,
            &req.idempotency_key,
            domain,
            &signer,
        )?;
        drop(authorship);
        let logged = self
            .sequencer
            .submit(pending)
            .await
            .map_err(|e| log_status(&e))?;
        let bundle = Bundle {
            media_type: crate::core::constants::BUNDLE_MEDIA_TYPE_V1.to_string(),
            dsse_envelope: logged.envelope,
            log_entry: Some(logged.log_entry),
        };
        Ok(pb::SignResponse {
            bundle_json: bundle.to_json_pretty(),
            log_index: logged.appended.index,
            text_sha256: digests.text.to_hex(),
            exact_sha256: digests.exact.to_hex(),
            integrated_time: Some(timestamp_pb(logged.appended.integrated_time)),
        })
    }
}

impl<S: Store> BylineService<S> {
    /// When the signing key with `keyid` was revoked by a logged key revocation, if it was.
    async fn key_revoked_since(&self, keyid: &str) -> Result<Option<Timestamp>, Status> {
        if let Some((since, at)) = self
            .key_revocations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(keyid)
        {
            if at.elapsed() < TOKEN_CACHE_TTL {
                return Ok(*since);
            }
        }
        let mut since: Option<Timestamp> = None;
        for record in self
            .store
            .lookup_revocations(keyid)
            .await
            .map_err(store_status)?
        {
            // The server's own log: entries are read, not re-verified.
            let revoked = logsvc::envelope_of(&record)
                .ok()
                .and_then(|e| decode_base64_any(&e.payload))
                .and_then(|p| revocation::from_payload(&p).ok())
                .and_then(|s| s.predicate.key)
                .filter(|k| k.keyid == keyid)
                .map(|k| k.revoked_since);
            since = match (since, revoked) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        self.key_revocations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(keyid.to_string(), (since, Instant::now()));
        Ok(since)
    }

    /// Refuses to sign with a key the log says is revoked: every such signature would fail.
    async fn refuse_revoked(&self, signer: &PublisherSigner) -> Result<(), Status> {
        match self.key_revoked_since(signer.key.keyid()).await? {
            Some(since) => Err(Status::failed_precondition(format!(
                "the signing key for {} (keyid {}) was revoked from {since}; install a new key \
                 (`byline keygen --publisher {} --force`) and restart the server",
                signer.domain,
                crate::core::dsse::short_keyid(signer.key.keyid()),
                signer.domain
            ))),
            None => Ok(()),
        }
    }

    /// The logged revocations of each target (a statement digest or a keyid) that verify under
    /// the server's trust store. One that does not verify is left out and logged as a warning:
    /// it cannot have come from this server's own signing path.
    async fn verified_revocations(
        &self,
        targets: &[String],
    ) -> Result<Vec<VerifiedRevocation>, Status> {
        let mut records = Vec::new();
        for target in targets {
            records.extend(
                self.store
                    .lookup_revocations(target)
                    .await
                    .map_err(store_status)?,
            );
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let (size, note) = logsvc::latest_checkpoint(&self.store, &self.log)
            .await
            .map_err(|e| log_status(&e))?;
        let mut out = Vec::with_capacity(records.len());
        for record in &records {
            let bundle = logsvc::bundle_for_entry(&self.store, record, (size, &note))
                .await
                .map_err(|e| log_status(&e))?;
            match revocation::verify_revocation(&bundle, &self.trust) {
                Ok(v) => out.push(v),
                Err(e) => {
                    tracing::warn!(index = record.index, error = %e, "revocation entry does not verify")
                }
            }
        }
        Ok(out)
    }

    /// The `Revoke` flow: build the revocation statement, sign it with the right key, log it.
    async fn revoke_one(
        &self,
        token: &TokenRecord,
        req: pb::RevokeRequest,
    ) -> Result<pb::RevokeResponse, Status> {
        let reason = req.reason.trim();
        if reason.is_empty() {
            return Err(invalid(
                "reason",
                "must say why (corrected, withdrawn, compromised, ...)",
            ));
        }
        let now = Timestamp::now();
        let revocation_invalid = |e: revocation::RevocationError| match e {
            revocation::RevocationError::InvalidField { field, reason } => invalid(
                if field == "predicate.reason" {
                    "reason"
                } else {
                    field
                },
                reason,
            ),
            other => Status::invalid_argument(other.to_string()),
        };
        let (envelope, publisher, target, revoked_key) = match req.target {
            Some(pb::revoke_request::Target::ManifestLogIndex(index)) => {
                let record = self
                    .store
                    .entry(index)
                    .await
                    .map_err(store_status)?
                    .ok_or_else(|| Status::not_found(format!("the log has no entry {index}")))?;
                if record.kind != EntryKind::Manifest {
                    return Err(invalid(
                        "manifest_log_index",
                        format!("entry {index} is a revocation, not a manifest"),
                    ));
                }
                if record.publisher != token.publisher && !token.admin {
                    return Err(Status::permission_denied(format!(
                        "entry {index} was signed for {}; this token retracts only {}'s manifests",
                        record.publisher, token.publisher
                    )));
                }
                let payload = logsvc::envelope_of(&record)
                    .ok()
                    .and_then(|e| decode_base64_any(&e.payload))
                    .ok_or_else(|| Status::internal(format!("entry {index} has no payload")))?;
                let manifest = AuthorshipStatement::from_payload(&payload).map_err(|e| {
                    Status::internal(format!("entry {index} is not a manifest: {e}"))
                })?;
                let digest = Sha256Digest::of(&payload);
                if let Some(earlier) = self
                    .store
                    .lookup_revocations(&digest.to_hex())
                    .await
                    .map_err(store_status)?
                    .first()
                {
                    return Err(Status::already_exists(format!(
                        "entry {index} was already retracted (log index {})",
                        earlier.index
                    )));
                }
                let signer = self.signer(&record.publisher).await?;
                self.refuse_revoked(&signer).await?;
                let statement = revocation::retraction(
                    &record.publisher,
                    manifest.subject_name(),
                    digest,
                    index,
                    reason,
                    now,
                )
                .map_err(revocation_invalid)?;
                (
                    revocation::sign_revocation(&statement, &signer.key),
                    record.publisher,
                    digest.to_hex(),
                    None,
                )
            }
            Some(pb::revoke_request::Target::Keyid(id)) => {
                if !token.admin {
                    return Err(Status::permission_denied(
                        "revoking a key needs an admin token (`byline token create --admin`)",
                    ));
                }
                parse_digest("keyid", &id)?;
                if id.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(invalid("keyid", "must be lowercase hex"));
                }
                let known = self
                    .trust
                    .trusted_keys()
                    .map_err(|e| Status::internal(e.to_string()))?
                    .into_iter()
                    .find(|k| k.keyid == id)
                    .ok_or_else(|| {
                        Status::not_found(format!(
                            "no publisher key with keyid {id} is in this server's trust store"
                        ))
                    })?;
                let since = match req.since {
                    Some(t) => Timestamp::from_unix(t.seconds)
                        .ok_or_else(|| invalid("since", "out of range"))?,
                    None => now,
                };
                if since > now {
                    return Err(invalid(
                        "since",
                        format!(
                            "{since} is in the future (now is {now}); revoke when the time comes"
                        ),
                    ));
                }
                if let Some(earlier) = self
                    .store
                    .lookup_revocations(&id)
                    .await
                    .map_err(store_status)?
                    .first()
                {
                    return Err(Status::already_exists(format!(
                        "key {id} was already revoked (log index {})",
                        earlier.index
                    )));
                }
                let statement = revocation::key_revocation(
                    &known.entry.publisher,
                    &known.key,
                    since,
                    reason,
                    now,
                )
                .map_err(revocation_invalid)?;
                (
                    self.log.sign_revocation(&statement),
                    known.entry.publisher,
                    id.clone(),
                    Some((id, since)),
                )
            }
            None => return Err(invalid("target", "give manifest_log_index or keyid")),
        };
        let payload = decode_base64_any(&envelope.payload)
            .ok_or_else(|| Status::internal("revocation payload is not base64"))?;
        let logged = self
            .sequencer
            .submit(PendingEntry {
                kind: EntryKind::Revocation,
                envelope,
                publisher,
                text_sha256: None,
                exact_sha256: None,
                statement_sha256: Sha256Digest::of(&payload).to_hex(),
                idempotency_key: None,
                supersedes_sha256: Some(target),
            })
            .await
            .map_err(|e| log_status(&e))?;
        if let Some((id, since)) = revoked_key {
            self.key_revocations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, (Some(since), Instant::now()));
        }
        let bundle = Bundle {
            media_type: crate::core::constants::BUNDLE_MEDIA_TYPE_V1.to_string(),
            dsse_envelope: logged.envelope,
            log_entry: Some(logged.log_entry),
        };
        Ok(pb::RevokeResponse {
            bundle_json: bundle.to_json_pretty(),
            log_index: logged.appended.index,
            integrated_time: Some(timestamp_pb(logged.appended.integrated_time)),
        })
    }
}

/// A requested tree size, where 0 means the latest; larger than the log is an error.
fn size_or_latest(field: &str, requested: u64, latest: u64) -> Result<u64, Status> {
    match requested {
        0 => Ok(latest),
        n if n > latest => Err(invalid(
            field,
            format!("{n} is larger than the log ({latest})"),
        )),
        n => Ok(n),
    }
}

fn observe<T>(rpc: &str, started: Instant, result: &Result<T, Status>) {
    let code = match result {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    };
    metrics::record_call(rpc, code, started.elapsed());
}

type SignStreamOut = Pin<Box<dyn Stream<Item = Result<pb::SignStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<S: Store> Byline for Arc<BylineService<S>> {
    async fn sign(
        &self,
        request: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        let started = Instant::now();
        let result = async {
            let _permit = self.admit()?;
            let token = self.authenticate(&request).await?;
            self.sign_one(&token, request.into_inner())
                .await
                .map(Response::new)
        }
        .await;
        observe("Sign", started, &result);
        result
    }

    type SignStreamStream = SignStreamOut;

    async fn sign_stream(
        &self,
        request: Request<Streaming<pb::SignRequest>>,
    ) -> Result<Response<Self::SignStreamStream>, Status> {
        let started = Instant::now();
        let admitted = async {
            let permit = self.admit()?;
            let token = self.authenticate(&request).await?;
            Ok::<_, Status>((permit, token))
        }
        .await;
        let (permit, token) = match admitted {
            Ok(ok) => ok,
            Err(e) => {
                let r = Err(e);
                observe("SignStream", started, &r);
                return r;
            }
        };
        let service = self.clone();
        let window = self.limits.stream_window.max(1);
        let inbound = request.into_inner();
        let token = Arc::new(token);
        // `buffered` signs up to `window` requests at once and yields answers in request
        // order; it pulls from the client only as answers are taken (back-pressure).
        let out = inbound
            .map(move |item| {
                let service = service.clone();
                let token = token.clone();
                async move {
                    let req = item?;
                    let request_id = req.request_id;
                    let result = match service.sign_one(&token, req).await {
                        Ok(signed) => pb::sign_stream_response::Result::Signed(signed),
                        Err(status) => pb::sign_stream_response::Result::Error(pb::SignError {
                            code: status.code() as i32,
                            message: status.message().to_string(),
                        }),
                    };
                    Ok(pb::SignStreamResponse {
                        request_id,
                        result: Some(result),
                    })
                }
            })
            .buffered(window)
            .map(move |r: Result<pb::SignStreamResponse, Status>| {
                let _hold = &permit;
                r
            });
        metrics::record_call("SignStream", tonic::Code::Ok, started.elapsed());
        Ok(Response::new(Box::pin(out)))
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let started = Instant::now();
        let result = async {
            let _permit = self.admit()?;
            let req = request.into_inner();
            let article = req
                .article
                .ok_or_else(|| invalid("article", "is required"))?;
            let media: MediaType = article
                .media_type
                .parse()
                .map_err(|e| invalid("article.media_type", e))?;
            if article.content.len() > self.limits.max_article_bytes {
                return Err(invalid(
                    "article.content",
                    format!(
                        "over the article size limit of {} bytes",
                        self.limits.max_article_bytes
                    ),
                ));
            }
            let options = VerifyOptions {
                require_exact: req.require_exact,
                max_article_bytes: self.limits.max_article_bytes,
                ..VerifyOptions::default()
            };
            let trust = self.trust.clone();
            let options_with_revocations = options.clone();
            let input_bytes = article.content.len() + req.bundle_json.len();
            let (verdict, article, bundle_json) = self
                .cpu
                .run("verification", input_bytes, move || {
                    let verdict = verify_article(
                        &article.content,
                        media,
                        req.bundle_json.as_bytes(),
                        &trust,
                        &options,
                        Timestamp::now(),
                    );
                    (verdict, article, req.bundle_json)
                })
                .await?;
            // Logged revocations of this statement or its key change the verdict: judge again
            // with them (rare, so the common path verifies once).
            let revocations = self
                .verified_revocations(&revocation_targets(&verdict))
                .await?;
            let verdict = if revocations.is_empty() {
                verdict
            } else {
                let trust = self.trust.clone();
                self.cpu
                    .run(
                        "verification",
                        input_bytes,
                        move || match Bundle::from_json(bundle_json.as_bytes()) {
                            Ok(bundle) => verify_bundle_with_revocations(
                                &article.content,
                                media,
                                &bundle,
                                &trust,
                                &revocations,
                                &options_with_revocations,
                                Timestamp::now(),
                            ),
                            Err(_) => verdict,
                        },
                    )
                    .await?
            };
            let p = verdict.statement.as_ref().map(|s| &s.predicate);
            Ok(Response::new(pb::VerifyResponse {
                verified: verdict.verified(),
                failure_code: verdict
                    .failure
                    .as_ref()
                    .map(|f| f.code().to_string())
                    .unwrap_or_default(),
                message: verdict
                    .failure
                    .as_ref()
                    .map(|f| f.to_string())
                    .unwrap_or_else(|| "verified".into()),
                byline: p.map(|p| p.byline.clone()).unwrap_or_default(),
                authorship: p
                    .map(|p| class_to_pb(p.authorship) as i32)
                    .unwrap_or_default(),
                publisher_domain: verdict
                    .signer
                    .as_ref()
                    .map(|s| s.entry.publisher.clone())
                    .unwrap_or_default(),
                publisher_name: verdict
                    .signer
                    .as_ref()
                    .map(|s| s.publisher_display().to_string())
                    .unwrap_or_default(),
                keyid: verdict
                    .signer
                    .as_ref()
                    .map(|s| s.keyid.clone())
                    .unwrap_or_default(),
                logged: verdict.log.is_some(),
                log_index: verdict
                    .log
                    .as_ref()
                    .map(|l| l.log_index)
                    .unwrap_or_default(),
                binding: match verdict.binding {
                    Some(Binding::Exact) => "exact".into(),
                    Some(Binding::Text) => "text".into(),
                    None => String::new(),
                },
                signing_time: verdict.judged_at.map(timestamp_pb),
                warnings: verdict.warnings.clone(),
            }))
        }
        .await;
        observe("Verify", started, &result);
        result
    }

    async fn lookup(
        &self,
        request: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::LookupResponse>, Status> {
        let started = Instant::now();
        let result = async {
            let _permit = self.admit()?;
            let records = match request.into_inner().digest {
                Some(pb::lookup_request::Digest::TextSha256(d)) => {
                    parse_digest("text_sha256", &d)?;
                    self.store.lookup_text(&d).await
                }
                Some(pb::lookup_request::Digest::ExactSha256(d)) => {
                    parse_digest("exact_sha256", &d)?;
                    self.store.lookup_exact(&d).await
                }
                Some(pb::lookup_request::Digest::StatementSha256(d)) => {
                    parse_digest("statement_sha256", &d)?;
                    self.store.lookup_statement(&d).await
                }
                Some(pb::lookup_request::Digest::SupersedesSha256(d)) => {
                    parse_digest("supersedes_sha256", &d)?;
                    self.store.lookup_superseding(&d).await
                }
                Some(pb::lookup_request::Digest::RevokingSha256(d)) => {
                    parse_digest("revoking_sha256", &d)?;
                    self.store.lookup_revocations(&d).await
                }
                None => {
                    return Err(invalid(
                        "digest",
                        "give text_sha256, exact_sha256, statement_sha256, supersedes_sha256 \
                         or revoking_sha256",
                    ))
                }
            }
            .map_err(store_status)?;
            let mut entries = Vec::with_capacity(records.len());
            let (size, note) = logsvc::latest_checkpoint(&self.store, &self.log)
                .await
                .map_err(|e| log_status(&e))?;
            for record in &records {
                let bundle = logsvc::bundle_for_entry(&self.store, record, (size, &note))
                    .await
                    .map_err(|e| log_status(&e))?;
                entries.push(pb::LookupEntry {
                    bundle_json: bundle.to_json_pretty(),
                    log_index: record.index,
                    integrated_time: Some(timestamp_pb(record.integrated_time)),
                    publisher_domain: record.publisher.clone(),
                });
            }
            Ok(Response::new(pb::LookupResponse { entries }))
        }
        .await;
        observe("Lookup", started, &result);
        result
    }

    async fn get_keys(
        &self,
        request: Request<pb::GetKeysRequest>,
    ) -> Result<Response<pb::GetKeysResponse>, Status> {
        let wanted = request.into_inner().publisher_domain;
        let served: Vec<String> = self
            .store
            .publishers()
            .await
            .map_err(store_status)?
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        let mut publisher_keys = Vec::new();
        for entry in &self.trust.publisher_keys {
            if !served.contains(&entry.publisher)
                || (!wanted.is_empty() && entry.publisher != wanted)
            {
                continue;
            }
            if entry.revoked_since.is_some() {
                continue;
            }
            let Ok(key) = public_key_from_base64(&entry.public_key) else {
                continue;
            };
            publisher_keys.push(pb::PublisherKey {
                publisher_domain: entry.publisher.clone(),
                publisher_name: entry
                    .name
                    .clone()
                    .unwrap_or_else(|| entry.publisher.clone()),
                public_key: entry.public_key.clone(),
                keyid: keyid(&key),
            });
        }
        Ok(Response::new(pb::GetKeysResponse {
            publisher_keys,
            log_verifier_key: self.log.verifier_key(),
            log_origin: self.log.origin().to_string(),
        }))
    }

    async fn get_checkpoint(
        &self,
        _request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        let (size, note) = logsvc::latest_checkpoint(&self.store, &self.log)
            .await
            .map_err(|e| log_status(&e))?;
        Ok(Response::new(pb::GetCheckpointResponse {
            checkpoint: note,
            tree_size: size,
        }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        let req = request.into_inner();
        let (latest, note) = logsvc::latest_checkpoint(&self.store, &self.log)
            .await
            .map_err(|e| log_status(&e))?;
        let size = size_or_latest("tree_size", req.tree_size, latest)?;
        let index = match req.leaf {
            Some(pb::get_inclusion_proof_request::Leaf::LogIndex(i)) => i,
            Some(pb::get_inclusion_proof_request::Leaf::LeafHash(h)) => {
                let hash: [u8; 32] = h
                    .as_slice()
                    .try_into()
                    .map_err(|_| invalid("leaf_hash", "must be 32 bytes"))?;
                self.store
                    .index_by_leaf_hash(&hash)
                    .await
                    .map_err(store_status)?
                    .ok_or_else(|| Status::not_found("no entry has that leaf hash"))?
            }
            None => return Err(invalid("leaf", "give log_index or leaf_hash")),
        };
        if index >= size {
            return Err(invalid(
                "log_index",
                format!("{index} is not in a tree of size {size}"),
            ));
        }
        let proof = logsvc::inclusion_proof(&self.store, index, size)
            .await
            .map_err(|e| log_status(&e))?;
        Ok(Response::new(pb::GetInclusionProofResponse {
            log_index: index,
            tree_size: size,
            hashes: proof.iter().map(|h| h.to_vec()).collect(),
            checkpoint: if size == latest { note } else { String::new() },
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let req = request.into_inner();
        let (latest, note) = logsvc::latest_checkpoint(&self.store, &self.log)
            .await
            .map_err(|e| log_status(&e))?;
        let to = size_or_latest("to_size", req.to_size, latest)?;
        if req.from_size == 0 || req.from_size > to {
            return Err(invalid("from_size", format!("must be between 1 and {to}")));
        }
        let proof = logsvc::consistency_proof(&self.store, req.from_size, to)
            .await
            .map_err(|e| log_status(&e))?;
        Ok(Response::new(pb::GetConsistencyProofResponse {
            from_size: req.from_size,
            to_size: to,
            hashes: proof.iter().map(|h| h.to_vec()).collect(),
            checkpoint: if to == latest { note } else { String::new() },
        }))
    }

    async fn get_entries(
        &self,
        request: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        let req = request.into_inner();
        let count = match req.count {
            0 => 100,
            n if n > 1000 => return Err(invalid("count", "at most 1000")),
            n => u64::from(n),
        };
        let records = self
            .store
            .entries(req.start, count)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::GetEntriesResponse {
            leaves: records
                .into_iter()
                .map(|r| pb::LogLeaf {
                    log_index: r.index,
                    leaf: r.leaf,
                })
                .collect(),
        }))
    }

    async fn revoke(
        &self,
        request: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        let started = Instant::now();
        let result = async {
            let _permit = self.admit()?;
            let token = self.authenticate(&request).await?;
            self.revoke_one(&token, request.into_inner())
                .await
                .map(Response::new)
        }
        .await;
        observe("Revoke", started, &result);
        result
    }
}
