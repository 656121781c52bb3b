//! The embedded SQLite backend: one file under `data/`, WAL with `synchronous=FULL`, so that an
//! append is on disk when its transaction commits. Every connection is rusqlite's (one SQLite
//! layer; sqlx serves PostgreSQL only). Reads, migrations and token and publisher writes run
//! on a small pool of threads, each with its connection; the log's own writes (appends,
//! checkpoints) run on the append thread of `sqlite_append`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::core::manifest::Timestamp;
use crate::core::merkle::{CompactRange, Hash, NodeId};
use crate::storage::sqlite_append::{insert_into_index, AppendThread};
use crate::storage::{
    BatchResult, CheckpointRow, EntryKind, EntryRecord, LogMeta, LogState, PendingEntry, Store,
    StoreError, TokenRecord,
};
use crate::worker_pool::WorkerPool;

pub(super) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS log_meta (id INTEGER PRIMARY KEY CHECK (id = 1), origin TEXT NOT NULL, verifier_key TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS publishers (domain TEXT PRIMARY KEY, name TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, publisher TEXT NOT NULL, secret_sha256 BLOB NOT NULL, admin INTEGER NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER, revoked INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL, leaf_hash BLOB NOT NULL, integrated_time INTEGER NOT NULL, kind TEXT NOT NULL, publisher TEXT NOT NULL, text_sha256 TEXT, exact_sha256 TEXT, statement_sha256 TEXT NOT NULL, idempotency_key TEXT, supersedes_sha256 TEXT)",
    // Every digest an entry is looked up by (text, exact, statement, leaf hash), as the first
    // 8 bytes of the digest read as a signed big-endian integer: one small B-tree instead of
    // four indexes of 64-character strings. A match is confirmed against the full digest in
    // `entries`, so a shared prefix never returns a wrong entry. Since the fifteenth session
    // the keys end in the level runs below instead; this holds the keys of older logs (and
    // of their upgrades), and lookups still read it.
    "CREATE TABLE IF NOT EXISTS entry_keys (key INTEGER NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (key, idx)) WITHOUT ROWID",
    // The newest entries' keys, not yet in `recent_key_runs` or the level runs: one row per
    // append and key range (the key's top four bits, `slice`), holding that append's keys of
    // the range as one blob of (key, index) pairs (`encode_key_run`). An append writes at most
    // sixteen small rows instead of four rows per entry; a lookup reads the runs of its key's
    // range; a move deletes one range's runs and merges their keys into `recent_key_runs`,
    // once `PENDING_KEYS_LIMIT` keys are pending (see `sqlite_append`). A small append writes
    // its keys as one row of `UNSORTED_SLICE` instead (every lookup reads those too), and
    // they are cut into their ranges with a later append's (`UNSORTED_KEYS_LIMIT`).
    "CREATE TABLE IF NOT EXISTS pending_key_runs (slice INTEGER NOT NULL, first_idx INTEGER NOT NULL, keys BLOB NOT NULL, PRIMARY KEY (slice, first_idx)) WITHOUT ROWID",
    // Keys on their way from `pending_key_runs` to the level runs: one row per key range (the
    // key's top six bits, `slice`), its keys one sorted blob of (key, index) pairs. A move
    // from the pending runs merges into four of these blobs; once they hold
    // `RECENT_KEYS_LIMIT` keys, a move takes one whole row into the level runs (see
    // `sqlite_append`). Until the seventh session this tier was a B-tree, `recent_keys`,
    // and each key cost an insert and a delete in it on top of its insert in `entry_keys`.
    "CREATE TABLE IF NOT EXISTS recent_key_runs (slice INTEGER PRIMARY KEY, keys BLOB NOT NULL)",
    // Keys past the recent tier, since the fifteenth session: per recent key range (`slice`),
    // a few sorted runs on each `level`, never changed once written. A moved recent run
    // becomes a run of level 1; when a range would have `LEVEL_FANOUT` runs on one level,
    // they are merged into one run of the next instead (see `sqlite_append`). A key is written
    // once per level, so the bytes written per key grow only with the number of levels (the
    // base-2 logarithm of a range's moves), where a move into the `entry_keys` B-tree
    // rewrote about as many pages as the B-tree had in the move's key range, a number that
    // grew with the log itself. A merge of a range's largest runs, once every so many moves,
    // rewrites the whole range in one append (about 1.6 MB at 1.6 million entries), and that
    // grows with the log; empty placeholder runs (`keys` 0) laid down at a range's first move
    // make the 64 ranges take those merges in turn rather than together. `level_runs` lists
    // the runs and how many pairs each holds, so that a lookup visits only its range's few; `level_run_blocks` holds each run's pairs in key order, cut into blocks of
    // `LEVEL_BLOCK_PAIRS` (each a blob as in `encode_key_run`, small enough to sit in its
    // B-tree page), keyed by each block's first pair, so that a lookup reads in each run only
    // the blocks that can hold its key (one or two, unless the key has more pairs than a
    // block). Logs written before keep the keys they moved into `entry_keys`, which lookups
    // still read.
    "CREATE TABLE IF NOT EXISTS level_runs (slice INTEGER NOT NULL, level INTEGER NOT NULL, run INTEGER NOT NULL, keys INTEGER NOT NULL, PRIMARY KEY (slice, level, run)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS level_run_blocks (slice INTEGER NOT NULL, level INTEGER NOT NULL, run INTEGER NOT NULL, first_key INTEGER NOT NULL, first_idx INTEGER NOT NULL, keys BLOB NOT NULL, PRIMARY KEY (slice, level, run, first_key, first_idx)) WITHOUT ROWID",
    "CREATE UNIQUE INDEX IF NOT EXISTS entries_idempotency ON entries(publisher, idempotency_key) WHERE idempotency_key IS NOT NULL",
    // The hashes of the perfect subtrees above the leaves, before the seventh session (and
    // still read for the nodes those logs wrote).
    "CREATE TABLE IF NOT EXISTS tree_nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID",
    // The hashes of the perfect subtrees above the leaves, keyed by the last leaf a subtree
    // covers (`end_idx`, `NodeId::last_leaf`) and its height. Every node a batch completes ends
    // inside the batch, so its nodes are one run of the key, appended at the B-tree's right
    // edge. Keyed by level first (`tree_nodes`), a batch dirtied the right-edge page of every
    // level it completed: about 1 KB of WAL per entry.
    "CREATE TABLE IF NOT EXISTS tree_nodes_by_end (end_idx INTEGER NOT NULL, level INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (end_idx, level)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL)",
];

