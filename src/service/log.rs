//! The transparency log as the service runs it: the sequencer that batches appends (group
//! commit), the log key that signs checkpoints, and bundle assembly from stored entries.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::core::bundle::{Bundle, InclusionProof, LogEntry};
use crate::core::dsse::{encode_base64, Envelope};
use crate::core::keys::SigningKey;
use crate::core::manifest::Timestamp;
use crate::core::merkle::{consistency_proof_plan, inclusion_proof_plan, FoldMemo, Hash, NodeId};
use crate::core::note::{sign_note, Checkpoint, NoteVerifier};
use crate::service::batch_timer::BatchTimer;
use crate::storage::{Appended, CheckpointRow, EntryRecord, PendingEntry, Store, StoreError};

/// The log's signing identity: its key and origin, shown everywhere as a C2SP verifier key.
pub struct LogSigner {
    key: SigningKey,
    origin: String,
    verifier: NoteVerifier,
    /// The last checkpoint signed, by size and root: readers ask for the same one many times
    /// while the sequencer has not stored it yet, and it would be the same bytes anyway.
    last: std::sync::Mutex<Option<(u64, Hash, String)>>,
}

/// Why the log could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A note or checkpoint could not be made (bad origin).
    #[error("checkpoint: {0}")]
    Note(String),
    /// The sequencer is gone (the server is shutting down).
    #[error("the log is shutting down")]
    Closed,
    /// A proof was asked for sizes or an index the log does not have.
    #[error("{0}")]
    OutOfRange(String),
}

impl LogSigner {
    /// A signer for `origin` with `key`; the origin is also the note key name.
    pub fn new(key: SigningKey, origin: &str) -> Result<Self, LogError> {
        let verifier = NoteVerifier::from_key(origin, &key.verifying_key())
            .map_err(|e| LogError::Note(e.to_string()))?;
        Ok(LogSigner {
            key,
            origin: origin.to_string(),
            verifier,
            last: std::sync::Mutex::new(None),
        })
    }

    /// The C2SP verifier key text.
    pub fn verifier_key(&self) -> String {
        self.verifier.to_string()
    }

    /// The origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Signs a key revocation: the log vouches for it, since the revoked key cannot be asked
    /// to (it may be the thief's).
    pub fn sign_revocation(
        &self,
        statement: &crate::core::revocation::RevocationStatement,
    ) -> Envelope {
        crate::core::revocation::sign_revocation(statement, &self.key)
    }

    /// Signs the checkpoint for a tree.
    pub fn sign_checkpoint(&self, size: u64, root: Hash) -> Result<String, LogError> {
        if let Some((s, r, note)) = &*self.last.lock().unwrap_or_else(|p| p.into_inner()) {
            if *s == size && *r == root {
                return Ok(note.clone());
            }
        }
        let text = Checkpoint {
            origin: self.origin.clone(),
            size,
            root_hash: root,
            extensions: Vec::new(),
        }
        .to_note_text()
        .map_err(|e| LogError::Note(e.to_string()))?;
        let note = sign_note(&text, &self.origin, self.key.inner())
            .map_err(|e| LogError::Note(e.to_string()))?;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((size, root, note.clone()));
        Ok(note)
    }
}

/// What a caller gets back once its entry is durable and covered by a signed checkpoint.
#[derive(Clone, Debug)]
pub struct LoggedEntry {
    /// Where it landed.
    pub appended: Appended,
    /// The bundle's log entry (proof and checkpoint).
    pub log_entry: LogEntry,
    /// The envelope as logged (for an idempotent repeat, the earlier one).
    pub envelope: Envelope,
}

struct Job {
    pending: PendingEntry,
    reply: oneshot::Sender<Result<LoggedEntry, Arc<LogError>>>,
}

/// How long the first entry of a batch waits for others by default: a quarter of a
/// millisecond. At half the peak of unary `Sign` on one core, batches grew from about six
/// entries to about nine, the server's CPU per call fell 2–11 % and the median latency did not
/// move; at the peaks the difference was within the day's spread (tenth session,
/// `docs/BENCHMARKS.md`). A batch waits only after one that held more than one entry, so a
/// quiet server's lone calls do not wait (at 1,000 /s the median stayed at 0.52 ms).
pub const DEFAULT_BATCH_WAIT: Duration = Duration::from_micros(250);

