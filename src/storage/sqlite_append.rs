//! The SQLite log's appends, each one transaction on one dedicated thread, and the WAL
//! checkpoints on another.
//!
//! Through sqlx, an append was a dozen statements, each handed to sqlx's worker thread and
//! awaited: two thread switches per statement, and on a busy single core each hand-off queued
//! behind everything else runnable (a `BEGIN` alone took up to 5 ms under load). Here the whole
//! batch — idempotency lookups, state, rows, keys, nodes, checkpoint, commit — runs on one
//! thread with cached statements, and the caller waits once. The log's state (its frontier and
//! last time) is kept between batches and reused while `PRAGMA data_version` says no other
//! connection has written since.
//!
//! Copying the WAL back into the database (a WAL checkpoint) used to run inside whichever
//! commit crossed SQLite's threshold, holding that batch — and everyone queued behind it — for
//! 20–30 ms every few seconds. A background thread now checkpoints a little at a time
//! (`PASSIVE`: it never blocks the writer), so a commit rarely finds much left to copy.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, ToSql};
use tokio::sync::oneshot;

use crate::core::manifest::Timestamp;
use crate::core::merkle::Hash;
use crate::storage::sqlite::{
    decode_key_run, encode_key_run, entry_keys_of, key_slice, keys_in_runs, open_connection,
    read_state, recent_slice, ts, PENDING_SLICE_BITS, RECENT_SLICE_BITS, UNSORTED_SLICE,
};
use crate::storage::{
    idempotency_keys, plan_append, BatchResult, BatchSlots, CheckpointRow, LogState, PendingEntry,
    StoreError,
};

/// How many keys `pending_key_runs` collects before they are moved on into `recent_key_runs`
/// (about 2,000 entries' worth). A key inserted straight into a B-tree larger than a batch
/// dirties a page of its own, so a batch of n entries would rewrite up to 4n index pages;
/// moved thousands at a time, in key order, keys share pages.
const PENDING_KEYS_LIMIT: i64 = 8192;

/// How many keys the unsorted pending runs (`UNSORTED_SLICE`) gather before an append cuts
/// them, with its own keys, into their key ranges; an append with this many keys of its own
/// is cut at once. At half load (a few entries per append, about 20 keys) the keys of some
/// fifty appends share each cut, so an append writes about one pending page instead of
/// thirteen; a lookup reads at most this many unsorted keys besides its own range's.
const UNSORTED_KEYS_LIMIT: i64 = 1024;

/// How many keys `recent_key_runs` holds before its key ranges start moving on into the level
/// runs.
///
/// A move of k sorted keys into a B-tree of P pages rewrites about min(k, P) pages. Moving
/// pending keys straight into the `entry_keys` B-tree put a few hundred keys into a table of
/// millions: about one page per key, 8 KB written (and later checkpointed) for every 20-byte
/// key. Merged first into the recent runs, which hold eight times as many keys, a range's keys
/// moved on a thousand or so at a time; into `entry_keys` that still rewrote about as many
/// pages as the B-tree had in the range, a number that grew with the log, and since the
/// fifteenth session they become a level run instead, written once per level
/// ([`add_level_run`]).
///
/// The recent keys were a B-tree (`recent_keys`) until the seventh session. Each key then cost
/// an insert and a delete there on top of its insert into `entry_keys`; in a build that never
/// moved keys at all, SignStream used about 14 % less server CPU per call. As sorted runs,
/// the recent tier costs a merge of blobs instead.
const RECENT_KEYS_LIMIT: i64 = 8 * PENDING_KEYS_LIMIT;

/// The append connection's page cache, in KiB (SQLite's negative `cache_size`): 2 MiB, where
/// the file's other connections keep 8 MiB (`CONNECTION_PRAGMAS`).
///
/// While the file is under 1 GiB, SQLite's commit walks its whole page cache after any
/// transaction in which a B-tree split reordered its new pages. The split swaps two pages
/// through a page number just past 1 GiB (the page holding SQLite's lock byte, never a real
/// page), which marks the cache as holding pages beyond the end of the file, and the commit
/// then searches every cached page for them. With 1,024 pages cached the walk took about a
/// tenth of a millisecond, in more than half the commits under load, and 2.5 % of the
/// server's CPU at half load (seventeenth session, `docs/BENCHMARKS.md`). A quarter of the
/// cache makes the walk a quarter as long. The append connection rereads little with it (its
/// rows go to the right edge of their tables, and a merge reads each level run once): the
/// file reads per call at half load went from 0.31 to 0.33, and at 1.4 million entries the
/// append thread's time per call was the same. Past 1 GiB the walk no longer happens.
const APPEND_CACHE_KIB: i64 = 2048;

/// How often the background thread copies the WAL into the database. Each copy shares the one
/// core with the calls and the appends, and ends with an `fsync` of the database file on the
/// device the commits sync to; at 250 ms each copy was two and a half times larger, and the
/// p99 of unary calls at half load was 8.9–12.6 ms against 6.4–7.8 ms at 100 ms (and one
/// 13.1 ms run, on a slow disk moment), for the same CPU per call.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// One batch to append and where its result goes.
struct AppendJob {
    pending: Vec<PendingEntry>,
    now: Timestamp,
    checkpoint: Option<CheckpointRow>,
    reply: oneshot::Sender<Result<BatchResult, StoreError>>,
}

