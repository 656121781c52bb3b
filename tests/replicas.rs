//! Scale-out on PostgreSQL, for real: two `byline serve` processes share one database (and one
//! key directory), several clients sign through both at once, the database is cut off under
//! load, and one replica is killed mid-append. The log must stay one log — unique, gap-free indices, every checkpoint
//! consistent with every later one — and nothing acknowledged may be lost.
//!
//! Each test creates its own database on the server `BYLINE_TEST_DATABASE_URL` names and drops
//! it afterwards; without that variable the tests say "SKIPPED" on standard error (past the
//! harness's capture) and `postgres_tests_ran_or_say_why` fails when `CI` is set.

mod pg_harness;
mod server_harness;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use byline::core::canonical::MediaType;
use byline::core::logproof::{check_consistent, open_checkpoint};
use byline::core::manifest::Timestamp;
use byline::core::merkle::{leaf_hash, root_from_leaf_hashes, Hash};
use byline::core::note::Checkpoint;
use byline::core::trust::TrustStore;
use byline::core::verify::{verify_article, VerifyOptions};
use byline::proto as pb;
use byline::proto::byline_client::BylineClient;
use pg_harness::{say, TempDatabase, SKIPPED};
use server_harness::{content_request, pin_trust, with_token, Server};
use sqlx::{Connection, Executor, PgConnection};
use tonic::transport::Channel;
use tonic::Code;

impl TempDatabase {
    /// An administrator's connection to the server (not to the test database, so that cutting
    /// the test database off does not cut it).
    async fn admin(&self) -> PgConnection {
        PgConnection::connect(&self.admin).await.expect("admin")
    }

    /// Ends every session on the test database.
    fn terminate_sql(&self) -> String {
        format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        )
    }
}

#[test]
fn postgres_tests_ran_or_say_why() {
    if std::env::var_os("BYLINE_TEST_DATABASE_URL").is_some() {
        return;
    }
    say(&format!(
        "{SKIPPED}: the replica and outage tests did not run"
    ));
    let ci = std::env::var("CI").unwrap_or_default();
    assert!(
        ci.is_empty() || ci == "false" || ci == "0",
        "CI is set but BYLINE_TEST_DATABASE_URL is not: the PostgreSQL replica tests would not run"
    );
}

/// Two replicas on one database and one key directory; the development token comes from the
/// first (the second finds the publisher already set up).
fn start_replicas(dir: &std::path::Path, url: &str) -> (Server, Server) {
    let first = Server::start(dir, &["--database", url]);
    assert!(
        first.token.starts_with("byl_"),
        "no development token:\n{}",
        first.log()
    );
    let second = Server::start(dir, &["--database", url]);
    assert!(
        second.token.is_empty(),
        "the second replica set up the publisher again:\n{}",
        second.log()
    );
    (first, second)
}

fn verify_bundle(trust: &TrustStore, n: usize, bundle: &str) {
    let article = server_harness::article(n);
    let v = verify_article(
        article.as_bytes(),
        MediaType::Markdown,
        bundle.as_bytes(),
        trust,
        &VerifyOptions::default(),
        Timestamp::now(),
    );
    assert!(v.verified(), "bundle {n} does not verify: {:?}", v.failure);
    assert!(v.log.is_some(), "bundle {n} carries no log entry");
}

