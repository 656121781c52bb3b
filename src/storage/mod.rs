//! Storage: the `Store` trait and its backends (SQLite embedded, PostgreSQL shared).
//!
//! The log's append logic — which nodes a batch completes, what time it is given — is the pure
//! [`plan_append`]; each backend only reads the log's state and writes the plan inside one
//! transaction that it holds exclusively (SQLite's write lock, PostgreSQL's advisory lock), so
//! that several service replicas can share one log with unique, gap-free indices.

pub mod postgres;
pub mod sqlite;
mod sqlite_append;

use std::collections::HashMap;
use std::future::Future;

use crate::core::dsse::Envelope;
use crate::core::manifest::Timestamp;
use crate::core::merkle::leaf_hash;
use crate::core::merkle::{CompactRange, Hash, MerkleError, NodeId};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error; the call may be retried.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The stored log is not what the code expects (a bug or tampering); never retried.
    #[error("stored log is inconsistent: {0}")]
    Corrupt(String),
    /// The database URL is not one byline supports.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// The database was migrated by a newer byline; this build must not write to it.
    #[error(
        "the database schema is version {found}, newer than the {supported} this byline knows; \
         upgrade byline"
    )]
    SchemaTooNew {
        /// The version recorded in the database.
        found: i64,
        /// The newest version this build can migrate to.
        supported: i64,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl From<MerkleError> for StoreError {
    fn from(e: MerkleError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// The identity of the log stored in a database, bound to its key (DESIGN.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogMeta {
    /// The checkpoint origin line.
    pub origin: String,
    /// The log key as a C2SP note verifier key.
    pub verifier_key: String,
}

/// An API token as stored: only the hash of its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// The public part of the token, used to find it.
    pub id: String,
    /// The publisher it may sign for.
    pub publisher: String,
    /// SHA-256 of the secret part.
    pub secret_sha256: [u8; 32],
    /// Whether it may call administrative RPCs.
    pub admin: bool,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// A signed checkpoint as stored: its tree size, root and the signed note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointRow {
    /// The tree size.
    pub size: u64,
    /// The root hash.
    pub root: Hash,
    /// The signed note, verbatim.
    pub note: String,
}

/// What a log entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// An authorship manifest.
    Manifest,
    /// A revocation (retraction or key revocation).
    Revocation,
}

impl EntryKind {
    fn as_str(self) -> &'static str {
        match self {
            EntryKind::Manifest => "manifest",
            EntryKind::Revocation => "revocation",
        }
    }

    fn parse(s: &str) -> EntryKind {
        if s == "revocation" {
            EntryKind::Revocation
        } else {
            EntryKind::Manifest
        }
    }
}

/// An entry waiting to be appended: the envelope (as JSON) and what it is indexed by.
#[derive(Clone, Debug)]
pub struct PendingEntry {
    /// What it is.
    pub kind: EntryKind,
    /// The DSSE envelope, serialized as it goes into the leaf.
    pub envelope: Envelope,
    /// The publisher whose key signed it.
    pub publisher: String,
    /// Its text digest (hex), for lookups.
    pub text_sha256: Option<String>,
    /// Its exact digest (hex), for lookups.
    pub exact_sha256: Option<String>,
    /// SHA-256 (hex) of the statement payload.
    pub statement_sha256: String,
    /// The caller's idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// What the entry points at: for a manifest, the SHA-256 (hex) of the statement it
    /// supersedes, if it is a correction; for a revocation, its target (the retracted
    /// statement's SHA-256 or the revoked keyid). One column serves both, told apart by `kind`.
    pub supersedes_sha256: Option<String>,
}

/// A stored log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRecord {
    /// Its index.
    pub index: u64,
    /// The leaf bytes (JCS of envelope and time).
    pub leaf: Vec<u8>,
    /// The log's time for it.
    pub integrated_time: Timestamp,
    /// What it is.
    pub kind: EntryKind,
    /// The publisher.
    pub publisher: String,
}