/// The handle to the append thread; the thread (and the checkpoint thread) end when the last
/// handle is dropped.
#[derive(Debug)]
pub(super) struct AppendThread {
    jobs: mpsc::Sender<AppendJob>,
    /// Dropped with the handle, which tells the checkpoint thread to stop.
    _stop_checkpoints: mpsc::Sender<()>,
}

impl AppendThread {
    /// Opens the append connection to the database file at `path` (created and switched to WAL
    /// already) and starts both threads.
    pub(super) fn start(path: &str) -> Result<AppendThread, StoreError> {
        let conn = open_connection(path)?;
        conn.pragma_update(None, "cache_size", -APPEND_CACHE_KIB)?;
        let checkpoint_conn = open_connection(path)?;
        let (jobs, queue) = mpsc::channel::<AppendJob>();
        std::thread::Builder::new()
            .name("byline-sqlite-append".into())
            .spawn(move || {
                let mut appender = Appender {
                    conn,
                    cached: None,
                    tiers: None,
                };
                for job in queue {
                    let result = appender.append(job.pending, job.now, job.checkpoint.as_ref());
                    let _ = job.reply.send(result);
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the append thread: {e}")))?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("byline-sqlite-checkpoint".into())
            .spawn(move || run_checkpoints(checkpoint_conn, stopped))
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(AppendThread {
            jobs,
            _stop_checkpoints: stop,
        })
    }

    /// Appends a batch on the append thread, storing `checkpoint` in the same transaction;
    /// returns once it is committed. An empty batch stores just the checkpoint.
    pub(super) async fn append(
        &self,
        pending: Vec<PendingEntry>,
        now: Timestamp,
        checkpoint: Option<CheckpointRow>,
    ) -> Result<BatchResult, StoreError> {
        let (reply, result) = oneshot::channel();
        let gone = || StoreError::Unavailable("the SQLite append thread has stopped".into());
        self.jobs
            .send(AppendJob {
                pending,
                now,
                checkpoint,
                reply,
            })
            .map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }
}

/// Copies committed WAL frames into the database every [`CHECKPOINT_INTERVAL`] until told to
/// stop. `PASSIVE` takes no lock the writer waits for; when it has copied everything by the
/// time the writer next commits, SQLite starts the WAL over from its beginning. Under a steady
/// load it rarely has (the appends commit new frames while it copies), so the WAL is started
/// over by the writer's own automatic checkpoint at 10,000 pages, which then finds only what
/// the last pass left to copy, but syncs the database file inside that batch's commit: at half
/// the peak about once every 1.25 s, a stall of a few milliseconds (counted with the kernel's
/// `fsync` tracepoints in the thirteenth session). A `RESTART` checkpoint from this thread
/// instead, tried then, made the tail longer, even with the writer retrying every 0.1 ms: it
/// syncs the database file under the writer's lock, and it ran more often (at 6,000 pages).
fn run_checkpoints(conn: rusqlite::Connection, stop: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_INTERVAL) {
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(0)
        });
        if let Err(e) = done {
            tracing::debug!(error = %e, "background WAL checkpoint failed; will retry");
        }
    }
}

/// The append thread's connection and what it remembers between batches.
struct Appender {
    conn: rusqlite::Connection,
    /// The log's state after this connection's last commit, and the `data_version` it saw
    /// then: still current while no other connection has committed.
    cached: Option<(i64, LogState)>,
    /// How full the pending and the recent key runs are; `None` until the first append counts
    /// them.
    tiers: Option<KeyTiers>,
}

/// How full the two key tables in front of the level runs are.
#[derive(Clone, Copy, Debug)]
struct KeyTiers {
    pending: TierFill,
    /// How many of the pending keys are in unsorted runs (counted like `TierFill::rows`).
    unsorted: i64,
    recent: TierFill,
}

/// The fill of one key table and where its moves have got to.
#[derive(Clone, Copy, Debug)]
struct TierFill {
    /// About how many rows the table holds (counted at the first append, then kept up to
    /// date; another process's appends make it an underestimate, which only delays a move).
    rows: i64,
    /// The key range to move next.
    next_slice: i64,
}

impl TierFill {
    /// A table found holding `rows`, its moves starting from the first range.
    fn holding(rows: i64) -> TierFill {
        TierFill {
            rows,
            next_slice: 0,
        }
    }

    /// The key range (of `2^bits`) to move now if the table holds `limit` rows or more.
    fn due(&mut self, limit: i64, bits: u32) -> Option<i64> {
        (self.rows >= limit).then(|| {
            let slice = self.next_slice;
            self.next_slice = (slice + 1) % (1 << bits);
            slice
        })
    }
}

/// A write transaction begun and committed through cached statements.
///
/// rusqlite's `Transaction` runs `BEGIN` and `COMMIT` through `execute_batch`, which parses
/// each of them again every time. An append is one transaction, and at half load there are
/// thousands of small ones a second, so those parses (about 8,000 instructions each) were a
/// fixed cost of every batch. Dropped without [`CachedTransaction::commit`] — an error on the
/// way, or a `COMMIT` that failed and left the transaction open — it rolls back, as rusqlite's
/// `Transaction` does.
struct CachedTransaction<'c> {
    conn: &'c Connection,
}

impl<'c> CachedTransaction<'c> {
    /// `BEGIN IMMEDIATE`: the write lock is taken up front, so that the state read and the
    /// writes are one atomic step even if another process shares the file.
    fn begin_immediate(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(CachedTransaction { conn })
    }

    /// Commits; the batch is durable when this returns `Ok` (`synchronous = FULL`).
    fn commit(self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    }
}