/// Group-commit settings.
#[derive(Clone, Copy, Debug)]
pub struct SequencerSettings {
    /// The most entries in one batch.
    pub max_batch: usize,
    /// How long the first entry of a batch may wait for others (0: take what is queued),
    /// when the previous batch held more than one entry. Entries that arrive while the
    /// previous batch commits join the next one anyway; the wait adds those that arrive just
    /// after, so that fewer batches share the commit's fixed cost (see
    /// [`DEFAULT_BATCH_WAIT`]).
    pub max_wait: Duration,
    /// How many submitted entries may wait; beyond it submitters wait (back-pressure).
    pub queue: usize,
}

impl Default for SequencerSettings {
    fn default() -> Self {
        SequencerSettings {
            max_batch: 256,
            max_wait: DEFAULT_BATCH_WAIT,
            queue: 4096,
        }
    }
}

/// The one writer of the log in this process.
#[derive(Clone)]
pub struct Sequencer {
    tx: mpsc::Sender<Job>,
}

impl Sequencer {
    /// Starts the sequencer task on the current tokio runtime, which must have its timers
    /// enabled, and its I/O too when `settings.max_wait` is not zero (on Linux the batch wait
    /// is a `timerfd` on the runtime's reactor).
    pub fn start<S: Store>(store: S, signer: Arc<LogSigner>, settings: SequencerSettings) -> Self {
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        tokio::spawn(run_sequencer(store, signer, settings, rx));
        Sequencer { tx }
    }

    /// Appends an entry; returns once it is durable and a checkpoint covering it is signed.
    pub async fn submit(&self, pending: PendingEntry) -> Result<LoggedEntry, Arc<LogError>> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send(Job { pending, reply })
            .await
            .map_err(|_| Arc::new(LogError::Closed))?;
        wait.await.map_err(|_| Arc::new(LogError::Closed))?
    }
}

/// How long the sequencer waits for another batch before it stores the newest checkpoint on
/// its own (a busy log stores it with the next batch instead, in the same transaction).
const IDLE_CHECKPOINT_DELAY: Duration = Duration::from_millis(20);