/// The layout of the file this build writes, kept in the file's `PRAGMA user_version` (0 in a
/// file no build has marked). Where the digest keys are is part of it: a build that knows
/// fewer key tables than the file holds would answer "not logged" for entries it cannot see,
/// so a file marked newer than this is refused ([`StoreError::SchemaTooNew`]) rather than read
/// or written. 1 is the layout with the level runs (`level_runs`, `level_run_blocks`). Builds
/// from before the mark do not look at it, so they are not stopped by it.
pub const LAYOUT_VERSION: i64 = 1;

/// The layout mark of the file behind `conn` (0 before marks were kept), or
/// [`StoreError::SchemaTooNew`] when a newer build marked it. A refused file is not written
/// by `conn` either: SQLite copies a file's WAL into it when the last connection to it closes,
/// and a newer build may have left frames there, so `conn` is told not to.
fn readable_layout_version(conn: &rusqlite::Connection) -> Result<i64, StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > LAYOUT_VERSION {
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        return Err(StoreError::SchemaTooNew {
            found,
            supported: LAYOUT_VERSION,
        });
    }
    Ok(found)
}

/// How long a connection waits for another one's write lock before it gives up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings of every connection to the file, the pool's and the append thread's alike.
const CONNECTION_PRAGMAS: &[(&str, &str)] = &[
    // An append is on disk when its transaction commits.
    ("synchronous", "FULL"),
    ("foreign_keys", "ON"),
    // A statement's journal stays in memory; on disk (the default) every batch wrote and read
    // a temporary file.
    ("temp_store", "MEMORY"),
    ("cache_size", "-8192"),
    // Checkpoint the WAL every 10,000 pages (about 80 MB of 8 KB pages) rather than SQLite's
    // 1,000: the index pages a busy log rewrites are copied into the database once per
    // checkpoint, so fewer checkpoints copy fewer duplicates (a fifth of the server's CPU went
    // to checkpointing at the default). The append module's background checkpoints copy
    // most of the frames; under a steady load this is still what starts the WAL over (see
    // `run_checkpoints`).
    ("wal_autocheckpoint", "10000"),
];

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl From<rusqlite::types::FromSqlError> for StoreError {
    fn from(e: rusqlite::types::FromSqlError) -> Self {
        StoreError::Corrupt(format!("a stored value has the wrong type: {e}"))
    }
}

/// At most this many pool threads, each with its connection, read (and write tokens,
/// publishers, the log's identity) at once; more callers' work waits in the pool's queue.
const POOL_CONNECTIONS: usize = 8;