impl std::ops::Deref for CachedTransaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for CachedTransaction<'_> {
    fn drop(&mut self) {
        if !self.conn.is_autocommit() {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rolling back a failed append failed");
            }
        }
    }
}

impl Appender {
    fn append(
        &mut self,
        pending: Vec<PendingEntry>,
        now: Timestamp,
        checkpoint: Option<&CheckpointRow>,
    ) -> Result<BatchResult, StoreError> {
        // Whatever happens below, the remembered state is only put back after a commit.
        let cached = self.cached.take();
        let tx = CachedTransaction::begin_immediate(&self.conn)?;
        let mut logged = HashMap::new();
        {
            let mut find = tx.prepare_cached(
                "SELECT idx, integrated_time FROM entries WHERE publisher = ?1 AND idempotency_key = ?2",
            )?;
            for (publisher, key) in idempotency_keys(&pending) {
                let found = find
                    .query_row(params![publisher, key], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                    })
                    .optional()?;
                if let Some((index, time)) = found {
                    logged.insert((publisher, key), (index as u64, ts(time)?));
                }
            }
        }
        let (slots, fresh) = BatchSlots::sort(pending, &logged);
        let version: i64 = tx
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        let state = match cached {
            Some((seen, state)) if seen == version => state,
            _ => read_state(&tx)?,
        };
        let plan = plan_append(state, fresh, now);
        // The values computed for the rows, kept so that the rows can borrow them.
        let computed: Vec<(i64, i64, &str)> = plan
            .rows
            .iter()
            .map(|row| {
                let kind = row.pending.kind.as_str();
                (row.index as i64, row.integrated_time.unix(), kind)
            })
            .collect();
        let entries: Vec<[&dyn ToSql; 11]> = plan
            .rows
            .iter()
            .zip(&computed)
            .map(|(row, (index, time, kind))| {
                let p = &row.pending;
                [
                    index as &dyn ToSql,
                    &row.leaf,
                    &row.leaf_hash,
                    time,
                    kind,
                    &p.publisher,
                    &p.text_sha256,
                    &p.exact_sha256,
                    &p.statement_sha256,
                    &p.idempotency_key,
                    &p.supersedes_sha256,
                ]
            })
            .collect();
        insert_rows(
            &tx,
            "INSERT INTO entries (idx, leaf, leaf_hash, integrated_time, kind, publisher, \
             text_sha256, exact_sha256, statement_sha256, idempotency_key, supersedes_sha256) \
             VALUES ",
            &entries,
            ENTRIES_PER_INSERT,
        )?;
        let mut keys = Vec::with_capacity(plan.rows.len() * 4);
        for (row, (index, _, _)) in plan.rows.iter().zip(&computed) {
            let p = &row.pending;
            keys.extend(entry_keys_of(
                *index,
                [
                    p.text_sha256.as_deref(),
                    p.exact_sha256.as_deref(),
                    Some(p.statement_sha256.as_str()),
                ],
                &row.leaf_hash,
            ));
        }
        // Sorted, the keys fall into their ranges in order, one run each; a key repeated for
        // one entry (its text and exact digests are equal) is stored once.
        keys.sort_unstable();
        keys.dedup();
        let mut tiers = match self.tiers {
            Some(tiers) => tiers,
            None => KeyTiers {
                pending: TierFill::holding(keys_in_runs(&tx, "pending_key_runs", None)?),
                unsorted: keys_in_runs(&tx, "pending_key_runs", Some(UNSORTED_SLICE))?,
                recent: TierFill::holding(keys_in_runs(&tx, "recent_key_runs", None)?),
            },
        };
        tiers.pending.rows += keys.len() as i64;
        if let Some(first_idx) = plan.rows.first().map(|row| row.index as i64) {
            tiers.unsorted = store_pending_keys(&tx, first_idx, keys, tiers.unsorted)?;
        }
        if let Some(slice) = tiers.pending.due(PENDING_KEYS_LIMIT, PENDING_SLICE_BITS) {
            let moved = move_pending_slice(&tx, slice)?;
            tiers.pending.rows -= moved;
            tiers.recent.rows += moved;
        }
        if let Some(slice) = tiers.recent.due(RECENT_KEYS_LIMIT, RECENT_SLICE_BITS) {
            tiers.recent.rows -= move_recent_slice(&tx, slice)?;
        }
        {
            // Leaves are not stored as nodes: each is its entry's `leaf_hash`, written above,
            // and `read_nodes` reads it from there. That is half of the nodes, one B-tree
            // insert per entry fewer. The others are keyed by the last leaf they cover, so
            // the batch's nodes are one run of the key at the table's right edge.
            let mut upper: Vec<(i64, i64, &Hash)> = plan
                .nodes
                .iter()
                .filter(|(id, _)| id.level > 0)
                .map(|(id, hash)| (id.last_leaf() as i64, i64::from(id.level), hash))
                .collect();
            upper.sort_unstable_by_key(|&(end, level, _)| (end, level));
            let nodes: Vec<[&dyn ToSql; 3]> = upper
                .iter()
                .map(|(end, level, hash)| [end as &dyn ToSql, level, hash])
                .collect();
            insert_rows(
                &tx,
                "INSERT INTO tree_nodes_by_end (end_idx, level, hash) VALUES ",
                &nodes,
                NODES_PER_INSERT,
            )?;
        }
        if let Some(c) = checkpoint {
            tx.prepare_cached(
                "INSERT INTO checkpoints (size, root, note) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(size) DO NOTHING",
            )?
            .execute(params![c.size as i64, &c.root[..], c.note])?;
        }
        tx.commit()?;
        self.tiers = Some(tiers);
        self.cached = Some((version, plan.state_after.clone()));
        slots.finish(plan)
    }
}