/// Where an appended entry landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Its index.
    pub index: u64,
    /// Its integrated time.
    pub integrated_time: Timestamp,
    /// Whether an earlier entry with the same idempotency key was returned instead.
    pub existing: bool,
}

/// The result of one batch append.
#[derive(Clone, Debug)]
pub struct BatchResult {
    /// One per pending entry, in order.
    pub entries: Vec<Appended>,
    /// One per pending entry, in order: a new entry's envelope, handed back rather than
    /// dropped with the rows, so that the caller answering with it need not copy every
    /// envelope before the append (about a kilobyte and five allocations each); `None` for an
    /// entry that repeats a logged idempotency key, whose envelope is the earlier entry's.
    pub envelopes: Vec<Option<Envelope>>,
    /// The tree size after the batch.
    pub tree_size: u64,
    /// The root after the batch.
    pub root: Hash,
    /// The perfect nodes a proof for any entry of this batch needs: the frontier before the
    /// batch and every node the batch completed (so proofs need no database reads).
    pub nodes: Vec<(NodeId, Hash)>,
}

/// The log's state as a batch finds it.
#[derive(Clone, Debug)]
pub struct LogState {
    /// The frontier of the tree.
    pub range: CompactRange,
    /// The last entry's time (never decreases).
    pub last_time: Option<Timestamp>,
}

/// A row to insert for an entry.
#[derive(Clone, Debug)]
pub struct EntryRow {
    /// Index.
    pub index: u64,
    /// Leaf bytes.
    pub leaf: Vec<u8>,
    /// RFC 6962 leaf hash.
    pub leaf_hash: Hash,
    /// Time.
    pub integrated_time: Timestamp,
    /// The pending entry it came from.
    pub pending: PendingEntry,
}

/// What a batch will write: entries, the perfect nodes they complete, and the new tree.
#[derive(Clone, Debug)]
pub struct AppendPlan {
    /// Entry rows.
    pub rows: Vec<EntryRow>,
    /// New perfect-subtree nodes.
    pub nodes: Vec<(NodeId, Hash)>,
    /// Tree size after.
    pub tree_size: u64,
    /// Root after.
    pub root: Hash,
    /// The frontier before the batch, with its ids.
    pub frontier_before: Vec<(NodeId, Hash)>,
    /// The log's state once the batch is committed (what the next batch starts from).
    pub state_after: LogState,
}

/// Plans a batch append: assigns indices and one `integratedTime` (the later of `now` and the
/// last entry's time, so time never decreases with the index), builds the leaves, and lists the
/// nodes to store.
pub fn plan_append(state: LogState, pending: Vec<PendingEntry>, now: Timestamp) -> AppendPlan {
    let time = match state.last_time {
        Some(last) if last > now => last,
        _ => now,
    };
    let time_text = time.to_string();
    let mut range = state.range;
    let frontier_before = CompactRange::frontier_ids(range.size())
        .into_iter()
        .zip(range.hashes().iter().copied())
        .collect();
    let mut rows = Vec::with_capacity(pending.len());
    let mut nodes = Vec::with_capacity(pending.len() * 2);
    for p in pending {
        let leaf = crate::core::logproof::leaf_bytes(&p.envelope, &time_text);
        let hash = leaf_hash(&leaf);
        let index = range.size();
        nodes.extend(range.append(hash));
        rows.push(EntryRow {
            index,
            leaf,
            leaf_hash: hash,
            integrated_time: time,
            pending: p,
        });
    }
    let last_time = if rows.is_empty() {
        state.last_time
    } else {
        Some(time)
    };
    AppendPlan {
        rows,
        nodes,
        tree_size: range.size(),
        root: range.root(),
        frontier_before,
        state_after: LogState { range, last_time },
    }
}

