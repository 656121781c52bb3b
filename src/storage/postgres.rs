//! The shared PostgreSQL backend: several service replicas keep one log in one database.
//!
//! Every append is one `READ COMMITTED` transaction that first takes a transaction-scoped
//! advisory lock ([`APPEND_LOCK`]), so exactly one replica at a time reads the log's head and
//! writes the next batch: indices stay unique and gap-free, and `integratedTime` never
//! decreases. The lock is released by the commit (or the rollback, or the server when the
//! connection dies), never held between batches. Commits are durable before they return
//! (`synchronous_commit = on` is set on every connection), so a checkpoint is only ever
//! signed over committed leaves.
//!
//! A lost connection surfaces as [`StoreError::Unavailable`] (gRPC `UNAVAILABLE`); the pool
//! reconnects on the next call once the database answers again.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, PgPool, Row};

use crate::core::manifest::Timestamp;
use crate::core::merkle::{CompactRange, Hash, NodeId};
use crate::storage::{
    idempotency_keys, plan_append, redact_url, BatchResult, BatchSlots, CheckpointRow, EntryKind,
    EntryRecord, LogMeta, LogState, PendingEntry, Store, StoreError, TokenRecord,
};

/// The advisory lock key that serializes appends to the log of one database ("byline" 1).
/// Advisory locks are per database, so logs in different databases never contend.
pub const APPEND_LOCK: i64 = 0x6279_6c69_6e65_0001;
/// The advisory lock key that serializes migrations, so replicas may start together.
pub const MIGRATE_LOCK: i64 = 0x6279_6c69_6e65_0002;

/// How long a call waits for a pooled connection (or a new one) before it fails with
/// `Unavailable`: short, so that calls fail fast while the database is down.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections per replica.
const MAX_CONNECTIONS: u32 = 16;

/// Session settings sent with every connection. `synchronous_commit` is what makes a commit
/// durable before a checkpoint covering it is signed; the timeouts keep one stuck replica
/// (or a stuck statement) from holding the append lock for ever.
const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("synchronous_commit", "on"),
    ("lock_timeout", "10s"),
    ("statement_timeout", "60s"),
    ("idle_in_transaction_session_timeout", "30s"),
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 2;

/// Schema migrations, in order; each runs once, in one transaction with its version row.
const MIGRATIONS: &[(i64, &[&str])] = &[(
    1,
    &[
        "CREATE TABLE IF NOT EXISTS log_meta (id INTEGER PRIMARY KEY CHECK (id = 1), origin TEXT NOT NULL, verifier_key TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS publishers (domain TEXT PRIMARY KEY, name TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, publisher TEXT NOT NULL, secret_sha256 BYTEA NOT NULL, admin BOOLEAN NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT, revoked BOOLEAN NOT NULL DEFAULT FALSE)",
        // Manifests and revocations are both log entries (`kind`), indexed by their digests.
        "CREATE TABLE IF NOT EXISTS entries (idx BIGINT PRIMARY KEY CHECK (idx >= 0), leaf BYTEA NOT NULL, leaf_hash BYTEA NOT NULL, integrated_time BIGINT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('manifest', 'revocation')), publisher TEXT NOT NULL, text_sha256 TEXT, exact_sha256 TEXT, statement_sha256 TEXT NOT NULL, idempotency_key TEXT)",
        "CREATE INDEX IF NOT EXISTS entries_text ON entries (text_sha256)",
        "CREATE INDEX IF NOT EXISTS entries_exact ON entries (exact_sha256)",
        "CREATE INDEX IF NOT EXISTS entries_leaf_hash ON entries (leaf_hash)",
        "CREATE UNIQUE INDEX IF NOT EXISTS entries_idempotency ON entries (publisher, idempotency_key) WHERE idempotency_key IS NOT NULL",
        "CREATE TABLE IF NOT EXISTS tree_nodes (level SMALLINT NOT NULL, idx BIGINT NOT NULL, hash BYTEA NOT NULL, PRIMARY KEY (level, idx))",
        "CREATE TABLE IF NOT EXISTS checkpoints (size BIGINT PRIMARY KEY, root BYTEA NOT NULL, note TEXT NOT NULL)",
    ],
), (
    2,
    &[
        // Edit chains: which statement an entry supersedes, and lookups by statement digest.
        "ALTER TABLE entries ADD COLUMN IF NOT EXISTS supersedes_sha256 TEXT",
        "CREATE INDEX IF NOT EXISTS entries_statement ON entries (statement_sha256)",
        "CREATE INDEX IF NOT EXISTS entries_supersedes ON entries (supersedes_sha256)",
    ],
)];

