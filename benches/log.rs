//! Transparency-log benchmarks on SQLite: durable appends (group commit) and inclusion proofs.
//!
//! A plain `fn main` (no criterion): every case runs a fixed amount of work once and prints
//! what it measured. Run with
//!
//! ```text
//! cargo bench --bench log
//! ```
//!
//! Environment knobs (all optional):
//! - `BYLINE_BENCH_DIR`: where to put the temporary databases (default: the system temp dir).
//!   Use a real disk, not tmpfs, or the fsync numbers mean nothing.
//! - `BYLINE_BENCH_QUICK=1`: small counts and small trees, for checking that the bench runs.
//! - `BYLINE_BENCH_ONLY=1d`: only the CPU-per-entry comparison (1d), which runs first.
//! - `BYLINE_BENCH_ONLY=1e`: only the growing log's append CPU and lookup times (1e).
//!
//! See docs/BENCHMARKS.md for what each number means.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use rusqlite::types::ToSqlOutput;
use rusqlite::{params, params_from_iter, Connection, TransactionBehavior};

use byline::core::digest::{ArticleDigests, Sha256Digest};
use byline::core::keys::SigningKey;
use byline::core::logproof::leaf_bytes;
use byline::core::manifest::{AiSystem, AuthorshipClass, Human, Publisher, Timestamp};
use byline::core::merkle::{
    inclusion_proof_plan, leaf_hash, verify_inclusion, CompactRange, Hash, NodeId,
};
use byline::core::sign::{build_statement, sign_statement, Authorship};
use byline::service::log::{inclusion_proof, LogSigner, Sequencer, SequencerSettings};
use byline::storage::sqlite::{open_connection, SqliteStore};
use byline::storage::{plan_append, EntryKind, LogState, PendingEntry, Store};

const PUBLISHER: &str = "news.example";
const LOG_ORIGIN: &str = "bench.byline.example/log";

/// How much work each case does.
struct Plan {
    /// (batch size, entries) for `Store::append`.
    store_cases: Vec<(usize, usize)>,
    /// (submitters, entries) for the sequencer.
    sequencer_cases: Vec<(usize, usize)>,
    /// Commits for the cost-floor measurements.
    floor_commits: usize,
    /// Log sizes at which to time appends to an already large log (1c).
    grown_logs: Vec<u64>,
    /// Batch sizes for the CPU-per-entry comparison (1d).
    cpu_cases: Vec<usize>,
    /// Entries per case of 1d.
    cpu_entries: usize,
    /// 1e: how many stretches of how many entries the growing log is appended, and how many
    /// lookups are timed after each.
    growth: (usize, usize, usize),
    /// Tree sizes for the proof benchmark.
    tree_sizes: Vec<u64>,
    /// Proofs per tree.
    proofs: usize,
}

impl Plan {
    fn full() -> Self {
        Plan {
            store_cases: vec![(1, 4_000), (16, 16_000), (256, 20_480)],
            sequencer_cases: vec![(1, 4_000), (8, 16_000), (64, 20_480)],
            floor_commits: 4_000,
            grown_logs: vec![50_000, 200_000],
            cpu_cases: vec![16, 256],
            cpu_entries: 20_480,
            growth: (10, 102_400, 2_000),
            tree_sizes: vec![1_000_000, 10_000_000],
            proofs: 1_000,
        }
    }

    fn quick() -> Self {
        Plan {
            store_cases: vec![(1, 200), (16, 800), (256, 2_048)],
            sequencer_cases: vec![(1, 200), (8, 800), (64, 2_048)],
            floor_commits: 200,
            grown_logs: vec![2_000, 8_000],
            cpu_cases: vec![16, 256],
            cpu_entries: 2_048,
            growth: (3, 2_048, 200),
            tree_sizes: vec![10_000, 100_000],
            proofs: 200,
        }
    }
}