fn bundle_checkpoint(bundle: &str) -> String {
    let b: serde_json::Value = serde_json::from_str(bundle).unwrap();
    b["logEntry"]["inclusionProof"]["checkpoint"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every leaf of the log, read back through the service.
async fn all_leaves(client: &mut BylineClient<Channel>, size: u64) -> Vec<Hash> {
    let mut leaves = Vec::new();
    while (leaves.len() as u64) < size {
        let page = client
            .get_entries(pb::GetEntriesRequest {
                start: leaves.len() as u64,
                count: 1000,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            !page.leaves.is_empty(),
            "the log ends before its checkpoint"
        );
        for leaf in page.leaves {
            assert_eq!(leaf.log_index, leaves.len() as u64, "a gap in the log");
            leaves.push(leaf_hash(&leaf.leaf));
        }
    }
    leaves.truncate(size as usize);
    leaves
}

/// Checks that all these notes are checkpoints of one log: one root per size, and each
/// consistent with the next larger (so, by transitivity, with every later one) and with the
/// latest. Proofs are asked of both replicas in turn.
async fn assert_one_history(
    notes: &[String],
    trust: &TrustStore,
    clients: &mut [BylineClient<Channel>; 2],
) -> Checkpoint {
    let mut by_size: BTreeMap<u64, Checkpoint> = BTreeMap::new();
    for note in notes {
        let cp = open_checkpoint(note, &trust.logs).expect("a checkpoint signed by the log");
        if let Some(seen) = by_size.get(&cp.size) {
            check_consistent(seen, &cp, &[]).expect("two checkpoints of one size disagree");
        }
        by_size.insert(cp.size, cp);
    }
    let latest_note = clients[0]
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
        .checkpoint;
    let latest = open_checkpoint(&latest_note, &trust.logs).unwrap();
    let ordered: Vec<&Checkpoint> = by_size.values().collect();
    let mut turn = 0;
    let mut proof = |from: u64, to: u64| {
        turn += 1;
        let mut client = clients[turn % 2].clone();
        async move {
            if from == 0 || from == to {
                return Vec::new();
            }
            client
                .get_consistency_proof(pb::GetConsistencyProofRequest {
                    from_size: from,
                    to_size: to,
                })
                .await
                .unwrap_or_else(|e| panic!("consistency proof {from} -> {to}: {e}"))
                .into_inner()
                .hashes
                .iter()
                .map(|h| h.as_slice().try_into().unwrap())
                .collect::<Vec<Hash>>()
        }
    };
    for pair in ordered.windows(2) {
        let hashes = proof(pair[0].size, pair[1].size).await;
        check_consistent(pair[0], pair[1], &hashes).unwrap_or_else(|e| panic!("{e}"));
    }
    for cp in &ordered {
        let hashes = proof(cp.size, latest.size).await;
        check_consistent(cp, &latest, &hashes).unwrap_or_else(|e| panic!("{e}"));
    }
    latest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sign_into_one_gap_free_log() {
    let Some(db) = TempDatabase::create("two_replicas_sign_into_one_gap_free_log").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (s1, s2) = start_replicas(dir.path(), &db.url);
    let token = s1.token.clone();
    let trust = pin_trust(&s1, &dir.path().join("reader-trust.toml"));
    let urls = [s1.url.clone(), s2.url.clone()];

    // Six clients, three per replica, each signing its own articles; and every client also
    // signs a few articles whose idempotency keys the other replica's clients use too.
    let clients_per_replica = 3;
    let per_client = 40;
    let shared = 8;
    let signed: Arc<Mutex<Vec<(usize, usize, pb::SignResponse)>>> = Arc::default();
    let checkpoints: Arc<Mutex<Vec<String>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..2 * clients_per_replica {
        let url = urls[c % 2].clone();
        let token = token.clone();
        let signed = signed.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = BylineClient::connect(url).await.unwrap();
            for i in 0..per_client {
                // Shared articles are numbered 0..shared; the others are the client's own.
                let (n, key) = if i < shared {
                    (i, format!("shared-{i}"))
                } else {
                    (1_000 * (c + 1) + i, String::new())
                };
                let mut request = content_request(n);
                request.idempotency_key = key;
                let response = client
                    .sign(with_token(request, &token))
                    .await
                    .unwrap_or_else(|e| panic!("client {c} article {n}: {e}"))
                    .into_inner();
                signed.lock().unwrap().push((c, n, response));
            }
        }));
    }
    for url in &urls {
        let url = url.clone();
        let checkpoints = checkpoints.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = BylineClient::connect(url).await.unwrap();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let cp = client
                    .get_checkpoint(pb::GetCheckpointRequest {})
                    .await
                    .unwrap();
                checkpoints.lock().unwrap().push(cp.into_inner().checkpoint);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let pollers = tasks.split_off(2 * clients_per_replica);
    let deadline = Instant::now() + Duration::from_secs(120);
    for t in tasks {
        tokio::time::timeout(deadline - Instant::now(), t)
            .await
            .expect("signing took too long")
            .unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in pollers {
        t.await.unwrap();
    }

    let signed = signed.lock().unwrap().clone();
    assert_eq!(signed.len(), 2 * clients_per_replica * per_client);
    // Every bundle verifies offline against keys pinned from the first replica.
    for (_, n, r) in &signed {
        verify_bundle(&trust, *n, &r.bundle_json);
    }
    // A shared idempotency key has one entry, whichever replica was asked.
    let mut by_article: BTreeMap<usize, BTreeSet<u64>> = BTreeMap::new();
    for (_, n, r) in &signed {
        by_article.entry(*n).or_default().insert(r.log_index);
    }
    for (n, indices) in &by_article {
        assert_eq!(indices.len(), 1, "article {n} was logged at {indices:?}");
    }
    // Indices are unique and gap-free: exactly 0..entries.
    let indices: BTreeSet<u64> = by_article.values().flatten().copied().collect();
    let expected = shared + 2 * clients_per_replica * (per_client - shared);
    assert_eq!(indices.len(), expected);
    assert_eq!(indices, (0..expected as u64).collect());

    // Every checkpoint either replica handed out (polled or in a bundle) belongs to one history.
    let mut notes = checkpoints.lock().unwrap().clone();
    notes.extend(
        signed
            .iter()
            .map(|(_, _, r)| bundle_checkpoint(&r.bundle_json)),
    );
    let mut clients = [s1.client().await, s2.client().await];
    let latest = assert_one_history(&notes, &trust, &mut clients).await;
    assert_eq!(latest.size, expected as u64);
    let distinct: BTreeSet<u64> = notes
        .iter()
        .map(|n| open_checkpoint(n, &trust.logs).unwrap().size)
        .collect();
    assert!(distinct.len() > 5, "too few checkpoints seen: {distinct:?}");
    // The stored leaves are the tree the checkpoint signs.
    let leaves = all_leaves(&mut clients[1], latest.size).await;
    assert_eq!(root_from_leaf_hashes(&leaves), latest.root_hash);
    // And both replicas say so.
    let from_second = clients[1]
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(from_second.tree_size, latest.size);
    s1.assert_no_panic();
    s2.assert_no_panic();
}

/// One call's outcome, with when it started and ended.
#[derive(Clone)]
struct Call {
    n: usize,
    started: Instant,
    ended: Instant,
    result: Result<pb::SignResponse, (Code, String)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_fails_unavailable_and_loses_nothing() {
    let Some(db) =
        TempDatabase::create("database_outage_fails_unavailable_and_loses_nothing").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (s1, s2) = start_replicas(dir.path(), &db.url);
    let token = s1.token.clone();
    let trust = pin_trust(&s1, &dir.path().join("reader-trust.toml"));
    let urls = [s1.url.clone(), s2.url.clone()];

    let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..4usize {
        let url = urls[c % 2].clone();
        let token = token.clone();
        let calls = calls.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = BylineClient::connect(url).await.unwrap();
            // Bounded in count as well as in time.
            for i in 0..20_000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let n = 1_000_000 * (c + 1) + i;
                let started = Instant::now();
                let result = client
                    .sign(with_token(content_request(n), &token))
                    .await
                    .map(|r| r.into_inner())
                    .map_err(|s| (s.code(), s.message().to_string()));
                let failed = result.is_err();
                calls.lock().unwrap().push(Call {
                    n,
                    started,
                    ended: Instant::now(),
                    result,
                });
                if failed {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }));
    }
    let acked = |calls: &Mutex<Vec<Call>>, after: Option<Instant>| {
        calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.result.is_ok() && after.is_none_or(|a| c.started > a))
            .count()
    };
    let wait_for = |want: usize, after: Option<Instant>, what: &'static str| {
        let calls = calls.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while acked(&calls, after) < want {
                assert!(Instant::now() < deadline, "{what}: service did not resume");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(50, None, "warm-up").await;

    let mut admin = db.admin().await;
    // 1. For about a second, every session on the database is killed every 10 ms.
    let kills_start = Instant::now();
    let mut killed = 0i64;
    while kills_start.elapsed() < Duration::from_secs(1) {
        let n: i64 = sqlx::query_scalar(&db.terminate_sql())
            .fetch_one(&mut admin)
            .await
            .unwrap();
        killed += n;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(killed > 0, "no session was killed");
    wait_for(20, Some(Instant::now()), "after the kills").await;

    // 2. The database is down for a second: no connection is accepted.
    admin
        .execute(format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", db.name).as_str())
        .await
        .unwrap();
    let _: i64 = sqlx::query_scalar(&db.terminate_sql())
        .fetch_one(&mut admin)
        .await
        .unwrap();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let up = Instant::now();
    admin
        .execute(format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", db.name).as_str())
        .await
        .unwrap();
    let _ = admin.close().await;

    // 3. Service resumes on both replicas.
    wait_for(40, Some(Instant::now()), "after the outage").await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("a client hung")
            .unwrap();
    }
    let calls = calls.lock().unwrap().clone();

    // Every failure is UNAVAILABLE: no panic, no INTERNAL.
    let failures: Vec<&Call> = calls.iter().filter(|c| c.result.is_err()).collect();
    for c in &failures {
        let (code, message) = c.result.as_ref().unwrap_err();
        assert_eq!(*code, Code::Unavailable, "article {}: {message}", c.n);
    }
    assert!(!failures.is_empty(), "the outage was not noticed");
    // While the database was down, every call failed (allowing 100 ms for the kill to land).
    let during: Vec<&Call> = calls
        .iter()
        .filter(|c| c.started > down + Duration::from_millis(100) && c.ended < up)
        .collect();
    assert!(
        !during.is_empty(),
        "no call was made while the database was down"
    );
    assert!(
        during.iter().all(|c| c.result.is_err()),
        "a call succeeded while the database was down"
    );
    // Both replicas resumed.
    for url in &urls {
        let mut client = BylineClient::connect(url.clone()).await.unwrap();
        client
            .sign(with_token(content_request(9_999_999), &token))
            .await
            .unwrap_or_else(|e| panic!("{url} did not resume: {e}"));
    }

    // Nothing acknowledged was lost: each acknowledged bundle verifies, its article is in the
    // log exactly once, and the log is gap-free and matches its latest checkpoint.
    let acked: Vec<(usize, &pb::SignResponse)> = calls
        .iter()
        .filter_map(|c| c.result.as_ref().ok().map(|r| (c.n, r)))
        .collect();
    let mut indices = BTreeSet::new();
    let mut client = s2.client().await;
    for (n, r) in &acked {
        assert!(
            indices.insert(r.log_index),
            "index {} acknowledged twice",
            r.log_index
        );
        verify_bundle(&trust, *n, &r.bundle_json);
        let found = client
            .lookup(pb::LookupRequest {
                digest: Some(pb::lookup_request::Digest::TextSha256(
                    r.text_sha256.clone(),
                )),
            })
            .await
            .unwrap()
            .into_inner();
        let at: Vec<u64> = found.entries.iter().map(|e| e.log_index).collect();
        assert_eq!(at, vec![r.log_index], "article {n} in the log at {at:?}");
        verify_bundle(&trust, *n, &found.entries[0].bundle_json);
    }
    let mut notes: Vec<String> = acked
        .iter()
        .map(|(_, r)| bundle_checkpoint(&r.bundle_json))
        .collect();
    notes.sort();
    notes.dedup();
    let mut clients = [s1.client().await, s2.client().await];
    let latest = assert_one_history(&notes, &trust, &mut clients).await;
    let leaves = all_leaves(&mut clients[0], latest.size).await;
    assert_eq!(root_from_leaf_hashes(&leaves), latest.root_hash);
    say(&format!(
        "outage: {} calls, {} acknowledged, {} UNAVAILABLE ({} while down), {killed} sessions killed, log size {}",
        calls.len(),
        acked.len(),
        failures.len(),
        during.len(),
        latest.size
    ));
    s1.assert_no_panic();
    s2.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_append_leaves_the_other_serving() {
    let Some(db) =
        TempDatabase::create("a_replica_killed_mid_append_leaves_the_other_serving").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut s1, s2) = start_replicas(dir.path(), &db.url);
    let token = s1.token.clone();
    let trust = pin_trust(&s2, &dir.path().join("reader-trust.toml"));
    let urls = [s1.url.clone(), s2.url.clone()];

    let acked: Arc<Mutex<Vec<(usize, usize, pb::SignResponse)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..4usize {
        let url = urls[c % 2].clone();
        let token = token.clone();
        let acked = acked.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = BylineClient::connect(url).await.unwrap();
            for i in 0..20_000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let n = 1_000_000 * (c + 1) + i;
                match client.sign(with_token(content_request(n), &token)).await {
                    Ok(r) => acked.lock().unwrap().push((c % 2, n, r.into_inner())),
                    // The killed replica's clients stop; the other's must not fail.
                    Err(_) if c % 2 == 0 => return,
                    Err(e) => panic!("the surviving replica failed article {n}: {e}"),
                }
            }
        }));
    }
    let count = |replica: usize| {
        acked
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _, _)| *r == replica)
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(0) < 60 || count(1) < 60 {
        assert!(Instant::now() < deadline, "the replicas did not warm up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL, most likely while it holds the append lock: PostgreSQL ends its session, which
    // rolls its transaction back and releases the lock.
    s1.kill9();
    let survivor_before = count(1);
    while count(1) < survivor_before + 100 {
        assert!(
            Instant::now() < deadline + Duration::from_secs(30),
            "the surviving replica stalled after the other was killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("a client hung")
            .unwrap();
    }

    let acked = acked.lock().unwrap().clone();
    let mut indices = BTreeSet::new();
    for (_, n, r) in &acked {
        assert!(
            indices.insert(r.log_index),
            "index {} acknowledged twice",
            r.log_index
        );
        verify_bundle(&trust, *n, &r.bundle_json);
    }
    let notes: Vec<String> = acked
        .iter()
        .map(|(_, _, r)| bundle_checkpoint(&r.bundle_json))
        .collect();
    let mut clients = [s2.client().await, s2.client().await];
    let latest = assert_one_history(&notes, &trust, &mut clients).await;
    let leaves = all_leaves(&mut clients[0], latest.size).await;
    assert_eq!(root_from_leaf_hashes(&leaves), latest.root_hash);
    assert!(latest.size >= acked.len() as u64);
    s2.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_and_token_commands_use_postgres() {
    let Some(db) = TempDatabase::create("migrate_and_token_commands_use_postgres").await else {
        return;
    };
    let run = |args: &[&str]| {
        let out = std::process::Command::new(server_harness::bin())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "byline {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // Twice: migrating is idempotent.
    run(&["migrate", "--database", &db.url]);
    run(&["migrate", "--database", &db.url]);

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--database", &db.url]);
    let token = run(&[
        "token",
        "create",
        "--publisher",
        "localhost",
        "--database",
        &db.url,
    ]);
    let token = token.trim();
    assert!(token.starts_with("byl_"), "{token}");
    let mut client = server.client().await;
    client
        .sign(with_token(content_request(1), token))
        .await
        .expect("a token made by `byline token create` on PostgreSQL signs");
    let listed = run(&["token", "list", "--database", &db.url]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    server.assert_no_panic();
}
