//! The gRPC service, started for real on a loopback port: signing by content and by digests,
//! authentication, limits and precise errors, streaming, lookups, health, reflection, and a
//! graceful shutdown that keeps every answered manifest.

mod server_harness;

use std::process::Command;

use byline::core::canonical::MediaType;
use byline::core::manifest::Timestamp;
use byline::core::sign::prepare_article;
use byline::core::verify::{verify_article, VerifyOptions};
use byline::proto as pb;
use server_harness::{bin, content_request, pin_trust, with_token, Server};
use tonic::Code;

fn verifies(
    trust: &byline::core::trust::TrustStore,
    article: &[u8],
    media: MediaType,
    bundle: &str,
) -> bool {
    let v = verify_article(
        article,
        media,
        bundle.as_bytes(),
        trust,
        &VerifyOptions::default(),
        Timestamp::now(),
    );
    assert!(v.verified(), "did not verify: {:?}", v.failure);
    v.log.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_by_content_and_by_digests_verify_offline() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert!(
        server.token.starts_with("byl_"),
        "no development token printed:\n{}",
        server.log()
    );
    let mut client = server.client().await;

    // By content, with a tonic client.
    let signed = client
        .sign(with_token(content_request(1), &server.token))
        .await
        .unwrap()
        .into_inner();
    let article = server_harness::article(1);
    std::fs::write(dir.path().join("a1.md"), &article).unwrap();
    std::fs::write(dir.path().join("a1.json"), &signed.bundle_json).unwrap();

    // The Verify RPC (for publishers' own systems) judges with the server's keys and log.
    let verify = |content: String| pb::VerifyRequest {
        article: Some(pb::Article {
            content: content.into_bytes(),
            media_type: "text/markdown".into(),
        }),
        bundle_json: signed.bundle_json.clone(),
        require_exact: false,
    };
    let answer = client
        .verify(verify(article.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.verified, "{answer:?}");
    assert_eq!((answer.byline.as_str(), answer.logged), ("By AI", true));
    let answer = client
        .verify(verify(article.replace("approved", "rejected")))
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.verified);
    assert_eq!(answer.failure_code, "digest-mismatch");

    // By digests: the server never sees the text.
    let article2 = server_harness::article(2);
    let prepared = prepare_article(article2.as_bytes(), MediaType::Markdown, 1 << 22).unwrap();
    let by_digest = client
        .sign(with_token(
            pb::SignRequest {
                article: Some(pb::sign_request::Article::Digests(pb::Digests {
                    text_sha256: prepared.digests.text.to_hex(),
                    exact_sha256: prepared.digests.exact.to_hex(),
                })),
                authorship: Some(server_harness::ai_authorship("internal-id-2")),
                idempotency_key: String::new(),
                request_id: 0,
            },
            &server.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_digest.text_sha256, prepared.digests.text.to_hex());
    std::fs::write(dir.path().join("a2.md"), &article2).unwrap();
    std::fs::write(dir.path().join("a2.json"), &by_digest.bundle_json).unwrap();

    // The offline CLI accepts both, with the keys pinned from the server.
    let trust_path = dir.path().join("reader-trust.toml");
    pin_trust(&server, &trust_path);
    for (article, bundle) in [("a1.md", "a1.json"), ("a2.md", "a2.json")] {
        let out = Command::new(bin())
            .current_dir(dir.path())
            .args(["verify", article, "--bundle", bundle, "--trust"])
            .arg(&trust_path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        assert!(
            stdout.contains("By AI") && stdout.contains("log's integratedTime"),
            "{stdout}"
        );
    }

    // Through the CLI: sign --server writes a sidecar that verifies offline.
    std::fs::write(dir.path().join("a3.md"), server_harness::article(3)).unwrap();
    let out = Command::new(bin())
        .current_dir(dir.path())
        .env("BYLINE_TOKEN", &server.token)
        .args([
            "sign",
            "a3.md",
            "--server",
            &server.url,
            "--byline",
            "By AI",
            "--authorship",
            "ai-generated",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["verify", "a3.md", "--trust"])
        .arg(&trust_path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    server.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_precise_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-article-bytes", "1000"]);
    let mut client = server.client().await;

    // No token.
    let err = client.sign(content_request(1)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    // A wrong token.
    let err = client
        .sign(with_token(content_request(1), "byl_000000000000_nope"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    // A token for another publisher signing as localhost.
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["token", "create", "--publisher", "news.example"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let err = client
        .sign(with_token(content_request(1), &other))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("news.example"), "{err:?}");

    // Oversize article: names the limit.
    let mut big = content_request(1);
    if let Some(pb::sign_request::Article::Content(a)) = &mut big.article {
        a.content = vec![b'x'; 2000];
    }
    let err = client
        .sign(with_token(big, &server.token))
        .await
        .unwrap_err();
    assert!(
        matches!(err.code(), Code::InvalidArgument | Code::ResourceExhausted),
        "{err:?}"
    );
    assert!(err.message().contains("1000"), "{err:?}");

    // Malformed digests, unknown media type, empty byline: INVALID_ARGUMENT naming the field.
    let mut bad_digest = content_request(1);
    bad_digest.article = Some(pb::sign_request::Article::Digests(pb::Digests {
        text_sha256: "not-hex".into(),
        exact_sha256: "00".repeat(32),
    }));
    let mut bad_media = content_request(1);
    if let Some(pb::sign_request::Article::Content(a)) = &mut bad_media.article {
        a.media_type = "application/pdf".into();
    }
    let mut empty_byline = content_request(1);
    empty_byline.authorship.as_mut().unwrap().byline = "  ".into();
    let mut no_class = content_request(1);
    no_class.authorship.as_mut().unwrap().authorship = 0;
    for (req, field) in [
        (bad_digest, "digests.text_sha256"),
        (bad_media, "article.media_type"),
        (empty_byline, "authorship.byline"),
        (no_class, "authorship.authorship"),
    ] {
        let err = client
            .sign(with_token(req, &server.token))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(err.message().contains(field), "{field}: {err:?}");
    }
    server.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_stream_of_1000_all_verify_and_lookup_finds_each() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.client().await;
    let requests: Vec<pb::SignRequest> = (0..1000).map(content_request).collect();
    let mut request = tonic::Request::new(tokio_stream::iter(requests));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", server.token).parse().unwrap(),
    );
    let mut answers = client.sign_stream(request).await.unwrap().into_inner();
    let mut signed = Vec::new();
    while let Some(answer) = answers.message().await.unwrap() {
        match answer.result {
            Some(pb::sign_stream_response::Result::Signed(s)) => {
                signed.push((answer.request_id, s))
            }
            other => panic!("request {} failed: {other:?}", answer.request_id),
        }
    }
    assert_eq!(signed.len(), 1000);
    // In order, one answer per request.
    assert!(signed
        .iter()
        .enumerate()
        .all(|(i, (id, _))| *id == i as u64));
    let mut indices: Vec<u64> = signed.iter().map(|(_, s)| s.log_index).collect();
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(indices.len(), 1000, "log indices are not unique");

    let trust = pin_trust(&server, &dir.path().join("trust.toml"));
    for (n, s) in &signed {
        let article = server_harness::article(*n as usize);
        assert!(verifies(
            &trust,
            article.as_bytes(),
            MediaType::Markdown,
            &s.bundle_json
        ));
        let found = client
            .lookup(pb::LookupRequest {
                digest: Some(pb::lookup_request::Digest::TextSha256(
                    s.text_sha256.clone(),
                )),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            found.entries.iter().any(|e| e.log_index == s.log_index),
            "lookup missed {n}"
        );
    }
    server.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_serves_and_reflection_lists_every_rpc() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let channel = server.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "byline.v1.Byline".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut reflection = ServerReflectionClient::new(channel);
    let ask = |m: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(vec![
            ask(MessageRequest::ListServices(String::new())),
            ask(MessageRequest::FileContainingSymbol(
                "byline.v1.Byline".into(),
            )),
        ]))
        .await
        .unwrap()
        .into_inner();
    let list = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(services)) = list.message_response else {
        panic!("no service list");
    };
    let names: Vec<String> = services.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"byline.v1.Byline".to_string()), "{names:?}");
    let file = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(fds)) = file.message_response else {
        panic!("no file descriptor");
    };
    let descriptor = <prost_types::FileDescriptorProto as prost::Message>::decode(
        fds.file_descriptor_proto[0].as_slice(),
    )
    .unwrap();
    let methods: Vec<String> = descriptor.service[0]
        .method
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    for rpc in [
        "Sign",
        "SignStream",
        "Verify",
        "Lookup",
        "GetKeys",
        "GetCheckpoint",
        "GetInclusionProof",
        "GetConsistencyProof",
        "GetEntries",
        "Revoke",
    ] {
        assert!(
            methods.contains(&rpc.to_string()),
            "reflection lacks {rpc}: {methods:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_keeps_every_answered_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let token = server.token.clone();
    let mut client = server.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::SignRequest>(8);
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let feeder = tokio::spawn(async move {
        for n in 0..100_000 {
            if tx.send(content_request(n)).await.is_err() {
                break;
            }
            if n == 200 {
                // Hold the stream open while the test sends SIGTERM.
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                break;
            }
        }
    });
    let mut answers = client.sign_stream(request).await.unwrap().into_inner();
    let mut answered = Vec::new();
    let mut terminated = false;
    while let Ok(Some(a)) = answers.message().await {
        if let Some(pb::sign_stream_response::Result::Signed(s)) = a.result {
            answered.push((a.request_id, s));
        }
        if answered.len() == 150 && !terminated {
            let _ = Command::new("kill")
                .args(["-TERM", &server.pid().to_string()])
                .status();
            terminated = true;
        }
    }
    feeder.await.unwrap();
    let status = server.terminate();
    assert!(
        status.success(),
        "server did not exit cleanly: {status:?}\n{}",
        server.log()
    );
    assert!(answered.len() >= 150);

    // Restart on the same database: every answered manifest is there and verifies.
    let server = Server::start(dir.path(), &[]);
    let trust = pin_trust(&server, &dir.path().join("trust.toml"));
    let mut client = server.client().await;
    for (n, s) in &answered {
        let found = client
            .lookup(pb::LookupRequest {
                digest: Some(pb::lookup_request::Digest::TextSha256(
                    s.text_sha256.clone(),
                )),
            })
            .await
            .unwrap()
            .into_inner();
        let entry = found
            .entries
            .iter()
            .find(|e| e.log_index == s.log_index)
            .unwrap_or_else(|| panic!("answered manifest {n} was lost"));
        let article = server_harness::article(*n as usize);
        assert!(verifies(
            &trust,
            article.as_bytes(),
            MediaType::Markdown,
            &entry.bundle_json
        ));
        assert!(verifies(
            &trust,
            article.as_bytes(),
            MediaType::Markdown,
            &s.bundle_json
        ));
    }
    server.assert_no_panic();
}

/// Answers on one connection are held for a turn and written together (`service::coalesce`):
/// 300 calls in flight on one HTTP/2 connection, through the real `h2`, must each still get
/// their own entry and bundle, within a minute. This shows that nothing held is lost or stuck;
/// it does not show that fewer writes were made (in this debug build `h2` flushes rarely either
/// way). The wrapper's unit tests and `byline bench sign` show that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_held_for_a_turn_all_arrive() {
    const CALLS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let channel = server.channel().await;
    let mut calls = Vec::new();
    for n in 0..CALLS {
        let mut client = pb::byline_client::BylineClient::new(channel.clone());
        let hex = |tag: &str| {
            byline::core::digest::Sha256Digest::of(format!("{tag}{n}").as_bytes()).to_hex()
        };
        let request = pb::SignRequest {
            article: Some(pb::sign_request::Article::Digests(pb::Digests {
                text_sha256: hex("text"),
                exact_sha256: hex("exact"),
            })),
            authorship: Some(server_harness::ai_authorship(&format!(
                "https://localhost/together/{n}"
            ))),
            idempotency_key: String::new(),
            request_id: n as u64,
        };
        let request = with_token(request, &server.token);
        calls.push(tokio::spawn(async move {
            client.sign(request).await.map(|r| r.into_inner())
        }));
    }
    let answers = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        answers
    })
    .await
    .expect("answers held by the server never arrived");
    let mut indices = std::collections::BTreeSet::new();
    for (n, answer) in answers.into_iter().enumerate() {
        let answer = answer.unwrap_or_else(|s| panic!("call {n}: {s:?}"));
        assert!(
            answer.bundle_json.contains("\"inclusionProof\""),
            "call {n}"
        );
        assert!(
            indices.insert(answer.log_index),
            "index {} twice",
            answer.log_index
        );
    }
    assert_eq!(indices.len(), CALLS);
    server.assert_no_panic();
}
