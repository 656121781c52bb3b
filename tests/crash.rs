//! Crash safety: clients sign in parallel, the server is killed with SIGKILL mid-load and
//! restarted. Every bundle a client received must still verify against the new checkpoint, and
//! the new checkpoint must be consistent with every checkpoint handed out before the crash.

mod server_harness;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use byline::core::canonical::MediaType;
use byline::core::logproof::open_checkpoint;
use byline::core::manifest::Timestamp;
use byline::core::merkle::{verify_consistency, verify_inclusion, Hash};
use byline::core::note::Checkpoint;
use byline::core::verify::{verify_article, VerifyOptions};
use byline::proto as pb;
use server_harness::{content_request, pin_trust, with_token, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let token = server.token.clone();
    let trust = pin_trust(&server, &dir.path().join("trust.toml"));

    let received: Arc<Mutex<Vec<(usize, pb::SignResponse)>>> = Arc::default();
    let checkpoints: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..4usize {
        let url = server.url.clone();
        let token = token.clone();
        let received = received.clone();
        clients.push(tokio::spawn(async move {
            let Ok(mut client) = pb::byline_client::BylineClient::connect(url).await else {
                return;
            };
            for i in 0.. {
                let n = c * 1_000_000 + i;
                match client.sign(with_token(content_request(n), &token)).await {
                    Ok(r) => received.lock().unwrap().push((n, r.into_inner())),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    {
        let url = server.url.clone();
        let checkpoints = checkpoints.clone();
        clients.push(tokio::spawn(async move {
            let Ok(mut client) = pb::byline_client::BylineClient::connect(url).await else {
                return;
            };
            while let Ok(cp) = client.get_checkpoint(pb::GetCheckpointRequest {}).await {
                checkpoints.lock().unwrap().push(cp.into_inner().checkpoint);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    // Let the load build up, then kill the server without warning.
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if received.lock().unwrap().len() >= 300 {
            break;
        }
    }
    server.kill9();
    for c in clients {
        let _ = c.await;
    }
    let received = received.lock().unwrap().clone();
    let mut notes: Vec<String> = checkpoints.lock().unwrap().clone();
    notes.extend(received.iter().map(|(_, r)| {
        let b: serde_json::Value = serde_json::from_str(&r.bundle_json).unwrap();
        b["logEntry"]["inclusionProof"]["checkpoint"]
            .as_str()
            .unwrap()
            .to_string()
    }));
    assert!(received.len() >= 300);

    // Restart on the same files.
    let server = Server::start(dir.path(), &[]);
    let mut client = server.client().await;
    let latest = client
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    let new_cp: Checkpoint = open_checkpoint(&latest.checkpoint, &trust.logs).unwrap();
    assert!(new_cp.size >= received.len() as u64);

    // Every acknowledged bundle still verifies offline and is in the new tree.
    for (n, r) in &received {
        let article = server_harness::article(*n);
        let v = verify_article(
            article.as_bytes(),
            MediaType::Markdown,
            r.bundle_json.as_bytes(),
            &trust,
            &VerifyOptions::default(),
            Timestamp::now(),
        );
        assert!(
            v.verified(),
            "bundle {n} no longer verifies: {:?}",
            v.failure
        );
        let proof = client
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                leaf: Some(pb::get_inclusion_proof_request::Leaf::LogIndex(r.log_index)),
                tree_size: new_cp.size,
            })
            .await
            .unwrap()
            .into_inner();
        let entries = client
            .get_entries(pb::GetEntriesRequest {
                start: r.log_index,
                count: 1,
            })
            .await
            .unwrap()
            .into_inner();
        let leaf = byline::core::merkle::leaf_hash(&entries.leaves[0].leaf);
        let hashes: Vec<Hash> = proof
            .hashes
            .iter()
            .map(|h| h.as_slice().try_into().unwrap())
            .collect();
        verify_inclusion(r.log_index, new_cp.size, &leaf, &hashes, &new_cp.root_hash)
            .unwrap_or_else(|e| panic!("entry {} is not in the new tree: {e}", r.log_index));
    }

    // The new checkpoint is consistent with every checkpoint seen before the crash.
    let mut seen: BTreeMap<u64, Hash> = BTreeMap::new();
    for note in &notes {
        let cp = open_checkpoint(note, &trust.logs).unwrap();
        if let Some(root) = seen.insert(cp.size, cp.root_hash) {
            assert_eq!(
                root, cp.root_hash,
                "two checkpoints of size {} disagree: a fork",
                cp.size
            );
        }
    }
    assert!(
        seen.len() > 3,
        "too few checkpoints observed: {}",
        seen.len()
    );
    for (&size, root) in &seen {
        if size == 0 {
            continue;
        }
        let proof = client
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                from_size: size,
                to_size: new_cp.size,
            })
            .await
            .unwrap()
            .into_inner();
        let hashes: Vec<Hash> = proof
            .hashes
            .iter()
            .map(|h| h.as_slice().try_into().unwrap())
            .collect();
        if size == new_cp.size {
            assert_eq!(*root, new_cp.root_hash);
        } else {
            verify_consistency(size, new_cp.size, root, &new_cp.root_hash, &hashes).unwrap_or_else(
                |e| {
                    panic!(
                        "checkpoint {size} is not consistent with {}: {e}",
                        new_cp.size
                    )
                },
            );
        }
    }
    server.assert_no_panic();
}