fn main() -> Result<()> {
    let quick = std::env::var("BYLINE_BENCH_QUICK").is_ok_and(|v| v == "1");
    let plan = if quick { Plan::quick() } else { Plan::full() };
    let base = match std::env::var_os("BYLINE_BENCH_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir(),
    };
    std::fs::create_dir_all(&base)?;
    let dir = tempfile::Builder::new()
        .prefix("byline-bench-")
        .tempdir_in(&base)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    print_machine(dir.path(), quick);
    runtime.block_on(run(&plan, dir.path()))?;
    println!(
        "\nTotal bench wall time: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn run(plan: &Plan, dir: &Path) -> Result<()> {
    // ---- Entries ------------------------------------------------------------------------
    let most = plan
        .store_cases
        .iter()
        .chain(&plan.sequencer_cases)
        .map(|c| c.1)
        .max()
        .unwrap_or(0);
    let key = SigningKey::danger_from_seed(&[7; 32]);
    let t = Instant::now();
    let entries = make_entries(most, &key)?;
    let setup = t.elapsed();
    let sample_payload = entries[0].envelope.payload.len() * 3 / 4;
    let sample_leaf = leaf_bytes(&entries[0].envelope, &Timestamp::now().to_string()).len();
    let mean_leaf = entries
        .iter()
        .take(1000)
        .map(|e| leaf_bytes(&e.envelope, "2026-11-28T18:00:00Z").len())
        .sum::<usize>()
        / entries.len().min(1000);
    println!("\n== Test entries ==");
    println!(
        "{most} manifests built with build_statement + sign_statement (Ed25519 DSSE) in {:.2} s \
         (setup only, single-threaded; not the signing benchmark)",
        setup.as_secs_f64()
    );
    println!(
        "statement payload ~{sample_payload} B, leaf (JCS of envelope + time) ~{sample_leaf} B \
         (mean of first 1000: {mean_leaf} B); no idempotency keys"
    );

    if std::env::var("BYLINE_BENCH_ONLY").is_ok_and(|v| v == "1e") {
        let (stretches, per_stretch, lookups) = plan.growth;
        return bench_index_growth(
            &dir.join("growth.db"),
            &entries,
            stretches,
            per_stretch,
            lookups,
        )
        .await;
    }
    println!(
        "\n== 1d. The log's CPU per entry: SQLite against an append-only leaf file, fresh per case =="
    );
    println!(
        "The same batches through Store::append on SQLite, and through plan_append (leaves, leaf \
         hashes, tree nodes) with the batch's leaves written to a plain file in one write and \
         fdatasync. The file is a floor, not a store: no indexes, no stored nodes, no reads."
    );
    println!(
        "{:>6} {:>8} {:>14} {:>14} {:>8} {:>13} {:>13}",
        "batch", "entries", "SQLite us/e", "file us/e", "ratio", "SQLite ms/b", "file ms/b"
    );
    for (i, &batch) in plan.cpu_cases.iter().enumerate() {
        let total = entries.len().min(plan.cpu_entries);
        let path = dir.join(format!("cpu-{i}.db"));
        let r = bench_store_append(&path, &entries[..total], batch).await?;
        let sqlite = AppendCpu {
            cpu: r.cpu,
            wall: r.elapsed,
        };
        remove_db(&path);
        let path = dir.join(format!("cpu-{i}.leaves"));
        let file = leaf_file_append_cpu(&path, &entries[..total], batch)?;
        let _ = std::fs::remove_file(&path);
        let per_entry = |c: &AppendCpu| c.cpu.as_secs_f64() * 1e6 / total as f64;
        let per_batch = |c: &AppendCpu| ms(c.wall) / total.div_ceil(batch) as f64;
        println!(
            "{:>6} {:>8} {:>14.2} {:>14.2} {:>7.1}x {:>13.3} {:>13.3}",
            batch,
            total,
            per_entry(&sqlite),
            per_entry(&file),
            per_entry(&sqlite) / per_entry(&file).max(1e-9),
            per_batch(&sqlite),
            per_batch(&file),
        );
    }
    println!(
        "  us/e: the process's CPU time (user + system, all threads: SQLite's append and WAL \
         checkpoint threads included) per entry; ms/b: wall time per batch."
    );
    if std::env::var("BYLINE_BENCH_ONLY").is_ok_and(|v| v == "1d") {
        return Ok(());
    }

    // ---- 1. Appends -----------------------------------------------------------------------
    println!(
        "\n== 1a. Store::append on SQLite (WAL, synchronous=FULL), fresh database per case =="
    );
    println!(
        "Each batch is one BEGIN IMMEDIATE ... COMMIT transaction; times include the commit fsync."
    );
    let mut store_results = Vec::new();
    for (i, &(batch, total)) in plan.store_cases.iter().enumerate() {
        let path = dir.join(format!("append-{i}.db"));
        let r = bench_store_append(&path, &entries[..total], batch).await?;
        store_results.push(r);
        remove_db(&path);
    }
    println!(
        "{:>6} {:>8} {:>8} {:>11} {:>10} {:>11} {:>11} {:>12} {:>12} {:>11} {:>11}",
        "batch",
        "entries",
        "batches",
        "entries/s",
        "batches/s",
        "p50 ms/b",
        "p99 ms/b",
        "first10% ms",
        "last10% ms",
        "stateQ ms",
        "maxidx ms"
    );
    for r in &store_results {
        println!(
            "{:>6} {:>8} {:>8} {:>11.0} {:>10.1} {:>11.3} {:>11.3} {:>12.3} {:>12.3} {:>11.3} {:>11.3}",
            r.batch,
            r.entries,
            r.batches,
            r.entries as f64 / r.elapsed.as_secs_f64(),
            r.batches as f64 / r.elapsed.as_secs_f64(),
            ms(r.p50),
            ms(r.p99),
            ms(r.first_decile),
            ms(r.last_decile),
            ms(r.state_query),
            ms(r.max_idx_query),
        );
    }
    println!(
        "  first10%/last10%: mean batch latency over the first and last tenth of the batches \
         (the log grows during the run)."
    );
    println!(
        "  stateQ: the append's state read, the newest entry by index (`{STATE_QUERY}`), on the \
         final table (median of 21); maxidx: `SELECT MAX(idx) FROM entries` alone."
    );
    if let (Some(first), Some(last)) = (store_results.first(), store_results.last()) {
        println!(
            "  ratio: batch {} vs batch {}: {:.1}x entries/s",
            last.batch,
            first.batch,
            (last.entries as f64 / last.elapsed.as_secs_f64())
                / (first.entries as f64 / first.elapsed.as_secs_f64())
        );
    }

    println!("\n== Durable-write cost floor (same machine, same directory) ==");
    let floor = bench_floor(dir, plan.floor_commits)?;
    println!(
        "{:<62} {:>10} {:>10} {:>10}",
        "pattern", "commits/s", "p50 ms", "p99 ms"
    );
    for (name, f) in &floor {
        println!(
            "{:<62} {:>10.0} {:>10.3} {:>10.3}",
            name,
            f.count as f64 / f.elapsed.as_secs_f64(),
            ms(f.p50),
            ms(f.p99)
        );
    }
    if let (Some(first), Some((_, sqlite_floor))) = (store_results.first(), floor.get(1)) {
        println!(
            "  ratio: Store::append batch {} reaches {:.0}% of the bare SQLite commit rate",
            first.batch,
            100.0 * (first.batches as f64 / first.elapsed.as_secs_f64())
                / (sqlite_floor.count as f64 / sqlite_floor.elapsed.as_secs_f64())
        );
    }

    println!(
        "\n== 1b. Sequencer (group commit, SequencerSettings::default(): max_batch {}, \
         max_wait {} us, queue {}), fresh database per case ==",
        SequencerSettings::default().max_batch,
        SequencerSettings::default().max_wait.as_micros(),
        SequencerSettings::default().queue,
    );
    println!(
        "Each submitter awaits Sequencer::submit in a loop (closed loop). Per batch the sequencer \
         commits the entries (with the previous batch's checkpoint in the same transaction), \
         then signs the new checkpoint."
    );
    let signer = Arc::new(
        LogSigner::new(SigningKey::danger_from_seed(&[9; 32]), LOG_ORIGIN)
            .map_err(|e| anyhow!("log signer: {e}"))?,
    );
    let mut seq_results = Vec::new();
    for (i, &(submitters, total)) in plan.sequencer_cases.iter().enumerate() {
        let path = dir.join(format!("sequencer-{i}.db"));
        let r = bench_sequencer(&path, &entries[..total], submitters, signer.clone()).await?;
        seq_results.push(r);
        remove_db(&path);
    }
    println!(
        "{:>10} {:>8} {:>11} {:>8} {:>11} {:>11} {:>11} {:>11}",
        "submitters",
        "entries",
        "entries/s",
        "batches",
        "mean batch",
        "max batch",
        "p50 ms",
        "p99 ms"
    );
    for r in &seq_results {
        println!(
            "{:>10} {:>8} {:>11.0} {:>8} {:>11.2} {:>11} {:>11.3} {:>11.3}",
            r.submitters,
            r.entries,
            r.entries as f64 / r.elapsed.as_secs_f64(),
            r.batches,
            r.entries as f64 / r.batches as f64,
            r.max_batch,
            ms(r.p50),
            ms(r.p99)
        );
    }
    println!(
        "  batches: from the metrics counters (byline_log_batches_total delta); \
         max batch: most entries sharing one tree size. p50/p99: per-entry submit() latency."
    );
    if let (Some(first), Some(last)) = (seq_results.first(), seq_results.last()) {
        println!(
            "  ratio: {} vs {} submitters: {:.1}x entries/s",
            last.submitters,
            first.submitters,
            (last.entries as f64 / last.elapsed.as_secs_f64())
                / (first.entries as f64 / first.elapsed.as_secs_f64())
        );
    }

    println!(
        "\n== 1c. Store::append on a log that already holds N entries (prefilled with raw INSERTs) =="
    );
    println!(
        "Prefill: realistic leaves (the entries above, cycled) and their tree nodes written with \
         multi-row INSERTs in 10,000-row transactions, then WAL checkpoint. Then {GROWN_SINGLE} \
         appends of batch 1 and {GROWN_BATCHES} appends of batch 256 through Store::append."
    );
    let mut grown = Vec::new();
    for &size in &plan.grown_logs {
        let path = dir.join(format!("grown-{size}.db"));
        grown.push(bench_grown_log(&path, size, &entries).await?);
        remove_db(&path);
    }
    println!(
        "{:>9} {:>8} {:>9} {:>11} {:>11} {:>13} {:>13} {:>10} {:>10}",
        "log size",
        "db MiB",
        "prefill s",
        "b1 p50 ms",
        "b1 entries/s",
        "b256 p50 ms",
        "b256 entries/s",
        "stateQ ms",
        "maxidx ms"
    );
    for g in &grown {
        println!(
            "{:>9} {:>8.1} {:>9.1} {:>11.3} {:>11.0} {:>13.3} {:>13.0} {:>10.3} {:>10.3}",
            g.size,
            g.db_bytes as f64 / (1024.0 * 1024.0),
            g.prefill.as_secs_f64(),
            ms(g.single_p50),
            GROWN_SINGLE as f64 / g.single_elapsed.as_secs_f64(),
            ms(g.batch_p50),
            (GROWN_BATCHES * 256) as f64 / g.batch_elapsed.as_secs_f64(),
            ms(g.state_query),
            ms(g.max_idx_query)
        );
    }
    if let (Some(first), Some(r1)) = (grown.first(), store_results.first()) {
        println!(
            "  ratio: batch-1 append p50 at {} entries vs on a fresh log (1a): {:.1}x",
            first.size,
            ms(first.single_p50) / ms(r1.p50)
        );
    }
    if let [a, .., b] = grown.as_slice() {
        println!(
            "  ratio: {} vs {} entries: batch-1 p50 {:.1}x, state query {:.1}x",
            b.size,
            a.size,
            ms(b.single_p50) / ms(a.single_p50),
            ms(b.state_query) / ms(a.state_query)
        );
    }

    // ---- 2. Proofs ------------------------------------------------------------------------
    println!("\n== 2. Inclusion proofs from SQLite (entries' leaf hashes, tree_nodes_by_end) ==");
    println!(
        "Trees are built from synthetic leaf hashes leaf_hash(index as 8 big-endian bytes) with \
         CompactRange::append and written in the layout Store::append writes: each leaf hash in \
         its entries row (the other columns minimal placeholders, no leaf bytes), every node \
         above the leaves in tree_nodes_by_end keyed by its last leaf; raw rusqlite multi-row \
         INSERTs (1,000 rows per statement, ~100,000 per transaction) into the schema migrate() \
         creates, NOT through Store::append (see docs/BENCHMARKS.md)."
    );
    let mut proof_results = Vec::new();
    for &size in &plan.tree_sizes {
        let path = dir.join(format!("tree-{size}.db"));
        let built = build_tree(&path, size).await?;
        let r = bench_proofs(&path, size, &built, plan.proofs).await?;
        proof_results.push((built, r));
        remove_db(&path);
    }
    println!(
        "{:>11} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "leaves",
        "build s",
        "nodes M",
        "db MiB",
        "rows/proof",
        "p50 us",
        "p99 us",
        "mean us",
        "verify p50",
        "verify p99"
    );
    for (b, r) in &proof_results {
        println!(
            "{:>11} {:>9.1} {:>9.2} {:>10.1} {:>10.1} {:>9.1} {:>9.1} {:>9.1} {:>9.2} {:>9.2}",
            b.size,
            b.build.as_secs_f64(),
            b.nodes as f64 / 1e6,
            b.db_bytes as f64 / (1024.0 * 1024.0),
            r.mean_rows,
            us(r.p50),
            us(r.p99),
            us(r.mean),
            us(r.verify_p50),
            us(r.verify_p99)
        );
    }
    for (b, r) in &proof_results {
        println!(
            "  {} leaves: build = {:.1} s hashing+inserting ({:.1} s of it in INSERT/COMMIT) + {:.1} s \
             WAL checkpoint; rows/proof min {} max {}, proof hashes mean {:.1}; \
             per-statement floor on a raw connection: `SELECT 1` p50 {:.1} us, one node read \
             from tree_nodes_by_end p50 {:.1} us",
            b.size,
            (b.build - b.checkpoint).as_secs_f64(),
            b.insert.as_secs_f64(),
            b.checkpoint.as_secs_f64(),
            r.min_rows,
            r.max_rows,
            r.mean_proof_len,
            us(r.select1_p50),
            us(r.point_read_p50)
        );
    }
    println!(
        "  p50/p99/mean: byline::service::log::inclusion_proof(&store, index, size) over {} random \
         indices, warm OS page cache (the tree was just written), one call at a time. \
         rows/proof: inclusion_proof_plan(...).ids().len(): the nodes above the leaves in one \
         statement, each of the (at most two) leaves a primary-key read of entries. \
         verify: verify_inclusion CPU time per proof.",
        plan.proofs
    );
    if let [(b1, r1), .., (b2, r2)] = proof_results.as_slice() {
        println!(
            "  ratio: {} vs {} leaves: proof p50 {:.2}x, rows/proof {:.2}x, database size {:.1}x",
            b2.size,
            b1.size,
            us(r2.p50) / us(r1.p50),
            r2.mean_rows / r1.mean_rows,
            b2.db_bytes as f64 / b1.db_bytes as f64
        );
    }
    if let Some((b, r)) = proof_results.last() {
        println!(
            "  ratio: at {} leaves, reading a proof (p50) costs {:.0}x verifying it (p50)",
            b.size,
            us(r.p50) / us(r.verify_p50)
        );
    }
    Ok(())
}

// ---- Helpers --------------------------------------------------------------------------------

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The value at quantile `q` of a sorted slice (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn mean(v: &[Duration]) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.iter().sum::<Duration>() / v.len() as u32
}

/// SplitMix64, so that the bench needs no `rand` dependency and indices repeat across runs.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// A raw rusqlite connection (creating the file if missing) with the store's own settings
/// (`byline::storage::sqlite::open_connection`: WAL, `synchronous=FULL`, 8 KB pages for a new
/// file, the store's cache and checkpoint settings); prepared statements are cached (up to 100).
fn raw_connection(path: &Path) -> Result<Connection> {
    let path_text = path
        .to_str()
        .ok_or_else(|| anyhow!("{} is not UTF-8", path.display()))?;
    let conn = open_connection(path_text).with_context(|| format!("open {}", path.display()))?;
    conn.set_prepared_statement_cache_capacity(100);
    Ok(conn)
}

/// Closes a raw connection, reporting an error on close (a plain drop would swallow it).
fn close(conn: Connection) -> Result<()> {
    conn.close().map_err(|(_, e)| e)?;
    Ok(())
}

/// Runs `PRAGMA wal_checkpoint(TRUNCATE)` (its result row is read and ignored).
fn checkpoint_truncate(conn: &Connection) -> Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// `{head}VALUES (?, ...), (?, ...), ...`: `rows` rows of `columns` placeholders each, for
/// multi-row statements bound with `params_from_iter`.
fn multi_row_sql(head: &str, columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    let mut sql = String::with_capacity(head.len() + 7 + rows * (row.len() + 2));
    sql.push_str(head);
    sql.push_str("VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&row);
    }
    sql
}

fn db_bytes(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(p).ok().map(|m| m.len())
        })
        .sum()
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