/// Stores the keys of an append whose first entry is `first_idx` (sorted, without repeats) in
/// the pending runs, given how many keys the unsorted runs already hold; returns how many
/// they hold after. Below [`UNSORTED_KEYS_LIMIT`] in all, the keys become one unsorted run:
/// one row, at the table's right edge. Otherwise they are cut into their key ranges together
/// with the unsorted runs, which are deleted: one run per range, keyed by the earliest append
/// among them (whose own keys were never stored cut, so the key is not taken).
fn store_pending_keys(
    tx: &Connection,
    first_idx: i64,
    mut keys: Vec<(i64, i64)>,
    unsorted: i64,
) -> Result<i64, StoreError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO pending_key_runs (slice, first_idx, keys) VALUES (?1, ?2, ?3)",
    )?;
    let with_these = unsorted + keys.len() as i64;
    if with_these < UNSORTED_KEYS_LIMIT {
        insert.execute(params![UNSORTED_SLICE, first_idx, encode_key_run(&keys)])?;
        return Ok(with_these);
    }
    let mut earliest = first_idx;
    if unsorted > 0 {
        let mut runs = tx.prepare_cached(
            "DELETE FROM pending_key_runs WHERE slice = ?1 RETURNING first_idx, keys",
        )?;
        let mut runs = runs.query([UNSORTED_SLICE])?;
        while let Some(run) = runs.next()? {
            earliest = earliest.min(run.get(0)?);
            keys.extend(decode_key_run(run.get_ref(1)?.as_blob()?)?);
        }
        // Runs sorted each, end to end: the stable sort finds the runs and merges them.
        keys.sort();
        keys.dedup();
    }
    for run in keys.chunk_by(|a, b| key_slice(a.0) == key_slice(b.0)) {
        insert.execute(params![key_slice(run[0].0), earliest, encode_key_run(run)])?;
    }
    Ok(0)
}

/// Moves the pending keys whose top four bits are `slice` into the recent runs of the same
/// key range (four of them), merged in key order; returns how many keys left the pending runs.
/// The runs of one range are a contiguous run of `pending_key_runs`' primary key, so finding
/// them reads only their own pages.
fn move_pending_slice(tx: &Connection, slice: i64) -> Result<i64, StoreError> {
    let mut keys = Vec::new();
    {
        let mut runs =
            tx.prepare_cached("DELETE FROM pending_key_runs WHERE slice = ?1 RETURNING keys")?;
        let mut runs = runs.query([slice])?;
        while let Some(run) = runs.next()? {
            keys.extend(decode_key_run(run.get_ref(0)?.as_blob()?)?);
        }
    }
    let moved = keys.len() as i64;
    // The runs are sorted each: the stable sort finds them and merges.
    keys.sort();
    let mut read = tx.prepare_cached("SELECT keys FROM recent_key_runs WHERE slice = ?1")?;
    let mut write =
        tx.prepare_cached("INSERT OR REPLACE INTO recent_key_runs (slice, keys) VALUES (?1, ?2)")?;
    for group in keys.chunk_by(|a, b| recent_slice(a.0) == recent_slice(b.0)) {
        let recent = recent_slice(group[0].0);
        let mut merged: Vec<(i64, i64)> = match read
            .query_row([recent], |r| r.get::<_, Vec<u8>>(0))
            .optional()?
        {
            Some(blob) => decode_key_run(&blob)?.collect(),
            None => Vec::new(),
        };
        merged.extend_from_slice(group);
        // Two sorted runs end to end: the stable sort merges them in one pass, where the
        // unstable one sorted them afresh (about a tenth of the append thread's instructions
        // outside leaf hashing, counted under callgrind).
        merged.sort();
        merged.dedup();
        write.execute(params![recent, encode_key_run(&merged)])?;
    }
    Ok(moved)
}

/// Moves the recent run of key range `slice` (of [`RECENT_SLICE_BITS`]) into the level runs
/// of its range; returns how many keys it held.
fn move_recent_slice(tx: &Connection, slice: i64) -> Result<i64, StoreError> {
    let run = tx
        .prepare_cached("DELETE FROM recent_key_runs WHERE slice = ?1 RETURNING keys")?
        .query_row([slice], |r| r.get::<_, Vec<u8>>(0))
        .optional()?;
    match run {
        Some(blob) => {
            let keys: Vec<(i64, i64)> = decode_key_run(&blob)?.collect();
            let moved = keys.len() as i64;
            add_level_run(tx, slice, keys)?;
            Ok(moved)
        }
        None => Ok(0),
    }
}

/// How many runs one level of a key range may hold before they are merged into one run of the
/// next level: the most a range's level has is one fewer. A key is written once per level,
/// and a lookup visits every run of its range. At 2, a range whose count of moves is n (the
/// count starts at the range's number: see [`add_level_run`]) holds one run per binary digit
/// of n that is 1: a range of 100,000 keys (a log of about 1.6 million entries, about a
/// hundred moves) at most eight runs on eight levels, and each key was written at most eight
/// times. At 4 a key was written about half as often, but a lookup visited about
/// three times as many runs; appends cost no less CPU and lookups about 40 % more time in a
/// log of a million entries (`docs/BENCHMARKS.md`, fifteenth session).
pub(super) const LEVEL_FANOUT: usize = 2;

