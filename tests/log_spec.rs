//! Bundles returned by the real server verify offline with code written here from the public
//! specifications only (RFC 8785 JCS, RFC 6962/9162 Merkle hashing and inclusion proofs, C2SP
//! tlog-checkpoint and signed-note, DSSE v1, in-toto Statement v1), never with byline's own
//! proof, note, JCS, DSSE or bundle code. byline is used only to start the server (the test
//! harness) and for its generated gRPC client.

mod server_harness;

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine as _;
use byline::proto as pb;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;
use server_harness::{content_request, with_token, Server};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// RFC 8785 (JCS), for the JSON values the log leaf holds.

/// The RFC 8785 serialization of `v`. Supports objects, arrays, strings, integers and the
/// literals; any non-integer number is refused (the leaf holds none).
fn jcs(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    jcs_into(v, &mut out);
    out
}

fn jcs_into(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                panic!("this JCS serializer supports integers only, not {n}");
            }
        }
        Value::String(s) => jcs_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                jcs_into(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // RFC 8785 §3.2.3: property names sorted by their UTF-16 code units.
            let mut keys: Vec<(&String, Vec<u16>)> = map
                .keys()
                .map(|k| (k, k.encode_utf16().collect()))
                .collect();
            keys.sort_by(|a, b| a.1.cmp(&b.1));
            out.push(b'{');
            for (i, (k, _)) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                jcs_string(k, out);
                out.push(b':');
                jcs_into(&map[k.as_str()], out);
            }
            out.push(b'}');
        }
    }
}

/// RFC 8785 §3.2.2.2: `"` and `\` and the control characters escaped (the five short forms,
/// else `\u00xx` in lowercase hex); everything else as literal UTF-8.
fn jcs_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

// ---------------------------------------------------------------------------------------------
// RFC 6962 §2.1 / RFC 9162 §2.1 hashing and inclusion proofs.

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn leaf_hash(leaf: &[u8]) -> [u8; 32] {
    sha256(&[&[0x00], leaf])
}

fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    sha256(&[&[0x01], left, right])
}

/// RFC 9162 §2.1.1: MTH of a list of leaf hashes (split at the largest power of two < n).
fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => sha256(&[]),
        1 => leaves[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// RFC 9162 §2.1.3.2: the root an inclusion proof leads to, or why it is invalid.
fn root_from_inclusion_proof(
    leaf_index: u64,
    tree_size: u64,
    hash: [u8; 32],
    path: &[[u8; 32]],
) -> Result<[u8; 32], String> {
    // 1. leaf_index must be below tree_size.
    if leaf_index >= tree_size {
        return Err(format!("leaf index {leaf_index} >= tree size {tree_size}"));
    }
    // 2.-3.
    let mut fnode = leaf_index;
    let mut snode = tree_size - 1;
    let mut r = hash;
    // 4.
    for p in path {
        // a.
        if snode == 0 {
            return Err("inclusion path too long".into());
        }
        // b.
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        // c.
        fnode >>= 1;
        snode >>= 1;
    }
    // 5. (the comparison with the root hash is done by the caller)
    if snode != 0 {
        return Err("inclusion path too short".into());
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// C2SP signed-note and tlog-checkpoint.

/// A C2SP note verifier key for Ed25519: `<name>+<8 hex key hash>+<base64(0x01 || key)>`.
struct NoteVerifier {
    name: String,
    key_hash: [u8; 4],
    key: VerifyingKey,
}

fn parse_verifier_key(vkey: &str) -> Result<NoteVerifier, String> {
    let (name, rest) = vkey.split_once('+').ok_or("no '+' after the name")?;
    let (hash_hex, key64) = rest.split_once('+').ok_or("no '+' after the key hash")?;
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(format!("bad key name {name:?}"));
    }
    if hash_hex.len() != 8 || !hash_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("bad key hash {hash_hex:?}"));
    }
    let key_hash: [u8; 4] = hex::decode(hash_hex).unwrap().try_into().unwrap();
    let data = STANDARD
        .decode(key64)
        .map_err(|e| format!("key base64: {e}"))?;
    if data.len() != 33 || data[0] != 0x01 {
        return Err(format!(
            "key data is not 0x01 || 32-byte Ed25519 key ({} bytes)",
            data.len()
        ));
    }
    // The key hash is the first 4 bytes of SHA-256(name || "\n" || 0x01 || key).
    let computed = sha256(&[name.as_bytes(), b"\n", &data]);
    if computed[..4] != key_hash {
        return Err(format!(
            "key hash {hash_hex} does not match the computed {}",
            hex::encode(&computed[..4])
        ));
    }
    let key = VerifyingKey::from_bytes(&data[1..].try_into().unwrap())
        .map_err(|e| format!("Ed25519 key: {e}"))?;
    Ok(NoteVerifier {
        name: name.to_string(),
        key_hash,
        key,
    })
}