fn print_machine(dir: &Path, quick: bool) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .map(str::trim)
        .unwrap_or("unknown");
    let sha_ni = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .is_some_and(|l| l.split_whitespace().any(|f| f == "sha_ni"));
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|r| r.trim().to_string()))
        .unwrap_or_else(|| "unknown".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    // The mount holding the databases: longest mount point that prefixes the directory.
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mount = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && canonical.starts_with(f[1]))
                .then(|| (f[1].len(), format!("{} on {} ({})", f[0], f[1], f[2])))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, m)| m)
        .unwrap_or_else(|| "unknown".into());
    println!(
        "byline log benchmarks{}",
        if quick {
            " (QUICK mode: small counts)"
        } else {
            ""
        }
    );
    println!("== Machine ==");
    println!("nproc            {nproc}");
    println!(
        "CPU              {model} (sha_ni: {})",
        if sha_ni { "yes" } else { "no" }
    );
    println!("memory           {mem}");
    println!("kernel           {}", kernel.trim());
    println!("load at start    {}", load.trim());
    println!("database dir     {} on {mount}", canonical.display());
    println!(
        "SQLite           {} (bundled by libsqlite3-sys), journal_mode=WAL, synchronous=FULL",
        sqlite_version()
    );
    println!("tokio            multi-thread runtime, {nproc} workers");
}