async fn run_sequencer<S: Store>(
    store: S,
    signer: Arc<LogSigner>,
    settings: SequencerSettings,
    mut rx: mpsc::Receiver<Job>,
) {
    // The newest checkpoint, signed after its batch committed but not stored yet. Readers do
    // not need it stored (`latest_checkpoint` signs the durable tree's checkpoint itself); it
    // is stored so that the history of checkpoints is kept.
    let mut unstored: Option<CheckpointRow> = None;
    // Made only when batches wait: it needs the runtime's reactor.
    let mut timer = (!settings.max_wait.is_zero()).then(BatchTimer::new);
    // Whether the last batch had company: a batch waits only after one that held more than one
    // entry (and the first batch waits), so that a quiet server's lone calls do not each wait
    // out `max_wait` for nobody.
    let mut busy = true;
    loop {
        let first = if unstored.is_some() {
            match tokio::time::timeout(IDLE_CHECKPOINT_DELAY, rx.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => break,
                Err(_) => {
                    store_checkpoint(&store, &mut unstored).await;
                    continue;
                }
            }
        } else {
            match rx.recv().await {
                Some(job) => job,
                None => break,
            }
        };
        let mut batch = vec![first];
        let mut waiting = timer.as_mut().filter(|_| busy);
        if let Some(timer) = waiting.as_deref_mut() {
            timer.start(settings.max_wait);
        }
        while batch.len() < settings.max_batch {
            match (rx.try_recv(), waiting.as_deref()) {
                (Ok(job), _) => batch.push(job),
                (Err(_), None) => break,
                (Err(_), Some(timer)) => tokio::select! {
                    biased;
                    job = rx.recv() => match job {
                        Some(job) => batch.push(job),
                        None => break,
                    },
                    () = timer.expired() => break,
                },
            }
        }
        if let Some(timer) = waiting {
            timer.stop();
        }
        busy = batch.len() > 1;
        // A caller that gave up (its deadline passed, or it disconnected) before its entry was
        // appended gets no entry: nobody would ever receive that bundle. Once appended, an entry
        // is answered even if the caller has just gone (a retry with its idempotency key
        // finds it).
        let queued = batch.len();
        batch.retain(|job| !job.reply.is_closed());
        if batch.len() < queued {
            tracing::debug!(
                abandoned = queued - batch.len(),
                "skipped entries whose callers had gone"
            );
        }
        if batch.is_empty() {
            continue;
        }
        let size = batch.len();
        let mut pending = Vec::with_capacity(size);
        let mut replies = Vec::with_capacity(size);
        for job in batch {
            pending.push(job.pending);
            replies.push(job.reply);
        }
        match commit_batch(&store, &signer, pending, unstored.as_ref()).await {
            Ok(Committed {
                entries,
                envelopes,
                tree_size,
                nodes,
                checkpoint,
            }) => {
                tracing::debug!(batch = size, tree_size, "batch appended");
                crate::service::metrics::record_batch(size, tree_size);
                let mut memo = BatchMemo::new();
                // The store hands each new entry's envelope back for its answer.
                for ((appended, reply), envelope) in entries.into_iter().zip(replies).zip(envelopes)
                {
                    let answer = finish_entry(
                        &store,
                        appended,
                        (tree_size, &nodes, &checkpoint.note),
                        &mut memo,
                        envelope,
                    )
                    .await;
                    let _ = reply.send(answer.map_err(Arc::new));
                }
                // The previous checkpoint went into this batch's transaction.
                unstored = Some(checkpoint);
            }
            Err(e) => {
                tracing::warn!(error = %e, batch = size, "batch append failed");
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
    store_checkpoint(&store, &mut unstored).await;
}

/// Stores the pending checkpoint on its own; on failure it stays pending for the next batch.
async fn store_checkpoint<S: Store>(store: &S, unstored: &mut Option<CheckpointRow>) {
    if let Some(c) = unstored.take() {
        if let Err(e) = store.insert_checkpoint(c.size, &c.root, &c.note).await {
            tracing::warn!(error = %e, size = c.size, "storing a checkpoint failed; will retry");
            *unstored = Some(c);
        }
    }
}

/// A committed batch: what its answers are made from.
struct Committed {
    /// Where each entry landed, in the batch's order.
    entries: Vec<Appended>,
    /// Each new entry's envelope, handed back by the store (`BatchResult::envelopes`).
    envelopes: Vec<Option<Envelope>>,
    tree_size: u64,
    nodes: BatchNodes,
    /// The checkpoint signed for the new tree, stored with the next batch.
    checkpoint: CheckpointRow,
}

/// The nodes a batch's inclusion proofs are cut from, sorted by id. Each entry's proof looks
/// up about a dozen of them; a binary search over a few hundred sorted ids costs less than
/// hashing each id with the standard map's SipHash (which, with the map's inserts, was about
/// 0.6 % of the server's instructions per unary call, counted under callgrind).
struct BatchNodes(Vec<(NodeId, Hash)>);

impl BatchNodes {
    fn new(mut nodes: Vec<(NodeId, Hash)>) -> Self {
        nodes.sort_unstable_by_key(|&(id, _)| id);
        BatchNodes(nodes)
    }

    fn get(&self, id: &NodeId) -> Option<Hash> {
        self.0
            .binary_search_by_key(id, |&(id, _)| id)
            .ok()
            .map(|at| self.0[at].1)
    }
}

/// Appends a batch (storing `previous`, the last batch's checkpoint, in the same transaction)
/// and signs the checkpoint of the new tree once the batch is durable.
async fn commit_batch<S: Store>(
    store: &S,
    signer: &LogSigner,
    pending: Vec<PendingEntry>,
    previous: Option<&CheckpointRow>,
) -> Result<Committed, LogError> {
    let started = std::time::Instant::now();
    let result = store
        .append_with_checkpoint(pending, Timestamp::now(), previous)
        .await;
    crate::service::metrics::record_commit(started.elapsed());
    let result = result?;
    // The leaves are committed (durable) before the checkpoint that covers them is signed.
    let note = signer.sign_checkpoint(result.tree_size, result.root)?;
    let nodes = BatchNodes::new(result.nodes);
    Ok(Committed {
        entries: result.entries,
        envelopes: result.envelopes,
        tree_size: result.tree_size,
        nodes,
        checkpoint: CheckpointRow {
            size: result.tree_size,
            root: result.root,
            note,
        },
    })
}

/// What a batch's answers share, worked out once per batch rather than once per answer.
///
/// Consecutive entries of a batch share most of their audit path (every node above the
/// level where the two part, and as a rule the ephemeral node to their right) and their
/// integrated time. Encoding each shared hash again in base64 for every answer was about 1 %
/// of the calls' thread at the unary peak. What was worked out for the previous answer is
/// reused wherever it matches.
struct BatchMemo {
    /// At each position of an audit path, the hash last encoded there and its base64.
    path: Vec<(Hash, String)>,
    /// The previous answer's integrated time and its RFC 3339 form.
    time: Option<(Timestamp, String)>,
    /// The last ephemeral node folded.
    folds: FoldMemo,
}

impl BatchMemo {
    fn new() -> Self {
        BatchMemo {
            path: Vec::new(),
            time: None,
            folds: FoldMemo::default(),
        }
    }

    /// `proof` in base64, hash by hash; a hash equal to the one remembered at the same
    /// position (from an earlier answer's path) is copied from it, and any other is encoded
    /// and remembered there.
    fn path(&mut self, proof: &[Hash]) -> Vec<String> {
        proof
            .iter()
            .enumerate()
            .map(|(at, hash)| match self.path.get_mut(at) {
                Some((seen, text)) if seen == hash => text.clone(),
                Some(slot) => {
                    *slot = (*hash, encode_base64(hash));
                    slot.1.clone()
                }
                None => {
                    let text = encode_base64(hash);
                    self.path.push((*hash, text.clone()));
                    text
                }
            })
            .collect()
    }

    /// `time` in RFC 3339, copied when the previous answer had the same time.
    fn time(&mut self, time: Timestamp) -> String {
        match &self.time {
            Some((seen, text)) if *seen == time => text.clone(),
            _ => {
                let text = time.to_string();
                self.time = Some((time, text.clone()));
                text
            }
        }
    }
}

async fn finish_entry<S: Store>(
    store: &S,
    appended: Appended,
    committed: (u64, &BatchNodes, &str),
    memo: &mut BatchMemo,
    envelope: Option<Envelope>,
) -> Result<LoggedEntry, LogError> {
    let (tree_size, nodes, note) = committed;
    let plan = inclusion_proof_plan(appended.index, tree_size).map_err(StoreError::from)?;
    let known: Option<Vec<Hash>> = plan.ids().iter().map(|id| nodes.get(id)).collect();
    let hashes = match known {
        Some(h) => h,
        // An idempotent repeat of an old entry: its proof needs older nodes.
        None => store.nodes(plan.ids()).await?,
    };
    let proof = plan
        .assemble_with(&hashes, &mut memo.folds)
        .map_err(StoreError::from)?;
    let envelope = match envelope {
        Some(envelope) if !appended.existing => envelope,
        _ => {
            let record = store
                .entry(appended.index)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("entry {} vanished", appended.index)))?;
            envelope_of(&record)?
        }
    };
    Ok(LoggedEntry {
        log_entry: LogEntry {
            log_index: appended.index,
            integrated_time: memo.time(appended.integrated_time),
            inclusion_proof: InclusionProof {
                tree_size,
                hashes: memo.path(&proof),
                checkpoint: note.to_string(),
            },
        },
        appended,
        envelope,
    })
}

/// The envelope inside a stored leaf.
pub fn envelope_of(record: &EntryRecord) -> Result<Envelope, StoreError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Leaf {
        dsse_envelope: Envelope,
    }
    serde_json::from_slice::<Leaf>(&record.leaf)
        .map(|l| l.dsse_envelope)
        .map_err(|e| {
            StoreError::Corrupt(format!("leaf {} is not a byline leaf: {e}", record.index))
        })
}