/// The SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Readers, migrations, tokens, publishers and the log identity.
    pool: Arc<ConnectionPool>,
    /// The log's appends and checkpoints, on a thread of their own with its own connection
    /// (see `sqlite_append`), which keeps the pages every append touches cached.
    appender: Arc<AppendThread>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH`), creating the parent
    /// directory of the file.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::UnsupportedUrl(url.to_string()))?;
        let path = path.split('?').next().unwrap_or(path);
        // Every connection of an in-memory database is a database of its own, so the appends,
        // the readers and the token writes would each see a different log.
        if path.is_empty() || path.starts_with(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        }
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let path = path.to_string();
        let pool = Arc::new(ConnectionPool::new(path.clone(), POOL_CONNECTIONS));
        // The first connection creates the file and switches it to WAL; open it before the
        // append thread's, so that they do not race for that moment of exclusive access. A
        // file of a newer layout is refused before the append and checkpoint threads start,
        // so that this build neither reads it nor copies its WAL into it.
        pool.run(|conn| readable_layout_version(conn).map(drop))
            .await?;
        let appender = tokio::task::spawn_blocking(move || AppendThread::start(&path))
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the append thread: {e}"))
            })??;
        Ok(SqliteStore {
            pool,
            appender: Arc::new(appender),
        })
    }
}

/// Opens a connection to the database file at `path` (creating it) with the settings every
/// byline connection to it uses ([`CONNECTION_PRAGMAS`], 8 KB pages for a new file), in WAL
/// mode. Public so that benchmarks and tools that look under the store measure what the store
/// does.
pub fn open_connection(path: &str) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open(path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {path}: {e}")))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // 8 KB pages for a new file (an existing one keeps its size): an entry's row is about
    // 2 KB, so a 4 KB page holds one row and wastes a third of every page the log writes.
    conn.execute_batch("PRAGMA page_size = 8192")?;
    // Switching a new file to WAL needs a moment of exclusive access; when another process or
    // handle opens the same file at that instant, SQLite answers "database is locked" before
    // the busy timeout applies. Retry for a while rather than fail the start.
    let mut attempt = 0u32;
    let mode: String = loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Ok(mode) => break mode,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if attempt < 50
                    && matches!(
                        e.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) =>
            {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(20 * u64::from(attempt.min(10))));
            }
            Err(e) => return Err(e.into()),
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "{path}: SQLite could not switch to WAL (journal mode is {mode})"
        )));
    }
    for (name, value) in CONNECTION_PRAGMAS {
        conn.execute_batch(&format!("PRAGMA {name} = {value}"))?;
    }
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Up to [`POOL_CONNECTIONS`] threads (`byline-sqlite-r`), each with a connection of its own,
/// started as calls need them and taking the calls' work from one queue (a [`WorkerPool`]).
///
/// A semaphore of eight permits in front of tokio's blocking threads had started 51–64 of
/// those threads under a `Lookup` load of 64 calls in flight on one core (twenty-first
/// session, docs/BENCHMARKS.md): a permit came back when the work ended, before its thread was
/// idle again, so tokio started another for the next call. The pool's own threads keep the
/// bound, and the same load cost a third less CPU per call on them. Dropping the pool waits
/// for its threads, so every connection is closed when the store is gone (a test or a tool
/// may open the file next).
#[derive(Debug)]
struct ConnectionPool {
    threads: WorkerPool<ThreadConnection>,
}

/// A pool thread's connection, opened on the thread's first call.
struct ThreadConnection {
    path: String,
    conn: Option<rusqlite::Connection>,
}

impl ThreadConnection {
    /// The thread's connection, opened now if it has none.
    fn get(&mut self) -> Result<&mut rusqlite::Connection, StoreError> {
        match &mut self.conn {
            Some(conn) => Ok(conn),
            empty => Ok(empty.insert(open_connection(&self.path)?)),
        }
    }
}

impl ConnectionPool {
    /// A pool of up to `max_threads` threads (at least one) for the database file at `path`,
    /// with no thread started yet.
    fn new(path: String, max_threads: usize) -> ConnectionPool {
        ConnectionPool {
            threads: WorkerPool::new("byline-sqlite-r", max_threads, move || ThreadConnection {
                path: path.clone(),
                conn: None,
            }),
        }
    }

    /// Runs `work` with a pool thread's connection, so a slow query or a wait for the write
    /// lock never holds up the async threads. The work of a call dropped while it waits in
    /// the queue stays there until a thread takes it, and is then skipped. A panic is the
    /// call's error, and its thread's next call opens a new connection, since the old one may
    /// be mid-transaction.
    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.threads
            .run(move |thread: &mut ThreadConnection| {
                let conn = thread.get()?;
                let result = work(conn);
                // A connection left inside a transaction by a failed call is not reused.
                if !conn.is_autocommit() {
                    thread.conn = None;
                }
                result
            })
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Unavailable(format!(
                    "an SQLite call of the store's readers failed: {e}"
                )))
            })
    }
}

impl SqliteStore {
    /// Entries whose `column` holds `digest` (64 hex digits), oldest first, at most 100: the
    /// one query behind every digest lookup. The key tables find the candidates by the
    /// digest's first 8 bytes; the full digest is then compared.
    async fn lookup_digest(
        &self,
        column: DigestColumn,
        digest: &str,
    ) -> Result<Vec<EntryRecord>, StoreError> {
        let Some(key) = digest_key_hex(digest) else {
            // Not a digest, so no stored entry can have it.
            return Ok(Vec::new());
        };
        let digest = digest.to_string();
        self.pool
            .run(move |conn| {
                in_one_snapshot(conn, |conn| {
                    let unindexed = unindexed_candidates(conn, key)?;
                    query_entries(conn, column.lookup_sql(), params![key, unindexed, digest])
                })
            })
            .await
    }

    /// The entries `sql` (an `entries_where!` query with one `?`) selects for `value`.
    async fn lookup_where(
        &self,
        sql: &'static str,
        value: &str,
    ) -> Result<Vec<EntryRecord>, StoreError> {
        let value = value.to_string();
        self.pool
            .run(move |conn| query_entries(conn, sql, params![value]))
            .await
    }
}

/// Runs the reads of `read` in one read transaction, so that they all see the log as one
/// commit left it.
///
/// A key lookup reads several tables one statement after another, and outside a transaction
/// each statement sees the newest commit: an append between two of them could move a key from
/// a table not yet read into one already read (unsorted pending runs are cut into the ranged
/// ones, read before them), or merge two level runs between the reading of the run list and
/// the reading of the runs, and the lookup would miss those keys.
fn in_one_snapshot<T>(
    conn: &mut rusqlite::Connection,
    read: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let result = read(&tx)?;
    tx.commit()?;
    Ok(result)
}

/// The entries `sql` (selecting `idx, leaf, integrated_time, kind, publisher`) returns.
fn query_entries(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<EntryRecord>, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut entries = Vec::new();
    while let Some(row) = rows.next()? {
        entries.push(entry_from_row(row)?);
    }
    Ok(entries)
}

/// The entries whose keys include the key bound first, from the index, and the entries not
/// yet in the index whose indexes are bound next as a JSON array (found by
/// [`unindexed_candidates`]). A macro so that the queries below are constant strings, built at
/// compile time rather than on every lookup.
macro_rules! candidates {
    () => {
        "SELECT idx FROM entry_keys WHERE key = ? UNION ALL SELECT value FROM json_each(?)"
    };
}

/// Entries matching `$condition`, oldest first, at most 100, as one constant string.
macro_rules! entries_where {
    ($($condition:expr),+) => {
        concat!(
            "SELECT idx, leaf, integrated_time, kind, publisher FROM entries WHERE ",
            $($condition),+,
            " ORDER BY idx LIMIT 100"
        )
    };
}

/// Entries with a digest in `$column` (the candidates' key, the unindexed candidates, then
/// the digest).
macro_rules! lookup_by_digest {
    ($column:literal) => {
        entries_where!("idx IN (", candidates!(), ") AND ", $column, " = ?")
    };
}

/// The digest columns `entry_keys` indexes (the leaf hash is a 32-byte BLOB, looked up by
/// [`SqliteStore::index_by_leaf_hash`]).
#[derive(Clone, Copy, Debug)]
enum DigestColumn {
    Text,
    Exact,
    Statement,
}

impl DigestColumn {
    fn lookup_sql(self) -> &'static str {
        match self {
            DigestColumn::Text => lookup_by_digest!("text_sha256"),
            DigestColumn::Exact => lookup_by_digest!("exact_sha256"),
            DigestColumn::Statement => lookup_by_digest!("statement_sha256"),
        }
    }
}

/// The `entry_keys` key of a digest: its first 8 bytes as a signed big-endian integer.
fn digest_key(digest: &Hash) -> i64 {
    let [a, b, c, d, e, f, g, h, ..] = *digest;
    i64::from_be_bytes([a, b, c, d, e, f, g, h])
}

/// The `entry_keys` key of a digest in hex, or `None` if it is not 64 hex digits.
fn digest_key_hex(hex_digest: &str) -> Option<i64> {
    crate::core::digest::decode_hex_32(hex_digest).map(|bytes| digest_key(&bytes))
}

/// The key range (0..16) a key belongs to: its top four bits. Pending keys are stored, looked
/// up and moved on one range at a time.
pub(super) fn key_slice(key: i64) -> i64 {
    top_bits(key, PENDING_SLICE_BITS)
}

/// The key range (0..64) of `recent_key_runs` a key belongs to: its top six bits.
pub(super) fn recent_slice(key: i64) -> i64 {
    top_bits(key, RECENT_SLICE_BITS)
}

/// Into how many key ranges the pending keys are cut (by the key's top four bits, as they are
/// stored). Whenever `PENDING_KEYS_LIMIT` keys are pending, an append moves the next range in
/// rotation, which by then has gathered about a sixteenth of them: the moves are spread evenly
/// over the appends. Moving all sixteen ranges in sixteen consecutive appends made a burst of
/// slow commits every few thousand entries, and set the p99 at half load; moving everything in
/// one append held that batch for 20–30 ms.
pub(super) const PENDING_SLICE_BITS: u32 = 4;

/// The `slice` of the pending runs that small appends write: all of one append's keys in one
/// row, in key order but not cut into ranges. Cut into sixteen, an append of a few entries
/// wrote a row into most ranges, each the right edge of its own page: at half load about
/// thirteen of the twenty pages a commit wrote. A lookup reads these runs as well as its own
/// range's; they are cut into ranges once they hold `UNSORTED_KEYS_LIMIT` keys (see
/// `sqlite_append`). It is one past the last range, so an older binary's moves never take it.
pub(super) const UNSORTED_SLICE: i64 = 1 << PENDING_SLICE_BITS;

/// Into how many key ranges `recent_key_runs` and the level runs are cut (by the key's top six
/// bits: 64); a pending range covers exactly four of them. Finer ranges make each move, and
/// each merge of level runs, smaller, so that one append is held less long: cut in sixteen, a
/// move (then into `entry_keys`) took 7,000–10,000 keys and held its batch for about 9 ms,
/// several times a second at half load, which set the p99 there. A range's largest merge
/// still grows with the log (see `level_runs`), but comes once in many moves.
pub(super) const RECENT_SLICE_BITS: u32 = 6;

/// The top `bits` bits (1..64) of a key as it is stored, read unsigned: the number of its range
/// when keys are cut into `2^bits` ranges.
fn top_bits(key: i64, bits: u32) -> i64 {
    ((key as u64) >> (64 - bits)) as i64
}

/// The bytes of one (key, index) pair in a key run (of `pending_key_runs` or `recent_key_runs`).
pub(super) const KEY_PAIR_BYTES: usize = 16;

/// A key run (a blob of `pending_key_runs` or `recent_key_runs`): each (key, index) pair as
/// two big-endian 8-byte integers.
pub(super) fn encode_key_run(pairs: &[(i64, i64)]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(pairs.len() * KEY_PAIR_BYTES);
    for (key, idx) in pairs {
        blob.extend_from_slice(&key.to_be_bytes());
        blob.extend_from_slice(&idx.to_be_bytes());
    }
    blob
}

/// The (key, index) pairs of a key run.
pub(super) fn decode_key_run(
    blob: &[u8],
) -> Result<impl Iterator<Item = (i64, i64)> + '_, StoreError> {
    if blob.len() % KEY_PAIR_BYTES != 0 {
        return Err(StoreError::Corrupt(format!(
            "a key run is {} bytes, not a multiple of {KEY_PAIR_BYTES}",
            blob.len()
        )));
    }
    Ok(blob.chunks_exact(KEY_PAIR_BYTES).map(|pair| {
        let (key, idx) = pair.split_at(8);
        let word = |b: &[u8]| i64::from_be_bytes(b.try_into().unwrap_or_default());
        (word(key), word(idx))
    }))
}

/// How many keys the runs of `table` (`pending_key_runs` or `recent_key_runs`: a name from
/// this module, never input) hold, from their blobs' lengths; with `slice`, only that slice's.
pub(super) fn keys_in_runs(
    conn: &rusqlite::Connection,
    table: &str,
    slice: Option<i64>,
) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        &format!(
            "SELECT COALESCE(SUM(length(keys)), 0) / {KEY_PAIR_BYTES} FROM {table} \
             WHERE ?1 IS NULL OR slice = ?1"
        ),
        [slice],
        |r| r.get(0),
    )?)
}

/// The indexes of the entries with `key` that are not in `entry_keys`, as the JSON array
/// [`candidates!`] binds: read from the pending runs of the key's range (a sixteenth of what
/// is pending), the unsorted pending runs (fewer than `UNSORTED_KEYS_LIMIT` keys), the one
/// recent run of its range and its range's level runs.
fn unindexed_candidates(conn: &rusqlite::Connection, key: i64) -> Result<String, StoreError> {
    let mut found = Vec::new();
    for (sql, slice) in [
        (
            "SELECT keys FROM pending_key_runs WHERE slice = ?1",
            key_slice(key),
        ),
        (
            "SELECT keys FROM pending_key_runs WHERE slice = ?1",
            UNSORTED_SLICE,
        ),
        (
            "SELECT keys FROM recent_key_runs WHERE slice = ?1",
            recent_slice(key),
        ),
    ] {
        let mut statement = conn.prepare_cached(sql)?;
        let mut rows = statement.query([slice])?;
        while let Some(row) = rows.next()? {
            let blob = row.get_ref(0)?.as_blob()?;
            found.extend(
                decode_key_run(blob)?
                    .filter(|&(k, _)| k == key)
                    .map(|(_, idx)| idx.to_string()),
            );
        }
    }
    found.extend(
        level_run_matches(conn, key)?
            .iter()
            .map(|idx| idx.to_string()),
    );
    Ok(format!("[{}]", found.join(",")))
}

/// The indexes paired with `key` in the level runs of its range. Each run is visited by one
/// descending scan from the key: its blocks that start at the key, and the last block that
/// starts before it (which may hold the key's first pairs); a run's blocks are in key order,
/// so no other block can hold the key.
pub(super) fn level_run_matches(
    conn: &rusqlite::Connection,
    key: i64,
) -> Result<Vec<i64>, StoreError> {
    let slice = recent_slice(key);
    let runs: Vec<(i64, i64)> = conn
        .prepare_cached("SELECT level, run FROM level_runs WHERE slice = ?1 AND keys > 0")?
        .query_map([slice], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut blocks = conn.prepare_cached(
        "SELECT first_key, keys FROM level_run_blocks \
         WHERE slice = ?1 AND level = ?2 AND run = ?3 AND first_key <= ?4 \
         ORDER BY first_key DESC, first_idx DESC",
    )?;
    let mut found = Vec::new();
    for (level, run) in runs {
        let mut rows = blocks.query(params![slice, level, run, key])?;
        while let Some(row) = rows.next()? {
            let first_key: i64 = row.get(0)?;
            found.extend(
                decode_key_run(row.get_ref(1)?.as_blob()?)?
                    .filter(|&(k, _)| k == key)
                    .map(|(_, idx)| idx),
            );
            if first_key < key {
                break;
            }
        }
    }
    Ok(found)
}

/// The `entry_keys` rows of entry `idx`, from its digests (hex, as stored) and leaf hash.
pub(super) fn entry_keys_of(
    idx: i64,
    hex_digests: [Option<&str>; 3],
    leaf_hash: &Hash,
) -> impl Iterator<Item = (i64, i64)> {
    let [text, exact, statement] = hex_digests.map(|d| d.and_then(digest_key_hex));
    [text, exact, statement, Some(digest_key(leaf_hash))]
        .into_iter()
        .flatten()
        .map(move |key| (key, idx))
}

/// The indexes of digest columns that `entry_keys` replaced, in databases made before it.
const REPLACED_INDEXES: &[&str] = &[
    "entries_text",
    "entries_exact",
    "entries_leaf_hash",
    "entries_statement",
];

/// The `CREATE` statement of the table or index `name` (`kind` is `table` or `index`), if the
/// database has it: what the upgrades below look at to tell an older layout.
fn schema_sql(
    conn: &rusqlite::Connection,
    kind: &str,
    name: &str,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = ?1 AND name = ?2",
            [kind, name],
            |r| r.get(0),
        )
        .optional()?)
}

/// Fills `entry_keys` from the entries a database made before it holds, and drops the indexes
/// it replaces; one transaction, so an interrupted upgrade is simply done again.
fn upgrade_to_entry_keys(conn: &mut rusqlite::Connection) -> Result<(), StoreError> {
    let mut old = false;
    for name in REPLACED_INDEXES {
        old |= schema_sql(conn, "index", name)?.is_some();
    }
    if !old {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut after = -1i64;
    loop {
        // Ten thousand entries at a time, so memory stays flat in the size of the log.
        let mut keys = Vec::with_capacity(40_000);
        let mut last = None;
        {
            let mut rows = tx.prepare_cached(
                "SELECT idx, text_sha256, exact_sha256, statement_sha256, leaf_hash FROM entries \
                 WHERE idx > ?1 ORDER BY idx LIMIT 10000",
            )?;
            let mut rows = rows.query([after])?;
            while let Some(row) = rows.next()? {
                let idx: i64 = row.get("idx")?;
                let text: Option<String> = row.get("text_sha256")?;
                let exact: Option<String> = row.get("exact_sha256")?;
                let statement: String = row.get("statement_sha256")?;
                let leaf_hash = hash_of(row.get("leaf_hash")?)?;
                keys.extend(entry_keys_of(
                    idx,
                    [text.as_deref(), exact.as_deref(), Some(&statement)],
                    &leaf_hash,
                ));
                last = Some(idx);
            }
        }
        let Some(last) = last else { break };
        after = last;
        insert_into_index(&tx, keys)?;
    }
    for index in REPLACED_INDEXES {
        tx.execute_batch(&format!("DROP INDEX IF EXISTS {index}"))?;
    }
    tx.commit()?;
    tracing::info!("SQLite digest lookups now use the entry_keys index");
    Ok(())
}

/// Moves the keys of the key tables of older layouts into `entry_keys` and drops the tables:
/// `pending_keys` (one row per key, before `pending_key_runs`) and `recent_keys` (a B-tree,
/// before `recent_key_runs`). Each in one transaction, so an interrupted upgrade is simply
/// done again. Either holds at most a few tens of thousands of keys.
fn upgrade_key_tables(conn: &mut rusqlite::Connection) -> Result<(), StoreError> {
    for table in ["pending_keys", "recent_keys"] {
        if schema_sql(conn, "table", table)?.is_none() {
            continue;
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(&format!(
            "INSERT OR IGNORE INTO entry_keys (key, idx) SELECT key, idx FROM {table} ORDER BY key, idx; \
             DROP TABLE {table};"
        ))?;
        tx.commit()?;
        tracing::info!("SQLite: the keys of {table} moved into entry_keys");
    }
    Ok(())
}

pub(super) fn ts(secs: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix(secs).ok_or_else(|| StoreError::Corrupt(format!("bad time {secs}")))
}

pub(super) fn hash_of(bytes: Vec<u8>) -> Result<Hash, StoreError> {
    Hash::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Corrupt("a stored hash is not 32 bytes".into()))
}

fn entry_from_row(row: &rusqlite::Row<'_>) -> Result<EntryRecord, StoreError> {
    Ok(EntryRecord {
        index: row.get::<_, i64>("idx")? as u64,
        leaf: row.get("leaf")?,
        integrated_time: ts(row.get("integrated_time")?)?,
        kind: EntryKind::parse(&row.get::<_, String>("kind")?),
        publisher: row.get("publisher")?,
    })
}

fn token_from_row(row: &rusqlite::Row<'_>) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: row.get("id")?,
        publisher: row.get("publisher")?,
        secret_sha256: hash_of(row.get("secret_sha256")?)?,
        admin: row.get::<_, i64>("admin")? != 0,
        created_at: ts(row.get("created_at")?)?,
        expires_at: row
            .get::<_, Option<i64>>("expires_at")?
            .map(ts)
            .transpose()?,
        revoked: row.get::<_, i64>("revoked")? != 0,
    })
}

/// Reads the nodes `ids` from one node table in one statement, `select` naming the table
/// and the two key columns matched against `key_of` each id (one statement shape per number
/// of nodes, a few dozen at most, kept in the cache); each row's `(level, second key column)`
/// is mapped back to the node's index by `index_of`, and its hash put in `found`.
fn read_node_rows(
    conn: &rusqlite::Connection,
    select: &str,
    ids: &[&NodeId],
    key_of: impl Fn(&NodeId) -> [i64; 2],
    index_of: impl Fn(i64, i64) -> i64,
    found: &mut std::collections::HashMap<(i64, i64), Hash>,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let pairs = vec!["(?, ?)"; ids.len()].join(", ");
    let mut statement = conn.prepare_cached(&format!("{select} IN ({pairs})"))?;
    let bound = ids.iter().flat_map(|id| key_of(id));
    let mut rows = statement.query(rusqlite::params_from_iter(bound))?;
    while let Some(row) = rows.next()? {
        let level: i64 = row.get(0)?;
        let key: i64 = row.get(1)?;
        found.insert((level, index_of(level, key)), hash_of(row.get(2)?)?);
    }
    Ok(())
}

/// Reads perfect-subtree hashes (a proof needs O(log n) of them), in the order asked: one
/// statement for the nodes above the leaves, a primary-key read of `entries` per leaf, and
/// only for a log written by an earlier version, one statement for the nodes it keeps in
/// `tree_nodes`.
///
/// Appends write the nodes above the leaves to `tree_nodes_by_end` and no leaves at all (see
/// `sqlite_append`): a leaf's node is its entry's `leaf_hash`, already stored with the entry,
/// so leaves are always read there (the oldest logs' level-0 rows in `tree_nodes` hold the
/// same hashes).
pub(super) fn read_nodes(
    conn: &rusqlite::Connection,
    ids: &[NodeId],
) -> Result<Vec<Hash>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut found = std::collections::HashMap::with_capacity(ids.len());
    let upper: Vec<&NodeId> = ids.iter().filter(|id| id.level > 0).collect();
    read_node_rows(
        conn,
        "SELECT level, end_idx, hash FROM tree_nodes_by_end WHERE (end_idx, level)",
        &upper,
        |id| [id.last_leaf() as i64, i64::from(id.level)],
        // A level past a byte (a corrupt row) names no node asked for, so it is reported
        // missing below.
        |level, end| NodeId::ending_at(level as u8, end as u64).index as i64,
        &mut found,
    )?;
    let older: Vec<&NodeId> = upper
        .iter()
        .copied()
        .filter(|id| !found.contains_key(&(i64::from(id.level), id.index as i64)))
        .collect();
    read_node_rows(
        conn,
        "SELECT level, idx, hash FROM tree_nodes WHERE (level, idx)",
        &older,
        |id| [i64::from(id.level), id.index as i64],
        |_, index| index,
        &mut found,
    )?;
    // A proof has at most two leaves among its nodes: one primary-key read each.
    for id in ids.iter().filter(|id| id.level == 0) {
        let index = id.index as i64;
        let leaf_hash: Option<Vec<u8>> = conn
            .prepare_cached("SELECT leaf_hash FROM entries WHERE idx = ?1")?
            .query_row([index], |r| r.get(0))
            .optional()?;
        if let Some(hash) = leaf_hash {
            found.insert((0, index), hash_of(hash)?);
        }
    }
    ids.iter()
        .map(|id| {
            found
                .get(&(i64::from(id.level), id.index as i64))
                .copied()
                .ok_or_else(|| StoreError::Corrupt(format!("tree node {id:?} is missing")))
        })
        .collect()
}

/// The newest entry's index and time: the log's size and last time in one indexed read (time
/// never decreases with the index), never a scan of the log.
const NEWEST_ENTRY: &str = "SELECT idx, integrated_time FROM entries ORDER BY idx DESC LIMIT 1";

/// The log's state as stored: the newest entry ([`NEWEST_ENTRY`]), then the frontier's nodes.
pub(super) fn read_state(conn: &rusqlite::Connection) -> Result<LogState, StoreError> {
    let newest = conn
        .prepare_cached(NEWEST_ENTRY)?
        .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .optional()?;
    let (size, last_time) = match newest {
        Some((idx, time)) => (idx as u64 + 1, Some(ts(time)?)),
        None => (0, None),
    };
    let hashes = read_nodes(conn, &CompactRange::frontier_ids(size))?;
    Ok(LogState {
        range: CompactRange::from_parts(size, hashes)?,
        last_time,
    })
}

impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        self.pool
            .run(|conn| {
                // Checked again here: another build may have marked the file since `open`.
                let found = readable_layout_version(conn)?;
                for stmt in SCHEMA {
                    conn.execute_batch(stmt)?;
                }
                // Databases made before edit chains were indexed gain the column in place.
                let has_supersedes: i64 = conn.query_row(
                    "SELECT COUNT(*) FROM pragma_table_info('entries') WHERE name = 'supersedes_sha256'",
                    [],
                    |r| r.get(0),
                )?;
                if has_supersedes == 0 {
                    conn.execute_batch("ALTER TABLE entries ADD COLUMN supersedes_sha256 TEXT")?;
                }
                // Only the few entries that supersede another are indexed. The index used to
                // hold every entry (a NULL key each), one more B-tree insert on every append;
                // a lookup by digest (`supersedes_sha256 = ?`) can use the partial index.
                if schema_sql(conn, "index", "entries_supersedes")?
                    .is_some_and(|sql| !sql.contains("WHERE"))
                {
                    conn.execute_batch("DROP INDEX entries_supersedes")?;
                }
                conn.execute_batch(
                    "CREATE INDEX IF NOT EXISTS entries_supersedes ON entries(supersedes_sha256) \
                     WHERE supersedes_sha256 IS NOT NULL",
                )?;
                upgrade_to_entry_keys(conn)?;
                upgrade_key_tables(conn)?;
                // Recorded last: only a file whose upgrades all finished says so.
                if found < LAYOUT_VERSION {
                    conn.execute_batch(&format!("PRAGMA user_version = {LAYOUT_VERSION}"))?;
                }
                Ok(())
            })
            .await
    }

    async fn log_meta(&self) -> Result<Option<LogMeta>, StoreError> {
        self.pool
            .run(|conn| {
                Ok(conn
                    .query_row(
                        "SELECT origin, verifier_key FROM log_meta WHERE id = 1",
                        [],
                        |r| {
                            Ok(LogMeta {
                                origin: r.get(0)?,
                                verifier_key: r.get(1)?,
                            })
                        },
                    )
                    .optional()?)
            })
            .await
    }

    async fn init_log_meta(&self, meta: &LogMeta) -> Result<(), StoreError> {
        let meta = meta.clone();
        self.pool
            .run(move |conn| {
                conn.execute(
                    "INSERT INTO log_meta (id, origin, verifier_key) VALUES (1, ?1, ?2)",
                    params![meta.origin, meta.verifier_key],
                )?;
                Ok(())
            })
            .await
    }

    async fn upsert_publisher(&self, domain: &str, name: &str) -> Result<(), StoreError> {
        let (domain, name) = (domain.to_string(), name.to_string());
        self.pool
            .run(move |conn| {
                conn.execute(
                    "INSERT INTO publishers (domain, name) VALUES (?1, ?2) \
                     ON CONFLICT(domain) DO UPDATE SET name = excluded.name",
                    params![domain, name],
                )?;
                Ok(())
            })
            .await
    }

    async fn publishers(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.pool
            .run(|conn| {
                let mut statement =
                    conn.prepare_cached("SELECT domain, name FROM publishers ORDER BY domain")?;
                let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
    }

    async fn insert_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        let t = t.clone();
        self.pool
            .run(move |conn| {
                conn.execute(
                    "INSERT INTO tokens (id, publisher, secret_sha256, admin, created_at, \
                     expires_at, revoked) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        t.id,
                        t.publisher,
                        &t.secret_sha256[..],
                        i64::from(t.admin),
                        t.created_at.unix(),
                        t.expires_at.map(|e| e.unix()),
                        i64::from(t.revoked),
                    ],
                )?;
                Ok(())
            })
            .await
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let id = id.to_string();
        self.pool
            .run(move |conn| {
                let mut statement = conn.prepare_cached("SELECT * FROM tokens WHERE id = ?1")?;
                let mut rows = statement.query([id])?;
                rows.next()?.map(token_from_row).transpose()
            })
            .await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.pool
            .run(|conn| {
                let mut statement =
                    conn.prepare_cached("SELECT * FROM tokens ORDER BY created_at, id")?;
                let mut rows = statement.query([])?;
                let mut tokens = Vec::new();
                while let Some(row) = rows.next()? {
                    tokens.push(token_from_row(row)?);
                }
                Ok(tokens)
            })
            .await
    }

    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.pool
            .run(move |conn| {
                Ok(conn.execute("UPDATE tokens SET revoked = 1 WHERE id = ?1", [id])? > 0)
            })
            .await
    }

    async fn append_with_checkpoint(
        &self,
        pending: Vec<PendingEntry>,
        now: Timestamp,
        checkpoint: Option<&CheckpointRow>,
    ) -> Result<BatchResult, StoreError> {
        self.appender
            .append(pending, now, checkpoint.cloned())
            .await
    }

    async fn insert_checkpoint(
        &self,
        size: u64,
        root: &Hash,
        note: &str,
    ) -> Result<(), StoreError> {
        // An empty batch carrying the checkpoint: the log's writes stay on the append thread,
        // and the checkpoint INSERT is written once.
        let checkpoint = CheckpointRow {
            size,
            root: *root,
            note: note.to_string(),
        };
        self.appender
            .append(Vec::new(), Timestamp::now(), Some(checkpoint))
            .await
            .map(|_| ())
    }

    async fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        self.pool
            .run(|conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1",
                    )?
                    .query_row([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
                    .optional()?)
            })
            .await
    }

    async fn log_state(&self) -> Result<LogState, StoreError> {
        self.pool.run(|conn| read_state(conn)).await
    }

    async fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        let ids = ids.to_vec();
        self.pool.run(move |conn| read_nodes(conn, &ids)).await
    }

    async fn entry(&self, index: u64) -> Result<Option<EntryRecord>, StoreError> {
        let Ok(index) = i64::try_from(index) else {
            return Ok(None);
        };
        self.pool
            .run(move |conn| {
                let mut entries = query_entries(
                    conn,
                    "SELECT idx, leaf, integrated_time, kind, publisher FROM entries WHERE idx = ?1",
                    [index],
                )?;
                Ok(entries.pop())
            })
            .await
    }

    async fn index_by_leaf_hash(&self, hash: &Hash) -> Result<Option<u64>, StoreError> {
        let key = digest_key(hash);
        let hash = *hash;
        self.pool
            .run(move |conn| {
                in_one_snapshot(conn, |conn| {
                    let unindexed = unindexed_candidates(conn, key)?;
                    let idx: Option<i64> = conn
                        .prepare_cached(concat!(
                            "SELECT idx FROM entries WHERE idx IN (",
                            candidates!(),
                            ") AND leaf_hash = ? ORDER BY idx LIMIT 1"
                        ))?
                        .query_row(params![key, unindexed, &hash[..]], |r| r.get(0))
                        .optional()?;
                    Ok(idx.map(|i| i as u64))
                })
            })
            .await
    }

    async fn entries(&self, start: u64, count: u64) -> Result<Vec<EntryRecord>, StoreError> {
        // An index beyond i64 cannot exist in the table; do not let it wrap to a negative one.
        let Ok(start) = i64::try_from(start) else {
            return Ok(Vec::new());
        };
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        self.pool
            .run(move |conn| {
                query_entries(
                    conn,
                    "SELECT idx, leaf, integrated_time, kind, publisher FROM entries \
                     WHERE idx >= ?1 ORDER BY idx LIMIT ?2",
                    [start, count],
                )
            })
            .await
    }

    async fn lookup_text(&self, sha256: &str) -> Result<Vec<EntryRecord>, StoreError> {
        self.lookup_digest(DigestColumn::Text, sha256).await
    }

    async fn lookup_statement(&self, sha256: &str) -> Result<Vec<EntryRecord>, StoreError> {
        self.lookup_digest(DigestColumn::Statement, sha256).await
    }

    async fn lookup_superseding(&self, sha256: &str) -> Result<Vec<EntryRecord>, StoreError> {
        self.lookup_where(
            entries_where!("supersedes_sha256 = ? AND kind = 'manifest'"),
            sha256,
        )
        .await
    }

    async fn lookup_revocations(&self, target: &str) -> Result<Vec<EntryRecord>, StoreError> {
        self.lookup_where(
            entries_where!("supersedes_sha256 = ? AND kind = 'revocation'"),
            target,
        )
        .await
    }

    async fn lookup_exact(&self, sha256: &str) -> Result<Vec<EntryRecord>, StoreError> {
        self.lookup_digest(DigestColumn::Exact, sha256).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    async fn store_in(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&format!("sqlite://{}", dir.path().join("log.db").display()))
            .await
            .expect("open the store")
    }

    /// Under many calls at once the reads stay on a few threads of the pool's own. Behind a
    /// semaphore on tokio's blocking threads, 64 `Lookup` calls in flight had started 51–64.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_calls_at_once_run_on_at_most_the_pool_s_own_threads() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir).await;
        let calls: Vec<_> = (0..256)
            .map(|_| {
                let pool = store.pool.clone();
                tokio::spawn(async move {
                    pool.run(|conn| {
                        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                            r.get::<_, i64>(0)
                        })?;
                        // Long enough that the calls overlap.
                        std::thread::sleep(Duration::from_micros(300));
                        let thread = std::thread::current();
                        Ok((thread.id(), thread.name().map(str::to_owned)))
                    })
                    .await
                })
            })
            .collect();
        let mut threads = HashSet::new();
        for call in calls {
            let (id, name) = call.await.unwrap().expect("the read");
            assert_eq!(name.as_deref(), Some("byline-sqlite-r"));
            threads.insert(id);
        }
        assert!(
            (2..=POOL_CONNECTIONS).contains(&threads.len()),
            "{} threads ran the calls",
            threads.len()
        );
    }

    /// A call that fails inside a transaction does not hand its open transaction to the next
    /// call, and a panic in a call is that call's error, not the pool's end.
    #[tokio::test]
    async fn a_failed_or_panicking_call_leaves_the_next_a_clean_connection() {
        let dir = tempfile::tempdir().unwrap();
        // One thread, so that every call gets the connection the last one left.
        let pool = Arc::new(ConnectionPool::new(
            dir.path().join("log.db").display().to_string(),
            1,
        ));
        let err = pool
            .run(|conn| -> Result<(), StoreError> {
                conn.execute_batch("BEGIN; SELECT 1 FROM sqlite_master")?;
                Err(StoreError::Corrupt("stopped halfway".into()))
            })
            .await
            .expect_err("the call fails");
        assert!(err.to_string().contains("stopped halfway"), "{err}");
        let autocommit = pool.run(|conn| Ok(conn.is_autocommit())).await.unwrap();
        assert!(
            autocommit,
            "the next call got the failed call's transaction"
        );

        let err = pool
            .run(|conn| -> Result<(), StoreError> {
                conn.execute_batch("BEGIN")?;
                panic!("a bug in the read");
            })
            .await
            .expect_err("the call fails");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(err.to_string().contains("a bug in the read"), "{err}");
        let autocommit = pool.run(|conn| Ok(conn.is_autocommit())).await.unwrap();
        assert!(
            autocommit,
            "the next call got the panicked call's transaction"
        );
    }
}