fn sqlite_version() -> String {
    // sqlite3_libversion() of the library actually linked, so the banner shows what runs.
    rusqlite::version().to_string()
}

/// Realistic entries: a full authorship statement per article (8 paragraph digests, AI system,
/// two people, title), signed into a DSSE envelope, as `Sign` builds them.
fn make_entries(n: usize, key: &SigningKey) -> Result<Vec<PendingEntry>> {
    let signed_at = Timestamp::now();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let authorship = Authorship {
            subject_name: format!(
                "https://{PUBLISHER}/2026/11/28/river-rises-bridge-closed-{i:08}"
            ),
            byline: "By Ana Example and an AI assistant".into(),
            authorship: AuthorshipClass::AiAssisted,
            ai_systems: vec![AiSystem {
                name: "example-model".into(),
                version: Some("2026-10".into()),
                provider: Some("Example AI Labs".into()),
            }],
            humans: vec![
                Human {
                    name: "Ana Example".into(),
                    role: "author".into(),
                },
                Human {
                    name: "Ben Editor".into(),
                    role: "editor".into(),
                },
            ],
            publisher: Publisher {
                name: "News Example Daily".into(),
                domain: PUBLISHER.into(),
            },
            title: Some(format!(
                "Storm closes the old river bridge for the night ({i})"
            )),
            language: Some("en".into()),
            published_at: Some(signed_at),
            segments: None,
            editorial_responsibility: None,
            supersedes: None,
        };
        let digests = ArticleDigests {
            text: Sha256Digest::of(format!("text {i}").as_bytes()),
            exact: Sha256Digest::of(format!("exact {i}").as_bytes()),
        };
        let paragraphs = (0..8)
            .map(|p| Sha256Digest::of(format!("paragraph {i}/{p}").as_bytes()))
            .collect();
        let statement = build_statement(&authorship, digests, Some(paragraphs), signed_at)
            .map_err(|e| anyhow!("statement {i}: {e}"))?;
        let payload = statement
            .to_payload()
            .map_err(|e| anyhow!("payload {i}: {e}"))?;
        let envelope = sign_statement(&statement, key).map_err(|e| anyhow!("sign {i}: {e}"))?;
        out.push(PendingEntry {
            kind: EntryKind::Manifest,
            envelope,
            publisher: PUBLISHER.into(),
            text_sha256: Some(digests.text.to_hex()),
            exact_sha256: Some(digests.exact.to_hex()),
            statement_sha256: Sha256Digest::of(&payload).to_hex(),
            idempotency_key: None,
            supersedes_sha256: None,
        });
    }
    Ok(out)
}

// ---- 1e. The index as the log grows ---------------------------------------------------------

/// Entry `n` of the growing log: an entry of `pool`, with digests of its own (so that every
/// entry adds four keys no other entry has, as real articles do).
fn grown_entry(pool: &[PendingEntry], n: usize) -> PendingEntry {
    let mut entry = pool[n % pool.len()].clone();
    entry.text_sha256 = Some(grown_digest(n, "text"));
    entry.exact_sha256 = Some(grown_digest(n, "exact"));
    entry.statement_sha256 = grown_digest(n, "statement");
    entry
}

/// The `kind` digest (hex) of entry `n` of the growing log.
fn grown_digest(n: usize, kind: &str) -> String {
    Sha256Digest::of(format!("grown {kind} {n}").as_bytes()).to_hex()
}