/// Splits a signed note into its text (through its final newline) and its signature lines.
fn split_note(note: &str) -> Result<(&str, Vec<&str>), String> {
    if !note.ends_with('\n') {
        return Err("note does not end with a newline".into());
    }
    let blank = note.rfind("\n\n").ok_or("note has no blank line")?;
    let text = &note[..blank + 1];
    let sigs = note[blank + 2..].strip_suffix('\n').unwrap_or("");
    if sigs.is_empty() {
        return Err("note has no signature lines".into());
    }
    Ok((text, sigs.split('\n').collect()))
}

/// Verifies that `verifier` signed the note; returns the note text.
fn verify_note<'a>(note: &'a str, verifier: &NoteVerifier) -> Result<&'a str, String> {
    let (text, sig_lines) = split_note(note)?;
    let mut found = false;
    for line in sig_lines {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or_else(|| format!("signature line does not start with an em dash: {line:?}"))?;
        let (name, sig64) = rest
            .split_once(' ')
            .ok_or_else(|| format!("bad signature line {line:?}"))?;
        let sig = STANDARD
            .decode(sig64)
            .map_err(|e| format!("signature base64: {e}"))?;
        if sig.len() < 4 {
            return Err("signature too short".into());
        }
        if name != verifier.name || sig[..4] != verifier.key_hash {
            continue; // another signer's line
        }
        if sig.len() != 4 + 64 {
            return Err(format!("Ed25519 signature is {} bytes", sig.len() - 4));
        }
        let sig = Signature::from_bytes(&sig[4..].try_into().unwrap());
        verifier
            .key
            .verify_strict(text.as_bytes(), &sig)
            .map_err(|e| format!("note signature does not verify: {e}"))?;
        found = true;
    }
    if !found {
        return Err(format!("no signature by {}", verifier.name));
    }
    Ok(text)
}

struct Checkpoint {
    origin: String,
    size: u64,
    root: [u8; 32],
}

/// Verifies the signed note and parses its text as a tlog-checkpoint.
fn verify_checkpoint(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, String> {
    let text = verify_note(note, verifier)?;
    let lines: Vec<&str> = text.strip_suffix('\n').unwrap().split('\n').collect();
    if lines.len() < 3 {
        return Err(format!("checkpoint has {} lines", lines.len()));
    }
    let size_ok = !lines[1].is_empty()
        && lines[1].bytes().all(|b| b.is_ascii_digit())
        && (lines[1] == "0" || !lines[1].starts_with('0'));
    if !size_ok {
        return Err(format!("bad tree size line {:?}", lines[1]));
    }
    let size: u64 = lines[1].parse().map_err(|e| format!("tree size: {e}"))?;
    let root = STANDARD
        .decode(lines[2])
        .map_err(|e| format!("root base64: {e}"))?;
    let root: [u8; 32] = root
        .try_into()
        .map_err(|_| "root hash is not 32 bytes".to_string())?;
    Ok(Checkpoint {
        origin: lines[0].to_string(),
        size,
        root,
    })
}

// ---------------------------------------------------------------------------------------------
// DSSE v1 and the in-toto Statement.

fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// DSSE payloads and signatures may use either base64 alphabet.
fn b64_either(s: &str) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(s)
        .or_else(|_| URL_SAFE.decode(s))
        .map_err(|e| format!("base64: {e}"))
}

