//! Ed25519 as byline verifies it (`ed25519_dalek::VerifyingKey::verify_strict`), against the
//! public vectors in `tests/vectors/`: Wycheproof, RFC 8032 §7.1, ed25519-speccheck and CCTV.
//!
//! The counts of accepted cases are asserted exactly, as the vectors' notes record them for ed25519-dalek 2.x, so a dependency bump that changes what byline accepts
//! fails here rather than silently.

use std::fs;
use std::path::Path;

use byline::core::keys::{strong_public_key, KeyError, SigningKey};
use ed25519_dalek::{Signature, Signer, VerifyingKey};
use serde_json::Value;

fn load(rel: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(rel);
    serde_json::from_slice(&fs::read(&path).unwrap()).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("hex {s:?}: {e}"))
}

/// Which check a case goes through.
#[derive(Clone, Copy)]
enum Check {
    /// `verify_strict`: what byline uses.
    Strict,
    /// `verify` (cofactorless, lenient about small-order points): recorded for contrast.
    Lenient,
}

/// Whether `sig` over `msg` verifies under `key`; a key or signature that does not even decode
/// counts as rejected.
fn accepts(check: Check, key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(key) = <[u8; 32]>::try_from(key) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&key) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(sig) else {
        return false;
    };
    match check {
        Check::Strict => key.verify_strict(msg, &sig).is_ok(),
        Check::Lenient => ed25519_dalek::Verifier::verify(&key, msg, &sig).is_ok(),
    }
}

#[test]
fn wycheproof_every_case_as_expected_under_verify_strict() {
    let file = load("wycheproof/ed25519_test.json");
    assert_eq!(file["algorithm"], "EDDSA");
    let mut ran = 0;
    let mut valid = 0;
    let mut wrong = Vec::new();
    for group in file["testGroups"].as_array().unwrap() {
        assert_eq!(group["publicKey"]["curve"], "edwards25519");
        let key = unhex(group["publicKey"]["pk"].as_str().unwrap());
        for t in group["tests"].as_array().unwrap() {
            let msg = unhex(t["msg"].as_str().unwrap());
            let sig = unhex(t["sig"].as_str().unwrap());
            let want = match t["result"].as_str().unwrap() {
                "valid" => true,
                "invalid" => false,
                other => panic!("tcId {}: unexpected result {other:?}", t["tcId"]),
            };
            for check in [Check::Strict, Check::Lenient] {
                if accepts(check, &key, &msg, &sig) != want {
                    wrong.push(format!(
                        "tcId {} ({}): expected {want}",
                        t["tcId"], t["comment"]
                    ));
                }
            }
            ran += 1;
            valid += usize::from(want);
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(ran, 151);
    assert_eq!(file["numberOfTests"], 151);
    assert_eq!(valid, 88);
}

#[test]
fn rfc8032_section_7_1_known_answers() {
    let file = load("rfc8032/rfc8032_7_1_ed25519.json");
    let mut ran = 0;
    for v in file["vectors"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let seed: [u8; 32] = unhex(v["secret_key"].as_str().unwrap()).try_into().unwrap();
        let public = unhex(v["public_key"].as_str().unwrap());
        let msg = unhex(v["message"].as_str().unwrap());
        let sig = unhex(v["signature"].as_str().unwrap());

        let dalek = ed25519_dalek::SigningKey::from_bytes(&seed);
        assert_eq!(
            dalek.verifying_key().as_bytes().as_slice(),
            public,
            "{name}"
        );
        assert_eq!(
            dalek.sign(&msg).to_bytes().as_slice(),
            sig,
            "{name}: signature"
        );
        assert!(accepts(Check::Strict, &public, &msg, &sig), "{name}");
        // The same seed through byline's key type gives the same public key, and that key
        // passes byline's weak-key checks.
        let ours = SigningKey::danger_from_seed(&seed).verifying_key();
        assert_eq!(ours.as_bytes().as_slice(), public, "{name}");
        assert!(strong_public_key(ours.as_bytes()).is_ok(), "{name}");
        // One flipped bit anywhere in the signature fails.
        for i in [0, 31, 32, 63] {
            let mut bad = sig.clone();
            bad[i] ^= 0x01;
            assert!(
                !accepts(Check::Strict, &public, &msg, &bad),
                "{name} bit {i}"
            );
        }
        ran += 1;
    }
    assert_eq!(ran, 5);
}

/// The indices of the speccheck cases accepted by `check`.
fn speccheck_accepted(check: Check) -> Vec<usize> {
    let cases = load("ed25519-speccheck/cases.json");
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 12);
    cases
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            accepts(
                check,
                &unhex(c["pub_key"].as_str().unwrap()),
                &unhex(c["message"].as_str().unwrap()),
                &unhex(c["signature"].as_str().unwrap()),
            )
        })
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn speccheck_verify_strict_accepts_only_case_3() {
    // Case 3: mixed-order A and R, 0 < S < L; it verifies under any equation and is rejected
    // only by a full-order check on A (which byline does on trust-store keys, see below).
    assert_eq!(speccheck_accepted(Check::Strict), vec![3]);
    // For contrast, the lenient `verify` accepts small-order A or R (0, 1, 2) and a
    // non-canonical A that is not reduced for the hash (11): the reason byline uses verify_strict.
    assert_eq!(speccheck_accepted(Check::Lenient), vec![0, 1, 2, 3, 11]);
}

