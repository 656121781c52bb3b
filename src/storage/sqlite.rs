//! The embedded SQLite backend: one file under `data/`, WAL with `synchronous=FULL`, so that an
//! append is on disk when its transaction commits. Reads, migrations and token and publisher
//! writes go through sqlx; the log's own writes (appends, checkpoints) run on the append thread
//! of `sqlite_append`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

use crate::core::manifest::Timestamp;
use crate::core::merkle::{CompactRange, Hash, NodeId};
use crate::storage::sqlite_append::AppendThread;
use crate::storage::{
    BatchResult, CheckpointRow, EntryKind, EntryRecord, LogMeta, LogState, PendingEntry, Store,
    StoreError, TokenRecord,
};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS log_meta (id INTEGER PRIMARY KEY CHECK (id = 1), origin TEXT NOT NULL, verifier_key TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS publishers (domain TEXT PRIMARY KEY, name TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, publisher TEXT NOT NULL, secret_sha256 BLOB NOT NULL, admin INTEGER NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER, revoked INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL, leaf_hash BLOB NOT NULL, integrated_time INTEGER NOT NULL, kind TEXT NOT NULL, publisher TEXT NOT NULL, text_sha256 TEXT, exact_sha256 TEXT, statement_sha256 TEXT NOT NULL, idempotency_key TEXT, supersedes_sha256 TEXT)",
    // Every digest an entry is looked up by (text, exact, statement, leaf hash), as the first
    // 8 bytes of the digest read as a signed big-endian integer: one small B-tree instead of
    // four indexes of 64-character strings. A match is confirmed against the full digest in
    // `entries`, so a shared prefix never returns a wrong entry.
    "CREATE TABLE IF NOT EXISTS entry_keys (key INTEGER NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (key, idx)) WITHOUT ROWID",
    // The newest entries' keys, not yet in `entry_keys`: an unindexed table that an append
    // extends at its end (one page or two per batch), searched by scanning; moved into
    // `recent_keys` in sorted slices once it holds `PENDING_KEYS_LIMIT` rows.
    "CREATE TABLE IF NOT EXISTS pending_keys (key INTEGER NOT NULL, idx INTEGER NOT NULL)",
    // Keys on their way from `pending_keys` to `entry_keys`, a B-tree a few times larger than
    // `pending_keys` rather than the size of the log; moved on in sorted key ranges once it
    // holds `RECENT_KEYS_LIMIT` rows (see `sqlite_append`).
    "CREATE TABLE IF NOT EXISTS recent_keys (key INTEGER NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (key, idx)) WITHOUT ROWID",
    "CREATE UNIQUE INDEX IF NOT EXISTS entries_idempotency ON entries(publisher, idempotency_key) WHERE idempotency_key IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS tree_nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL)",
];

/// How long a connection waits for another one's write lock before it gives up.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings of every connection to the file, sqlx's and the append thread's alike.
pub(super) const CONNECTION_PRAGMAS: &[(&str, &str)] = &[
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
    // to checkpointing at the default). The append module's background checkpoints normally
    // keep the WAL far below this; it is the backstop.
    ("wal_autocheckpoint", "10000"),
];

/// The SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Readers.
    pool: SqlitePool,
    /// The one sqlx connection that writes: migrations, tokens, publishers, the log identity.
    writer: SqlitePool,
    /// The log's appends and checkpoints, on a thread of their own with its own connection
    /// (see `sqlite_append`), which keeps the pages every append touches cached.
    appender: std::sync::Arc<AppendThread>,
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
        let mut options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            // 8 KB pages for a new file (an existing one keeps its size): an entry's row is
            // about 2.6 KB, so a 4 KB page holds one row and wastes a third of every page the
            // log writes; an 8 KB page holds three.
            .page_size(8192);
        for (name, value) in CONNECTION_PRAGMAS {
            options = options.pragma(*name, *value);
        }
        // Switching a new file to WAL needs a moment of exclusive access; when another process
        // or handle opens the same file at that instant, SQLite answers "database is locked"
        // before the busy timeout applies. Retry for a while rather than fail the start.
        let writer = connect_retrying(&options, 1).await?;
        let pool = connect_retrying(&options, 8).await?;
        let appender = std::sync::Arc::new(AppendThread::start(path)?);
        Ok(SqliteStore {
            pool,
            writer,
            appender,
        })
    }
}