/// `SELECT` of the columns an [`EntryRecord`] needs, followed by the rest of the query.
macro_rules! select_entries {
    ($rest:literal) => {
        concat!(
            "SELECT idx, leaf, integrated_time, kind, publisher FROM entries ",
            $rest
        )
    };
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The PostgreSQL store: a connection pool; clones share it.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?…]`). The database
    /// must exist; [`Store::migrate`] creates the tables.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if !is_postgres_url(url) {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::UnsupportedUrl(format!("{}: {e}", redact_url(url))))?
            .application_name("byline")
            .options(SESSION_SETTINGS.iter().copied());
        // One direct connection first, so that a wrong host, database or password is reported
        // as such (a pool would retry a refused connection and report only a timeout).
        PgConnection::connect_with(&options).await?.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(PostgresStore { pool })
    }

    /// The schema version the database is at (0 before the first migration).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('schema_version') IS NOT NULL")
            .fetch_one(&self.pool)
            .await?;
        if !exists {
            return Ok(0);
        }
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
            .fetch_one(&self.pool)
            .await?;
        Ok(version.unwrap_or(0))
    }
}

/// Records a signed checkpoint, on its own or inside a batch's transaction. Replicas sign
/// checkpoints for the sizes their own batches reached; one size has one root, so a second
/// note for it adds nothing.
async fn insert_checkpoint_on(
    conn: &mut PgConnection,
    size: u64,
    root: &Hash,
    note: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO checkpoints (size, root, note) VALUES ($1, $2, $3) \
         ON CONFLICT (size) DO NOTHING",
    )
    .bind(db_int(size)?)
    .bind(root.as_slice())
    .bind(note)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn db_int(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{n} is beyond the database's range")))
}

fn from_db(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("a stored index is negative: {n}")))
}

fn ts(secs: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix(secs).ok_or_else(|| StoreError::Corrupt(format!("bad time {secs}")))
}

fn hash_of(bytes: Vec<u8>) -> Result<Hash, StoreError> {
    Hash::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Corrupt("a stored hash is not 32 bytes".into()))
}

fn entry_from_row(row: &PgRow) -> Result<EntryRecord, StoreError> {
    Ok(EntryRecord {
        index: from_db(row.try_get("idx")?)?,
        leaf: row.try_get("leaf")?,
        integrated_time: ts(row.try_get("integrated_time")?)?,
        kind: EntryKind::parse(row.try_get::<&str, _>("kind")?),
        publisher: row.try_get("publisher")?,
    })
}

fn token_from_row(row: &PgRow) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: row.try_get("id")?,
        publisher: row.try_get("publisher")?,
        secret_sha256: hash_of(row.try_get("secret_sha256")?)?,
        admin: row.try_get("admin")?,
        created_at: ts(row.try_get("created_at")?)?,
        expires_at: row
            .try_get::<Option<i64>, _>("expires_at")?
            .map(ts)
            .transpose()?,
        revoked: row.try_get("revoked")?,
    })
}

/// Reads the hashes of `ids` in one query, in the order asked.
async fn read_nodes(conn: &mut PgConnection, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let levels: Vec<i16> = ids.iter().map(|id| i16::from(id.level)).collect();
    let indices = ids
        .iter()
        .map(|id| db_int(id.index))
        .collect::<Result<Vec<_>, _>>()?;
    let rows = sqlx::query(
        "SELECT n.level, n.idx, n.hash FROM tree_nodes n \
         JOIN UNNEST($1::smallint[], $2::bigint[]) AS want(level, idx) \
         ON n.level = want.level AND n.idx = want.idx",
    )
    .bind(&levels)
    .bind(&indices)
    .fetch_all(&mut *conn)
    .await?;
    let mut found: HashMap<(i16, i64), Hash> = HashMap::with_capacity(rows.len());
    for row in &rows {
        found.insert(
            (row.try_get("level")?, row.try_get("idx")?),
            hash_of(row.try_get("hash")?)?,
        );
    }
    ids.iter()
        .zip(levels.iter().zip(&indices))
        .map(|(id, (l, i))| {
            found
                .get(&(*l, *i))
                .copied()
                .ok_or_else(|| StoreError::Corrupt(format!("tree node {id:?} is missing")))
        })
        .collect()
}

/// The log's head: size from the last index, time from the last entry (time never decreases
/// with the index, so the last entry's is the latest), frontier from the stored nodes.
async fn read_state(conn: &mut PgConnection) -> Result<LogState, StoreError> {
    let last = sqlx::query("SELECT idx, integrated_time FROM entries ORDER BY idx DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let (size, last_time) = match last {
        Some(row) => (
            from_db(row.try_get::<i64, _>("idx")?)? + 1,
            Some(ts(row.try_get("integrated_time")?)?),
        ),
        None => (0, None),
    };
    let hashes = read_nodes(conn, &CompactRange::frontier_ids(size)).await?;
    Ok(LogState {
        range: CompactRange::from_parts(size, hashes)?,
        last_time,
    })
}

impl Store for PostgresStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Migrations may outlast the per-statement and lock limits on a large log.
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut *tx)
            .await?;
        sqlx::query("SET LOCAL lock_timeout = 0")
            .execute(&mut *tx)
            .await?;
        // Concurrent `CREATE TABLE IF NOT EXISTS` can fail in PostgreSQL; replicas starting
        // together wait for each other here instead.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATE_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .execute(&mut *tx)
        .await?;
        let current: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_version")
                .fetch_one(&mut *tx)
                .await?;
        if current > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: current,
                supported: SCHEMA_VERSION,
            });
        }
        for (version, statements) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            for statement in *statements {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind(version)
                .execute(&mut *tx)
                .await?;
            tracing::info!(version, "migrated the PostgreSQL schema");
        }
        tx.commit().await?;
        Ok(())
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
        sqlx::query("INSERT INTO log_meta (id, origin, verifier_key) VALUES (1, $1, $2)")
            .bind(&meta.origin)
            .bind(&meta.verifier_key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn upsert_publisher(&self, domain: &str, name: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO publishers (domain, name) VALUES ($1, $2) \
             ON CONFLICT (domain) DO UPDATE SET name = excluded.name",
        )
        .bind(domain)
        .bind(name)
        .execute(&self.pool)
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
        sqlx::query(
            "INSERT INTO tokens (id, publisher, secret_sha256, admin, created_at, expires_at, revoked) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.id)
        .bind(&t.publisher)
        .bind(t.secret_sha256.as_slice())
        .bind(t.admin)
        .bind(t.created_at.unix())
        .bind(t.expires_at.map(|e| e.unix()))
        .bind(t.revoked)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM tokens WHERE id = $1")
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
        let done = sqlx::query("UPDATE tokens SET revoked = TRUE WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn append_with_checkpoint(
        &self,
        pending: Vec<PendingEntry>,
        now: Timestamp,
        checkpoint: Option<&CheckpointRow>,
    ) -> Result<BatchResult, StoreError> {
        // READ COMMITTED (whatever the server's default) so that each statement after the lock
        // sees the previous holder's commit; a snapshot taken at BEGIN would not.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await?;
        // The one sequencer of this log, for the length of this transaction only.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK)
            .execute(&mut *tx)
            .await?;

        let keys = idempotency_keys(&pending);
        let mut logged = HashMap::new();
        if !keys.is_empty() {
            let (publishers, keys): (Vec<String>, Vec<String>) = keys.into_iter().unzip();
            let rows = sqlx::query(
                "SELECT e.publisher, e.idempotency_key, e.idx, e.integrated_time FROM entries e \
                 JOIN UNNEST($1::text[], $2::text[]) AS k(publisher, key) \
                 ON e.publisher = k.publisher AND e.idempotency_key = k.key \
                 WHERE e.idempotency_key IS NOT NULL",
            )
            .bind(&publishers)
            .bind(&keys)
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                logged.insert(
                    (row.try_get("publisher")?, row.try_get("idempotency_key")?),
                    (
                        from_db(row.try_get("idx")?)?,
                        ts(row.try_get("integrated_time")?)?,
                    ),
                );
            }
        }
        let (slots, fresh) = BatchSlots::sort(pending, &logged);

        let state = read_state(&mut tx).await?;
        let plan = plan_append(state, fresh, now);

        if !plan.rows.is_empty() {
            let n = plan.rows.len();
            let mut idx = Vec::with_capacity(n);
            let mut leaf = Vec::with_capacity(n);
            let mut leaf_hash = Vec::with_capacity(n);
            let mut time = Vec::with_capacity(n);
            let mut kind = Vec::with_capacity(n);
            let mut publisher = Vec::with_capacity(n);
            let mut text = Vec::with_capacity(n);
            let mut exact = Vec::with_capacity(n);
            let mut statement = Vec::with_capacity(n);
            let mut key = Vec::with_capacity(n);
            let mut supersedes = Vec::with_capacity(n);
            for row in &plan.rows {
                let p = &row.pending;
                idx.push(db_int(row.index)?);
                leaf.push(row.leaf.as_slice());
                leaf_hash.push(row.leaf_hash.as_slice());
                time.push(row.integrated_time.unix());
                kind.push(p.kind.as_str());
                publisher.push(p.publisher.as_str());
                text.push(p.text_sha256.as_deref());
                exact.push(p.exact_sha256.as_deref());
                statement.push(p.statement_sha256.as_str());
                key.push(p.idempotency_key.as_deref());
                supersedes.push(p.supersedes_sha256.as_deref());
            }
            sqlx::query(
                "INSERT INTO entries (idx, leaf, leaf_hash, integrated_time, kind, publisher, \
                 text_sha256, exact_sha256, statement_sha256, idempotency_key, supersedes_sha256) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bytea[], $4::bigint[], \
                 $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])",
            )
            .bind(&idx)
            .bind(&leaf)
            .bind(&leaf_hash)
            .bind(&time)
            .bind(&kind)
            .bind(&publisher)
            .bind(&text)
            .bind(&exact)
            .bind(&statement)
            .bind(&key)
            .bind(&supersedes)
            .execute(&mut *tx)
            .await?;

            let levels: Vec<i16> = plan
                .nodes
                .iter()
                .map(|(id, _)| i16::from(id.level))
                .collect();
            let indices = plan
                .nodes
                .iter()
                .map(|(id, _)| db_int(id.index))
                .collect::<Result<Vec<_>, _>>()?;
            let hashes: Vec<&[u8]> = plan.nodes.iter().map(|(_, h)| h.as_slice()).collect();
            sqlx::query(
                "INSERT INTO tree_nodes (level, idx, hash) \
                 SELECT * FROM UNNEST($1::smallint[], $2::bigint[], $3::bytea[])",
            )
            .bind(&levels)
            .bind(&indices)
            .bind(&hashes)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(c) = checkpoint {
            insert_checkpoint_on(&mut tx, c.size, &c.root, &c.note).await?;
        }
        // Durable when this returns (synchronous_commit = on); the lock goes with it.
        tx.commit().await?;
        slots.finish(plan)
    }

    async fn insert_checkpoint(
        &self,
        size: u64,
        root: &Hash,
        note: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_checkpoint_on(&mut conn, size, root, note).await
    }

    async fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        let row = sqlx::query("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((from_db(r.try_get("size")?)?, r.try_get("note")?)))
            .transpose()
    }

    async fn log_state(&self) -> Result<LogState, StoreError> {
        // One snapshot for the head and its frontier.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let state = read_state(&mut tx).await?;
        tx.commit().await?;
        Ok(state)
    }

    async fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        read_nodes(&mut conn, ids).await
    }

    async fn entry(&self, index: u64) -> Result<Option<EntryRecord>, StoreError> {
        // An index beyond the database's range is simply not in the log.
        let Ok(index) = i64::try_from(index) else {
            return Ok(None);
        };
        let row = sqlx::query(select_entries!("WHERE idx = $1"))
            .bind(index)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(entry_from_row).transpose()
    }

    async fn index_by_leaf_hash(&self, hash: &Hash) -> Result<Option<u64>, StoreError> {
        let idx: Option<i64> =
            sqlx::query_scalar("SELECT idx FROM entries WHERE leaf_hash = $1 ORDER BY idx LIMIT 1")
                .bind(hash.as_slice())
                .fetch_optional(&self.pool)
                .await?;
        idx.map(from_db).transpose()
    }

    async fn entries(&self, start: u64, count: u64) -> Result<Vec<EntryRecord>, StoreError> {
        let Ok(start) = i64::try_from(start) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(select_entries!("WHERE idx >= $1 ORDER BY idx LIMIT $2"))
            .bind(start)
            .bind(i64::try_from(count).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn lookup_text(&self, sha256: &str) -> Result<Vec<EntryRecord>, StoreError> {
        let rows = sqlx::query(select_entries!(
            "WHERE text_sha256 = $1 ORDER BY idx LIMIT 100"
        ))
        .bind(sha256)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn lookup_statement(&self, sha256: &str) -> Result<Vec<EntryRecord>, StoreError> {
        let rows = sqlx::query(select_entries!(
            "WHERE statement_sha256 = $1 ORDER BY idx LIMIT 100"
        ))
        .bind(sha256)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn lookup_superseding(&self, sha256: &str) -> Result<Vec<EntryRecord>, StoreError> {
        let rows = sqlx::query(select_entries!(
            "WHERE supersedes_sha256 = $1 AND kind = 'manifest' ORDER BY idx LIMIT 100"
        ))
        .bind(sha256)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn lookup_revocations(&self, target: &str) -> Result<Vec<EntryRecord>, StoreError> {
        let rows = sqlx::query(select_entries!(
            "WHERE supersedes_sha256 = $1 AND kind = 'revocation' ORDER BY idx LIMIT 100"
        ))
        .bind(target)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn lookup_exact(&self, sha256: &str) -> Result<Vec<EntryRecord>, StoreError> {
        let rows = sqlx::query(select_entries!(
            "WHERE exact_sha256 = $1 ORDER BY idx LIMIT 100"
        ))
        .bind(sha256)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }
}