#[test]
fn speccheck_weak_keys_are_refused_by_strong_public_key() {
    let cases = load("ed25519-speccheck/cases.json");
    let mut small = 0;
    let mut mixed = 0;
    let mut full = 0;
    for (i, c) in cases.as_array().unwrap().iter().enumerate() {
        let key: [u8; 32] = unhex(c["pub_key"].as_str().unwrap()).try_into().unwrap();
        let got = strong_public_key(&key);
        match i {
            // Small-order A (0, 1) and non-canonical encodings of a small-order A (10, 11).
            0 | 1 | 10 | 11 => {
                assert!(
                    matches!(got, Err(KeyError::Weak { .. })),
                    "case {i}: {got:?}"
                );
                small += 1;
            }
            // Mixed-order A: a torsion component, so one signature can verify in several ways;
            // this includes case 3, the one verify_strict accepts.
            2..=5 | 8 | 9 => {
                assert!(
                    matches!(got, Err(KeyError::Weak { .. })),
                    "case {i}: {got:?}"
                );
                mixed += 1;
            }
            // Full-order A (the S ≥ L cases): a good key; the signatures fail instead.
            6 | 7 => {
                assert!(got.is_ok(), "case {i}: {got:?}");
                full += 1;
            }
            _ => panic!("unexpected case {i}"),
        }
    }
    assert_eq!((small, mixed, full), (4, 6, 2));
}

#[test]
fn cctv_verify_strict_accepts_exactly_43() {
    let file = load("cctv-ed25519/ed25519vectors.json");
    let vectors = file.as_array().unwrap();
    assert_eq!(vectors.len(), 914);
    let mut strict = 0;
    let mut lenient = 0;
    let mut flagged_low_order_accepted = Vec::new();
    let mut weak_keys_admitted = Vec::new();
    for v in vectors {
        let key = unhex(v["key"].as_str().unwrap());
        let sig = unhex(v["sig"].as_str().unwrap());
        let msg = v["msg"].as_str().unwrap().as_bytes();
        let flags: Vec<&str> = v["flags"]
            .as_array()
            .map(|f| f.iter().map(|x| x.as_str().unwrap()).collect())
            .unwrap_or_default();
        let ok = accepts(Check::Strict, &key, msg, &sig);
        strict += usize::from(ok);
        lenient += usize::from(accepts(Check::Lenient, &key, msg, &sig));
        // verify_strict rejects every low-order A or R (CCTV README).
        if ok
            && flags.iter().any(|f| {
                matches!(
                    *f,
                    "low_order_A" | "low_order_R" | "non_canonical_A" | "non_canonical_R"
                )
            })
        {
            flagged_low_order_accepted.push(v["number"].clone());
        }
        // No key with a low-order component gets into a byline trust store.
        let has_torsion = flags.iter().any(|f| {
            matches!(
                *f,
                "low_order_A" | "non_canonical_A" | "low_order_component_A"
            )
        });
        if has_torsion && strong_public_key(&key.clone().try_into().unwrap()).is_ok() {
            weak_keys_admitted.push(v["number"].clone());
        }
    }
    assert!(
        flagged_low_order_accepted.is_empty(),
        "{flagged_low_order_accepted:?}"
    );
    assert!(weak_keys_admitted.is_empty(), "{weak_keys_admitted:?}");
    assert_eq!(strict, 43, "verify_strict");
    assert_eq!(lenient, 208, "verify");
}
