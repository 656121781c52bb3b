//! Revocation through the real server and binary: a publisher retracts a manifest with its own
//! token, an admin revokes a key from a time, each as a logged entry; `verify --server` then
//! says "retracted" or "key revoked at … (signed …, after the revocation)" and exits 1, while a
//! signature the log proves earlier than the key's revocation still verifies as a retired key.

mod server_harness;

use std::path::Path;
use std::process::{Command, Output};

use byline::proto as pb;
use server_harness::{with_token, Server};

fn byline(dir: &Path, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_byline"))
        .current_dir(dir)
        .env("BYLINE_TOKEN", token)
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .unwrap()
}

fn all(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn article(topic: &str) -> String {
    format!(
        "# Ferry timetable for {topic}\n\nThe Kellsport ferry adds an evening crossing for {topic}.\n\n\
         Tickets bought before the change remain valid, the operator said.\n"
    )
}

/// Signs `file` through the server and returns its bundle JSON.
fn sign(dir: &Path, server: &Server, file: &str) -> serde_json::Value {
    std::fs::write(dir.join(file), article(file)).unwrap();
    let out = byline(
        dir,
        &server.token,
        &[
            "sign",
            file,
            "--server",
            &server.url,
            "--byline",
            "By AI",
            "--authorship",
            "ai-generated",
            "--url",
            &format!("https://localhost/{file}"),
        ],
    );
    assert!(out.status.success(), "{}", all(&out));
    let text = std::fs::read_to_string(dir.join(format!("{file}.byline.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn verify(dir: &Path, server: &Server, file: &str, json: bool) -> Output {
    let mut args = vec![
        "verify",
        file,
        "--trust",
        "reader.toml",
        "--server",
        &server.url,
        "--state-dir",
        "state",
    ];
    if json {
        args.push("--json");
    }
    byline(dir, "", &args)
}

/// Runs `byline revoke --server URL ARGS…` with `token`.
fn revoke(dir: &Path, server: &Server, token: &str, args: &[&str]) -> Output {
    let mut all_args = vec!["revoke", "--server", &server.url];
    all_args.extend_from_slice(args);
    byline(dir, token, &all_args)
}

fn publisher_token(dir: &Path) -> String {
    let out = byline(
        dir,
        "",
        &[
            "token",
            "create",
            "--publisher",
            "localhost",
            "--database",
            "sqlite://data/byline.db",
        ],
    );
    assert!(out.status.success(), "{}", all(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_publisher_retracts_its_manifest_and_verify_says_retracted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d, &[]);
    server_harness::pin_trust(&server, &d.join("reader.toml"));
    sign(d, &server, "kept.md");
    let gone = sign(d, &server, "gone.md");
    let gone_index = gone["logEntry"]["logIndex"].as_u64().unwrap();
    let out = verify(d, &server, "gone.md", false);
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));

    // The publisher's own (non-admin) token retracts its manifest, with a reason.
    let token = publisher_token(d);
    let out = revoke(
        d,
        &server,
        &token,
        &[
            "--log-index",
            &gone_index.to_string(),
            "--reason",
            "withdrawn",
            "--out",
            "retraction.json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    assert!(
        all(&out).contains(&format!("retracted the manifest at log index {gone_index}")),
        "{}",
        all(&out)
    );
    // The retraction is a logged DSSE envelope with the revocation predicate, signed by the
    // publisher's key (the same key id as the manifest).
    let retraction: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("retraction.json")).unwrap()).unwrap();
    assert_eq!(
        retraction["dsseEnvelope"]["signatures"][0]["keyid"],
        gone["dsseEnvelope"]["signatures"][0]["keyid"]
    );
    let payload: serde_json::Value = serde_json::from_slice(
        &byline::core::dsse::decode_base64_any(
            retraction["dsseEnvelope"]["payload"].as_str().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["predicateType"], "https://byline.dev/revocation/v1");
    assert_eq!(payload["predicate"]["action"], "retract-manifest");
    assert_eq!(payload["predicate"]["manifest"]["logIndex"], gone_index);
    assert!(retraction["logEntry"]["logIndex"].as_u64().unwrap() > gone_index);

    let out = verify(d, &server, "gone.md", false);
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.starts_with("NOT VERIFIED gone.md: retracted by localhost at "),
        "{text}"
    );
    assert!(text.contains("withdrawn"), "{text}");
    let out = verify(d, &server, "gone.md", true);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["failure"]["code"], "retracted", "{v}");
    // The other article is untouched.
    let out = verify(d, &server, "kept.md", false);
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));

    // A second retraction of the same manifest is refused, naming the first.
    let out = revoke(
        d,
        &server,
        &token,
        &["--log-index", &gone_index.to_string(), "--reason", "again"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", all(&out));
    assert!(all(&out).contains("already retracted"), "{}", all(&out));

    // The monitor lists the retraction under the publisher.
    let out = byline(
        d,
        "",
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
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    assert!(
        all(&out).contains(&format!("RETRACTION of entry {gone_index}: \"withdrawn\"")),
        "{}",
        all(&out)
    );
    server.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_refuses_what_a_token_may_not_do_and_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d, &[]);
    let bundle = sign(d, &server, "a.md");
    let index = bundle["logEntry"]["logIndex"].as_u64().unwrap();
    let keyid = bundle["dsseEnvelope"]["signatures"][0]["keyid"]
        .as_str()
        .unwrap()
        .to_string();
    let publisher = publisher_token(d);
    let mut client = server.client().await;
    let revoke = |target: pb::revoke_request::Target, reason: &str| pb::RevokeRequest {
        target: Some(target),
        reason: reason.into(),
        since: None,
    };
    let code = |r: Result<tonic::Response<pb::RevokeResponse>, tonic::Status>| {
        let s = r.expect_err("must be refused");
        (s.code(), s.message().to_string())
    };

    // A key revocation needs an admin token.
    let (c, m) = code(
        client
            .revoke(with_token(
                revoke(
                    pb::revoke_request::Target::Keyid(keyid.clone()),
                    "compromised",
                ),
                &publisher,
            ))
            .await,
    );
    assert_eq!(c, tonic::Code::PermissionDenied, "{m}");
    assert!(m.contains("admin"), "{m}");
    // No token at all.
    let (c, _) = code(
        client
            .revoke(revoke(
                pb::revoke_request::Target::ManifestLogIndex(index),
                "withdrawn",
            ))
            .await,
    );
    assert_eq!(c, tonic::Code::Unauthenticated);
    // A reason is required and bounded.
    for reason in ["", "   ", &"x".repeat(300)] {
        let (c, m) = code(
            client
                .revoke(with_token(
                    revoke(pb::revoke_request::Target::ManifestLogIndex(index), reason),
                    &publisher,
                ))
                .await,
        );
        assert_eq!(c, tonic::Code::InvalidArgument, "{m}");
        assert!(m.starts_with("reason"), "{m}");
    }
    // No such entry; a malformed or unknown keyid; a revocation in the future.
    let (c, m) = code(
        client
            .revoke(with_token(
                revoke(
                    pb::revoke_request::Target::ManifestLogIndex(9999),
                    "withdrawn",
                ),
                &publisher,
            ))
            .await,
    );
    assert_eq!(c, tonic::Code::NotFound, "{m}");
    let (c, m) = code(
        client
            .revoke(with_token(
                revoke(pb::revoke_request::Target::Keyid("abc".into()), "lost"),
                &server.token,
            ))
            .await,
    );
    assert_eq!(c, tonic::Code::InvalidArgument, "{m}");
    assert!(m.starts_with("keyid"), "{m}");
    let (c, m) = code(
        client
            .revoke(with_token(
                revoke(pb::revoke_request::Target::Keyid("0".repeat(64)), "lost"),
                &server.token,
            ))
            .await,
    );
    assert_eq!(c, tonic::Code::NotFound, "{m}");
    let mut future = revoke(pb::revoke_request::Target::Keyid(keyid.clone()), "lost");
    future.since = Some(prost_types::Timestamp {
        seconds: 4_000_000_000,
        nanos: 0,
    });
    let (c, m) = code(client.revoke(with_token(future, &server.token)).await);
    assert_eq!(c, tonic::Code::InvalidArgument, "{m}");
    assert!(m.contains("future"), "{m}");
    // A revocation cannot itself be retracted.
    let retraction = client
        .revoke(with_token(
            revoke(
                pb::revoke_request::Target::ManifestLogIndex(index),
                "withdrawn",
            ),
            &publisher,
        ))
        .await
        .unwrap()
        .into_inner();
    let (c, m) = code(
        client
            .revoke(with_token(
                revoke(
                    pb::revoke_request::Target::ManifestLogIndex(retraction.log_index),
                    "oops",
                ),
                &publisher,
            ))
            .await,
    );
    assert_eq!(c, tonic::Code::InvalidArgument, "{m}");
    assert!(m.contains("is a revocation"), "{m}");
    server.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_fails_later_signatures_and_retires_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d, &[]);
    server_harness::pin_trust(&server, &d.join("reader.toml"));
    let before = sign(d, &server, "before.md");
    let before_time = before["logEntry"]["integratedTime"]
        .as_str()
        .unwrap()
        .to_string();
    // Sign the second article until the log gives it a later second than the first (the
    // log's times are whole seconds).
    let (after, after_time) = loop {
        let b = sign(d, &server, "after.md");
        let t = b["logEntry"]["integratedTime"]
            .as_str()
            .unwrap()
            .to_string();
        if t > before_time {
            break (b, t);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let keyid = after["dsseEnvelope"]["signatures"][0]["keyid"]
        .as_str()
        .unwrap()
        .to_string();

    // The key was stolen at the second signature's time: revoke it from then (admin token).
    let out = revoke(
        d,
        &server,
        &server.token,
        &[
            "--keyid",
            &keyid,
            "--since",
            &after_time,
            "--reason",
            "compromised",
            "--out",
            "key-revocation.json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    // Signed by the log's key, not the revoked one.
    let revocation: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("key-revocation.json")).unwrap())
            .unwrap();
    assert_ne!(revocation["dsseEnvelope"]["signatures"][0]["keyid"], keyid);

    let out = verify(d, &server, "after.md", false);
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains(&format!(
            "key revoked at {after_time} (signed {after_time}, after the revocation)"
        )),
        "{text}"
    );
    let out = verify(d, &server, "before.md", false);
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("retired key"), "{text}");
    let out = verify(d, &server, "before.md", true);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["keyStanding"]["status"], "retired", "{v}");
    assert_eq!(v["keyStanding"]["revokedSince"], after_time.as_str(), "{v}");

    // The server's own Verify answers the same way.
    let mut client = server.client().await;
    for (file, verified, code) in [
        ("before.md", true, ""),
        ("after.md", false, "key-not-valid"),
    ] {
        let answer = client
            .verify(pb::VerifyRequest {
                article: Some(pb::Article {
                    content: std::fs::read(d.join(file)).unwrap(),
                    media_type: "text/markdown".into(),
                }),
                bundle_json: std::fs::read_to_string(d.join(format!("{file}.byline.json")))
                    .unwrap(),
                require_exact: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.verified, verified, "{file}: {answer:?}");
        assert_eq!(answer.failure_code, code, "{file}: {answer:?}");
    }

    // The server no longer signs with the revoked key.
    std::fs::write(d.join("later.md"), article("later")).unwrap();
    let out = byline(
        d,
        &server.token,
        &[
            "sign",
            "later.md",
            "--server",
            &server.url,
            "--byline",
            "By AI",
            "--authorship",
            "ai-generated",
        ],
    );
    assert_ne!(out.status.code(), Some(0), "{}", all(&out));
    assert!(all(&out).contains("was revoked"), "{}", all(&out));
    server.assert_no_panic();
}
