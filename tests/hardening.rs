//! Hostile input: lookalike and invisible bylines are refused at signing (gRPC and CLI) and
//! flagged by the verifier; a retried Sign with the same idempotency key returns the same
//! entry; a flood past the concurrency limit gets fast RESOURCE_EXHAUSTED while health stays
//! SERVING.

mod server_harness;

use byline::core::hygiene::{check_byline, HygieneError, DEFAULT_RESERVED_BYLINES};
use byline::proto as pb;
use server_harness::{content_request, with_token, Server};
use tonic::Code;

#[derive(serde::Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    id: String,
    utf8_hex: String,
    is_nfc: bool,
    single_script: bool,
    has_bidi_control: bool,
    has_invisible_or_default_ignorable: bool,
    has_control_other_than_tab_lf: bool,
    uts39_skeleton_equals_ref_skeleton: bool,
}

/// Each published attack case gets the verdict its properties call for.
#[test]
fn unicode_attack_vectors_get_the_expected_verdict() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/unicode/text_attack_cases.json"
    );
    let cases: Cases = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(cases.cases.len(), 20);
    for c in &cases.cases {
        let text = String::from_utf8(hex::decode(&c.utf8_hex).unwrap()).unwrap();
        let got = check_byline("byline", &text, DEFAULT_RESERVED_BYLINES);
        let has_forbidden = c.has_bidi_control
            || c.has_invisible_or_default_ignorable
            || c.has_control_other_than_tab_lf
            || text.contains(['\n', '\u{2028}', '\u{2029}']);
        match &got {
            Ok(()) => {
                assert!(
                    c.is_nfc
                        && c.single_script
                        && !has_forbidden
                        && (!c.uts39_skeleton_equals_ref_skeleton || text == "By AI"),
                    "{} was accepted",
                    c.id
                );
            }
            Err(HygieneError::Forbidden { .. }) => assert!(has_forbidden, "{}: {got:?}", c.id),
            Err(HygieneError::NotNfc { .. }) => assert!(!c.is_nfc, "{}: {got:?}", c.id),
            Err(HygieneError::MixedScript { .. }) => assert!(!c.single_script, "{}: {got:?}", c.id),
            Err(HygieneError::Lookalike { .. }) => {
                assert!(
                    c.uts39_skeleton_equals_ref_skeleton && text != "By AI",
                    "{}: {got:?}",
                    c.id
                )
            }
        }
        // Every case that imitates or hides something is refused.
        let should_refuse = !c.is_nfc
            || !c.single_script
            || has_forbidden
            || (c.uts39_skeleton_equals_ref_skeleton && text != "By AI");
        assert_eq!(got.is_err(), should_refuse, "{}: {got:?}", c.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookalike_and_invisible_bylines_are_invalid_argument_naming_field_and_code_point() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.client().await;
    for (byline, expect) in [
        ("By A\u{200B}I", "U+200B"),
        ("By \u{0410}I", "mixes scripts"),
        ("By Al", "reserved byline"),
        ("By AI\u{202E}", "U+202E"),
        ("By AI\u{E0041}", "U+E0041"),
    ] {
        let mut req = content_request(1);
        req.authorship.as_mut().unwrap().byline = byline.into();
        let err = client
            .sign(with_token(req, &server.token))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{byline:?}: {err:?}");
        assert!(
            err.message().contains("byline") && err.message().contains(expect),
            "{byline:?}: {err:?}"
        );
    }
    let mut req = content_request(2);
    req.authorship.as_mut().unwrap().humans = vec![pb::Human {
        name: "Ja\u{200D}ne".into(),
        role: "editor".into(),
    }];
    let err = client
        .sign(with_token(req, &server.token))
        .await
        .unwrap_err();
    assert!(
        err.message().contains("humans[0].name") && err.message().contains("U+200D"),
        "{err:?}"
    );
    // Honest bylines in one script per word are accepted.
    for byline in ["Автор: Иван Петров", "By Zoë Ångström", "記者 山田太郎"]
    {
        let mut req = content_request(3);
        req.authorship.as_mut().unwrap().byline = byline.into();
        client
            .sign(with_token(req, &server.token))
            .await
            .unwrap_or_else(|e| panic!("{byline:?} refused: {e:?}"));
    }
    server.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_sign_with_the_same_idempotency_key_returns_the_same_entry() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.client().await;
    let mut req = content_request(7);
    req.idempotency_key = "cms-article-7-rev-1".into();
    let first = client
        .sign(with_token(req.clone(), &server.token))
        .await
        .unwrap()
        .into_inner();
    let again = client
        .sign(with_token(req.clone(), &server.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.log_index, again.log_index);
    let envelope =
        |b: &str| serde_json::from_str::<serde_json::Value>(b).unwrap()["dsseEnvelope"].clone();
    assert_eq!(envelope(&first.bundle_json), envelope(&again.bundle_json));
    // The same key repeated inside one stream also maps to one entry.
    let mut stream_req = tonic::Request::new(tokio_stream::iter(vec![
        req.clone(),
        req.clone(),
        content_request(8),
    ]));
    stream_req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", server.token).parse().unwrap(),
    );
    let mut answers = client.sign_stream(stream_req).await.unwrap().into_inner();
    let mut indices = Vec::new();
    while let Some(a) = answers.message().await.unwrap() {
        match a.result {
            Some(pb::sign_stream_response::Result::Signed(s)) => indices.push(s.log_index),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(indices[0], first.log_index);
    assert_eq!(indices[1], first.log_index);
    assert_ne!(indices[2], first.log_index);
    let cp = client
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cp.tree_size, 2, "a retried request made a second entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_past_the_limit_is_shed_fast_while_health_serves() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-concurrent", "2"]);
    let channel = server.channel().await;
    let mut calls = Vec::new();
    for n in 0..300 {
        let mut client = pb::byline_client::BylineClient::new(channel.clone());
        let token = server.token.clone();
        calls.push(tokio::spawn(async move {
            let r = client.sign(with_token(content_request(n), &token)).await;
            (r.map(|_| ()).map_err(|e| e.code()), ())
        }));
    }
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let mut shed = 0;
    let mut ok = 0;
    for c in calls {
        match c.await.unwrap() {
            (Ok(()), _) => ok += 1,
            (Err(Code::ResourceExhausted), _) => shed += 1,
            (Err(code), _) => panic!("unexpected status {code:?}"),
        }
    }
    assert!(ok > 0, "nothing got through");
    assert!(
        shed > 0,
        "nothing was shed past a limit of 2 with 300 calls in flight"
    );
    server.assert_no_panic();
}