/// A pool of up to `connections`, retrying "database is locked" while another handle switches
/// a new file to WAL.
async fn connect_retrying(
    options: &SqliteConnectOptions,
    connections: u32,
) -> Result<SqlitePool, StoreError> {
    let mut attempt = 0u32;
    loop {
        match SqlitePoolOptions::new()
            .max_connections(connections)
            .connect_with(options.clone())
            .await
        {
            Ok(pool) => return Ok(pool),
            Err(e) if attempt < 50 && e.to_string().contains("database is locked") => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt.min(10)))).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

impl SqliteStore {
    /// Entries whose `column` holds `digest` (64 hex digits), oldest first, at most 100: the
    /// one query behind every digest lookup. The `entry_keys` index finds the candidates by
    /// the digest's first 8 bytes; the full digest is then compared.
    async fn lookup_digest(
        &self,
        column: DigestColumn,
        digest: &str,
    ) -> Result<Vec<EntryRecord>, StoreError> {
        let Some(key) = digest_key_hex(digest) else {
            // Not a digest, so no stored entry can have it.
            return Ok(Vec::new());
        };
        let rows = sqlx::query(column.lookup_sql())
            .bind(key)
            .bind(key)
            .bind(key)
            .bind(digest)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// The entries `sql` (an `entries_where!` query with one `?`) selects for `value`.
    async fn lookup_where(
        &self,
        sql: &'static str,
        value: &str,
    ) -> Result<Vec<EntryRecord>, StoreError> {
        let rows = sqlx::query(sql).bind(value).fetch_all(&self.pool).await?;
        rows.iter().map(entry_from_row).collect()
    }
}

/// The entries whose keys include the key bound three times: from the index, and from the
/// keys of the newer entries that are not in it yet (`recent_keys`, `pending_keys`). A macro so that the queries below are constant
/// strings, built at compile time rather than on every lookup.
macro_rules! candidates {
    () => {
        "SELECT idx FROM entry_keys WHERE key = ? UNION ALL SELECT idx FROM recent_keys WHERE key = ? \
         UNION ALL SELECT idx FROM pending_keys WHERE key = ?"
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

/// Entries with a digest in `$column` (the candidates' key bound three times, then the
/// digest).
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
    if hex_digest.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut bytes).ok()?;
    Some(digest_key(&bytes))
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

/// Inserts `entry_keys` rows, sorted (neighbouring keys share pages), several thousand per
/// statement. A key repeated for one entry (its text and exact digests are equal) is one row.
async fn insert_entry_keys(
    conn: &mut sqlx::SqliteConnection,
    mut keys: Vec<(i64, i64)>,
) -> Result<(), StoreError> {
    keys.sort_unstable();
    keys.dedup();
    for chunk in prepared_chunks(&keys, 4096) {
        let mut insert =
            sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT OR IGNORE INTO entry_keys (key, idx) ");
        insert.push_values(chunk, |mut b, (key, idx)| {
            b.push_bind(*key).push_bind(*idx);
        });
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Splits `rows` for multi-row `INSERT`s into chunks whose lengths are powers of two (at most
/// `max`, itself a power of two): rows of any count then use a handful of statement shapes that
/// stay in the connection's statement cache, instead of a new statement of hundreds of rows
/// parsed and planned for each count. (Appends used it when they went through sqlx; now the
/// upgrade to `entry_keys` does.)
fn prepared_chunks<T>(rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    debug_assert!(max.is_power_of_two());
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = if rest.len() >= max {
            max
        } else {
            // The largest power of two not above what is left.
            1 << (usize::BITS - 1 - rest.len().leading_zeros())
        };
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        Some(chunk)
    })
}

/// The indexes of digest columns that `entry_keys` replaced, in databases made before it.
const REPLACED_INDEXES: &[&str] = &[
    "entries_text",
    "entries_exact",
    "entries_leaf_hash",
    "entries_statement",
];

/// Fills `entry_keys` from the entries a database made before it holds, and drops the indexes
/// it replaces; one transaction, so an interrupted upgrade is simply done again.
async fn upgrade_to_entry_keys(writer: &SqlitePool) -> Result<(), StoreError> {
    let names = REPLACED_INDEXES
        .iter()
        .map(|name| format!("'{name}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let old: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN ({names})"
    ))
    .fetch_one(writer)
    .await?;
    if old == 0 {
        return Ok(());
    }
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let mut after = -1i64;
    loop {
        let rows = sqlx::query(
            "SELECT idx, text_sha256, exact_sha256, statement_sha256, leaf_hash FROM entries \
             WHERE idx > ? ORDER BY idx LIMIT 10000",
        )
        .bind(after)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("idx")?;
        let mut keys = Vec::with_capacity(rows.len() * 4);
        for row in &rows {
            let text: Option<String> = row.try_get("text_sha256")?;
            let exact: Option<String> = row.try_get("exact_sha256")?;
            let statement: String = row.try_get("statement_sha256")?;
            let leaf_hash = hash_of(row.try_get("leaf_hash")?)?;
            keys.extend(entry_keys_of(
                row.try_get("idx")?,
                [text.as_deref(), exact.as_deref(), Some(&statement)],
                &leaf_hash,
            ));
        }
        insert_entry_keys(&mut tx, keys).await?;
    }
    for index in REPLACED_INDEXES {
        sqlx::query(&format!("DROP INDEX IF EXISTS {index}"))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    tracing::info!("SQLite digest lookups now use the entry_keys index");
    Ok(())
}

pub(super) fn ts(secs: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix(secs).ok_or_else(|| StoreError::Corrupt(format!("bad time {secs}")))
}

pub(super) fn hash_of(bytes: Vec<u8>) -> Result<Hash, StoreError> {
    Hash::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Corrupt("a stored hash is not 32 bytes".into()))
}

fn entry_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<EntryRecord, StoreError> {
    Ok(EntryRecord {
        index: row.try_get::<i64, _>("idx")? as u64,
        leaf: row.try_get("leaf")?,
        integrated_time: ts(row.try_get("integrated_time")?)?,
        kind: EntryKind::parse(&row.try_get::<String, _>("kind")?),
        publisher: row.try_get("publisher")?,
    })
}

fn token_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<TokenRecord, StoreError> {
    let secret: Vec<u8> = row.try_get("secret_sha256")?;
    Ok(TokenRecord {
        id: row.try_get("id")?,
        publisher: row.try_get("publisher")?,
        secret_sha256: hash_of(secret)?,
        admin: row.try_get::<i64, _>("admin")? != 0,
        created_at: ts(row.try_get("created_at")?)?,
        expires_at: row
            .try_get::<Option<i64>, _>("expires_at")?
            .map(ts)
            .transpose()?,
        revoked: row.try_get::<i64, _>("revoked")? != 0,
    })
}

/// Reads perfect-subtree hashes in one statement (a proof needs O(log n) of them; one query
/// instead of one per node), in the order asked.
async fn read_nodes(
    conn: &mut sqlx::SqliteConnection,
    ids: &[NodeId],
) -> Result<Vec<Hash>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "SELECT level, idx, hash FROM tree_nodes WHERE (level, idx) IN (",
    );
    let mut list = query.separated(", ");
    for id in ids {
        list.push("(")
            .push_bind_unseparated(i64::from(id.level))
            .push_unseparated(", ")
            .push_bind_unseparated(id.index as i64)
            .push_unseparated(")");
    }
    query.push(")");
    let rows = query.build().fetch_all(&mut *conn).await?;
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let level = row.try_get::<i64, _>("level")?;
        let index = row.try_get::<i64, _>("idx")?;
        found.insert((level, index), hash_of(row.try_get("hash")?)?);
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
pub(super) const NEWEST_ENTRY: &str =
    "SELECT idx, integrated_time FROM entries ORDER BY idx DESC LIMIT 1";

async fn read_state(conn: &mut sqlx::SqliteConnection) -> Result<LogState, StoreError> {
    let row = sqlx::query(NEWEST_ENTRY).fetch_optional(&mut *conn).await?;
    let (size, last) = match row {
        Some(r) => (
            r.try_get::<i64, _>("idx")? as u64 + 1,
            Some(ts(r.try_get("integrated_time")?)?),
        ),
        None => (0, None),
    };
    let hashes = read_nodes(conn, &CompactRange::frontier_ids(size)).await?;
    Ok(LogState {
        range: CompactRange::from_parts(size, hashes)?,
        last_time: last,
    })
}

impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        for stmt in SCHEMA {
            sqlx::query(stmt).execute(&self.writer).await?;
        }
        // Databases made before edit chains were indexed gain the column in place.
        let has_supersedes: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pragma_table_info('entries') WHERE name = 'supersedes_sha256'",
        )
        .fetch_one(&self.writer)
        .await?;
        if has_supersedes == 0 {
            sqlx::query("ALTER TABLE entries ADD COLUMN supersedes_sha256 TEXT")
                .execute(&self.writer)
                .await?;
        }
        sqlx::query("CREATE INDEX IF NOT EXISTS entries_supersedes ON entries(supersedes_sha256)")
            .execute(&self.writer)
            .await?;
        upgrade_to_entry_keys(&self.writer).await
    }

    async fn log_meta(&self) -> Result<Option<LogMeta>, StoreError> {
        let row = sqlx::query("SELECT origin, verifier_key FROM log_meta WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(LogMeta {
                origin: r.try_get("origin")?,
                verifier_key: r.try_get("verifier_key")?,
            })
        })
        .transpose()
    }

    async fn init_log_meta(&self, meta: &LogMeta) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO log_meta (id, origin, verifier_key) VALUES (1, ?, ?)")
            .bind(&meta.origin)
            .bind(&meta.verifier_key)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn upsert_publisher(&self, domain: &str, name: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO publishers (domain, name) VALUES (?, ?) ON CONFLICT(domain) DO UPDATE SET name = excluded.name")
            .bind(domain)
            .bind(name)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn publishers(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT domain, name FROM publishers ORDER BY domain")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("domain")?, r.try_get("name")?)))
            .collect()
    }

    async fn insert_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO tokens (id, publisher, secret_sha256, admin, created_at, expires_at, revoked) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&t.id)
            .bind(&t.publisher)
            .bind(t.secret_sha256.to_vec())
            .bind(i64::from(t.admin))
            .bind(t.created_at.unix())
            .bind(t.expires_at.map(|e| e.unix()))
            .bind(i64::from(t.revoked))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM tokens WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM tokens ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE tokens SET revoked = 1 WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
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
        let row = sqlx::query("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get::<i64, _>("size")? as u64, r.try_get("note")?)))
            .transpose()
    }

    async fn log_state(&self) -> Result<LogState, StoreError> {
        let mut conn = self.pool.acquire().await?;
        read_state(&mut conn).await
    }

    async fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        read_nodes(&mut conn, ids).await
    }

    async fn entry(&self, index: u64) -> Result<Option<EntryRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT idx, leaf, integrated_time, kind, publisher FROM entries WHERE idx = ?",
        )
        .bind(index as i64)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(entry_from_row).transpose()
    }

    async fn index_by_leaf_hash(&self, hash: &Hash) -> Result<Option<u64>, StoreError> {
        let key = digest_key(hash);
        let idx: Option<i64> = sqlx::query_scalar(concat!(
            "SELECT idx FROM entries WHERE idx IN (",
            candidates!(),
            ") AND leaf_hash = ? ORDER BY idx LIMIT 1"
        ))
        .bind(key)
        .bind(key)
        .bind(key)
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        Ok(idx.map(|i| i as u64))
    }

    async fn entries(&self, start: u64, count: u64) -> Result<Vec<EntryRecord>, StoreError> {
        // An index beyond i64 cannot exist in the table; do not let it wrap to a negative one.
        let Ok(start) = i64::try_from(start) else {
            return Ok(Vec::new());
        };
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let rows = sqlx::query("SELECT idx, leaf, integrated_time, kind, publisher FROM entries WHERE idx >= ? ORDER BY idx LIMIT ?")
            .bind(start)
            .bind(count)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry_from_row).collect()
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
    use super::prepared_chunks;

    #[test]
    fn chunks_are_powers_of_two_covering_every_row_in_order() {
        for n in [0usize, 1, 2, 3, 7, 255, 256, 257, 1000, 1537] {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = prepared_chunks(&rows, 512).collect();
            assert!(chunks
                .iter()
                .all(|c| c.len().is_power_of_two() && c.len() <= 512));
            assert_eq!(chunks.concat(), rows, "n = {n}");
            assert!(
                chunks.len() <= n / 512 + 10,
                "n = {n}: {} chunks",
                chunks.len()
            );
        }
    }
}