/// How many (key, index) pairs one block of a level run holds: 1,920 bytes, under the
/// 2,030 bytes of payload an 8 KB page of a `WITHOUT ROWID` table keeps in the page itself,
/// so that a lookup reads one page per block rather than an overflow chain as well.
pub(super) const LEVEL_BLOCK_PAIRS: usize = 120;

/// Adds `keys` (sorted, without repeats, all of recent key range `slice`) to that range's
/// level runs as a run of level 1; returns the level they were written on (0 for no keys,
/// which change nothing). Where the level already holds [`LEVEL_FANOUT`] − 1 runs,
/// they are taken out and merged with the new one, which goes one level up instead, and so on
/// upwards: each range keeps fewer than [`LEVEL_FANOUT`] runs per level.
///
/// A range's first move also lays down empty placeholder runs: as many, level by level, as
/// the digits of the range's number in base [`LEVEL_FANOUT`]. Every range receives keys at the
/// same rate and the moves rotate over the ranges, so without them all 64 ranges would reach
/// the same number of moves together, and at every power of two all 64 would merge their whole
/// index within the same 64 moves. Started at different counts, the ranges take their large
/// merges in turn: into a level above the sixth, at most one range per round of moves. A
/// placeholder holds no keys, so merging it costs nothing and lookups skip it; each key is
/// still written at most once per level.
pub(super) fn add_level_run(
    tx: &Connection,
    slice: i64,
    mut keys: Vec<(i64, i64)>,
) -> Result<i64, StoreError> {
    if keys.is_empty() {
        return Ok(0);
    }
    let first_move: bool = tx
        .prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM level_runs WHERE slice = ?1)")?
        .query_row([slice], |r| r.get(0))?;
    if first_move {
        let mut placeholder = tx.prepare_cached(
            "INSERT INTO level_runs (slice, level, run, keys) VALUES (?1, ?2, ?3, 0)",
        )?;
        for (level, runs) in digits_by_level(slice) {
            for run in 0..runs {
                placeholder.execute([slice, level, run])?;
            }
        }
    }
    let mut level: i64 = 1;
    loop {
        let runs: Vec<i64> = tx
            .prepare_cached("SELECT run FROM level_runs WHERE slice = ?1 AND level = ?2")?
            .query_map([slice, level], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if runs.len() + 1 < LEVEL_FANOUT {
            let run = runs.iter().max().map_or(0, |r| r + 1);
            write_level_run(tx, slice, level, run, &keys)?;
            return Ok(level);
        }
        {
            let mut blocks = tx.prepare_cached(
                "DELETE FROM level_run_blocks WHERE slice = ?1 AND level = ?2 RETURNING keys",
            )?;
            let mut blocks = blocks.query([slice, level])?;
            while let Some(block) = blocks.next()? {
                keys.extend(decode_key_run(block.get_ref(0)?.as_blob()?)?);
            }
        }
        tx.prepare_cached("DELETE FROM level_runs WHERE slice = ?1 AND level = ?2")?
            .execute([slice, level])?;
        // Sorted runs end to end: the stable sort finds and merges them.
        keys.sort();
        keys.dedup();
        level += 1;
    }
}

/// The digits of `n` in base [`LEVEL_FANOUT`], lowest first, as (level, digit) for the digits
/// that are not zero: the runs each level of a range holds once its count of moves is `n`.
pub(super) fn digits_by_level(mut n: i64) -> Vec<(i64, i64)> {
    let mut digits = Vec::new();
    let mut level = 1;
    while n > 0 {
        let digit = n % LEVEL_FANOUT as i64;
        if digit > 0 {
            digits.push((level, digit));
        }
        n /= LEVEL_FANOUT as i64;
        level += 1;
    }
    digits
}

/// Writes `keys` (sorted, not empty) as run `run` of `level` in key range `slice`: its row in
/// `level_runs` and its blocks, in key order.
fn write_level_run(
    tx: &Connection,
    slice: i64,
    level: i64,
    run: i64,
    keys: &[(i64, i64)],
) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT INTO level_runs (slice, level, run, keys) VALUES (?1, ?2, ?3, ?4)")?
        .execute([slice, level, run, keys.len() as i64])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO level_run_blocks (slice, level, run, first_key, first_idx, keys) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for block in keys.chunks(LEVEL_BLOCK_PAIRS) {
        let (first_key, first_idx) = block[0];
        insert.execute(params![
            slice,
            level,
            run,
            first_key,
            first_idx,
            encode_key_run(block)
        ])?;
    }
    Ok(())
}

/// How many (key, index) rows one `INSERT` of a move writes. A statement per row paid the
/// statement's set-up (binding, opening the table's cursor, finding its place from the root)
/// for every key; a row list shares it among this many.
const KEYS_PER_INSERT: usize = 64;

/// How many entries one `INSERT` writes (11 values each, 176 in all, well under SQLite's
/// limit of 32,766 bound values).
const ENTRIES_PER_INSERT: usize = 16;

/// How many tree nodes one `INSERT` writes (a batch completes about one per entry).
const NODES_PER_INSERT: usize = 64;

/// Inserts `keys` into `entry_keys` in key order, so that neighbouring keys share pages; a key
/// already there is left alone. Returns how many keys there were before duplicates were
/// dropped.
pub(super) fn insert_into_index(
    tx: &Connection,
    mut keys: Vec<(i64, i64)>,
) -> Result<i64, StoreError> {
    let moved = keys.len();
    keys.sort_unstable();
    keys.dedup();
    let rows: Vec<[&dyn ToSql; 2]> = keys
        .iter()
        .map(|(key, idx)| [key as &dyn ToSql, idx])
        .collect();
    insert_rows(
        tx,
        "INSERT OR IGNORE INTO entry_keys (key, idx) VALUES ",
        &rows,
        KEYS_PER_INSERT,
    )?;
    Ok(i64::try_from(moved).unwrap_or(i64::MAX))
}