/// 1e: one log grown through `Store::append` in batches of 256, so that every key goes the
/// way the store's keys go (pending runs, recent runs, the index below them). After each
/// stretch of `per_stretch` entries: the CPU per entry of that stretch's appends (the
/// process's, every thread; the stretch's entries are built before it is timed), and the
/// time of `lookups` lookups by text digest of entries anywhere in the log so far, each
/// checked to find exactly its entry.
async fn bench_index_growth(
    path: &Path,
    pool: &[PendingEntry],
    stretches: usize,
    per_stretch: usize,
    lookups: usize,
) -> Result<()> {
    println!("\n== 1e. Appends and lookups as one log grows (batches of 256) ==");
    println!(
        "{:>9} {:>10} {:>11} {:>13} {:>13} {:>10}",
        "entries", "append us/e", "ms/b", "lookup p50 us", "lookup p99 us", "db MB"
    );
    let store = SqliteStore::open(&sqlite_url(path)).await?;
    store.migrate().await?;
    let mut rng = SplitMix(0x1e);
    let mut size = 0usize;
    for _ in 0..stretches {
        let batches: Vec<Vec<PendingEntry>> = (size..size + per_stretch)
            .map(|n| grown_entry(pool, n))
            .collect::<Vec<_>>()
            .chunks(256)
            .map(|c| c.to_vec())
            .collect();
        let count = batches.len();
        let (cpu_before, started) = (process_cpu(), Instant::now());
        for batch in batches {
            store.append(batch, Timestamp::now()).await?;
        }
        let AppendCpu { cpu, wall } = measured_since(cpu_before, started);
        size += per_stretch;
        let wanted: Vec<(usize, String)> = (0..lookups)
            .map(|_| {
                let n = (rng.next() % size as u64) as usize;
                (n, grown_digest(n, "text"))
            })
            .collect();
        let mut times = Vec::with_capacity(lookups);
        for (n, digest) in &wanted {
            let t = Instant::now();
            let found = store.lookup_text(digest).await?;
            times.push(t.elapsed());
            if found.len() != 1 || found[0].index != *n as u64 {
                return Err(anyhow!(
                    "lookup of entry {n} found {:?}",
                    found.iter().map(|e| e.index).collect::<Vec<_>>()
                ));
            }
        }
        times.sort_unstable();
        println!(
            "{:>9} {:>10.2} {:>11.3} {:>13.1} {:>13.1} {:>10.0}",
            size,
            cpu.as_secs_f64() * 1e6 / per_stretch as f64,
            ms(wall) / count as f64,
            us(quantile(&times, 0.5)),
            us(quantile(&times, 0.99)),
            db_bytes(path) as f64 / 1e6,
        );
    }
    println!(
        "  append us/e: the process's CPU (user + system, every thread) per entry of the \
         stretch's appends; ms/b: wall time per batch; lookups: Store::lookup_text of random \
         earlier entries, after the stretch."
    );
    Ok(())
}

// ---- 1a. Store::append ----------------------------------------------------------------------

struct StoreAppendResult {
    batch: usize,
    entries: usize,
    batches: usize,
    elapsed: Duration,
    /// The process's CPU time over the appends (see [`process_cpu`]).
    cpu: Duration,
    p50: Duration,
    p99: Duration,
    first_decile: Duration,
    last_decile: Duration,
    state_query: Duration,
    max_idx_query: Duration,
}

/// `entries` cut into batches of `batch`, cloned before a timed loop consumes them.
fn batches_of(entries: &[PendingEntry], batch: usize) -> Vec<Vec<PendingEntry>> {
    entries.chunks(batch).map(|c| c.to_vec()).collect()
}

async fn bench_store_append(
    path: &Path,
    entries: &[PendingEntry],
    batch: usize,
) -> Result<StoreAppendResult> {
    let store = SqliteStore::open(&sqlite_url(path)).await?;
    store.migrate().await?;
    // Clone outside the timed loop.
    let batches = batches_of(entries, batch);
    let mut lat = Vec::with_capacity(batches.len());
    let (cpu_before, started) = (process_cpu(), Instant::now());
    for b in batches {
        let t = Instant::now();
        store.append(b, Timestamp::now()).await?;
        lat.push(t.elapsed());
    }
    let AppendCpu { cpu, wall: elapsed } = measured_since(cpu_before, started);
    let size = store.log_state().await?.range.size();
    if size != entries.len() as u64 {
        return Err(anyhow!(
            "log has {size} entries, expected {}",
            entries.len()
        ));
    }
    let tenth = (lat.len() / 10).max(1);
    let first_decile = mean(&lat[..tenth]);
    let last_decile = mean(&lat[lat.len() - tenth..]);
    let n = lat.len();
    lat.sort_unstable();

    // Diagnostic: what the state read costs on the final table.
    let conn = raw_connection(path)?;
    let state_query = median_query_time(&conn, STATE_QUERY)?;
    let max_idx_query = median_query_time(&conn, "SELECT MAX(idx) FROM entries")?;
    close(conn)?;
    drop(store);

    Ok(StoreAppendResult {
        batch,
        entries: entries.len(),
        batches: n,
        elapsed,
        cpu,
        p50: quantile(&lat, 0.5),
        p99: quantile(&lat, 0.99),
        first_decile,
        last_decile,
        state_query,
        max_idx_query,
    })
}

/// The CPU and wall time a run of appends took.
struct AppendCpu {
    cpu: Duration,
    wall: Duration,
}

/// The process's CPU time so far, user and system, all threads; `None` where `getrusage` is
/// not available.
fn process_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        // SAFETY: `getrusage` only writes the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return None;
        }
        let time = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        Some(time(usage.ru_utime) + time(usage.ru_stime))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// CPU and wall time since `(cpu, wall)` were read (zero CPU where it cannot be read).
fn measured_since(cpu_before: Option<Duration>, started: Instant) -> AppendCpu {
    let wall = started.elapsed();
    let cpu = match (cpu_before, process_cpu()) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => Duration::ZERO,
    };
    AppendCpu { cpu, wall }
}

/// 1d, the floor: the same batches planned as the store plans them (`plan_append`: the JCS
/// leaves, their hashes, the tree's new nodes), each batch's leaves written to `path` in one
/// write, length-prefixed, and made durable with `fdatasync`.
fn leaf_file_append_cpu(path: &Path, entries: &[PendingEntry], batch: usize) -> Result<AppendCpu> {
    use std::io::Write;
    let batches = batches_of(entries, batch);
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut state = LogState {
        range: CompactRange::new(),
        last_time: None,
    };
    let mut written = 0u64;
    let (cpu_before, started) = (process_cpu(), Instant::now());
    let mut buf = Vec::new();
    for b in batches {
        let plan = plan_append(state.clone(), b, Timestamp::now());
        buf.clear();
        for row in &plan.rows {
            buf.extend_from_slice(&(row.leaf.len() as u32).to_le_bytes());
            buf.extend_from_slice(&row.leaf);
        }
        file.write_all(&buf)?;
        file.sync_data()?;
        written += plan.rows.len() as u64;
        state = plan.state_after;
    }
    let measured = measured_since(cpu_before, started);
    if written != entries.len() as u64 || state.range.size() != written {
        return Err(anyhow!(
            "the leaf file holds {written} entries, expected {}",
            entries.len()
        ));
    }
    Ok(measured)
}