/// A batch sorted by idempotency key: which pending entries become new log entries and which
/// answer with an entry logged before, so that every backend treats repeats alike. A key the
/// log already holds (for the same publisher) returns that entry; a key repeated inside the
/// batch returns the batch's first entry with it. Both are marked `existing`.
#[derive(Clone, Debug)]
pub struct BatchSlots {
    slots: Vec<Slot>,
}

#[derive(Clone, Debug)]
enum Slot {
    /// An entry an earlier batch logged under the same key.
    Logged(Appended),
    /// The n-th new entry of this batch.
    Fresh(usize),
    /// Repeats the key of the n-th new entry of this batch.
    RepeatOf(usize),
}

/// The (publisher, idempotency key) pairs a batch carries: what a backend looks up in the log
/// before it calls [`BatchSlots::sort`].
pub fn idempotency_keys(pending: &[PendingEntry]) -> Vec<(String, String)> {
    pending
        .iter()
        .filter_map(|p| Some((p.publisher.clone(), p.idempotency_key.clone()?)))
        .collect()
}

impl BatchSlots {
    /// Sorts `pending`, given the entries the log already holds for some of its keys (as
    /// `(publisher, key) -> (index, integrated time)`); returns the slots and the entries to
    /// append, in order.
    pub fn sort(
        pending: Vec<PendingEntry>,
        logged: &HashMap<(String, String), (u64, Timestamp)>,
    ) -> (BatchSlots, Vec<PendingEntry>) {
        let mut slots = Vec::with_capacity(pending.len());
        let mut fresh = Vec::with_capacity(pending.len());
        let mut first_with_key: HashMap<(String, String), usize> = HashMap::new();
        for p in pending {
            if let Some(key) = &p.idempotency_key {
                let id = (p.publisher.clone(), key.clone());
                if let Some(&(index, integrated_time)) = logged.get(&id) {
                    slots.push(Slot::Logged(Appended {
                        index,
                        integrated_time,
                        existing: true,
                    }));
                    continue;
                }
                if let Some(&first) = first_with_key.get(&id) {
                    slots.push(Slot::RepeatOf(first));
                    continue;
                }
                first_with_key.insert(id, fresh.len());
            }
            slots.push(Slot::Fresh(fresh.len()));
            fresh.push(p);
        }
        (BatchSlots { slots }, fresh)
    }

    /// The batch's result once `plan` (made from the entries [`BatchSlots::sort`] returned) is
    /// committed: one [`Appended`] per pending entry, in the order they were given, and each
    /// new entry's envelope handed back.
    pub fn finish(self, plan: AppendPlan) -> Result<BatchResult, StoreError> {
        let placed: Vec<(u64, Timestamp)> = plan
            .rows
            .iter()
            .map(|r| (r.index, r.integrated_time))
            .collect();
        let mut given: Vec<Option<Envelope>> = plan
            .rows
            .into_iter()
            .map(|r| Some(r.pending.envelope))
            .collect();
        let row = |n: usize, existing: bool| {
            placed
                .get(n)
                .map(|&(index, integrated_time)| Appended {
                    index,
                    integrated_time,
                    existing,
                })
                .ok_or_else(|| StoreError::Corrupt(format!("batch slot {n} has no row")))
        };
        let mut entries = Vec::with_capacity(self.slots.len());
        let mut envelopes = Vec::with_capacity(self.slots.len());
        for slot in self.slots {
            let (appended, envelope) = match slot {
                Slot::Logged(a) => (a, None),
                Slot::Fresh(n) => (row(n, false)?, given.get_mut(n).and_then(Option::take)),
                Slot::RepeatOf(n) => (row(n, true)?, None),
            };
            entries.push(appended);
            envelopes.push(envelope);
        }
        let mut nodes = plan.frontier_before;
        nodes.extend(plan.nodes);
        Ok(BatchResult {
            entries,
            envelopes,
            tree_size: plan.tree_size,
            root: plan.root,
            nodes,
        })
    }
}