/// Verifies the envelope's signature with `publisher` and returns the Statement.
fn verify_envelope(env: &Value, publisher: &VerifyingKey) -> Result<Value, String> {
    let payload_type = env["payloadType"].as_str().ok_or("no payloadType")?;
    if payload_type != "application/vnd.in-toto+json" {
        return Err(format!("payloadType {payload_type}"));
    }
    let body = b64_either(env["payload"].as_str().ok_or("no payload")?)?;
    let message = pae(payload_type, &body);
    let sigs = env["signatures"].as_array().ok_or("no signatures")?;
    let mut ok = false;
    for s in sigs {
        let sig = b64_either(s["sig"].as_str().ok_or("no sig")?)?;
        let Ok(sig) = <[u8; 64]>::try_from(sig.as_slice()) else {
            continue;
        };
        if publisher
            .verify_strict(&message, &Signature::from_bytes(&sig))
            .is_ok()
        {
            ok = true;
        }
    }
    if !ok {
        return Err("no envelope signature verifies with the publisher key".into());
    }
    serde_json::from_slice(&body).map_err(|e| format!("payload is not JSON: {e}"))
}

// ---------------------------------------------------------------------------------------------
// RFC 3339 `YYYY-MM-DDTHH:MM:SSZ` to Unix seconds (proleptic Gregorian, days from civil).