/// Runs `head` (an `INSERT … VALUES ` without its rows) for every row of `rows`, up to
/// `per_statement` rows to a statement. Each statement pays its set-up (binding, opening the
/// table's cursor, finding the place from the root) once for all its rows; a batch's rows
/// written one statement each paid it for every row. The few rows left over go one at a
/// time, so that only two statement shapes per table are ever prepared and cached.
fn insert_rows<const N: usize>(
    tx: &Connection,
    head: &str,
    rows: &[[&dyn ToSql; N]],
    per_statement: usize,
) -> Result<(), StoreError> {
    let row = format!("({})", vec!["?"; N].join(", "));
    let mut chunks = rows.chunks_exact(per_statement.max(1));
    if rows.len() >= per_statement {
        let all = vec![row.as_str(); per_statement].join(", ");
        let mut many = tx.prepare_cached(&format!("{head}{all}"))?;
        for chunk in &mut chunks {
            many.execute(rusqlite::params_from_iter(chunk.iter().flatten()))?;
        }
    }
    let mut one = tx.prepare_cached(&format!("{head}{row}"))?;
    for values in chunks.remainder() {
        one.execute(&values[..])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{
        add_level_run, digits_by_level, insert_into_index, insert_rows, CachedTransaction,
        LEVEL_BLOCK_PAIRS, PENDING_SLICE_BITS, RECENT_SLICE_BITS,
    };
    use crate::storage::sqlite::{
        decode_key_run, encode_key_run, key_slice, level_run_matches, recent_slice, KEY_PAIR_BYTES,
        SCHEMA,
    };
    use crate::storage::StoreError;

    /// A pending run's blob gives back the pairs it was made of, negative keys included, and
    /// a blob cut short is refused as corrupt rather than read as other pairs.
    #[test]
    fn key_runs_round_trip_and_refuse_a_torn_blob() {
        let pairs = vec![(i64::MIN, 0), (-1, 7), (0, 1 << 40), (i64::MAX, i64::MAX)];
        let blob = encode_key_run(&pairs);
        assert_eq!(blob.len(), 16 * pairs.len());
        let back: Vec<(i64, i64)> = decode_key_run(&blob).unwrap().collect();
        assert_eq!(back, pairs);
        assert!(matches!(
            decode_key_run(&blob[..blob.len() - 1]),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(
            pairs.iter().map(|&(k, _)| key_slice(k)).collect::<Vec<_>>(),
            vec![8, 15, 0, 7]
        );
    }

    /// An append's transaction is all or nothing, batch after batch on one connection: its
    /// writes count only once `commit` returns, one dropped on an error's way out is rolled
    /// back, and so is one whose `COMMIT` was refused (here a deferred foreign key). Each time
    /// the connection is left ready for the next batch.
    #[test]
    fn cached_transactions_commit_whole_or_roll_back() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; \
             CREATE TABLE parent (id INTEGER PRIMARY KEY); \
             CREATE TABLE t (a INTEGER PRIMARY KEY, \
             p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
        )
        .unwrap();
        let rows = |conn: &rusqlite::Connection| -> Vec<i64> {
            conn.prepare("SELECT a FROM t ORDER BY a")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        for round in 0..3i64 {
            let tx = CachedTransaction::begin_immediate(&conn).unwrap();
            tx.execute("INSERT INTO t (a) VALUES (?1)", [10 * round])
                .unwrap();
            assert!(!conn.is_autocommit(), "round {round}: no transaction open");
            tx.commit().unwrap();
            assert!(conn.is_autocommit(), "round {round}: commit left it open");

            let tx = CachedTransaction::begin_immediate(&conn).unwrap();
            tx.execute("INSERT INTO t (a) VALUES (?1)", [10 * round + 1])
                .unwrap();
            drop(tx);
            assert!(conn.is_autocommit(), "round {round}: drop left it open");

            let tx = CachedTransaction::begin_immediate(&conn).unwrap();
            tx.execute("INSERT INTO t (a, p) VALUES (?1, 99)", [10 * round + 2])
                .unwrap();
            let refused = tx.commit();
            assert!(
                refused.is_err(),
                "round {round}: a dangling reference committed"
            );
            assert!(
                conn.is_autocommit(),
                "round {round}: a refused commit left it open"
            );

            let expected: Vec<i64> = (0..=round).map(|r| 10 * r).collect();
            assert_eq!(rows(&conn), expected, "round {round}");
        }
    }

    /// Every row is written once whatever the number of rows against the rows per statement
    /// (none, fewer, exactly, several statements and a remainder), and a key repeated in a
    /// move or already in the table is kept once.
    #[test]
    fn rows_are_written_in_statements_of_many_and_the_rest_one_by_one() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT NOT NULL); \
             CREATE TABLE entry_keys (key INTEGER NOT NULL, idx INTEGER NOT NULL, \
             PRIMARY KEY (key, idx)) WITHOUT ROWID",
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        let mut next = 0i64;
        for count in [0usize, 1, 4, 5, 13] {
            let numbers: Vec<(i64, String)> = (next..next + count as i64)
                .map(|n| (n, format!("row {n}")))
                .collect();
            next += count as i64;
            let rows: Vec<[&dyn rusqlite::ToSql; 2]> =
                numbers.iter().map(|(a, b)| [a as _, b as _]).collect();
            insert_rows(&tx, "INSERT INTO t (a, b) VALUES ", &rows, 5).unwrap();
        }
        let written: Vec<(i64, String)> = tx
            .prepare("SELECT a, b FROM t ORDER BY a")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected: Vec<(i64, String)> = (0..next).map(|n| (n, format!("row {n}"))).collect();
        assert_eq!(written, expected);
        let keys: Vec<(i64, i64)> = (0..200).map(|n| (n % 150 - 75, n % 150)).collect();
        assert_eq!(insert_into_index(&tx, keys.clone()).unwrap(), 200);
        assert_eq!(insert_into_index(&tx, keys).unwrap(), 200);
        let stored: i64 = tx
            .query_row("SELECT COUNT(*) FROM entry_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 150);
    }

    /// Moved recent runs become level runs of their key range: one level keeps fewer than
    /// `LEVEL_FANOUT` runs, the fanout-th merges them one level up, so that after n moves the
    /// levels of range r hold the digits of n + r in base `LEVEL_FANOUT` (the placeholders
    /// start its count at r; 21 at a fanout of 2: one run on levels 1, 3 and 5). No keys
    /// change nothing. Two ranges take moves in turn, one of positive keys and one of
    /// negative keys, and neither's merges touch the other's runs. Every key stays stored
    /// exactly once, each run's blocks are in key order and full but the last, and a lookup
    /// finds every index of a key, also of one whose pairs fill several blocks, from a run's
    /// first block or from the middle of a block that starts with a smaller key, and only in
    /// its own range.
    #[test]
    fn level_runs_merge_upwards_and_keep_every_key_findable() {
        assert_eq!(digits_by_level(21), [(1, 1), (3, 1), (5, 1)][..]);
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for statement in SCHEMA {
            conn.execute_batch(statement).unwrap();
        }
        let runs_per_level = |slice: i64| -> Vec<(i64, i64)> {
            conn.prepare(
                "SELECT level, COUNT(*) FROM level_runs WHERE slice = ?1 \
                 GROUP BY level ORDER BY level",
            )
            .unwrap()
            .query_map([slice], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        };
        assert_eq!(add_level_run(&conn, 5, Vec::new()).unwrap(), 0);
        assert!(runs_per_level(5).is_empty(), "no keys, no placeholders");
        // Range 5 holds positive keys, range 40 negative ones (its top bit is set).
        let ranges = [(5i64, 21i64), (40, 6)];
        let low = |slice: i64| slice_bounds(slice, RECENT_SLICE_BITS).0;
        assert!(low(5) > 0 && low(40) < 0);
        // Per move, 100 keys spread over the range; key `low + 7` (below all of them) and key
        // `low + 50_500` (among them) in every move with an index of their own, and 300 times
        // more each in the first move, so that their pairs span blocks.
        let repeated = |slice: i64| [low(slice) + 7, low(slice) + 50_500];
        let mut all: Vec<Vec<(i64, i64)>> = vec![Vec::new(); ranges.len()];
        for moved in 0..21i64 {
            for (r, &(slice, moves)) in ranges.iter().enumerate() {
                if moved >= moves {
                    continue;
                }
                let mut keys: Vec<(i64, i64)> = (0..100)
                    .map(|n| (low(slice) + 100 + n * 1000 + moved, moved * 1000 + n))
                    .collect();
                for (k, key) in repeated(slice).into_iter().enumerate() {
                    let k = k as i64;
                    keys.push((key, 100_000 * (k + 1) + moved));
                    if moved == 0 {
                        keys.extend((0..300).map(|n| (key, 1_000_000 * (k + 1) + n)));
                    }
                }
                keys.sort();
                keys.dedup();
                all[r].extend(&keys);
                add_level_run(&conn, slice, keys).unwrap();
                // Placeholders start range n's count at n.
                assert_eq!(
                    runs_per_level(slice),
                    digits_by_level(moved + 1 + slice),
                    "range {slice} after move {moved}"
                );
            }
        }
        for (r, &(slice, moves)) in ranges.iter().enumerate() {
            assert_eq!(runs_per_level(slice), digits_by_level(moves + slice));
            let runs: Vec<(i64, i64)> = conn
                .prepare("SELECT level, run FROM level_runs WHERE slice = ?1 AND keys > 0")
                .unwrap()
                .query_map([slice], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let mut stored: Vec<(i64, i64)> = Vec::new();
            for (level, run) in runs {
                let blocks: Vec<(i64, i64, Vec<u8>)> = conn
                    .prepare(
                        "SELECT first_key, first_idx, keys FROM level_run_blocks \
                         WHERE slice = ?1 AND level = ?2 AND run = ?3 \
                         ORDER BY first_key, first_idx",
                    )
                    .unwrap()
                    .query_map([slice, level, run], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let mut pairs: Vec<(i64, i64)> = Vec::new();
                for (i, (first_key, first_idx, blob)) in blocks.iter().enumerate() {
                    let block: Vec<(i64, i64)> = decode_key_run(blob).unwrap().collect();
                    assert_eq!(
                        block[0],
                        (*first_key, *first_idx),
                        "keyed by its first pair"
                    );
                    let last = i + 1 == blocks.len();
                    assert!(
                        block.len() == LEVEL_BLOCK_PAIRS
                            || (last && block.len() <= LEVEL_BLOCK_PAIRS),
                        "range {slice}, level {level}: block {i} holds {}",
                        block.len()
                    );
                    pairs.extend(block);
                }
                assert!(
                    pairs.windows(2).all(|w| w[0] < w[1]),
                    "range {slice}, level {level}: the run is sorted without repeats"
                );
                stored.extend(pairs);
            }
            stored.sort();
            all[r].sort();
            assert_eq!(
                stored, all[r],
                "range {slice}: every moved key is stored once"
            );
            for (k, key) in repeated(slice).into_iter().enumerate() {
                let k = k as i64;
                let mut found = level_run_matches(&conn, key).unwrap();
                found.sort();
                let mut expected: Vec<i64> = (0..moves).map(|m| 100_000 * (k + 1) + m).collect();
                expected.extend((0..300).map(|n| 1_000_000 * (k + 1) + n));
                assert_eq!(found, expected, "range {slice}: every index of key {key}");
            }
            for &(key, idx) in all[r].iter().step_by(37) {
                assert!(
                    level_run_matches(&conn, key).unwrap().contains(&idx),
                    "key {key} finds index {idx}"
                );
            }
            assert_eq!(
                level_run_matches(&conn, low(slice) + 1).unwrap(),
                Vec::<i64>::new()
            );
        }
        // A range that took no moves finds nothing, even at a key stored in another range's
        // runs under the same low bits.
        assert_eq!(
            level_run_matches(&conn, low(6) + 7).unwrap(),
            Vec::<i64>::new()
        );
    }

    /// The 64 ranges, moved in rotation as the append thread moves them, take their large
    /// merges in turn: in each round of moves at most one range writes above the sixth level
    /// (a merge of at least 64 moves' keys), where without the placeholder runs all 64 would in
    /// the same round, every 64 rounds. Each range's `level_runs` rows still say how many pairs
    /// its blocks hold, 0 for the placeholders.
    #[test]
    fn ranges_take_their_large_merges_in_turn() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for statement in SCHEMA {
            conn.execute_batch(statement).unwrap();
        }
        let ranges = 1i64 << RECENT_SLICE_BITS;
        let mut high_writes = 0;
        for round in 0..130i64 {
            let mut high_this_round = Vec::new();
            for slice in 0..ranges {
                let low = slice_bounds(slice, RECENT_SLICE_BITS).0;
                let keys = vec![(low + 2 * round, round), (low + 2 * round + 1, round)];
                let level = add_level_run(&conn, slice, keys).unwrap();
                if level > 6 {
                    high_this_round.push(slice);
                }
            }
            assert!(
                high_this_round.len() <= 1,
                "round {round}: ranges {high_this_round:?} merged above level 6"
            );
            high_writes += high_this_round.len();
        }
        assert!(
            high_writes >= 64,
            "every range merged above level 6: {high_writes}"
        );
        let mismatched: i64 = conn
            .query_row(
                &format!(
                    "SELECT COUNT(*) FROM level_runs r WHERE keys != \
                     (SELECT COALESCE(SUM(length(b.keys)), 0) / {KEY_PAIR_BYTES} \
                     FROM level_run_blocks b \
                     WHERE b.slice = r.slice AND b.level = r.level AND b.run = r.run)"
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(mismatched, 0, "every run's count matches its blocks");
    }

    /// The smallest and largest key whose top `bits` bits (1..64) are `slice`.
    fn slice_bounds(slice: i64, bits: u32) -> (i64, i64) {
        let shift = 64 - bits;
        let low = ((slice as u64) << shift) as i64;
        (low, low | (((1u64 << shift) - 1) as i64))
    }

    /// Every key falls in exactly the slice its top bits name, and the slices cover the whole
    /// signed range as contiguous intervals without overlap, for the pending and the recent
    /// cuts; a pending range holds exactly four recent ranges, the ones a pending move merges
    /// into.
    #[test]
    fn key_ranges_are_contiguous_and_nest() {
        for bits in [PENDING_SLICE_BITS, RECENT_SLICE_BITS] {
            let top_bits = |key: i64| ((key as u64) >> (64 - bits)) as i64;
            for key in [
                i64::MIN,
                i64::MIN + 1,
                -(1 << 60) - 1,
                -(1 << 60),
                -(1 << 58),
                -1,
                0,
                1,
                (1 << 58) - 1,
                1 << 58,
                (1 << 60) - 1,
                1 << 60,
                i64::MAX,
                0x7abc_def0_1234_5678,
                -0x1234_5678_9abc_def0,
            ] {
                let slice = top_bits(key);
                for other in 0..(1 << bits) {
                    let (low, high) = slice_bounds(other, bits);
                    assert_eq!(
                        (low..=high).contains(&key),
                        other == slice,
                        "{bits} bits: key {key:#x}, slice {other}"
                    );
                }
            }
            for slice in 0..(1 << bits) {
                let (low, high) = slice_bounds(slice, bits);
                assert_eq!((top_bits(low), top_bits(high)), (slice, slice));
            }
        }
        // The cuts are the ones the runs are stored by, and they nest.
        for key in [
            i64::MIN,
            -(1 << 58) - 1,
            -1,
            0,
            (1 << 58) - 1,
            1 << 60,
            i64::MAX,
        ] {
            let (low, high) = slice_bounds(key_slice(key), PENDING_SLICE_BITS);
            assert!((low..=high).contains(&key));
            let (low, high) = slice_bounds(recent_slice(key), RECENT_SLICE_BITS);
            assert!((low..=high).contains(&key));
            assert_eq!(recent_slice(key) >> 2, key_slice(key), "{key:#x}");
        }
    }
}
