//! Runs the RFC 6962 / RFC 9162 proof vectors of transparency-dev/merkle
//! (see tests/vectors/merkle/README.md) through the verifiers.

use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Deserialize;

use byline::core::merkle::{verify_consistency, verify_inclusion, Hash};

/// Every JSON case in inclusion/ and consistency/ at 417fb0c3.
const INCLUSION_CASES: usize = 98;
const CONSISTENCY_CASES: usize = 98;

/// The one valid case whose hashes are not 32 bytes: Go's byte-slice API
/// accepts equal 12-byte roots when size1 == size2, which a `[u8; 32]` API
/// cannot express. Its point (equal sizes, equal roots, empty proof) is kept by
/// mapping both roots through SHA-256, which preserves their equality.
const RESHAPED_VALID: &str = "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InclusionCase {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConsistencyCase {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/merkle")
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
}

fn bytes(b64: &str) -> Vec<u8> {
    BASE64.decode(b64).unwrap()
}

/// `None` when the value is not a 32-byte hash, which the typed API cannot take.
fn hash(b64: &str) -> Option<Hash> {
    bytes(b64).try_into().ok()
}

fn proof(p: &Option<Vec<String>>) -> Option<Vec<Hash>> {
    p.iter().flatten().map(|h| hash(h)).collect()
}

fn relative(path: &Path) -> String {
    path.strip_prefix(vectors_dir())
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[derive(Default)]
struct Tally {
    verified: usize,
    rejected_by_verifier: usize,
    rejected_by_type: usize,
    reshaped: usize,
}

#[test]
fn inclusion_vectors() {
    let mut files = Vec::new();
    json_files(&vectors_dir().join("inclusion"), &mut files);
    assert_eq!(
        files.len(),
        INCLUSION_CASES,
        "inclusion vector folder incomplete"
    );
    let mut tally = Tally::default();
    for path in &files {
        let name = relative(path);
        let case: InclusionCase = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        let (Some(root), Some(leaf), Some(proof)) =
            (hash(&case.root), hash(&case.leaf_hash), proof(&case.proof))
        else {
            assert!(case.want_err, "{name}: valid case with a non-32-byte hash");
            tally.rejected_by_type += 1;
            continue;
        };
        let result = verify_inclusion(case.leaf_idx, case.tree_size, &leaf, &proof, &root);
        match (case.want_err, result) {
            (false, Ok(())) => tally.verified += 1,
            (true, Err(_)) => tally.rejected_by_verifier += 1,
            (want_err, result) => {
                panic!(
                    "{name} ({}): want_err={want_err}, got {result:?}",
                    case.desc
                )
            }
        }
    }
    println!(
        "inclusion: {} cases, {} verified, {} rejected by the verifier, {} rejected as non-32-byte hashes",
        files.len(),
        tally.verified,
        tally.rejected_by_verifier,
        tally.rejected_by_type
    );
    assert_eq!(tally.verified, 6);
    assert_eq!(
        tally.verified + tally.rejected_by_verifier + tally.rejected_by_type,
        INCLUSION_CASES
    );
}

#[test]
fn consistency_vectors() {
    let mut files = Vec::new();
    json_files(&vectors_dir().join("consistency"), &mut files);
    assert_eq!(
        files.len(),
        CONSISTENCY_CASES,
        "consistency vector folder incomplete"
    );
    let mut tally = Tally::default();
    for path in &files {
        let name = relative(path);
        let case: ConsistencyCase =
            serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        let (root1, root2, proof) = if name == RESHAPED_VALID {
            assert!(!case.want_err && case.root1 == case.root2);
            tally.reshaped += 1;
            let digest = |b64: &str| -> Hash {
                use sha2::Digest as _;
                sha2::Sha256::digest(bytes(b64)).into()
            };
            (
                digest(&case.root1),
                digest(&case.root2),
                proof(&case.proof).unwrap(),
            )
        } else {
            let (Some(root1), Some(root2), Some(proof)) =
                (hash(&case.root1), hash(&case.root2), proof(&case.proof))
            else {
                assert!(case.want_err, "{name}: valid case with a non-32-byte hash");
                tally.rejected_by_type += 1;
                continue;
            };
            (root1, root2, proof)
        };
        let result = verify_consistency(case.size1, case.size2, &root1, &root2, &proof);
        match (case.want_err, result) {
            (false, Ok(())) => tally.verified += 1,
            (true, Err(_)) => tally.rejected_by_verifier += 1,
            (want_err, result) => {
                panic!(
                    "{name} ({}): want_err={want_err}, got {result:?}",
                    case.desc
                )
            }
        }
    }
    println!(
        "consistency: {} cases, {} verified ({} with reshaped roots), {} rejected by the verifier, {} rejected as non-32-byte hashes",
        files.len(),
        tally.verified,
        tally.reshaped,
        tally.rejected_by_verifier,
        tally.rejected_by_type
    );
    assert_eq!(tally.verified, 6);
    assert_eq!(tally.reshaped, 1);
    assert_eq!(
        tally.verified + tally.rejected_by_verifier + tally.rejected_by_type,
        CONSISTENCY_CASES
    );
}