fn rfc3339_utc_seconds(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(format!("{s:?} is not RFC 3339 UTC with whole seconds"));
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (hh, mm, ss) = (n(11..13), n(14..16), n(17..19));
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

// ---------------------------------------------------------------------------------------------
// A bundle, checked from the specifications.

struct Keys {
    origin: String,
    log: NoteVerifier,
    publisher: VerifyingKey,
    publisher_keyid: String,
}

/// The log leaf: JCS of {"dsseEnvelope": <envelope>, "integratedTime": <string>}.
fn leaf_of(bundle: &Value) -> Vec<u8> {
    let mut leaf = serde_json::Map::new();
    leaf.insert("dsseEnvelope".into(), bundle["dsseEnvelope"].clone());
    leaf.insert(
        "integratedTime".into(),
        bundle["logEntry"]["integratedTime"].clone(),
    );
    jcs(&Value::Object(leaf))
}

fn proof_hashes(bundle: &Value) -> Result<Vec<[u8; 32]>, String> {
    bundle["logEntry"]["inclusionProof"]["hashes"]
        .as_array()
        .ok_or("no hashes")?
        .iter()
        .map(|h| {
            let raw = STANDARD
                .decode(h.as_str().ok_or("hash is not a string")?)
                .map_err(|e| format!("hash base64: {e}"))?;
            <[u8; 32]>::try_from(raw.as_slice()).map_err(|_| "hash is not 32 bytes".to_string())
        })
        .collect()
}

/// The log part: leaf bytes, proof hashes and checkpoint note are passed in separately so that
/// the negative checks can alter each one.
fn verify_log_entry(
    leaf: &[u8],
    index: u64,
    tree_size: u64,
    hashes: &[[u8; 32]],
    note: &str,
    keys: &Keys,
) -> Result<Checkpoint, String> {
    let root = root_from_inclusion_proof(index, tree_size, leaf_hash(leaf), hashes)?;
    let cp = verify_checkpoint(note, &keys.log)?;
    if cp.origin != keys.origin {
        return Err(format!(
            "checkpoint origin {:?} != {:?}",
            cp.origin, keys.origin
        ));
    }
    if cp.size != tree_size {
        return Err(format!(
            "checkpoint size {} != treeSize {tree_size}",
            cp.size
        ));
    }
    if cp.root != root {
        return Err("the inclusion proof does not lead to the checkpoint's root".into());
    }
    Ok(cp)
}

struct Checked {
    index: u64,
    tree_size: u64,
    root: [u8; 32],
    leaf_hash: [u8; 32],
    time: i64,
}

fn verify_bundle(bundle: &Value, keys: &Keys, text_sha256: &str) -> Result<Checked, String> {
    if bundle["mediaType"] != "application/vnd.byline.bundle.v1+json" {
        return Err(format!("mediaType {}", bundle["mediaType"]));
    }
    let entry = &bundle["logEntry"];
    let index = entry["logIndex"].as_u64().ok_or("logIndex")?;
    let time = entry["integratedTime"]
        .as_str()
        .ok_or("integratedTime is not a string")?;
    let proof = &entry["inclusionProof"];
    let tree_size = proof["treeSize"].as_u64().ok_or("treeSize")?;
    let note = proof["checkpoint"].as_str().ok_or("checkpoint")?;
    let leaf = leaf_of(bundle);
    let cp = verify_log_entry(&leaf, index, tree_size, &proof_hashes(bundle)?, note, keys)?;

    let env = &bundle["dsseEnvelope"];
    let statement = verify_envelope(env, &keys.publisher)?;
    for s in env["signatures"].as_array().unwrap() {
        if s["keyid"] != keys.publisher_keyid.as_str() {
            return Err(format!("keyid {} is not the publisher's", s["keyid"]));
        }
    }
    if statement["_type"] != "https://in-toto.io/Statement/v1" {
        return Err(format!("_type {}", statement["_type"]));
    }
    let subject = statement["subject"][0]["digest"]["sha256"]
        .as_str()
        .ok_or("no subject[0].digest.sha256")?;
    if subject != text_sha256 {
        return Err(format!(
            "subject digest {subject} != text_sha256 {text_sha256}"
        ));
    }
    if statement["predicate"]["digests"]["text"] != text_sha256 {
        return Err(format!(
            "predicate.digests.text {} != {text_sha256}",
            statement["predicate"]["digests"]["text"]
        ));
    }
    Ok(Checked {
        index,
        tree_size,
        root: cp.root,
        leaf_hash: leaf_hash(&leaf),
        time: rfc3339_utc_seconds(time)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Negative-check helpers.

fn flip_b64(s: &str, at: usize) -> String {
    let mut raw = STANDARD.decode(s).unwrap();
    raw[at] ^= 0x01;
    STANDARD.encode(raw)
}

/// The note with its root hash line altered (one bit of one byte).
fn note_with_flipped_root(note: &str) -> String {
    let mut lines: Vec<String> = note.split('\n').map(str::to_string).collect();
    lines[2] = flip_b64(&lines[2], 0);
    lines.join("\n")
}

/// The note with one byte of the Ed25519 signature (after the 4-byte key hash) altered.
fn note_with_flipped_signature(note: &str) -> String {
    let (text, sigs) = split_note(note).unwrap();
    let mut out = format!("{text}\n");
    for line in sigs {
        let (head, sig64) = line.rsplit_once(' ').unwrap();
        out.push_str(&format!("{head} {}\n", flip_b64(sig64, 4 + 10)));
    }
    out
}

// ---------------------------------------------------------------------------------------------

#[test]
fn jcs_matches_rfc8785_vectors() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/jcs");
    // Only strings, integers, objects, arrays and literals (no fractional numbers).
    for name in ["arrays.json", "french.json", "unicode.json", "weird.json"] {
        let input = std::fs::read(format!("{dir}/input/{name}")).unwrap();
        let expected = std::fs::read(format!("{dir}/output/{name}")).unwrap();
        let value: Value = serde_json::from_slice(&input).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&jcs(&value)),
            String::from_utf8_lossy(&expected),
            "JCS vector {name}"
        );
    }
    // The control-character escapes.
    let v = Value::String("\u{1}\u{8}\u{c}\n\r\t\u{1f}\"\\/\u{7f}é".into());
    assert_eq!(
        String::from_utf8(jcs(&v)).unwrap(),
        "\"\\u0001\\b\\f\\n\\r\\t\\u001f\\\"\\\\/\u{7f}é\""
    );
}

#[test]
fn inclusion_proofs_from_the_rfc_algorithm_round_trip() {
    // A self-check of the spec code against MTH (RFC 9162 §2.1.1) for small trees.
    fn path(index: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
        // RFC 9162 §2.1.3.1 PATH(m, D[n]).
        if leaves.len() <= 1 {
            return vec![];
        }
        let mut k = 1;
        while k * 2 < leaves.len() {
            k *= 2;
        }
        if index < k {
            let mut p = path(index, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(index - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }
    for n in 1..=20usize {
        let leaves: Vec<[u8; 32]> = (0..n).map(|i| leaf_hash(&[i as u8])).collect();
        let root = mth(&leaves);
        for (i, leaf) in leaves.iter().enumerate() {
            let p = path(i, &leaves);
            assert_eq!(
                root_from_inclusion_proof(i as u64, n as u64, *leaf, &p),
                Ok(root)
            );
            if !p.is_empty() {
                assert_ne!(
                    root_from_inclusion_proof(i as u64, n as u64, *leaf, &p[1..]),
                    Ok(root)
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_bundles_verify_with_spec_only_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.client().await;

    // 1. Sign 25 articles: 12 in one stream, 8 unary, 5 in a second stream.
    let mut signed: Vec<pb::SignResponse> = Vec::new();
    async fn stream(
        client: &mut byline::proto::byline_client::BylineClient<tonic::transport::Channel>,
        token: &str,
        range: std::ops::Range<usize>,
        signed: &mut Vec<pb::SignResponse>,
    ) {
        let requests: Vec<pb::SignRequest> = range.map(content_request).collect();
        let n = requests.len();
        let mut answers = client
            .sign_stream(with_token(tokio_stream::iter(requests), token))
            .await
            .unwrap()
            .into_inner();
        let mut got = 0;
        while let Some(answer) = answers.message().await.unwrap() {
            match answer.result {
                Some(pb::sign_stream_response::Result::Signed(s)) => signed.push(s),
                other => panic!("request {} failed: {other:?}", answer.request_id),
            }
            got += 1;
        }
        assert_eq!(got, n);
    }
    stream(&mut client, &server.token, 0..12, &mut signed).await;
    for n in 12..20 {
        let s = client
            .sign(with_token(content_request(n), &server.token))
            .await
            .unwrap()
            .into_inner();
        signed.push(s);
    }
    stream(&mut client, &server.token, 20..25, &mut signed).await;
    assert_eq!(signed.len(), 25);

    let keys = client
        .get_keys(pb::GetKeysRequest {
            publisher_domain: "localhost".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let checkpoint = client
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();

    let log = parse_verifier_key(&keys.log_verifier_key)
        .unwrap_or_else(|e| panic!("log verifier key {:?}: {e}", keys.log_verifier_key));
    assert_eq!(keys.publisher_keys.len(), 1, "{:?}", keys.publisher_keys);
    let pk = &keys.publisher_keys[0];
    assert_eq!(pk.publisher_domain, "localhost");
    let pk_raw = STANDARD.decode(&pk.public_key).unwrap();
    assert_eq!(pk_raw.len(), 32, "publisher key is not 32 bytes");
    assert_eq!(pk.keyid, hex::encode(sha256(&[&pk_raw])), "keyid");
    let keys = Keys {
        origin: keys.log_origin.clone(),
        log,
        publisher: VerifyingKey::from_bytes(&pk_raw.try_into().unwrap()).unwrap(),
        publisher_keyid: pk.keyid.clone(),
    };

    // The latest checkpoint.
    let latest = verify_checkpoint(&checkpoint.checkpoint, &keys.log)
        .unwrap_or_else(|e| panic!("GetCheckpoint: {e}\n{}", checkpoint.checkpoint));
    assert_eq!(latest.origin, keys.origin);
    assert_eq!(latest.size, checkpoint.tree_size);

    // 2. Every bundle, from the specifications.
    let mut checked = Vec::new();
    for s in &signed {
        let bundle: Value = serde_json::from_str(&s.bundle_json).unwrap();
        let c = verify_bundle(&bundle, &keys, &s.text_sha256)
            .unwrap_or_else(|e| panic!("bundle for index {}: {e}\n{}", s.log_index, s.bundle_json));
        assert_eq!(c.index, s.log_index);
        let t = s.integrated_time.as_ref().expect("integrated_time");
        assert_eq!((c.time, t.nanos), (t.seconds, 0), "integratedTime");
        checked.push(c);
    }
    assert_eq!(checked.len(), 25, "bundles checked");

    // Different tree sizes were proved against; one size always has one root; times never
    // decrease with the index.
    let mut sizes: Vec<u64> = checked.iter().map(|c| c.tree_size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    assert!(
        sizes.len() >= 3,
        "bundles from too few tree sizes: {sizes:?}"
    );
    checked.sort_by_key(|c| c.index);
    let indices: Vec<u64> = checked.iter().map(|c| c.index).collect();
    assert_eq!(indices, (0..25).collect::<Vec<u64>>(), "log indices");
    assert!(
        checked.windows(2).all(|w| w[0].time <= w[1].time),
        "integratedTime decreased"
    );

    // With every leaf known, the roots are the RFC 9162 MTH of the first treeSize leaves.
    let leaves: Vec<[u8; 32]> = checked.iter().map(|c| c.leaf_hash).collect();
    for c in &checked {
        assert_eq!(
            c.root,
            mth(&leaves[..c.tree_size as usize]),
            "root for size {}",
            c.tree_size
        );
    }
    assert_eq!(latest.size, 25);
    assert_eq!(latest.root, mth(&leaves), "latest checkpoint root");

    // 3. Negative checks with the same spec code, on a bundle with a non-trivial path.
    let s = signed
        .iter()
        .find(|s| {
            let b: Value = serde_json::from_str(&s.bundle_json).unwrap();
            b["logEntry"]["inclusionProof"]["hashes"]
                .as_array()
                .is_some_and(|h| h.len() >= 2)
        })
        .expect("a bundle with a proof of two hashes or more");
    let bundle: Value = serde_json::from_str(&s.bundle_json).unwrap();
    let index = bundle["logEntry"]["logIndex"].as_u64().unwrap();
    let tree_size = bundle["logEntry"]["inclusionProof"]["treeSize"]
        .as_u64()
        .unwrap();
    let note = bundle["logEntry"]["inclusionProof"]["checkpoint"]
        .as_str()
        .unwrap()
        .to_string();
    let leaf = leaf_of(&bundle);
    let hashes = proof_hashes(&bundle).unwrap();
    assert!(verify_log_entry(&leaf, index, tree_size, &hashes, &note, &keys).is_ok());

    // One byte of the leaf's integratedTime.
    let time = bundle["logEntry"]["integratedTime"].as_str().unwrap();
    let at = leaf
        .windows(time.len())
        .position(|w| w == time.as_bytes())
        .expect("integratedTime in the leaf")
        + 3;
    let mut bad_leaf = leaf.clone();
    bad_leaf[at] ^= 0x01;
    assert!(verify_log_entry(&bad_leaf, index, tree_size, &hashes, &note, &keys).is_err());
    // The same through the bundle (the leaf is rebuilt from the altered JSON).
    let mut bad_bundle = bundle.clone();
    bad_bundle["logEntry"]["integratedTime"] =
        Value::String(String::from_utf8(bad_leaf[at - 3..at - 3 + time.len()].to_vec()).unwrap());
    assert!(verify_bundle(&bad_bundle, &keys, &s.text_sha256).is_err());

    // One proof hash (each of them).
    for i in 0..hashes.len() {
        let mut bad = hashes.clone();
        bad[i][7] ^= 0x01;
        assert!(
            verify_log_entry(&leaf, index, tree_size, &bad, &note, &keys).is_err(),
            "proof hash {i}"
        );
    }
    // The checkpoint root: the signature no longer verifies.
    let bad_note = note_with_flipped_root(&note);
    assert_ne!(bad_note, note);
    assert!(verify_note(&bad_note, &keys.log).is_err());
    assert!(verify_log_entry(&leaf, index, tree_size, &hashes, &bad_note, &keys).is_err());
    // The checkpoint signature.
    let bad_note = note_with_flipped_signature(&note);
    assert_ne!(bad_note, note);
    assert!(verify_log_entry(&leaf, index, tree_size, &hashes, &bad_note, &keys).is_err());
    // The envelope signature.
    let mut bad_bundle = bundle.clone();
    let sig = bad_bundle["dsseEnvelope"]["signatures"][0]["sig"]
        .as_str()
        .unwrap()
        .to_string();
    bad_bundle["dsseEnvelope"]["signatures"][0]["sig"] = Value::String(flip_b64(&sig, 5));
    assert!(verify_envelope(&bad_bundle["dsseEnvelope"], &keys.publisher).is_err());
    assert!(verify_bundle(&bad_bundle, &keys, &s.text_sha256).is_err());
    // A wrong index or tree size.
    assert!(verify_log_entry(&leaf, index + 1, tree_size, &hashes, &note, &keys).is_err());
    assert!(verify_log_entry(&leaf, index, tree_size + 1, &hashes, &note, &keys).is_err());

    server.assert_no_panic();
}