/// The query the store reads a log's size and last time with (`NEWEST_ENTRY` in
/// `storage::sqlite`): one indexed row. Until the ninth session the bench timed the first
/// session's `MAX(integrated_time)` query, a scan of the table, which the store stopped running
/// after `b6945bd`.
const STATE_QUERY: &str = "SELECT idx, integrated_time FROM entries ORDER BY idx DESC LIMIT 1";

fn median_query_time(conn: &Connection, sql: &str) -> Result<Duration> {
    let mut times = Vec::with_capacity(21);
    for _ in 0..21 {
        let t = Instant::now();
        conn.prepare_cached(sql)?.query_row([], |_| Ok(()))?;
        times.push(t.elapsed());
    }
    times.sort_unstable();
    Ok(quantile(&times, 0.5))
}

// ---- 1c. Appends to a grown log -------------------------------------------------------------

const GROWN_SINGLE: usize = 30;
const GROWN_BATCHES: usize = 5;
const ENTRY_ROWS_PER_STATEMENT: usize = 90;
const ENTRY_ROWS_PER_TRANSACTION: usize = 10_000;

struct GrownResult {
    size: u64,
    db_bytes: u64,
    prefill: Duration,
    single_p50: Duration,
    single_elapsed: Duration,
    batch_p50: Duration,
    batch_elapsed: Duration,
    state_query: Duration,
    max_idx_query: Duration,
}

async fn bench_grown_log(path: &Path, size: u64, pool: &[PendingEntry]) -> Result<GrownResult> {
    let store = SqliteStore::open(&sqlite_url(path)).await?;
    store.migrate().await?;
    let now = Timestamp::now();
    let time_text = now.to_string();
    let cycle = pool.len().min(1_000);
    let leaves: Vec<(Vec<u8>, Hash)> = pool[..cycle]
        .iter()
        .map(|p| {
            let leaf = leaf_bytes(&p.envelope, &time_text);
            let hash = leaf_hash(&leaf);
            (leaf, hash)
        })
        .collect();

    let started = Instant::now();
    let mut conn = raw_connection(path)?;
    let mut range = CompactRange::new();
    let mut nodes: Vec<(NodeId, Hash)> = Vec::new();
    let mut next = 0u64;
    while next < size {
        let end = (next + ENTRY_ROWS_PER_TRANSACTION as u64).min(size);
        let tx = conn.transaction()?;
        let mut i = next;
        while i < end {
            let stop = (i + ENTRY_ROWS_PER_STATEMENT as u64).min(end);
            let sql = multi_row_sql(
                "INSERT INTO entries (idx, leaf, leaf_hash, integrated_time, kind, publisher, \
                 text_sha256, exact_sha256, statement_sha256, idempotency_key) ",
                10,
                (stop - i) as usize,
            );
            let values = (i..stop).flat_map(|idx| {
                let (leaf, hash) = &leaves[(idx % cycle as u64) as usize];
                [
                    ToSqlOutput::from(idx as i64),
                    ToSqlOutput::from(leaf.as_slice()),
                    ToSqlOutput::from(&hash[..]),
                    ToSqlOutput::from(now.unix()),
                    ToSqlOutput::from("manifest"),
                    ToSqlOutput::from(PUBLISHER),
                    ToSqlOutput::from(Sha256Digest::of(format!("text {idx}").as_bytes()).to_hex()),
                    ToSqlOutput::from(Sha256Digest::of(format!("exact {idx}").as_bytes()).to_hex()),
                    ToSqlOutput::from(
                        Sha256Digest::of(format!("statement {idx}").as_bytes()).to_hex(),
                    ),
                    ToSqlOutput::from(rusqlite::types::Null),
                ]
            });
            tx.prepare_cached(&sql)?.execute(params_from_iter(values))?;
            for idx in i..stop {
                nodes.extend(range.append(leaves[(idx % cycle as u64) as usize].1));
            }
            i = stop;
        }
        tx.commit()?;
        // The leaves are the entries just written; the nodes above them go to their table.
        nodes.retain(|(id, _)| id.level > 0);
        write_nodes(&mut conn, &mut nodes)?;
        next = end;
    }
    checkpoint_truncate(&conn)?;
    let prefill = started.elapsed();
    let db_bytes = db_bytes(path);
    let state = store.log_state().await?;
    if state.range.size() != size || state.range.root() != range.root() {
        return Err(anyhow!(
            "prefilled log does not read back as {size} entries"
        ));
    }

    let singles: Vec<Vec<PendingEntry>> = pool
        .iter()
        .take(GROWN_SINGLE)
        .map(|p| vec![p.clone()])
        .collect();
    let mut lat = Vec::with_capacity(GROWN_SINGLE);
    let t0 = Instant::now();
    for b in singles {
        let t = Instant::now();
        store.append(b, Timestamp::now()).await?;
        lat.push(t.elapsed());
    }
    let single_elapsed = t0.elapsed();
    lat.sort_unstable();
    let single_p50 = quantile(&lat, 0.5);

    let batches: Vec<Vec<PendingEntry>> = (0..GROWN_BATCHES)
        .map(|k| {
            (0..256)
                .map(|j| pool[(k * 256 + j) % pool.len()].clone())
                .collect()
        })
        .collect();
    let mut blat = Vec::with_capacity(GROWN_BATCHES);
    let t0 = Instant::now();
    for b in batches {
        let t = Instant::now();
        store.append(b, Timestamp::now()).await?;
        blat.push(t.elapsed());
    }
    let batch_elapsed = t0.elapsed();
    blat.sort_unstable();

    let state_query = median_query_time(&conn, STATE_QUERY)?;
    let max_idx_query = median_query_time(&conn, "SELECT MAX(idx) FROM entries")?;
    close(conn)?;
    Ok(GrownResult {
        size,
        db_bytes,
        prefill,
        single_p50,
        single_elapsed,
        batch_p50: quantile(&blat, 0.5),
        batch_elapsed,
        state_query,
        max_idx_query,
    })
}

// ---- Cost floor -----------------------------------------------------------------------------

