//! The log from the CLI against a real server: `verify --server` proves the bundle's checkpoint
//! consistent with the latest and remembers the largest checkpoint, reporting a fork (exit 1)
//! when the server shows a smaller or different tree; `log monitor` lists a publisher's entries.

mod server_harness;

use std::path::Path;
use std::process::{Command, Output};

use byline::core::keys::SigningKey;
use byline::core::note::{sign_note, Checkpoint};
use server_harness::{bin, content_request, pin_trust, with_token, Server};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn sign_some(server: &Server, dir: &Path, ns: &[usize]) {
    let mut client = server.client().await;
    for &n in ns {
        let r = client
            .sign(with_token(content_request(n), &server.token))
            .await
            .unwrap()
            .into_inner();
        std::fs::write(dir.join(format!("a{n}.md")), server_harness::article(n)).unwrap();
        std::fs::write(dir.join(format!("a{n}.md.byline.json")), r.bundle_json).unwrap();
    }
}

/// A checkpoint note signed with the log's own key (taken from the server's key directory),
/// as a misbehaving log operator could make.
fn forged_checkpoint(dir: &Path, origin: &str, size: u64, root: [u8; 32]) -> String {
    let pem = std::fs::read_to_string(dir.join("keys/log.key")).unwrap();
    let key = SigningKey::from_pkcs8_pem(&pem).unwrap();
    let text = Checkpoint {
        origin: origin.to_string(),
        size,
        root_hash: root,
        extensions: vec![],
    }
    .to_note_text()
    .unwrap();
    let dalek =
        <ed25519_dalek::SigningKey as ed25519_dalek::pkcs8::DecodePrivateKey>::from_pkcs8_pem(&pem)
            .unwrap();
    assert_eq!(dalek.verifying_key(), key.verifying_key());
    sign_note(&text, origin, &dalek).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_with_server_checks_consistency_and_reports_forks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d, &[]);
    pin_trust(&server, &d.join("reader.toml"));
    sign_some(&server, d, &[1, 2]).await;
    // More entries after a1's bundle was made, so its checkpoint is older than the latest.
    sign_some(&server, d, &[3, 4, 5]).await;
    let state = d.join("state");
    let state_s = state.to_str().unwrap();

    let out = run(
        d,
        &[
            "verify",
            "a1.md",
            "--trust",
            "reader.toml",
            "--server",
            &server.url,
            "--state-dir",
            state_s,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("consistent with the log's latest checkpoint, size 5"),
        "{}",
        text(&out)
    );
    // Offline, the verdict says consistency was not checked.
    let out = run(d, &["verify", "a1.md", "--trust", "reader.toml", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["consistencyChecked"], false);

    // The CLI remembered the checkpoint of size 5.
    let remembered = std::fs::read_dir(state.join("checkpoints"))
        .unwrap()
        .count();
    assert_eq!(remembered, 1);

    // A log that shows a smaller tree than one seen before is a fork.
    let bundle: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("a1.md.byline.json")).unwrap())
            .unwrap();
    let note = bundle["logEntry"]["inclusionProof"]["checkpoint"]
        .as_str()
        .unwrap();
    let origin = note.lines().next().unwrap().to_string();
    let forged = forged_checkpoint(d, &origin, 50, [9u8; 32]);
    let file = std::fs::read_dir(state.join("checkpoints"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&file, &forged).unwrap();
    let out = run(
        d,
        &[
            "verify",
            "a2.md",
            "--trust",
            "reader.toml",
            "--server",
            &server.url,
            "--state-dir",
            state_s,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("log fork") && text(&out).contains("size 50"),
        "{}",
        text(&out)
    );

    // Same size, another root: also a fork.
    let forged = forged_checkpoint(d, &origin, 5, [7u8; 32]);
    std::fs::write(&file, &forged).unwrap();
    let out = run(
        d,
        &[
            "verify",
            "a2.md",
            "--trust",
            "reader.toml",
            "--server",
            &server.url,
            "--state-dir",
            state_s,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("different roots"), "{}", text(&out));
    server.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_lists_the_publishers_entries_and_checks_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d, &[]);
    pin_trust(&server, &d.join("reader.toml"));
    sign_some(&server, d, &[1, 2, 3]).await;

    let out = run(
        d,
        &[
            "log",
            "monitor",
            "--server",
            &server.url,
            "--publisher",
            "localhost",
            "--trust",
            "reader.toml",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(
        stdout.contains("https://localhost/articles/2") && stdout.contains("ai-generated"),
        "{stdout}"
    );
    assert!(
        text(&out).contains("3 under localhost's keys; 0 problem(s)"),
        "{}",
        text(&out)
    );

    let out = run(
        d,
        &[
            "log",
            "monitor",
            "--server",
            &server.url,
            "--publisher",
            "localhost",
            "--since",
            "2",
            "--trust",
            "reader.toml",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);

    let out = run(
        d,
        &[
            "log",
            "prove",
            "--server",
            &server.url,
            "--index",
            "1",
            "--trust",
            "reader.toml",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("entry 1 is included"), "{}", text(&out));
}