/// What every backend provides. Methods return `Send` futures so the server can run them on
/// any task.
pub trait Store: Clone + Send + Sync + 'static {
    /// Creates or upgrades the schema (idempotent).
    fn migrate(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The log identity, if the log was created.
    fn log_meta(&self) -> impl Future<Output = Result<Option<LogMeta>, StoreError>> + Send;
    /// Records the log identity; fails if one exists already.
    fn init_log_meta(&self, meta: &LogMeta) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds or renames a publisher.
    fn upsert_publisher(
        &self,
        domain: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// All publishers, as (domain, name).
    fn publishers(&self) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;
    /// Stores a new token.
    fn insert_token(
        &self,
        token: &TokenRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Finds a token by id.
    fn token(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<TokenRecord>, StoreError>> + Send;
    /// Every token.
    fn tokens(&self) -> impl Future<Output = Result<Vec<TokenRecord>, StoreError>> + Send;
    /// Revokes a token; returns whether it existed.
    fn revoke_token(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Appends a batch durably (one transaction, committed before this returns).
    fn append(
        &self,
        pending: Vec<PendingEntry>,
        now: Timestamp,
    ) -> impl Future<Output = Result<BatchResult, StoreError>> + Send {
        self.append_with_checkpoint(pending, now, None)
    }
    /// Appends a batch durably and, in the same transaction, records a checkpoint signed
    /// after an earlier batch committed, so that a busy log pays one durable commit per batch
    /// rather than two.
    fn append_with_checkpoint(
        &self,
        pending: Vec<PendingEntry>,
        now: Timestamp,
        checkpoint: Option<&CheckpointRow>,
    ) -> impl Future<Output = Result<BatchResult, StoreError>> + Send;
    /// Records a signed checkpoint.
    fn insert_checkpoint(
        &self,
        size: u64,
        root: &Hash,
        note: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The largest stored checkpoint, as (size, note).
    fn latest_checkpoint(
        &self,
    ) -> impl Future<Output = Result<Option<(u64, String)>, StoreError>> + Send;
    /// The current log state (size, frontier, last time), for start-up checks.
    fn log_state(&self) -> impl Future<Output = Result<LogState, StoreError>> + Send;
    /// Hashes of perfect-subtree nodes, in the order asked.
    fn nodes(&self, ids: &[NodeId]) -> impl Future<Output = Result<Vec<Hash>, StoreError>> + Send;
    /// One entry.
    fn entry(
        &self,
        index: u64,
    ) -> impl Future<Output = Result<Option<EntryRecord>, StoreError>> + Send;
    /// The index of the entry with this leaf hash.
    fn index_by_leaf_hash(
        &self,
        hash: &Hash,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
    /// A range of entries.
    fn entries(
        &self,
        start: u64,
        count: u64,
    ) -> impl Future<Output = Result<Vec<EntryRecord>, StoreError>> + Send;
    /// Entries bound to a text digest (hex), oldest first.
    fn lookup_text(
        &self,
        sha256: &str,
    ) -> impl Future<Output = Result<Vec<EntryRecord>, StoreError>> + Send;
    /// Entries whose statement payload has this SHA-256 (hex), oldest first.
    fn lookup_statement(
        &self,
        sha256: &str,
    ) -> impl Future<Output = Result<Vec<EntryRecord>, StoreError>> + Send;
    /// Manifests that supersede the statement with this SHA-256 (hex), oldest first.
    fn lookup_superseding(
        &self,
        sha256: &str,
    ) -> impl Future<Output = Result<Vec<EntryRecord>, StoreError>> + Send;
    /// Revocations whose target — a retracted statement's SHA-256 or a revoked keyid (hex) —
    /// is this, oldest first.
    fn lookup_revocations(
        &self,
        target_sha256: &str,
    ) -> impl Future<Output = Result<Vec<EntryRecord>, StoreError>> + Send;
    /// Entries bound to an exact digest (hex), oldest first.
    fn lookup_exact(
        &self,
        sha256: &str,
    ) -> impl Future<Output = Result<Vec<EntryRecord>, StoreError>> + Send;
}

/// Either backend, chosen by the database URL at run time (`sqlite://…` or `postgres://…`).
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// The embedded SQLite file.
    Sqlite(sqlite::SqliteStore),
    /// A shared PostgreSQL database.
    Postgres(postgres::PostgresStore),
}

impl AnyStore {
    /// Opens the store `url` names, without migrating it.
    pub async fn open(url: &str) -> Result<AnyStore, StoreError> {
        if postgres::is_postgres_url(url) {
            Ok(AnyStore::Postgres(
                postgres::PostgresStore::open(url).await?,
            ))
        } else if url.starts_with("sqlite:") {
            Ok(AnyStore::Sqlite(sqlite::SqliteStore::open(url).await?))
        } else {
            Err(StoreError::UnsupportedUrl(redact_url(url)))
        }
    }

    /// The backend's name, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Postgres(_) => "postgres",
        }
    }
}

/// A database URL fit for logs and errors: any password is replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call.await,
            AnyStore::Postgres($s) => $call.await,
        }
    };
}