struct Floor {
    count: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

fn floor_of(mut lat: Vec<Duration>, elapsed: Duration) -> Floor {
    let count = lat.len();
    lat.sort_unstable();
    Floor {
        count,
        elapsed,
        p50: quantile(&lat, 0.5),
        p99: quantile(&lat, 0.99),
    }
}

fn bench_floor(dir: &Path, commits: usize) -> Result<Vec<(String, Floor)>> {
    let mut out = Vec::new();

    // The device: overwrite 4 KiB in a preallocated 4 MiB file and fdatasync, as a recycled WAL
    // does (no file-size change, so no metadata journal commit): the least a durable commit costs.
    {
        use std::io::{Seek, SeekFrom, Write};
        let path = dir.join("fsync-floor.bin");
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&vec![0_u8; 4 << 20])?;
        file.sync_all()?;
        let block = vec![0x5a_u8; 4096];
        let mut lat = Vec::with_capacity(commits);
        let started = Instant::now();
        for i in 0..commits {
            let t = Instant::now();
            file.seek(SeekFrom::Start(((i % 1024) * 4096) as u64))?;
            file.write_all(&block)?;
            file.sync_data()?;
            lat.push(t.elapsed());
        }
        let elapsed = started.elapsed();
        drop(file);
        let _ = std::fs::remove_file(&path);
        out.push((
            "overwrite 4 KiB + fdatasync (raw preallocated file)".to_string(),
            floor_of(lat, elapsed),
        ));
    }

    // SQLite with the store's settings: one 2 KB row per BEGIN IMMEDIATE ... COMMIT.
    {
        let path = dir.join("sqlite-floor.db");
        let mut conn = raw_connection(&path)?;
        conn.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB NOT NULL)",
            [],
        )?;
        let blob = vec![0xa5_u8; 2048];
        let mut lat = Vec::with_capacity(commits);
        let started = Instant::now();
        for i in 0..commits {
            let t = Instant::now();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached("INSERT INTO t (id, b) VALUES (?, ?)")?
                .execute(params![i as i64, blob.as_slice()])?;
            tx.commit()?;
            lat.push(t.elapsed());
        }
        let elapsed = started.elapsed();
        close(conn)?;
        remove_db(&path);
        out.push((
            "SQLite WAL+FULL: 1 x 2 KB row per transaction (one connection)".to_string(),
            floor_of(lat, elapsed),
        ));
    }
    Ok(out)
}

// ---- 1b. Sequencer --------------------------------------------------------------------------

struct SequencerResult {
    submitters: usize,
    entries: usize,
    elapsed: Duration,
    batches: u64,
    max_batch: usize,
    p50: Duration,
    p99: Duration,
}

/// The batch counters from the metrics registry (process-wide).
fn batch_counters() -> (u64, u64) {
    let text = byline::service::metrics::render();
    let read = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|r| r.trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    (
        read("byline_log_batches_total "),
        read("byline_log_batch_entries_total "),
    )
}

async fn bench_sequencer(
    path: &Path,
    entries: &[PendingEntry],
    submitters: usize,
    signer: Arc<LogSigner>,
) -> Result<SequencerResult> {
    let store = SqliteStore::open(&sqlite_url(path)).await?;
    store.migrate().await?;
    let sequencer = Sequencer::start(store.clone(), signer, SequencerSettings::default());
    // Warm-up outside the measurement is deliberately skipped: each case starts from an empty
    // log, like 1a. Work is split evenly; leftovers go to the first submitters.
    let per = entries.len() / submitters;
    let extra = entries.len() % submitters;
    let mut shares = Vec::with_capacity(submitters);
    let mut start = 0;
    for k in 0..submitters {
        let len = per + usize::from(k < extra);
        shares.push(entries[start..start + len].to_vec());
        start += len;
    }
    let (batches_before, entries_before) = batch_counters();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(submitters);
    for share in shares {
        let sequencer = sequencer.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(share.len());
            let mut sizes = Vec::with_capacity(share.len());
            for e in share {
                let t = Instant::now();
                let logged = sequencer.submit(e).await.map_err(|e| anyhow!("{e}"))?;
                lat.push(t.elapsed());
                sizes.push(logged.log_entry.inclusion_proof.tree_size);
            }
            Ok::<_, anyhow::Error>((lat, sizes))
        }));
    }
    let mut lat = Vec::with_capacity(entries.len());
    let mut per_size: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    for task in tasks {
        let (l, sizes) = task.await.context("submitter panicked")??;
        lat.extend(l);
        for s in sizes {
            *per_size.entry(s).or_default() += 1;
        }
    }
    let elapsed = started.elapsed();
    let (batches_after, entries_after) = batch_counters();
    drop(sequencer);
    let batches = batches_after - batches_before;
    if entries_after - entries_before != entries.len() as u64 || batches != per_size.len() as u64 {
        return Err(anyhow!(
            "metrics disagree with counting: {} entries in {batches} batches by the metrics, \
             {} batches by tree size",
            entries_after - entries_before,
            per_size.len()
        ));
    }
    lat.sort_unstable();
    Ok(SequencerResult {
        submitters,
        entries: entries.len(),
        elapsed,
        batches,
        max_batch: per_size.values().copied().max().unwrap_or(0),
        p50: quantile(&lat, 0.5),
        p99: quantile(&lat, 0.99),
    })
}

// ---- 2. Proofs ------------------------------------------------------------------------------

struct BuiltTree {
    size: u64,
    root: Hash,
    nodes: u64,
    build: Duration,
    insert: Duration,
    checkpoint: Duration,
    db_bytes: u64,
}

const ROWS_PER_STATEMENT: usize = 1_000;
const ROWS_PER_TRANSACTION: usize = 100_000;

async fn build_tree(path: &Path, size: u64) -> Result<BuiltTree> {
    // The schema exactly as the service creates it.
    let store = SqliteStore::open(&sqlite_url(path)).await?;
    store.migrate().await?;
    drop(store);

    let mut conn = raw_connection(path)?;
    let started = Instant::now();
    let mut insert = Duration::ZERO;
    let mut range = CompactRange::new();
    let mut buf: Vec<(NodeId, Hash)> = Vec::with_capacity(ROWS_PER_TRANSACTION + 64);
    let mut nodes = 0u64;
    for i in 0..size {
        buf.extend(range.append(leaf_hash(&i.to_be_bytes())));
        if buf.len() >= ROWS_PER_TRANSACTION {
            nodes += buf.len() as u64;
            insert += write_nodes(&mut conn, &mut buf)?;
        }
    }
    nodes += buf.len() as u64;
    insert += write_nodes(&mut conn, &mut buf)?;
    let t = Instant::now();
    checkpoint_truncate(&conn)?;
    let checkpoint = t.elapsed();
    let build = started.elapsed();
    close(conn)?;
    Ok(BuiltTree {
        size,
        root: range.root(),
        nodes,
        build,
        insert,
        checkpoint,
        db_bytes: db_bytes(path),
    })
}