/// The latest checkpoint as (size, note): the checkpoint of the committed tree, signed from its
/// frontier. The sequencer stores each batch's checkpoint lazily (with the next batch), so the
/// stored one may lag; reading the tree instead never does. Ed25519 signatures are
/// deterministic, so this is byte for byte the note the sequencer handed out for that size —
/// also when another replica of the same log signs it — and the signer keeps the last one, so
/// repeated reads of one size sign once.
pub async fn latest_checkpoint<S: Store>(
    store: &S,
    signer: &LogSigner,
) -> Result<(u64, String), LogError> {
    let state = store.log_state().await?;
    let size = state.range.size();
    Ok((size, signer.sign_checkpoint(size, state.range.root())?))
}

/// An inclusion proof for `index` in the tree of `size` leaves, read from the store.
pub async fn inclusion_proof<S: Store>(
    store: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, LogError> {
    let plan = inclusion_proof_plan(index, size).map_err(|e| {
        LogError::OutOfRange(format!(
            "no inclusion proof for index {index} in size {size}: {e}"
        ))
    })?;
    let hashes = store.nodes(plan.ids()).await?;
    Ok(plan.assemble(&hashes).map_err(StoreError::from)?)
}

/// A consistency proof between two sizes, read from the store.
pub async fn consistency_proof<S: Store>(
    store: &S,
    from: u64,
    to: u64,
) -> Result<Vec<Hash>, LogError> {
    if from == to {
        return Ok(Vec::new());
    }
    let plan = consistency_proof_plan(from, to).map_err(|e| {
        LogError::OutOfRange(format!("no consistency proof from {from} to {to}: {e}"))
    })?;
    let hashes = store.nodes(plan.ids()).await?;
    Ok(plan.assemble(&hashes).map_err(StoreError::from)?)
}

/// A full bundle for a stored entry, proved against the checkpoint `(size, note)` (read once
/// by the caller, however many entries it answers with).
pub async fn bundle_for_entry<S: Store>(
    store: &S,
    record: &EntryRecord,
    (size, note): (u64, &str),
) -> Result<Bundle, LogError> {
    let proof = inclusion_proof(store, record.index, size).await?;
    Ok(Bundle {
        media_type: crate::core::constants::BUNDLE_MEDIA_TYPE_V1.to_string(),
        dsse_envelope: envelope_of(record)?,
        log_entry: Some(LogEntry {
            log_index: record.index,
            integrated_time: record.integrated_time.to_string(),
            inclusion_proof: InclusionProof {
                tree_size: size,
                hashes: proof.iter().map(|h| encode_base64(h)).collect(),
                checkpoint: note.to_string(),
            },
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite::SqliteStore;
    use crate::storage::EntryKind;

    #[test]
    fn a_batchs_answers_spell_every_path_and_time_as_if_written_alone() {
        let h = |b: u8| [b; 32];
        let then: Timestamp = "2026-11-28T17:00:00Z".parse().unwrap();
        let later: Timestamp = "2026-11-28T17:00:01Z".parse().unwrap();
        // Paths that share their upper hashes, differ below, are shorter or longer than the
        // one before, and share a hash at a different position (which must not be reused
        // from the wrong place).
        let paths: [&[Hash]; 5] = [
            &[h(1), h(2), h(3)],
            &[h(4), h(2), h(3)],
            &[h(4), h(5)],
            &[h(5), h(2), h(3), h(6)],
            &[],
        ];
        let times = [then, then, later, later, then];
        let mut memo = BatchMemo::new();
        for (path, time) in paths.iter().zip(times) {
            let plain: Vec<String> = path.iter().map(|h| encode_base64(h)).collect();
            assert_eq!(memo.path(path), plain);
            assert_eq!(memo.time(time), time.to_string());
        }
    }

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

    /// A migrated SQLite store in a temporary directory (kept while the guard lives).
    async fn temp_store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}/log.db", dir.path().display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn the_latest_checkpoint_is_the_committed_trees_even_before_it_is_stored() {
        let (_dir, store) = temp_store().await;
        let signer =
            LogSigner::new(SigningKey::danger_from_seed(&[9; 32]), "byline.test/log").unwrap();
        // Another replica of the same log: the same key, none of this signer's memory.
        let replica =
            LogSigner::new(SigningKey::danger_from_seed(&[9; 32]), "byline.test/log").unwrap();
        // A batch committed as the sequencer commits it; its checkpoint is not stored yet.
        let Committed {
            tree_size: size,
            checkpoint: first,
            ..
        } = commit_batch(&store, &signer, vec![pending(1)], None)
            .await
            .unwrap();
        assert_eq!(store.latest_checkpoint().await.unwrap(), None);
        // Readers get the checkpoint of the committed tree: the very note the batch's
        // bundles carry (Ed25519 is deterministic).
        let (latest, note) = latest_checkpoint(&store, &replica).await.unwrap();
        assert_eq!((latest, note.as_str()), (size, first.note.as_str()));
        // The next batch stores it in its own transaction.
        let Committed {
            tree_size: size2,
            checkpoint: second,
            ..
        } = commit_batch(&store, &signer, vec![pending(2)], Some(&first))
            .await
            .unwrap();
        assert_eq!(
            store.latest_checkpoint().await.unwrap(),
            Some((size, first.note.clone()))
        );
        let (latest, note) = latest_checkpoint(&store, &signer).await.unwrap();
        assert_eq!((latest, note), (size2, second.note));
    }

    #[tokio::test]
    async fn an_entry_whose_caller_has_gone_before_the_append_is_not_logged() {
        let (_dir, store) = temp_store().await;
        let signer = Arc::new(LogSigner::new(SigningKey::generate(), "byline.test/log").unwrap());
        let (tx, rx) = mpsc::channel(8);
        // The first caller's deadline passed while its entry was queued: its reply end is gone.
        let (gone, gone_wait) = oneshot::channel();
        drop(gone_wait);
        tx.send(Job {
            pending: pending(1),
            reply: gone,
        })
        .await
        .unwrap();
        let (reply, wait) = oneshot::channel();
        tx.send(Job {
            pending: pending(2),
            reply,
        })
        .await
        .unwrap();
        drop(tx);
        run_sequencer(store.clone(), signer, SequencerSettings::default(), rx).await;
        let logged = wait.await.unwrap().unwrap();
        assert_eq!(
            logged.appended.index, 0,
            "the live caller's entry is the first"
        );
        assert_eq!(logged.envelope.payload, "p2");
        assert_eq!(store.log_state().await.unwrap().range.size(), 1);
    }

    /// A sequencer over a fresh store with batches of at most `max_batch` waiting `max_wait`:
    /// the store's directory, the queue to submit to, and the task (it ends when the queue's
    /// senders are dropped).
    async fn start_sequencer(
        max_batch: usize,
        max_wait: Duration,
    ) -> (
        tempfile::TempDir,
        mpsc::Sender<Job>,
        tokio::task::JoinHandle<()>,
    ) {
        let (dir, store) = temp_store().await;
        let signer = Arc::new(LogSigner::new(SigningKey::generate(), "byline.test/log").unwrap());
        let (tx, rx) = mpsc::channel(8);
        let settings = SequencerSettings {
            max_batch,
            max_wait,
            queue: 8,
        };
        (
            dir,
            tx,
            tokio::spawn(run_sequencer(store, signer, settings, rx)),
        )
    }

    /// Submits entry `n` (of `pending`); returns where its answer will come.
    async fn submit(
        tx: &mpsc::Sender<Job>,
        n: u8,
    ) -> oneshot::Receiver<Result<LoggedEntry, Arc<LogError>>> {
        let (reply, wait) = oneshot::channel();
        tx.send(Job {
            pending: pending(n),
            reply,
        })
        .await
        .unwrap();
        wait
    }

    /// An entry that arrives while the first entry of a batch waits joins that batch, and a
    /// batch that fills up is committed at once rather than at the end of the wait (here ten
    /// seconds; the test allows five).
    #[tokio::test]
    async fn entries_arriving_during_the_wait_share_the_batch_and_a_full_batch_goes_at_once() {
        let (_dir, tx, sequencer) = start_sequencer(3, Duration::from_secs(10)).await;
        let mut waits = Vec::new();
        for n in 1..=3 {
            waits.push(submit(&tx, n).await);
            // The first entry is taken and waiting before the others arrive.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for wait in waits {
            let logged = tokio::time::timeout(Duration::from_secs(5), wait)
                .await
                .expect("a full batch does not wait out its ten seconds")
                .unwrap()
                .unwrap();
            assert_eq!(
                logged.log_entry.inclusion_proof.tree_size, 3,
                "all three entries were appended in one batch"
            );
        }
        drop(tx);
        sequencer.await.unwrap();
    }

    /// On a quiet server a lone entry does not wait for company: after a batch that held one
    /// entry, the next is cut at once, so two entries 100 ms apart are appended one by one
    /// even though the wait (500 ms) would have gathered them; the first batch of all waits.
    #[tokio::test]
    async fn after_a_lone_entry_the_next_batch_does_not_wait() {
        let (_dir, tx, sequencer) = start_sequencer(8, Duration::from_millis(500)).await;
        // The first batch waits its 500 ms and gathers nobody.
        let first = submit(&tx, 1).await.await.unwrap().unwrap();
        assert_eq!(first.log_entry.inclusion_proof.tree_size, 1);
        let second = submit(&tx, 2).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let third = submit(&tx, 3).await;
        let second = second.await.unwrap().unwrap();
        let third = third.await.unwrap().unwrap();
        assert_eq!(
            (
                second.log_entry.inclusion_proof.tree_size,
                third.log_entry.inclusion_proof.tree_size
            ),
            (2, 3),
            "each lone entry was appended in a batch of its own"
        );
        drop(tx);
        sequencer.await.unwrap();
    }
}