impl Store for AnyStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.migrate())
    }
    async fn log_meta(&self) -> Result<Option<LogMeta>, StoreError> {
        dispatch!(self, s => s.log_meta())
    }
    async fn init_log_meta(&self, meta: &LogMeta) -> Result<(), StoreError> {
        dispatch!(self, s => s.init_log_meta(meta))
    }
    async fn upsert_publisher(&self, domain: &str, name: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.upsert_publisher(domain, name))
    }
    async fn publishers(&self) -> Result<Vec<(String, String)>, StoreError> {
        dispatch!(self, s => s.publishers())
    }
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_token(token))
    }
    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        dispatch!(self, s => s.token(id))
    }
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        dispatch!(self, s => s.tokens())
    }
    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.revoke_token(id))
    }
    async fn append_with_checkpoint(
        &self,
        pending: Vec<PendingEntry>,
        now: Timestamp,
        checkpoint: Option<&CheckpointRow>,
    ) -> Result<BatchResult, StoreError> {
        dispatch!(self, s => s.append_with_checkpoint(pending, now, checkpoint))
    }
    async fn insert_checkpoint(
        &self,
        size: u64,
        root: &Hash,
        note: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_checkpoint(size, root, note))
    }
    async fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        dispatch!(self, s => s.latest_checkpoint())
    }
    async fn log_state(&self) -> Result<LogState, StoreError> {
        dispatch!(self, s => s.log_state())
    }
    async fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        dispatch!(self, s => s.nodes(ids))
    }
    async fn entry(&self, index: u64) -> Result<Option<EntryRecord>, StoreError> {
        dispatch!(self, s => s.entry(index))
    }
    async fn index_by_leaf_hash(&self, hash: &Hash) -> Result<Option<u64>, StoreError> {
        dispatch!(self, s => s.index_by_leaf_hash(hash))
    }
    async fn entries(&self, start: u64, count: u64) -> Result<Vec<EntryRecord>, StoreError> {
        dispatch!(self, s => s.entries(start, count))
    }
    async fn lookup_text(&self, sha256: &str) -> Result<Vec<EntryRecord>, StoreError> {
        dispatch!(self, s => s.lookup_text(sha256))
    }
    async fn lookup_exact(&self, sha256: &str) -> Result<Vec<EntryRecord>, StoreError> {
        dispatch!(self, s => s.lookup_exact(sha256))
    }
    async fn lookup_statement(&self, sha256: &str) -> Result<Vec<EntryRecord>, StoreError> {
        dispatch!(self, s => s.lookup_statement(sha256))
    }
    async fn lookup_superseding(&self, sha256: &str) -> Result<Vec<EntryRecord>, StoreError> {
        dispatch!(self, s => s.lookup_superseding(sha256))
    }
    async fn lookup_revocations(&self, target: &str) -> Result<Vec<EntryRecord>, StoreError> {
        dispatch!(self, s => s.lookup_revocations(target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(n: u8) -> PendingEntry {
        PendingEntry {
            kind: EntryKind::Manifest,
            envelope: Envelope {
                payload_type: "t".into(),
                payload: format!("p{n}"),
                signatures: vec![],
            },
            publisher: "news.example".into(),
            text_sha256: None,
            exact_sha256: None,
            statement_sha256: String::new(),
            idempotency_key: None,
            supersedes_sha256: None,
        }
    }

    fn keyed(n: u8, publisher: &str, key: &str) -> PendingEntry {
        PendingEntry {
            publisher: publisher.into(),
            idempotency_key: Some(key.into()),
            ..pending(n)
        }
    }

    #[test]
    fn batch_slots_answer_repeats_with_the_first_entry() {
        let then: Timestamp = "2026-11-28T17:00:00Z".parse().unwrap();
        let now: Timestamp = "2026-11-28T18:00:00Z".parse().unwrap();
        let logged = HashMap::from([(("news.example".to_string(), "old".to_string()), (7, then))]);
        let batch = vec![
            keyed(1, "news.example", "a"),
            keyed(2, "news.example", "old"),
            keyed(3, "news.example", "a"),
            keyed(4, "other.example", "a"),
            pending(5),
        ];
        let (slots, fresh) = BatchSlots::sort(batch, &logged);
        assert_eq!(fresh.len(), 3);
        let state = LogState {
            range: CompactRange::new(),
            last_time: None,
        };
        let result = slots.finish(plan_append(state, fresh, now)).unwrap();
        let got: Vec<(u64, bool)> = result
            .entries
            .iter()
            .map(|e| (e.index, e.existing))
            .collect();
        assert_eq!(
            got,
            vec![(0, false), (7, true), (0, true), (1, false), (2, false)]
        );
        assert_eq!(result.entries[1].integrated_time, then);
        assert_eq!(result.tree_size, 3);
        // Each new entry's own envelope comes back; repeats get none (theirs is the earlier
        // entry's, read from the log).
        let payloads: Vec<Option<&str>> = result
            .envelopes
            .iter()
            .map(|e| e.as_ref().map(|e| e.payload.as_str()))
            .collect();
        assert_eq!(
            payloads,
            vec![Some("p1"), None, None, Some("p4"), Some("p5")]
        );
    }

    #[test]
    fn redacted_urls_hide_only_the_password() {
        assert_eq!(
            redact_url("postgres://byline:s3cret@db.internal:5432/byline?sslmode=require"),
            "postgres://byline:***@db.internal:5432/byline?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://byline@db/byline"),
            "postgres://byline@db/byline"
        );
        assert_eq!(
            redact_url("sqlite://data/byline.db"),
            "sqlite://data/byline.db"
        );
    }

    #[test]
    fn time_never_decreases_and_indices_follow_the_tree() {
        let later: Timestamp = "2026-11-28T18:00:00Z".parse().unwrap();
        let earlier: Timestamp = "2026-11-28T17:00:00Z".parse().unwrap();
        let state = LogState {
            range: CompactRange::new(),
            last_time: Some(later),
        };
        let plan = plan_append(state, vec![pending(1), pending(2), pending(3)], earlier);
        assert_eq!(plan.tree_size, 3);
        assert!(plan.rows.iter().all(|r| r.integrated_time == later));
        assert_eq!(
            plan.rows.iter().map(|r| r.index).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        let hashes: Vec<Hash> = plan.rows.iter().map(|r| r.leaf_hash).collect();
        assert_eq!(
            plan.root,
            crate::core::merkle::root_from_leaf_hashes(&hashes)
        );
    }
}