/// Writes and clears `buf` in one transaction as `Store::append` lays nodes out: the leaves
/// (level 0) as `entries` rows holding their hash, the nodes above them in
/// `tree_nodes_by_end`, each table in key order so that the rows append at its end.
fn write_nodes(conn: &mut Connection, buf: &mut Vec<(NodeId, Hash)>) -> Result<Duration> {
    let t = Instant::now();
    let (mut leaves, mut upper): (Vec<_>, Vec<_>) =
        buf.drain(..).partition(|(id, _)| id.level == 0);
    leaves.sort_unstable_by_key(|(id, _)| id.index);
    upper.sort_unstable_by_key(|(id, _)| (id.last_leaf(), id.level));
    let tx = conn.transaction()?;
    for chunk in leaves.chunks(ROWS_PER_STATEMENT) {
        let sql = multi_row_sql(
            "INSERT INTO entries (idx, leaf, leaf_hash, integrated_time, kind, publisher, \
             statement_sha256) ",
            7,
            chunk.len(),
        );
        let values = chunk.iter().flat_map(|(id, hash)| {
            [
                ToSqlOutput::from(id.index as i64),
                ToSqlOutput::from(&[][..]),
                ToSqlOutput::from(&hash[..]),
                ToSqlOutput::from(0i64),
                ToSqlOutput::from("manifest"),
                ToSqlOutput::from("bench.example"),
                ToSqlOutput::from(PLACEHOLDER_DIGEST),
            ]
        });
        tx.prepare_cached(&sql)?.execute(params_from_iter(values))?;
    }
    for chunk in upper.chunks(ROWS_PER_STATEMENT) {
        let sql = multi_row_sql(
            "INSERT INTO tree_nodes_by_end (end_idx, level, hash) ",
            3,
            chunk.len(),
        );
        let values = chunk.iter().flat_map(|(id, hash)| {
            [
                ToSqlOutput::from(id.last_leaf() as i64),
                ToSqlOutput::from(i64::from(id.level)),
                ToSqlOutput::from(&hash[..]),
            ]
        });
        tx.prepare_cached(&sql)?.execute(params_from_iter(values))?;
    }
    tx.commit()?;
    Ok(t.elapsed())
}

/// The statement digest of every synthetic entry: proofs never read it.
const PLACEHOLDER_DIGEST: &str = "0000000000000000000000000000000000000000000000000000000000000000";

struct ProofResult {
    p50: Duration,
    p99: Duration,
    mean: Duration,
    mean_rows: f64,
    min_rows: usize,
    max_rows: usize,
    mean_proof_len: f64,
    verify_p50: Duration,
    verify_p99: Duration,
    select1_p50: Duration,
    point_read_p50: Duration,
}

async fn bench_proofs(
    path: &Path,
    size: u64,
    built: &BuiltTree,
    count: usize,
) -> Result<ProofResult> {
    // A fresh store, as the service would open it.
    let store = SqliteStore::open(&sqlite_url(path)).await?;
    let mut rng = SplitMix(0x6279_6c69_6e65 ^ size);
    let indices: Vec<u64> = (0..count).map(|_| rng.next() % size).collect();

    // Warm-up: open pool connections, prepare the statement.
    for &i in indices.iter().take(20) {
        inclusion_proof(&store, i, size)
            .await
            .map_err(|e| anyhow!("{e}"))?;
    }

    let mut lat = Vec::with_capacity(count);
    let mut proofs = Vec::with_capacity(count);
    let mut rows = Vec::with_capacity(count);
    for &i in &indices {
        let t = Instant::now();
        let proof = inclusion_proof(&store, i, size)
            .await
            .map_err(|e| anyhow!("proof for {i}: {e}"))?;
        lat.push(t.elapsed());
        rows.push(inclusion_proof_plan(i, size)?.ids().len());
        proofs.push(proof);
    }
    let mean_lat = mean(&lat);
    lat.sort_unstable();

    // Verification: pure CPU, 5 passes over the proofs.
    let leaves: Vec<Hash> = indices
        .iter()
        .map(|i| leaf_hash(&i.to_be_bytes()))
        .collect();
    let mut vlat = Vec::with_capacity(count * 5);
    for _ in 0..5 {
        for ((&i, proof), leaf) in indices.iter().zip(&proofs).zip(&leaves) {
            let t = Instant::now();
            let ok = verify_inclusion(i, size, leaf, proof, &built.root);
            vlat.push(t.elapsed());
            ok.map_err(|e| anyhow!("proof for {i} does not verify: {e}"))?;
        }
    }
    vlat.sort_unstable();

    // Diagnostics on a raw connection with the same options: per-statement overhead, one point
    // read, and the whole plan in one statement.
    let conn = raw_connection(path)?;
    let mut s1 = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let t = Instant::now();
        conn.prepare_cached("SELECT 1")?.query_row([], |_| Ok(()))?;
        s1.push(t.elapsed());
    }
    s1.sort_unstable();
    let mut point = Vec::new();
    for &i in indices.iter().take(200) {
        for id in inclusion_proof_plan(i, size)?
            .ids()
            .iter()
            .filter(|id| id.level > 0)
        {
            let t = Instant::now();
            let _: Vec<u8> = conn
                .prepare_cached(
                    "SELECT hash FROM tree_nodes_by_end WHERE end_idx = ? AND level = ?",
                )?
                .query_row(params![id.last_leaf() as i64, i64::from(id.level)], |r| {
                    r.get(0)
                })?;
            point.push(t.elapsed());
        }
    }
    point.sort_unstable();
    close(conn)?;

    Ok(ProofResult {
        p50: quantile(&lat, 0.5),
        p99: quantile(&lat, 0.99),
        mean: mean_lat,
        mean_rows: rows.iter().sum::<usize>() as f64 / rows.len() as f64,
        min_rows: rows.iter().copied().min().unwrap_or(0),
        max_rows: rows.iter().copied().max().unwrap_or(0),
        mean_proof_len: proofs.iter().map(Vec::len).sum::<usize>() as f64 / proofs.len() as f64,
        verify_p50: quantile(&vlat, 0.5),
        verify_p99: quantile(&vlat, 0.99),
        select1_p50: quantile(&s1, 0.5),
        point_read_p50: quantile(&point, 0.5),
    })
}
